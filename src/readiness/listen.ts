/**
 * listen: the app called listen() on the socket hr handed it when it captured
 * the app's bind() (run.capture, capture/). Needs no code in the app: every
 * server framework listens once it is set up to accept.
 */
import { firstEvent, type Probe } from "./types.ts";

export const listenProbe: Probe = (ctx) =>
  ctx.onListen
    ? firstEvent(ctx.signal, ctx.onListen, () => true)
    : Promise.reject(new Error('ready.type listen: this worker runs without bind capture (set run.capture = true, or choose another ready.type)'));
