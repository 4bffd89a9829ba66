/** log: a line of the worker's output (stdout or stderr) matches ready.pattern. */
import type { Probe } from "./types.ts";

export const logProbe: Probe = (ctx) =>
  new Promise<void>((resolve, reject) => {
    if (!ctx.onLine) return reject(new Error("ready.type log: the worker's output is not captured"));
    let re: RegExp;
    try {
      re = new RegExp(ctx.config.pattern ?? "");
    } catch (e) {
      return reject(new Error(`ready.pattern: ${(e as Error).message}`));
    }
    const off = ctx.onLine((line) => {
      if (!re.test(line)) return;
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
