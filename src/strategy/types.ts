/**
 * A strategy: how the processes hr starts (hr dev's app, hr serve's workers) get
 * their listening socket, and what hr does around each process's life for it.
 * hr dev and hr serve open one strategy at start-up (strategy/index.ts) and tell
 * it about every process; neither knows which strategy it has.
 *
 *   wire()    before a process starts: what it gets (fds at 3, 4, …; env; argv
 *             wrapper; a private PORT)
 *   ready()   it passed readiness (serve) / was spawned (dev)
 *   exited()  it exited, or never started (pid 0): its private port is free again
 *   audit()   serve: every worker of a generation is ready; may fail the generation
 *   live()    that generation (dev: that app) is the one serving now
 *   retire()  before a generation (dev: the app) gets its stop signal: it gets no new
 *             requests; resolves once hr has nothing in flight to it (proxy)
 *   down()    dev: no app runs; `message` is what clients get (null: they wait)
 *   close()   hr is exiting: closes what the strategy holds
 *
 * A new strategy is one file exporting an Opener, plus one line in index.ts.
 */
import type { Capture } from "../capture/index.ts";
import type { Config, DevStrategyName, ServeStrategyName } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import type { DrainReport } from "../proxy/proxy.ts";
import type { SocketSet } from "../sockets/handoff.ts";

export type { DrainReport };

export type StrategyName = DevStrategyName | ServeStrategyName;

/** What one process gets from the strategy. */
export interface Wiring {
  /** Added to the process's environment (LISTEN_FDS…, PORT, HOST, BUN_OPTIONS). */
  env: Record<string, string>;
  /** hr-side fds the process receives at 3, 4, … */
  fds: number[];
  /** Wraps the process's argv (LISTEN_PID shim, bun --preload). */
  argv(argv: string[]): string[];
  /** A private 127.0.0.1 port for this process (in env.PORT): proxy. */
  port?: number;
  /**
   * run.capture: the process runs unmodified under bind capture (capture/) instead of
   * getting fds, LISTEN_* or a shim; its bind of a [[listen]] port gets hr's socket
   * (fd) or a private socket on `port` (proxy). An Error: capture can't be used here.
   */
  capture?: Capture | Error;
}

/** A process of generation `gen` (dev: the app's generation; worker 1). */
export interface Proc {
  gen: number;
  worker: number;
  pid: number;
  port?: number;
}

export interface AuditResult {
  /** worker index → warning shown in status */
  warnings: Map<number, string>;
  fail?: { worker: number; reason: string };
}

export interface Strategy {
  readonly name: StrategyName;
  /** What hr holds (fd, proxy) or describes (reuseport); empty for none. */
  readonly sockets: SocketSet;
  /** serve: once hr's private runtime directory exists (fd, reuseport: the Bun shim goes there). */
  install?(workDir: string): void;
  /** Before a process of generation `gen` starts, with the config it starts with. */
  wire(cfg: Config, gen: number): Wiring;
  ready?(p: Proc): void;
  exited?(p: Proc): void;
  audit?(gen: number, workers: { worker: number; pid: number }[]): AuditResult;
  /** `replaced`: it replaced another one (dev + live_reload: open pages reload). */
  live?(gen: number, replaced: boolean): void;
  /** `timeoutMs`: how long hr's requests and tunnels to it may take (then they are cut). */
  retire?(gen: number, timeoutMs: number): Promise<DrainReport>;
  down?(message: string | null): void;
  close(): void;
}

export type Mode = "dev" | "serve";

export interface OpenOptions {
  mode: Mode;
  config: Config;
  /** Project directory (relative unix socket paths). */
  root: string;
  env: Record<string, string | undefined>;
  log: Logger;
}

/** Opens a strategy's sockets. Throws an Error with a user-facing message. */
export type Opener = (o: OpenOptions) => Promise<Strategy>;
