/**
 * Bind capture (run.capture): an unmodified app binds its hard-coded port, and
 * hr puts a socket of its own in place of the app's (issue 11; the design follows
 * rootless-containers/bypass4netns).
 *
 * How one app starts under capture:
 *  1. prepare() makes a socket pair and registers the app's port → socket map
 *     with the notification thread (worker.ts).
 *  2. The caller spawns the returned argv: hr re-executed as its launcher
 *     (launcher.ts), which installs a seccomp filter sending bind()/listen() to a
 *     user-notification listener, hands the listener back over the pair, and
 *     execs the app. The pid is the app's.
 *  3. The worker answers each bind(): a [[listen]] port (any host) gets hr's socket
 *     (SECCOMP_IOCTL_NOTIF_ADDFD + SETFD at the app's fd) and success; anything
 *     else runs untouched. listen() on hr's socket is the ready signal.
 *
 * Invariants: hr's sockets stay owned by the caller (the worker never closes
 * them); dispose() must be called once the app's whole tree is gone.
 *
 * Not covered: apps whose bind() goes through another ABI (x32, i386 socketcall);
 * an app that registered its socket with epoll before bind() keeps watching the
 * old one; UDP and unix sockets are never captured.
 */
import { join } from "node:path";
import { eventFd, eventFdSignal, seqpacketPair, closeFd, sendText, unavailable } from "../platform/seccomp.ts";
import type { WarmSpec } from "./launcher.ts";
import type { FromWorker, Mode, PortTarget, ToWorker } from "./messages.ts";

export type { PortTarget, Mode } from "./messages.ts";

/** What the caller hears about its app (all optional). */
export interface CaptureEvents {
  onCaptured?(e: { pid: number; port: number; host: string }): void;
  onListening?(e: { pid: number; port: number }): void;
  onConflict?(e: { pid: number; port: number; host: string }): void;
  onOtherListen?(e: { pid: number; port: number; host: string; fixed: boolean }): void;
  onSkipped?(e: { pid: number; port: number; host: string; why: string }): void;
  /** The launcher could not install the filter; it exits 126 without starting the app. */
  onRefused?(message: string): void;
  onError?(message: string): void;
}

export interface PreparedLaunch {
  /** Spawn this instead of the app's argv. */
  readonly argv: string[];
  /** The launcher's end of the socket pair: pass it to the child at fd `fdIndex`. */
  readonly fd: number;
  /** Call right after the spawn (or its failure): closes hr's copy of the launcher's end. */
  spawned(): void;
  /** Call once the app's whole tree is gone: the worker forgets it. */
  dispose(): void;
}

export interface PrepareOptions {
  argv: string[];
  cwd: string;
  /** PATH to resolve argv[0] with. */
  path: string;
  /** The child fd number the launcher's socket will have (3 + the other extra fds). */
  fdIndex: number;
  mode: Mode;
  targets: PortTarget[];
  events: CaptureEvents;
  /** How to start hr's launcher (default selfArgv(); benchmarks run from a checkout pass the built binary). */
  launcher?: string[];
}

/** A launcher started ahead of time (filter installed, listener handed over) waiting for its app. */
export interface WarmLaunch {
  /** Spawn this (hr __capture <fd> --wait). */
  readonly argv: string[];
  /** The launcher's end of the socket pair: pass it to the child at fd `fdIndex`. */
  readonly fd: number;
  /** Call right after the spawn (or its failure). */
  spawned(): void;
  /** Execs the app in the waiting launcher (argv[0] resolved with env.PATH); its events go to `events` from now on. Throws when the program cannot be found. */
  start(app: { argv: string[]; cwd: string; env: Record<string, string | undefined> }, events: CaptureEvents): void;
  /** Once the app's tree is gone, or to discard an unused launcher (it exits 0). */
  dispose(): void;
}

export class CaptureUnavailable extends Error {
  override name = "CaptureUnavailable";
}

/** The argv that re-executes hr (the compiled binary, or bun + src/cli/main.ts from a checkout). */
export function selfArgv(): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/") || Bun.main.startsWith("B:/~BUN/");
  return compiled ? [process.execPath] : [process.execPath, join(import.meta.dir, "..", "cli", "main.ts")];
}

let why: string | null | undefined;
/** null when capture works here, else why not (cached). */
export function captureUnavailable(): string | null {
  if (why === undefined) {
    try {
      why = unavailable();
    } catch (error) {
      why = `bind capture cannot load its system calls: ${(error as Error).message}`;
    }
  }
  return why;
}

/** One notification thread per hr process, started on first use. */
export class Capture {
  private static instance: Capture | undefined;
  private readonly worker: Worker;
  private readonly wake: number;
  private readonly counters = new Int32Array(new SharedArrayBuffer(8));
  private readonly apps = new Map<number, CaptureEvents>();
  private nextId = 1;

