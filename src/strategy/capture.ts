/**
 * run.capture beside the fd and proxy strategies: the app runs unmodified and its
 * bind() of a [[listen]] port gets hr's socket (capture/). The strategies put the
 * capture supervisor into each process's Wiring; dev and serve start the process
 * through it.
 */
import { openCapture } from "../capture/app.ts";
import type { Capture } from "../capture/index.ts";
import type { OpenOptions, StrategyName } from "./types.ts";

export /** run.capture works beside fd and proxy, with a TCP [[listen]] port; says at start when seccomp can't be used. */
function checkCapture(mode: OpenOptions["mode"], name: StrategyName, config: OpenOptions["config"]): void {
  if (mode === "serve") {
    if (name === "reuseport") throw new Error('run.capture needs serve.strategy = "fd" or "proxy" (under reuseport the workers bind the port themselves)');
    if (!config.listen.some((l) => !l.address.startsWith("unix:"))) throw new Error('run.capture = true needs a TCP [[listen]] address: the port the app binds (e.g. address = ":8080")');
  } else if (name === "none" || config.listen.length === 0) {
    throw new Error('run.capture = true needs a [[listen]] address: the port the app binds (e.g. address = ":8080"), which hr holds and hands over');
  }
  openCapture(mode);
}

/** The capture supervisor for a process whose config asks for it (an Error when seccomp can't be used). */
export function captureFor(mode: OpenOptions["mode"]): Capture | Error {
  try {
    return openCapture(mode);
  } catch (error) {
    return error as Error;
  }
}
