/**
 * ipc: a Node or Bun worker calls process.send("ready") (PM2's convention;
 * { ready: true } and { type: "ready" } are accepted too).
 */
import { firstEvent, type Probe } from "./types.ts";

export function isReadyMessage(m: unknown): boolean {
  if (m === "ready") return true;
  if (m && typeof m === "object") {
    const o = m as Record<string, unknown>;
    return o.ready === true || o.type === "ready";
  }
  return false;
}

export const ipcProbe: Probe = (ctx) =>
  ctx.onIpc ? firstEvent(ctx.signal, ctx.onIpc, isReadyMessage) : Promise.reject(new Error("ready.type ipc: no IPC channel to this worker"));
