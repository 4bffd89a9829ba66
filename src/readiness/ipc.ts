/**
 * ipc: a Node or Bun worker calls process.send("ready") (PM2's convention;
 * { ready: true } and { type: "ready" } are accepted too).
 */
import type { Probe } from "./types.ts";

export function isReadyMessage(m: unknown): boolean {
  if (m === "ready") return true;
  if (m && typeof m === "object") {
    const o = m as Record<string, unknown>;
    return o.ready === true || o.type === "ready";
  }
  return false;
}

export const ipcProbe: Probe = (ctx) =>
  new Promise<void>((resolve, reject) => {
    if (!ctx.onIpc) return reject(new Error("ready.type ipc: no IPC channel to this worker"));
    const off = ctx.onIpc((m) => {
      if (!isReadyMessage(m)) return;
      done();
      resolve();
    });
    const onAbort = () => {
      done();
      reject(ctx.signal.reason);
    };
    const done = () => {
      off();
      ctx.signal.removeEventListener("abort", onAbort);
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener("abort", onAbort, { once: true });
  });
