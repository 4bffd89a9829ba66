/** notify: the worker sends sd_notify READY=1 to its own NOTIFY_SOCKET (systemd's Type=notify protocol). */
import type { Probe } from "./types.ts";

export const notifyProbe: Probe = async (ctx) => {
  if (!ctx.notify) throw new Error("ready.type notify: no notify socket for this worker");
  await ctx.notify.waitFor("READY", { signal: ctx.signal });
};
