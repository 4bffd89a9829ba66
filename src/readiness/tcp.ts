/** tcp: the worker accepts a TCP connection on its health port. */
import net from "node:net";
import { sleep, type Probe } from "./types.ts";

const RETRY_MS = 50;

export function tcpConnect(host: string, port: number, timeoutMs = 2000): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const t = setTimeout(() => sock.destroy(new Error("timeout")), timeoutMs);
    sock.once("connect", () => {
      clearTimeout(t);
      sock.destroy();
      resolve();
    });
    sock.once("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
  });
}

export const tcpProbe: Probe = async (ctx) => {
  if (!ctx.port) throw new Error("ready.type tcp: no health port");
  const host = ctx.host ?? "127.0.0.1";
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    try {
      await tcpConnect(host, ctx.port);
      return;
    } catch {
      /* not yet */
    }
    await sleep(RETRY_MS, ctx.signal);
  }
};
