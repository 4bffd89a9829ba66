/** delay: ready after ready.delay, provided the worker is still running (index.ts checks exit). */
import { sleep, type Probe } from "./types.ts";

export const delayProbe: Probe = (ctx) => sleep(ctx.config.delay, ctx.signal);
