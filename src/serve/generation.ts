/**
 * A generation: `serve.workers` processes of [run].cmd started together, sharing
 * the master's listening sockets (fd 3, 4, …), replaced together on reload.
 *
 * State machine (one per generation, enforced by transition()):
 *
 *     starting ──all workers ready──▶ ready ──stop signal──▶ draining ──tree gone──▶ exited
 *        │
 *        └──a worker exits / not ready in time / spawn error / shutdown──▶ failed
 *
 * Invariants (the master relies on these; keep them true when changing this file):
 *
 *  1. A generation serves traffic only from the moment its first worker has
 *     called accept() on the shared socket; hr cannot prevent that, so a
 *     generation that goes `failed` may have accepted connections. Its workers
 *     are therefore stopped like a draining generation (stop signal, wait up to
 *     drain_timeout, then SIGKILL), never SIGKILLed straight away.
 *  2. `ready` is reached only when EVERY worker passed its readiness probe. A
 *     timeout, an exit before ready, or a spawn error is a failure; nothing ever
 *     counts as success by default (unlike PM2's listen_timeout).
 *  3. `draining` is entered only from `ready`, and only after the master has made
 *     another generation live (or is shutting down): the master never signals the
 *     old generation before the new one is ready.
 *  4. Crashed workers are replaced (same generation number, new process, with
 *     backoff) only while the generation is `ready`. In every other state an exit
 *     is expected (starting: reported by the readiness wait; draining, failed: we
 *     asked for it) and nothing is restarted.
 *  5. `exited` and `failed` are terminal. `failed` generations still wind their
 *     processes down in the background; `stopped` resolves when the tree is gone.
 *  6. Every process a generation started is gone (whole process tree, via
 *     Child.stop) before `stopped` resolves. Workers are spawned with
 *     dieWithParent, so they also die if the master is SIGKILLed.
 */
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { formatMs } from "../config/duration.ts";
import { freePort } from "../sockets/free-port.ts";
import type { Logger } from "../log/logger.ts";
import { escapedMessage, lines, spawnChild, type Child, type ExitInfo } from "../process/child.ts";
import { toArgv } from "../process/command.ts";
import type { SignalName } from "../process/signals.ts";
import { CrashBackoff, CRASH_LOOP_WINDOW_MS, MAX_BACKOFF_MS } from "../process/backoff.ts";
import type { DrainReport } from "../strategy/types.ts";
import { needsPort, waitReady, type ReadyResult } from "../readiness/index.ts";
import type { GenerationStatus, WorkerStatus } from "../control/protocol.ts";
import type { Strategy, Wiring } from "../strategy/types.ts";
import { openNotifySocket, type NotifySocket } from "../sockets/notify.ts";
import { captureStart, otherListenMessage, type CaptureStart } from "../capture/app.ts";
import type { Capture } from "../capture/index.ts";

// ---------------------------------------------------------------------------
// The state machine

/** The wire values are control/protocol.ts's (hr status shows them). */
export type GenerationState = GenerationStatus["state"];

export const TRANSITIONS: Readonly<Record<GenerationState, readonly GenerationState[]>> = {
  starting: ["ready", "failed"],
  ready: ["draining"],
  draining: ["exited"],
  exited: [],
  failed: [],
};

export class IllegalTransition extends Error {
  override name = "IllegalTransition";
  constructor(readonly from: GenerationState, readonly to: GenerationState) {
    super(`illegal generation transition ${from} → ${to} (allowed from ${from}: ${TRANSITIONS[from].join(", ") || "none, terminal"})`);
  }
}

/** Returns `to` if from → to is legal, else throws IllegalTransition. */
export function transition(from: GenerationState, to: GenerationState): GenerationState {
  if (!TRANSITIONS[from].includes(to)) throw new IllegalTransition(from, to);
  return to;
}

export function isTerminal(state: GenerationState): boolean {
  return TRANSITIONS[state].length === 0;
}

// ---------------------------------------------------------------------------
// Workers

