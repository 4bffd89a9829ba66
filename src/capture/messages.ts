/** Messages between the capture supervisor (main thread) and its notification thread (worker.ts). */

/** A [[listen]] port the app may bind, and the socket hr puts in its place. */
export interface PortTarget {
  /** The port the app asks for (any host). */
  port: number;
  /** hr's socket (an fd of this process). */
  fd: number;
  /**
   * shared: hr's held listener (fd strategy): the app's listen() on it is answered
   * without running it (the app's backlog must not shrink hr's), and several apps
   * may receive it. private: a fresh bound socket for this app only (proxy): its
   * listen() runs as the app asked.
   */
  shared: boolean;
  /** Where hr's socket is bound (for messages). */
  address: string;
}

export type Mode =
  /** Binds of a target port get hr's socket. */
  | "capture"
  /** Nothing is replaced; binds of a port hr holds are reported (the app will get EADDRINUSE). */
  | "observe";

export type ToWorker =
  /** keepPair: a warm launcher, which later receives its app over the pair (the main thread writes to it). */
  | { type: "add"; id: number; pair: number; mode: Mode; targets: PortTarget[]; keepPair?: boolean }
  | { type: "remove"; id: number };

export type FromWorker =
  /** The launcher handed over its listener: the app is about to exec. */
  | { type: "attached"; id: number }
  /** The launcher could not install the filter (its message). */
  | { type: "refused"; id: number; message: string }
  /** A bind of a target port got hr's socket. */
  | { type: "captured"; id: number; pid: number; port: number; host: string }
  /** listen() on a socket hr handed over (or holds, in observe mode): ready. */
  | { type: "listening"; id: number; pid: number; port: number }
  /** observe mode: the app binds a port hr holds itself. */
  | { type: "conflict"; id: number; pid: number; port: number; host: string }
  /** A bind of a target port hr could not take over (not TCP, the socket vanished…). */
  | { type: "skipped"; id: number; pid: number; port: number; host: string; why: string }
  /** listen() on a socket hr did not hand over, bound to this TCP port (fixed: the app asked for this port, not for any free one). */
  | { type: "other-listen"; id: number; pid: number; port: number; host: string; fixed: boolean }
  /** Every process under this app's filter is gone. */
  | { type: "gone"; id: number }
  | { type: "error"; id: number; message: string };
