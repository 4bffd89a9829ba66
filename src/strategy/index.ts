/**
 * The strategies, by name: one file each (types.ts says what a strategy does).
 * Which one runs is the config's dev.strategy / serve.strategy, whose defaults are
 * set in one place (config/schema.ts).
 */
import { checkCapture } from "./capture.ts";
import { openFd } from "./fd.ts";
import { openNone } from "./none.ts";
import { openProxy } from "./proxy.ts";
import { openReuseportStrategy } from "./reuseport.ts";
import type { DevStrategyName, ServeStrategyName } from "../config/schema.ts";
import type { OpenOptions, Opener, Strategy } from "./types.ts";

const DEV: Record<DevStrategyName, Opener> = { fd: openFd, proxy: openProxy, none: openNone };
const SERVE: Record<ServeStrategyName, Opener> = { fd: openFd, proxy: openProxy, reuseport: openReuseportStrategy };

/** Opens the strategy the config names for `mode`. Throws an Error with a user-facing message. */
export async function openStrategy(o: OpenOptions): Promise<Strategy> {
  const name = o.mode === "dev" ? o.config.dev.strategy : o.config.serve.strategy;
  const open = o.mode === "dev" ? DEV[o.config.dev.strategy] : SERVE[o.config.serve.strategy];
  if (o.config.run.capture) checkCapture(o.mode, name, o.config);
  return open(o);
}