/**
 * One worker slot's state machine (enforced by setWorker()):
 *
 *     starting ──probe ok──▶ ready ──crash (generation ready)──▶ backoff ──timer──▶ starting
 *        │                     │                                   │
 *        ├──crash (generation ready)──▶ backoff                    │
 *        └──────────┬──────────┘                                   │
 *              stopAll│  exit while the generation is not ready,   │
 *                     ▼  spawn error, cancelled ──────────────────▶ exited
 *                 stopping ──tree gone──▶ exited
 */
export type WorkerState = WorkerStatus["state"];

export const WORKER_TRANSITIONS: Readonly<Record<WorkerState, readonly WorkerState[]>> = {
  starting: ["ready", "backoff", "stopping", "exited"],
  ready: ["backoff", "stopping", "exited"],
  backoff: ["starting", "exited"],
  stopping: ["exited"],
  exited: [],
};

export class IllegalWorkerTransition extends Error {
  override name = "IllegalWorkerTransition";
  constructor(readonly from: WorkerState, readonly to: WorkerState) {
    super(`illegal worker transition ${from} → ${to} (allowed from ${from}: ${WORKER_TRANSITIONS[from].join(", ") || "none, terminal"})`);
  }
}

/** Moves `slot` to `to` (staying put is allowed); throws IllegalWorkerTransition otherwise. */
function setWorker(slot: { state: WorkerState }, to: WorkerState): void {
  if (slot.state === to) return;
  if (!WORKER_TRANSITIONS[slot.state].includes(to)) throw new IllegalWorkerTransition(slot.state, to);
  slot.state = to;
}

const OUTPUT_LINES = 20;
/** How runtimes report a bind() of a port already taken (Go, Node, Python, Bun, Ruby, Java …). */
const EADDRINUSE = /EADDRINUSE|address already in use|Address in use|port \d+ (is )?(already )?in use/i;

/**
 * The port an "address in use" line names, when it names one: Node's "… in use 0.0.0.0:4101" /
 * ":::4101", Go's "listen tcp :8080: bind: …", Bun's "Is port 3000 in use?", uvicorn's
 * "('127.0.0.1', 8000)". Python's bare "[Errno 98] Address already in use" names none.
 */
