/**
 * http: GET ready.path on the worker's health port until it answers 2xx.
 * Uses node:http with a fresh connection per attempt (no keep-alive agent), so
 * a probe never holds a connection the worker would have to drain.
 */
import http from "node:http";
import { sleep, type Probe } from "./types.ts";

const RETRY_MS = 50;

/** One attempt: resolves with the status code, rejects on connection errors. */
export function httpGetStatus(host: string, port: number, path: string, signal: AbortSignal, timeoutMs = 2000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path, agent: false, timeout: timeoutMs, signal, headers: { "User-Agent": "hr-ready", Connection: "close" } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

export const httpProbe: Probe = async (ctx) => {
  if (!ctx.port) throw new Error("ready.type http: no health port");
  const host = ctx.host ?? "127.0.0.1";
  for (;;) {
    if (ctx.signal.aborted) throw ctx.signal.reason;
    try {
      const status = await httpGetStatus(host, ctx.port, ctx.config.path, ctx.signal);
      if (status >= 200 && status < 300) return;
    } catch {
      /* not listening yet */
    }
    await sleep(RETRY_MS, ctx.signal);
  }
};
