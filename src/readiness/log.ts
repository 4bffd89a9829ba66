/** log: a line of the worker's output (stdout or stderr) matches ready.pattern. */
import { firstEvent, type Probe } from "./types.ts";

export const logProbe: Probe = (ctx) => {
  if (!ctx.onLine) return Promise.reject(new Error("ready.type log: the worker's output is not captured"));
  let re: RegExp;
  try {
    re = new RegExp(ctx.config.pattern ?? "");
  } catch (e) {
    return Promise.reject(new Error(`ready.pattern: ${(e as Error).message}`));
  }
  return firstEvent(ctx.signal, ctx.onLine, (line) => re.test(line));
};