function portInLine(line: string): number | undefined {
  const m = line.match(/\bport (\d{1,5})\b/i) ?? line.match(/', (\d{1,5})\)/) ?? [...line.matchAll(/:(\d{1,5})\b/g)].pop();
  const n = m ? Number(m[1]) : NaN;
  return n > 0 && n < 65536 ? n : undefined;
}

interface WorkerSlot {
  /** 1-based worker number (HR_WORKER). */
  readonly index: number;
  child?: Child;
  state: WorkerState;
  startedAt: number;
  readyAt?: number;
  /** Replacements after crashes. */
  restarts: number;
  /** Crash history: backoff delay and crash-loop detection (process/backoff.ts). */
  readonly crashes: CrashBackoff;
  lastExit?: string;
  /** The worker's last output lines (stdout + stderr), for failure reports. */
  output: string[];
  lineSubs: Set<(line: string) => void>;
  restartTimer?: ReturnType<typeof setTimeout>;
  notify?: NotifySocket;
  /** Set by the afterReady check (e.g. the worker listens on a port of its own). */
  warning?: string;
}

export interface StartResult {
  ok: boolean;
  ms: number;
  reason?: string;
  /** The failing worker's last output lines. */
  output?: string[];
}

export interface GenerationOptions {
  number: number;
  config: Config;
  /** Project directory: the workers' cwd. */
  root: string;
  /** How the workers get their socket (strategy/): wiring, readiness, exits, the audit, going live, retiring. */
  strategy: Strategy;
  /** Per-master private directory (mode 0700) for the workers' NOTIFY_SOCKETs. */
  runtimeDir: string;
  log: Logger;
  /** Environment every worker starts from (hr's own, minus what it must not inherit). */
  baseEnv: Record<string, string | undefined>;
  /** Called whenever a worker process starts or exits (the master keeps the sweeper's list current). */
  onProcessesChanged?: () => void;
}

let notifySeq = 0;

/** What one worker start holds besides its slot: ports, and the ipc listeners of the readiness probe. */
interface WorkerRun {
  /** What the strategy gives this process (wiring.port: a private PORT, proxy; wiring.capture: run.capture). */
  wiring: Wiring;
  /** The port the readiness probe connects to (tcp/http). */
  port?: number;
  ipcSubs: Set<(m: unknown) => void>;
  /** run.capture: the launch (disposed once the worker exits) and its listen() on hr's socket. */
  capture?: CaptureStart;
  listen: ListenSignal;
}

interface ListenSignal {
  fire(): void;
  subscribe(cb: (e: unknown) => void): () => void;
}

/** The worker's listen() on hr's socket, for the listen probe (a late subscriber still hears it). */
function listenSignal(): ListenSignal {
  let fired = false;
  const subs = new Set<(e: unknown) => void>();
  return {
    fire() {
      fired = true;
      for (const cb of subs) cb(undefined);
    },
    subscribe(cb) {
      subs.add(cb);
      if (fired) queueMicrotask(() => subs.has(cb) && cb(undefined));
      return () => subs.delete(cb);
    },
  };
}

export class Generation {
  readonly number: number;
  private _state: GenerationState = "starting";
  private readonly slots: WorkerSlot[];
  private readonly startedAt = Date.now();
  private readyAt?: number;
  private startMs?: number;
  error?: string;
  /** Aborted when the generation stops being `ready` (cancels pending replacements). */
  private readonly life = new AbortController();
  private stopPromise?: Promise<void>;
  private drainPromise?: Promise<void>;
  /** proxy: how hr's own traffic to this generation drained; resolves right before its stop_signal. */
  drainReport?: Promise<DrainReport | undefined>;
  private readonly log: Logger;
  private readonly cfg: Config;

  constructor(private readonly opts: GenerationOptions) {
    this.number = opts.number;
    this.cfg = opts.config;
    this.log = opts.log;
    this.slots = Array.from({ length: opts.config.serve.workers }, (_, i) => ({
      index: i + 1,
      state: "starting" as WorkerState,
      startedAt: Date.now(),
      restarts: 0,
      crashes: new CrashBackoff(opts.config.serve.restart_backoff),
      output: [],
      lineSubs: new Set(),
    }));
  }

  get state(): GenerationState {
    return this._state;
  }

  get name(): string {
    return `gen${this.number}`;
  }

  /** Pids of the workers currently running. */
  pids(): number[] {
    return this.slots.flatMap((s) => (s.child && !s.child.exitInfo ? [s.child.pid] : []));
  }

  private to(next: GenerationState, fields: Record<string, unknown> = {}, level: "info" | "warn" | "error" = "info", text?: string): void {
    this._state = transition(this._state, next);
    this.log.log(level, text ?? `${this.name} ${next}`, { event: "generation", generation: this.number, state: next, ...fields });
  }

  /**
   * Starts every worker and waits until all are ready (→ ready) or one fails
   * (→ failed; the others are cancelled and the whole generation is stopped in the
   * background, see `stopped`). `signal` cancels the start (hr shutting down).
   */
  async start(signal?: AbortSignal): Promise<StartResult> {
    const t0 = performance.now();
    this.log.info(`${this.name} starting ${this.slots.length} worker${this.slots.length === 1 ? "" : "s"}`, {
      event: "generation",
      generation: this.number,
      state: "starting",
      workers: this.slots.length,
    });
    const ac = new AbortController();
    const onOuter = () => ac.abort(new Error("hr is shutting down"));
    signal?.addEventListener("abort", onOuter, { once: true });
    if (signal?.aborted) onOuter();
    let failure: { slot: WorkerSlot; result: Extract<ReadyResult, { ok: false }> } | undefined;
    await Promise.all(
      this.slots.map(async (slot) => {
        const result = await this.launch(slot, ac.signal);
        if (!result.ok && !failure && result.kind !== "aborted") {
          failure = { slot, result };
          ac.abort(new Error("another worker failed"));
        }
      }),
    );
    signal?.removeEventListener("abort", onOuter);
    if (!failure && !ac.signal.aborted) {
      // A worker that got ready and then died while the others were still starting (e.g. it
      // listened, then failed to bind a second port) fails the start: a generation never goes
      // live short of a worker, and nothing replaces a worker before the generation is live.
      const dead = this.slots.find((s) => !s.child || s.child.exitInfo);
      if (dead) {
        const how = dead.child?.exitInfo?.describe() ?? dead.lastExit ?? "exited";
        failure = { slot: dead, result: { ok: false, ms: 0, kind: "exited", reason: `ready, then ${how} before the generation was ready` } };
      }
    }
    const audit = this.opts.strategy.audit;
    if (!failure && !ac.signal.aborted && audit) {
      // Before the generation counts as ready (fd: the socket audit). Warnings go to the
      // workers' status; `fail` fails the start like a readiness failure.
      const verdict = audit(this.number, this.slots.flatMap((s) => (s.child && !s.child.exitInfo ? [{ worker: s.index, pid: s.child.pid }] : [])));
      for (const s of this.slots) s.warning = verdict.warnings.get(s.index);
      const bad = verdict.fail && this.slots.find((s) => s.index === verdict.fail!.worker);
      if (bad) failure = { slot: bad, result: { ok: false, ms: 0, kind: "probe", reason: verdict.fail!.reason } };
    }
    const ms = Math.round(performance.now() - t0);
    this.startMs = ms;
    if (!failure && !ac.signal.aborted) {
      this.readyAt = Date.now();
      this.to("ready", { durationMs: ms, pids: this.pids() }, "info", `${this.name} ready in ${ms} ms (pid${this.slots.length > 1 ? "s" : ""} ${this.pids().join(", ")})`);
      this.opts.strategy.live?.(this.number, this.number > 1);
      return { ok: true, ms };
    }
    const reason = failure ? `${this.name}/w${failure.slot.index}: ${failure.result.reason}` : `${this.name}: start cancelled (hr is shutting down)`;
    const output = failure ? [...failure.slot.output] : [];
    this.error = reason;
    const tail = output.length ? `\n  last output of ${this.name}/w${failure!.slot.index}:\n${output.map((l) => `    | ${l}`).join("\n")}` : "";
    this.to("failed", { durationMs: ms, reason, output }, failure ? "error" : "warn", `${this.name} failed after ${ms} ms: ${reason}${tail}`);
    void this.stopAll();
    return { ok: false, ms, reason, output };
  }

  /**
   * ready → draining → exited: sends run.stop_signal to every worker's process
   * group, waits up to serve.drain_timeout, then SIGKILLs what is left.
   */
  drain(): Promise<void> {
    if (this._state === "ready") {
      this.to("draining", { signal: this.cfg.run.stop_signal }, "info", `${this.name} draining (${this.cfg.run.stop_signal}, up to ${formatMs(this.cfg.serve.drain_timeout)})`);
      const t0 = performance.now();
      const strategy = this.opts.strategy;
      // proxy: hr's requests to this generation finish before its processes get stop_signal.
      this.drainReport = strategy.retire
        ? strategy.retire(this.number, this.cfg.serve.drain_timeout).then((r) => {
            const what = `${r.requests} request${r.requests === 1 ? "" : "s"} and ${r.tunnels} tunnel${r.tunnels === 1 ? "" : "s"} finished${r.cut ? `, ${r.cut} cut at the drain timeout` : ""}`;
            this.log[r.cut ? "warn" : "info"](`${this.name}: nothing of hr's in flight to it (${what}, ${formatMs(r.durationMs)}); sending ${this.cfg.run.stop_signal}`, {
              event: "proxy_drained",
              generation: this.number,
              ...r,
            });
            return r;
          })
        : Promise.resolve(undefined);
      this.drainPromise = this.drainReport.then(() => this.stopAll()).then(() => {
        const ms = Math.round(performance.now() - t0);
        this.to("exited", { durationMs: ms }, "info", `${this.name} exited (drained in ${ms} ms)`);
      });
    }
    return this.stopped;
  }

  /** Resolves when every process of this generation is gone (after drain() or a failed start). */
  get stopped(): Promise<void> {
    return this.drainPromise ?? this.stopPromise ?? Promise.resolve();
  }

  /** SIGKILL everything now (second Ctrl-C). */
  async kill(): Promise<void> {
    this.life.abort();
    await Promise.all(this.slots.map((s) => s.child?.kill()));
  }

  private stopAll(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.life.abort(new Error(`${this.name} stopping`));
    const sig = this.cfg.run.stop_signal as SignalName;
    const timeoutMs = this.cfg.serve.drain_timeout;
    this.stopPromise = Promise.all(
      this.slots.map(async (slot) => {
        clearTimeout(slot.restartTimer);
        slot.restartTimer = undefined;
        if (!slot.child) {
          setWorker(slot, "exited");
          return;
        }
        const wasRunning = !slot.child.exitInfo;
        if (wasRunning) setWorker(slot, "stopping");
        const info = await slot.child.stop({ signal: sig, timeoutMs });
        slot.lastExit ??= info.describe();
        if (wasRunning && info.signal === "SIGKILL" && sig !== "SIGKILL") {
          this.log.warn(`${this.name}/w${slot.index} (pid ${slot.child.pid}) did not exit within ${formatMs(timeoutMs)} of ${sig}: SIGKILLed (in-flight requests were cut off; see docs/serve.md, draining)`, {
            event: "worker_killed",
            generation: this.number,
            worker: slot.index,
            pid: slot.child.pid,
          });
        }
        setWorker(slot, "exited");
        slot.notify?.close();
      }),
    ).then(() => undefined);
    return this.stopPromise;
  }

  // -------------------------------------------------------------------------
  // One worker start, by job: reserve → spawn → attach (output, exit) → probe.

  /** Spawns one worker into `slot` and waits for it to be ready. Never throws. */
  private async launch(slot: WorkerSlot, signal: AbortSignal): Promise<ReadyResult> {
    this.resetSlot(slot);
    let run: WorkerRun;
    try {
      run = this.reserve(slot);
    } catch (error) {
      return this.abandon(slot, undefined, `cannot start: ${(error as Error).message}`);
    }
    // Never spawn into a generation that started stopping while we waited.
    if (signal.aborted) return this.abandon(slot, run, null);
    let child: Child;
    try {
      child = this.spawnWorker(slot, run);
    } catch (error) {
      return this.abandon(slot, run, `cannot start: ${(error as Error).message}`);
    }
    this.attach(slot, child, run);
    const result = await this.probe(slot, child, run, signal);
    // Ready only if nothing (an exit, stopAll) moved the slot on meanwhile.
    if (result.ok && slot.child === child && !child.exitInfo && slot.state === "starting") {
      setWorker(slot, "ready");
      slot.readyAt = Date.now();
      this.opts.strategy.ready?.({ gen: this.number, worker: slot.index, pid: child.pid, port: run.wiring.port });
    }
    return result;
  }

  private resetSlot(slot: WorkerSlot): void {
    slot.notify?.close();
    slot.notify = undefined;
    setWorker(slot, "starting");
    slot.startedAt = Date.now();
    slot.readyAt = undefined;
  }

  /** The worker's notify socket, private PORT (proxy) and probe port. */
  private reserve(slot: WorkerSlot): WorkerRun {
    const ready = this.cfg.serve.ready;
    if (ready.type === "notify") {
      slot.notify = openNotifySocket(join(this.opts.runtimeDir, `g${this.number}w${slot.index}.${++notifySeq}.sock`));
    }
    const wiring = this.opts.strategy.wire(this.cfg, this.number);
    const privatePort = wiring.port;
    // Under the proxy, tcp and http probe the app's own PORT (an unmodified app has nothing else).
    const port = needsPort(ready.type) ? (ready.port ?? privatePort ?? freePort()) : undefined;
    return { wiring, port, ipcSubs: new Set(), listen: listenSignal() };
  }

  /** The slot gets no process (cancelled: reason null, or could not spawn): release what reserve() took. */
  private abandon(slot: WorkerSlot, run: WorkerRun | undefined, reason: string | null): ReadyResult {
    run?.capture?.spawned();
    run?.capture?.dispose();
    slot.notify?.close();
    slot.notify = undefined;
    setWorker(slot, "exited");
    if (run) this.opts.strategy.exited?.({ gen: this.number, worker: slot.index, pid: 0, port: run.wiring.port });
    if (reason === null) return { ok: false, ms: 0, kind: "aborted", reason: "cancelled" };
    slot.lastExit = reason;
    return { ok: false, ms: 0, kind: "probe", reason };
  }

  private workerEnv(slot: WorkerSlot, run: WorkerRun): Record<string, string | undefined> {
    const cfg = this.cfg;
    return {
      ...this.opts.baseEnv,
      ...cfg.run.env,
      ...run.wiring.env,
      HR_GENERATION: String(this.number),
      HR_WORKER: String(slot.index),
      HR_WORKERS: String(cfg.serve.workers),
      NOTIFY_SOCKET: slot.notify?.path,
      HR_HEALTH_PORT: run.port !== undefined && run.port !== run.wiring.port ? String(run.port) : undefined,
    };
  }

  /** Throws when the program is missing or cannot be spawned. */
  private spawnWorker(slot: WorkerSlot, run: WorkerRun): Child {
    const env = this.workerEnv(slot, run);
    const argv = toArgv(this.cfg.run.cmd);
    // The LISTEN_PID shim would turn "not found" into exit 127: check the program first.
    if (!Bun.which(argv[0]!, { PATH: env.PATH ?? "", cwd: this.opts.root })) {
      throw new Error(`${JSON.stringify(argv[0])}: ${argv[0]!.includes("/") ? `no such file or not executable (cwd ${this.opts.root})` : "not found in PATH (or not executable)"}`);
    }
    let spawn = { argv: run.wiring.argv(argv), env, extraFds: run.wiring.fds };
    if (run.wiring.capture instanceof Error) throw run.wiring.capture;
    if (run.wiring.capture) {
      run.capture = this.captureWorker(run.wiring.capture, slot, argv, env, run);
      spawn = { argv: run.capture.argv, env: run.capture.env, extraFds: run.capture.extraFds };
    }
    const child = spawnChild({
      ...spawn,
      cwd: this.opts.root,
      stdout: "pipe",
      stderr: "pipe",
      dieWithParent: true,
      onEscaped: (procs) => this.log.warn(escapedMessage(`${this.name}/w${slot.index}`, procs), { event: "escaped", generation: this.number, worker: slot.index, pids: procs.map((p) => p.pid) }),
      ipc: this.cfg.serve.ready.type === "ipc" ? (m) => run.ipcSubs.forEach((cb) => cb(m)) : undefined,
    });
    run.capture?.spawned();
    return child;
  }

  /** Prepares one worker start under bind capture; its events go to the log and to the listen probe. */
  private captureWorker(capture: Capture, slot: WorkerSlot, argv: string[], env: Record<string, string | undefined>, run: WorkerRun): CaptureStart {
    const source = `${this.name}/w${slot.index}`;
    let captured = false;
    return captureStart({
      capture,
      argv,
      cwd: this.opts.root,
      env,
      listeners: this.opts.strategy.sockets.listeners,
      privatePort: run.wiring.port,
      events: {
        onCaptured: (e) => {
          captured = true;
          this.log.debug(`${source} (pid ${e.pid}) binds ${e.host}:${e.port}: handed hr's socket`);
        },
        onListening: () => run.listen.fire(),
        onOtherListen: (e) => {
          const text = otherListenMessage(`${source} (pid ${e.pid})`, e, this.opts.strategy.sockets.describe(), captured);
          if (captured) this.log.debug(text);
          else this.log.warn(text, { event: "other_listen", generation: this.number, worker: slot.index, port: e.port });
        },
        onSkipped: (e) => this.log.warn(`${source} (pid ${e.pid}) binds ${e.host}:${e.port}, a port hr holds, but hr cannot hand it over (${e.why}): it will fail with EADDRINUSE`),
        onRefused: (message) => this.log.error(`${source}: seccomp refused in the launcher (${message}); run.capture cannot work here`),
        onError: (message) => this.log.warn(`${source}: capture: ${message}`),
      },
    });
  }

  /**
   * The worker printed "address already in use": when hr holds a TCP [[listen]] socket
   * itself, say at once that hr is the holder and what fixes it (issue 11, item 4).
   */
  private tellFight(source: string, pid: number, line: string): void {
    const held = this.opts.strategy.sockets.describe();
    const port = portInLine(line);
    const tcp = this.opts.strategy.sockets.listeners.filter((l) => l.port !== undefined);
    if (port !== undefined && !tcp.some((l) => l.port === port)) {
      // Not hr's port: a port of the app's own, which one copy of the app already holds.
      this.log.error(
        `${source} (pid ${pid}) cannot bind: "${line.trim().slice(0, 160)}". Port ${port} is not one hr holds (${held || "none"}): another process has it — under hr serve most likely another worker or the previous generation of this app, since workers (and two generations during a reload) run side by side. Give it to hr as a [[listen]] entry with serve.strategy = "fd" and run.capture = true (every worker then gets hr's shared socket), or make the port configurable`,
        { event: "port_conflict", generation: this.number, pid, port },
      );
      return;
    }
    if (this.cfg.run.capture && port !== undefined && this.cfg.serve.strategy === "proxy" && tcp[0]?.port !== port) {
      this.log.error(
        `${source} (pid ${pid}) cannot bind: "${line.trim().slice(0, 160)}". Under serve.strategy = "proxy", run.capture hands over only the first TCP [[listen]] port (${tcp[0]?.port}); the app's own bind of ${port} meets hr's listener. Use serve.strategy = "fd" (capture then hands over every [[listen]] port), or remove that [[listen]] entry`,
        { event: "port_conflict", generation: this.number, pid, port },
      );
      return;
    }
    if (!held || this.cfg.run.capture) return;
    const how =
      this.cfg.serve.strategy === "proxy"
        ? "hr's proxy holds that address; the worker must bind $PORT (its private port)"
        : 'serve.strategy = "fd" passes it at fd 3 (LISTEN_FDS); the worker must adopt it instead of binding';
    this.log.error(
      `${source} (pid ${pid}) cannot bind: "${line.trim().slice(0, 160)}". hr holds ${held} itself (${how}). Fix without code changes: set run.capture = true (or pass --capture), and hr hands the app its socket when it binds`,
      { event: "port_conflict", generation: this.number, pid },
    );
  }

  /** Output to the log (and the slot's last lines), exit to onExit(). */
  private attach(slot: WorkerSlot, child: Child, run: WorkerRun): void {
    const source = `${this.name}/w${slot.index}`;
    slot.child = child;
    this.opts.onProcessesChanged?.();
    this.log.debug(`${source} spawned pid ${child.pid}`, { event: "worker", generation: this.number, worker: slot.index, pid: child.pid });
    let fightTold = false;
    const pump = (stream: ReadableStream<Uint8Array> | undefined, name: "stdout" | "stderr") => {
      if (!stream) return;
      void lines(stream, (line) => {
        if (!fightTold && EADDRINUSE.test(line)) {
          fightTold = true;
          this.tellFight(source, child.pid, line);
        }
        slot.output.push(line);
        if (slot.output.length > OUTPUT_LINES) slot.output.shift();
        this.log.appLine(source, name, line);
        for (const cb of slot.lineSubs) cb(line);
      }).catch(() => {});
    };
    pump(child.stdout, "stdout");
    pump(child.stderr, "stderr");
    void child.exited.then((info) => {
      run.capture?.dispose();
      this.opts.strategy.exited?.({ gen: this.number, worker: slot.index, pid: child.pid, port: run.wiring.port });
      this.onExit(slot, child, info);
    });
  }

  /** The readiness probe (readiness/); the notify socket is closed once it is over. */
  private async probe(slot: WorkerSlot, child: Child, run: WorkerRun, signal: AbortSignal): Promise<ReadyResult> {
    const result = await waitReady({
      config: this.cfg.serve.ready,
      exited: child.exited,
      signal,
      notify: slot.notify,
      onIpc: (cb) => {
        run.ipcSubs.add(cb);
        return () => run.ipcSubs.delete(cb);
      },
      onLine: (cb) => {
        slot.lineSubs.add(cb);
        return () => slot.lineSubs.delete(cb);
      },
      onListen: run.capture ? run.listen.subscribe : undefined,
      host: "127.0.0.1",
      port: run.port,
    });
    // The notify socket has done its job; a worker that sends more gets ECONNREFUSED, which sd_notify ignores.
    slot.notify?.close();
    slot.notify = undefined;
    return result;
  }

  // -------------------------------------------------------------------------
  // Exits and crash replacement (invariant 4)

  private onExit(slot: WorkerSlot, child: Child, info: ExitInfo): void {
    this.opts.onProcessesChanged?.();
    if (slot.child !== child) return;
    slot.lastExit = info.describe();
    slot.notify?.close();
    slot.notify = undefined;
    if (this._state !== "ready" || this.life.signal.aborted) {
      if (slot.state !== "stopping") setWorker(slot, "exited");
      return;
    }
    // A crash of the live generation: replace the worker, same generation number.
    const upMs = Date.now() - slot.startedAt;
    const crash = slot.crashes.crashed(upMs);
    const source = `${this.name}/w${slot.index}`;
    const tail = slot.output.slice(-OUTPUT_LINES);
    setWorker(slot, "backoff");
    this.log.warn(`${source} (pid ${child.pid}) ${info.describe()} after ${formatMs(upMs)}; replacing it in ${formatMs(crash.delayMs)}`, {
      event: "worker_crash",
      generation: this.number,
      worker: slot.index,
      pid: child.pid,
      exit: info.describe(),
      uptimeMs: upMs,
      backoffMs: crash.delayMs,
      output: tail,
    });
    if (crash.loop) {
      this.log.error(
        `CRASH LOOP: ${source} crashed ${crash.recent} times in the last ${CRASH_LOOP_WINDOW_MS / 1000}s (last: ${info.describe()}); still retrying with backoff up to ${MAX_BACKOFF_MS / 1000}s.${tail.length ? `\n  last output:\n${tail.map((l) => `    | ${l}`).join("\n")}` : ""}`,
        { event: "crash_loop", generation: this.number, worker: slot.index, crashes: crash.recent, windowMs: CRASH_LOOP_WINDOW_MS },
      );
    }
    // Sweep anything the dead worker left in its process group.
    void child.stop({ signal: "SIGKILL", timeoutMs: 0 });
    slot.restartTimer = setTimeout(() => this.replace(slot), crash.delayMs);
  }

  /** The backoff is over: start a new process in the slot (only while the generation is live). */
  private replace(slot: WorkerSlot): void {
    slot.restartTimer = undefined;
    if (this._state !== "ready" || this.life.signal.aborted) return;
    const source = `${this.name}/w${slot.index}`;
    slot.restarts++;
    void this.launch(slot, this.life.signal).then((r) => {
      if (r.ok) {
        this.log.info(`${source} replaced: pid ${slot.child?.pid} ready in ${r.ms} ms`, { event: "worker_replaced", generation: this.number, worker: slot.index, pid: slot.child?.pid, durationMs: r.ms });
      } else if (r.kind !== "aborted" && r.kind !== "exited") {
        // Not ready in time (an exit is handled by onExit): stop it; its exit counts as a crash.
        this.log.warn(`${source} replacement not ready: ${r.reason}`);
        void slot.child?.stop({ signal: this.cfg.run.stop_signal as SignalName, timeoutMs: this.cfg.serve.drain_timeout });
      }
    });
  }

  status(): GenerationStatus {
    const now = Date.now();
    return {
      generation: this.number,
      state: this._state,
      startedAt: new Date(this.startedAt).toISOString(),
      ...(this.startMs !== undefined ? { startMs: this.startMs } : {}),
      uptimeMs: now - (this.readyAt ?? this.startedAt),
      ...(this.error ? { error: this.error } : {}),
      workers: this.slots.map((s) => ({
        worker: s.index,
        pid: s.child && !s.child.exitInfo ? s.child.pid : null,
        state: s.state,
        uptimeMs: s.child && !s.child.exitInfo ? now - s.startedAt : null,
        restarts: s.restarts,
        recentCrashes: s.crashes.recent(now),
        ...(s.lastExit ? { lastExit: s.lastExit } : {}),
        ...(s.warning ? { warning: s.warning } : {}),
      })),
    };
  }
}
