/**
 * Readiness probes: how hr knows a freshly started worker can take traffic.
 * One small module per probe (listen, notify, ipc, http, tcp, log, delay); index.ts picks
 * one by [serve.ready].type and bounds it with ready.timeout.
 *
 * A probe only ever says "ready". Timeouts and the worker exiting first are
 * decided by waitReady() in index.ts and are always failures, never success.
 */
import type { NotifySocket } from "../sockets/notify.ts";
import type { ReadyConfig } from "../config/schema.ts";

export interface ProbeContext {
  readonly config: ReadyConfig;
  /** Aborted when the wait is over (timeout, exit, stop): probes must stop and release resources. */
  readonly signal: AbortSignal;
  /** notify: the worker's own NOTIFY_SOCKET receiver. */
  readonly notify?: NotifySocket;
  /** ipc: subscribe to messages the worker sends with process.send(). Returns an unsubscribe. */
  onIpc?(cb: (message: unknown) => void): () => void;
  /** listen: subscribe to the worker's listen() on a socket hr handed it (capture). Returns an unsubscribe. */
  onListen?(cb: (event: unknown) => void): () => void;
  /** log: subscribe to the worker's output lines (stdout and stderr). Returns an unsubscribe. */
  onLine?(cb: (line: string) => void): () => void;
  /** http/tcp: where to probe (the worker's health port). */
  readonly host?: string;
  readonly port?: number;
}

/** Resolves when the worker is ready; rejects (or never resolves) otherwise. Must honour ctx.signal. */
export type Probe = (ctx: ProbeContext) => Promise<void>;

/** Resolves after ms, or rejects when the signal aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Resolves on the first event of a subscription that `accept` takes (a "ready"
 * IPC message, a matching log line); rejects when the signal aborts. Always unsubscribes.
 */
export function firstEvent<T>(signal: AbortSignal, subscribe: (cb: (event: T) => void) => () => void, accept: (event: T) => boolean): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const done = () => {
      off();
      signal.removeEventListener("abort", onAbort);
    };
    const onAbort = () => {
      done();
      reject(signal.reason);
    };
    const off = subscribe((event) => {
      if (!accept(event)) return;
      done();
      resolve();
    });
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
  });
}
