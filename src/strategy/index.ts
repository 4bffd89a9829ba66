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
import type { OpenOptions, Opener, Strategy, StrategyName } from "./types.ts";

const OPENERS: Record<StrategyName, Opener> = {
  fd: openFd,
  proxy: openProxy,
  none: openNone,
  reuseport: openReuseportStrategy,
};

/** Opens the strategy the config names for `mode`. Throws an Error with a user-facing message. */
export async function openStrategy(o: OpenOptions): Promise<Strategy> {
  const name = o.mode === "dev" ? o.config.dev.strategy : o.config.serve.strategy;
  const open = OPENERS[name];
  if (!open || (o.mode === "dev" && name === "reuseport") || (o.mode === "serve" && name === "none")) {
    throw new Error(`${o.mode}.strategy = ${JSON.stringify(name)} is not available for hr ${o.mode}`);
  }
  if (o.config.run.capture) checkCapture(o.mode, name, o.config);
  return open(o);
}