  /** The process-wide supervisor. Throws CaptureUnavailable with the reason when seccomp can't be used. */
  static get(): Capture {
    const reason = captureUnavailable();
    if (reason) throw new CaptureUnavailable(reason);
    Capture.instance ??= new Capture();
    return Capture.instance;
  }

  private constructor() {
    this.wake = eventFd();
    this.worker = new Worker(new URL("./worker.ts", import.meta.url).href);
    this.worker.onmessage = (e: MessageEvent) => this.dispatch(e.data as FromWorker);
    this.worker.postMessage({ type: "init", wake: this.wake, counters: this.counters.buffer });
    this.worker.unref();
  }

  private send(m: ToWorker): void {
    Atomics.add(this.counters, 0, 1);
    this.worker.postMessage(m);
    eventFdSignal(this.wake);
  }

  private dispatch(m: FromWorker): void {
    const ev = this.apps.get(m.id);
    if (!ev) return;
    switch (m.type) {
      case "captured":
        return ev.onCaptured?.(m);
      case "listening":
        return ev.onListening?.(m);
      case "conflict":
        return ev.onConflict?.(m);
      case "other-listen":
        return ev.onOtherListen?.(m);
      case "skipped":
        return ev.onSkipped?.(m);
      case "refused":
        return ev.onRefused?.(m.message);
      case "error":
        return ev.onError?.(m.message);
      case "attached":
      case "gone":
        return;
    }
  }

  /** Registers an app and returns the launcher argv. Throws when argv[0] cannot be found. */
  prepare(opts: PrepareOptions): PreparedLaunch {
    const resolved = resolveProgram(opts.argv[0] ?? "", opts.path, opts.cwd);
    const [mine, theirs] = seqpacketPair();
    const id = this.nextId++;
    this.apps.set(id, opts.events);
    this.send({ type: "add", id, pair: mine, mode: opts.mode, targets: opts.targets });
    const { spawned, dispose } = this.launchHandle(id, theirs);
    return {
      argv: [...(opts.launcher ?? selfArgv()), "__capture", String(opts.fdIndex), resolved, "--", ...opts.argv],
      fd: theirs,
      spawned,
      dispose,
    };
  }

  /**
   * The launcher's end of the pair closes once it is spawned (the child holds its copy);
   * dispose also forgets the app and tells the notification thread to drop it.
   */
  private launchHandle(id: number, theirs: number): { spawned(): void; dispose(): void; registered(): boolean } {
    let open = true;
    let registered = true;
    const spawned = () => {
      if (open) closeFd(theirs);
      open = false;
    };
    return {
      spawned,
      dispose: () => {
        spawned();
        if (!registered) return;
        registered = false;
        this.apps.delete(id);
        this.send({ type: "remove", id });
      },
      registered: () => registered,
    };
  }

  /**
   * A launcher to spawn now and give its app later (hr dev: the next restart then
   * skips hr's own start-up). The targets are fixed now (the held listeners).
   */
  prepareWarm(opts: { fdIndex: number; targets: PortTarget[]; launcher?: string[] }): WarmLaunch {
    const [mine, theirs] = seqpacketPair();
    const id = this.nextId++;
    this.apps.set(id, {});
    this.send({ type: "add", id, pair: mine, mode: "capture", targets: opts.targets, keepPair: true });
    const { spawned, dispose, registered } = this.launchHandle(id, theirs);
    return {
      argv: [...(opts.launcher ?? selfArgv()), "__capture", String(opts.fdIndex), "--wait"],
      fd: theirs,
      spawned,
      start: (app, events) => {
        if (!registered()) throw new Error("this launcher was discarded");
        const path = resolveProgram(app.argv[0] ?? "", app.env.PATH ?? "", app.cwd);
        const env = Object.entries(app.env).flatMap(([k, v]) => (v === undefined ? [] : [`${k}=${v}`]));
        const spec: WarmSpec = { path, argv: app.argv, env, cwd: app.cwd };
        this.apps.set(id, events);
        sendText(mine, JSON.stringify(spec)); // the worker keeps `mine` open until remove
      },
      dispose,
    };
  }
}

function resolveProgram(prog: string, path: string, cwd: string): string {
  const resolved = Bun.which(prog, { PATH: path, cwd });
  if (!resolved) {
    throw new Error(
      prog.includes("/") ? `cannot start ${JSON.stringify(prog)}: no such file or not executable (cwd ${cwd})` : `cannot start ${JSON.stringify(prog)}: not found in PATH (or not executable)`,
    );
  }
  return resolved;
}
