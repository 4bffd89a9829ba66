/**
 * hr dev: change → build ([build].pre, cmd, post) → stop old tree → start new app.
 *
 * - The last good app keeps serving while a build runs; it is stopped only after
 *   the build succeeded, and the new app is started only once the old tree is gone.
 * - A change during a build cancels it (its whole process group) and starts over.
 * - A failed build prints its step and exit status (its output went to the terminal
 *   as it ran) and keeps the last good app running.
 * - The listening socket survives restarts (strategy fd: hr holds it and passes it at
 *   fd 3; proxy: hr accepts and forwards to the app's private PORT), so requests made
 *   during a restart wait instead of being refused.
 * - run.capture: the app binds its own hard-coded port and gets hr's socket instead
 *   (capture/); its listen() there tells hr it is up.
 * - dev.overlap (default under capture): the new app starts while the old one still
 *   serves, and the old one is stopped once the new one listens. If the new one
 *   exits before listening (a port or lock only one instance can hold), hr stops the
 *   old one and starts the new one again, sequentially. An app seen listening on a
 *   fixed port of its own is always restarted sequentially.
 *
 * - [run] env_file: read at every app start (after the build, before the old app is
 *   stopped: a file that no longer parses keeps the last good app running); a change to
 *   one is a change like any other, even when watch filters or .gitignore exclude it.
 *
 * All decisions go through one loop (run()) reading one DevState; events (file
 * batches, keys, crashes, signals) only record what happened and wake the loop.
 */
import { existsSync } from "node:fs";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { formatMs } from "../config/duration.ts";
import { describe as describeCommand, toArgv } from "../process/command.ts";
import { escapedMessage, killAllSync, spawnChild, SpawnError, type Child, type ExitInfo } from "../process/child.ts";
import { startReaper } from "../process/reaper.ts";
import { ownOutput } from "./own-output.ts";
import { noEventFilesystem, watch, type Watcher } from "../watch/watcher.ts";
import { BuildRun, buildSteps, describeStep, type BuildStep } from "../process/build.ts";
import { openStrategy } from "../strategy/index.ts";
import type { Strategy } from "../strategy/types.ts";
import { captureEnv, captureStart, conflictMessage, observeStart, otherListenMessage, sharedTargets, type CaptureStart } from "../capture/app.ts";
import { Capture, captureUnavailable, type CaptureEvents, type WarmLaunch } from "../capture/index.ts";
import { CrashBackoff } from "../process/backoff.ts";
import type { DevEvent, DevState, Trigger } from "./state.ts";
import { BuildProgress, clearScreen, describeChanges, readKeys, type Keys } from "./terminal.ts";
import { EnvFileError, readEnvFiles } from "../config/dotenv.ts";
import { watchFiles, type FileWatch } from "../serve/watch.ts";
import { isAbsolute, relative, resolve } from "node:path";

/** How long after an app listens hr starts the next app's launcher (it would compete for CPU with the app's first requests). */
const WARM_AFTER_MS = 300;

export interface DevOptions {
  config: Config;
  /** Project directory (hr.toml's directory): cwd of builds and the app, root of the watch. */
  root: string;
  log: Logger;
  env: Record<string, string | undefined>;
  /** Read r/q commands from stdin (when it is a terminal or an open pipe). Default true. */
  keys?: boolean;
  /** Install SIGINT/SIGTERM/SIGHUP handlers. Default true. */
  signals?: boolean;
}

/** HR_CHANGED_PATHS: newline-separated, root-relative; capped so the environment stays small. */
export function changedPathsEnv(paths: readonly string[], maxBytes = 32 * 1024): string {
  let out = "";
  for (const p of paths) {
    if (out.length + p.length + 1 > maxBytes) break;
    out += out ? `\n${p}` : p;
  }
  return out;
}


export class DevSession {
  readonly state: DevState = { phase: { kind: "idle" }, app: { status: "none" } };
  private strategy: Strategy | null = null;
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly steps: BuildStep[];
  /** An app started beside the running one (overlap) until it listens. */
  private pending: RunningApp | null = null;
  /**
   * Without capture: run the next start under the launcher in observe mode, so a bind of
   * a port hr holds is reported the moment it happens. Only the first start and the start
   * after a crash pay the launcher's start-up (a healthy edit loop does not).
   */
  private observeNext = true;
  /**
   * run.capture with strategy fd: the next app's launcher, started ahead of time once
   * the current app listens (filter installed, waiting for its app), so a restart does
   * not wait for hr's own start-up.
   */
  private warm: { launch: WarmLaunch; child: Child } | null = null;
  private readonly overlap: boolean;
  private watcher: Watcher | null = null;
  private envWatch: FileWatch | null = null;
  /** Variables of [run] env_file as of the last app start. */
  private fileEnv: Record<string, string> = {};
  private keys: Keys | null = null;

  /**
   * What happened since the loop last looked: events only append here and wake it;
   * run() alone takes them out. "quit" is never taken out (it ends the loop).
   */
  private readonly inbox: DevEvent[] = [];
  private interrupts = 0;
  /** Changed paths since the last app start (survive cancelled and failed builds). */
  private changed = new Set<string>();
  private wakeUp: (() => void) | null = null;
  /** Latency tracing (-v): when the first event of the pending change arrived, etc. */
  private trace: { eventAt: number; debouncedAt: number; batchAt: number } | null = null;

  private gen = 0;
  /** The app's crash history: the delay before a crash restart (process/backoff.ts, shared with hr serve). */
  private readonly crashes = new CrashBackoff();
  /** Children hr is stopping on purpose (their exit is not a crash). */
  private readonly stopping = new WeakSet<Child>();
  private readonly cleanups: (() => void)[] = [];
  /** The project directory vanished (renamed/deleted): hr quits with exit 1. */
  private projectGone = false;
  /** Woken by requestQuit (an overlapped start waiting for its app to listen). */
  private quitWaiters: (() => void)[] = [];

  constructor(private readonly opts: DevOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
    this.steps = buildSteps(this.cfg.build);
    this.overlap = this.cfg.run.capture && this.cfg.dev.strategy !== "none" && this.cfg.dev.overlap !== false;
  }

  // ------------------------------------------------------------------ events

  /** A debounced batch of changed paths from the watcher. */
  onChange(paths: string[], trace: { firstEventAt?: number; debouncedAt?: number } = {}): void {
    if (this.quitRequested || paths.length === 0) return;
    for (const p of paths) this.changed.add(p);
    this.inbox.push({ kind: "change" });
    const now = performance.now();
    this.trace ??= { eventAt: trace.firstEventAt ?? now, debouncedAt: trace.debouncedAt ?? now, batchAt: now };
    this.log.debug(`changed: ${paths.join(", ")}`);
    this.cancelBuild("a file changed during the build");
    this.wake();
  }

  /** r+Enter. */
  requestRestart(): void {
    if (this.quitRequested) return;
    this.inbox.push({ kind: "manual" });
    this.cancelBuild("restart requested");
    this.wake();
  }

  /** q+Enter, SIGTERM, first Ctrl-C. */
  requestQuit(why: string): void {
    if (this.quitRequested) return;
    this.inbox.push({ kind: "quit" });
    for (const w of this.quitWaiters.splice(0)) w();
    this.log.info(`${why}: stopping${this.state.app.status === "running" ? ` the app (${this.cfg.run.stop_signal}, up to ${formatMs(this.cfg.run.stop_timeout)})` : ""}`);
    this.cancelBuild(null);
    this.wake();
  }

  /** Second Ctrl-C: SIGKILL everything now. */
  forceKill(): void {
    if (!this.quitRequested) this.inbox.push({ kind: "quit" });
    this.log.warn("killing everything now");
    const { phase, app } = this.state;
    if (phase.kind === "building") void phase.build.kill();
    if (app.status === "running") void app.child.kill();
    void this.pending?.child.kill();
    this.wake();
  }

  private cancelBuild(why: string | null): void {
    const phase = this.state.phase;
    if (phase.kind !== "building" || phase.build.isCancelled) return;
    if (why) this.log.info(`${why}: cancelling it`);
    void phase.build.cancel();
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  /** An event of this kind is waiting (a change during a build, a quit during a restart…). */
  private waiting(kind: DevEvent["kind"]): boolean {
    return this.inbox.some((e) => e.kind === kind);
  }

  private get quitRequested(): boolean {
    return this.waiting("quit");
  }

  /** Takes every waiting change, manual restart, crash and crash-restart timer out of the inbox. */
  private takeWork(): Set<DevEvent["kind"]> {
    const kinds = new Set(this.inbox.map((e) => e.kind));
    this.inbox.splice(0, this.inbox.length, ...this.inbox.filter((e) => e.kind === "quit"));
    return kinds;
  }

  private nextEvent(): Promise<void> {
    if (this.inbox.length > 0) return Promise.resolve();
    return new Promise((resolve) => (this.wakeUp = resolve));
  }

  // ------------------------------------------------------------------ main loop

  /** Runs until quit; resolves with hr's exit code. */
  async run(): Promise<number> {
    try {
      await this.setup();
    } catch (error) {
      this.log.error((error as Error).message);
      await this.teardown();
      return 1;
    }
    this.inbox.push({ kind: "change" }); // the first build + start
    let first = true;
    while (true) {
      await this.nextEvent();
      if (this.quitRequested) break;
      // A change or r+Enter builds and restarts (a crash restart waiting is folded into it).
      const work = this.takeWork();
      const built = work.has("change") || work.has("manual");
      if (built) {
        const trigger: Trigger = first ? "start" : work.has("manual") && !work.has("change") ? "manual" : "change";
        first = false;
        await this.cycle(trigger);
      } else if (work.has("crash-timer")) {
        await this.restart("crash", null);
      }
      this.decideCrashRestart(built);
    }
    await this.teardown();
    return this.projectGone ? 1 : 0;
  }

  private async setup(): Promise<void> {
    const { cfg, log } = this;
    if (cfg.dev.overlap && !cfg.run.capture)
      log.warn("dev.overlap = true needs run.capture (hr learns that the new app is up from its listen() on hr's socket): restarts stop the old app first");
    this.strategy = await openStrategy({ mode: "dev", config: cfg, root: this.opts.root, env: this.opts.env, log });
    if (this.opts.signals !== false) this.installSignals();
    let pollMs = cfg.watch.poll;
    const fsType = pollMs === undefined ? noEventFilesystem(this.opts.root) : null;
    if (fsType) {
      pollMs = 500;
      log.warn(`${this.opts.root} is on ${fsType}, which delivers no file events: polling every 500 ms (set watch.poll to choose)`);
    }
    // env files are watched on their own (they are often gitignored, or outside include_ext);
    // the tree watcher ignores them so one save is one change.
    const envFiles = cfg.run.env_file ?? [];
    const inRoot = envFiles.map((f) => relative(this.opts.root, resolve(this.opts.root, f))).filter((r) => r && !r.startsWith("..") && !isAbsolute(r));
    if (envFiles.length) {
      this.envWatch = watchFiles(envFiles, this.opts.root, (changed) => this.onChange(changed), {
        debounceMs: Math.max(cfg.watch.debounce, 50),
        label: "run.env_file",
        onError: (m) => log.warn(m),
      });
    }
    const own = ownOutput(this.opts.root, cfg);
    if (own.paths.length) log.debug(`not watched (hr writes them): ${own.paths.join(", ")}`);
    this.watcher = await watch(
      {
        root: this.opts.root,
        paths: cfg.watch.paths,
        includeExt: cfg.watch.include_ext,
        include: cfg.watch.include,
        exclude: cfg.watch.exclude,
        ignore: [...inRoot, ...own.globs],
        gitignore: cfg.watch.gitignore,
        debounceMs: cfg.watch.debounce,
        pollMs,
        onError: (e) => log.warn(`watch: ${e.message}`),
        onNotice: (m) => log.info(`watch: ${m}`),
      },
      (batch, trace) => this.onChange(batch.paths, trace),
    );
    if (this.opts.keys !== false) {
      this.keys = readKeys((cmd) => (cmd === "restart" ? this.requestRestart() : this.requestQuit("q")), {
        onDeferred: () => log.debug("running in the background of the terminal: keys are read once hr is in the foreground"),
      });
    }
    const listen = this.strategy.sockets.describe();
    const where = listen ? ` on ${listen}${cfg.run.capture ? " (capturing the app's bind)" : ""}` : "";
    const keys = this.keys ? " · r+Enter restarts, q+Enter quits" : "";
    log.info(
      `dev: watching ${this.watcher.watchedDirs} ${this.watcher.watchedDirs === 1 ? "dir" : "dirs"}${this.watcher.mode === "poll" ? ` (poll every ${formatMs(pollMs ?? 0)})` : ""} · strategy ${this.strategy.name}${where}${keys}`,
      { event: "watching", dirs: this.watcher.watchedDirs, mode: this.watcher.mode, strategy: this.strategy.name, listen: listen || undefined },
    );
  }

  private installSignals(): void {
    const onSignal = (sig: string) => () => {
      this.interrupts++;
      if (this.interrupts === 1) this.requestQuit(sig === "SIGINT" ? "Ctrl-C (again to kill at once)" : sig);
      else this.forceKill();
    };
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
      const handler = onSignal(sig);
      process.on(sig, handler);
      this.cleanups.push(() => process.off(sig, handler));
    }
    const onExit = () => killAllSync();
    process.on("exit", onExit);
    startReaper(); // double-forked descendants of the app stay in hr's tree and are reaped by hr
    this.cleanups.push(() => process.off("exit", onExit));
  }

  /** Build, then (on success) replace the app. */
  private async cycle(trigger: Trigger): Promise<void> {
    if (!existsSync(this.opts.root)) {
      // Renamed or deleted under hr: every build and start would fail with a spawn error.
      this.log.error(`the project directory ${this.opts.root} no longer exists (renamed or deleted): hr dev cannot build or run the app; start hr again where the project is now`, { event: "project_gone" });
      this.projectGone = true;
      this.requestQuit("project directory gone");
      return;
    }
    if (this.state.phase.kind === "backoff") clearTimeout(this.state.phase.timer);
    this.state.phase = { kind: "idle" };
    if (this.cfg.dev.clear_screen && trigger !== "start") clearScreen();

    let buildMs: number | null = null;
    let builtAt: number | null = null;
    if (this.steps.length > 0) {
      const paths = [...this.changed].sort();
      const label = `building (${this.steps.map(describeStep).join(" → ")})`;
      const progress = BuildProgress.forTerminal(label, { format: this.log.options.format, level: this.log.options.level, env: this.opts.env });
      const build = new BuildRun({
        steps: this.steps,
        cwd: this.opts.root,
        env: { ...this.opts.env, ...(progress ? BuildProgress.colorEnv(this.opts.env) : {}), ...this.cfg.build.env, HR_CHANGED_PATHS: changedPathsEnv(paths) },
        onLine: progress ? (stream, line) => progress.line(stream, line) : undefined,
      });
      this.state.phase = { kind: "building", build, trigger };
      this.log.debug(label);
      progress?.start();
      const result = await build.result;
      progress?.done();
      this.state.phase = { kind: "idle" };
      switch (result.kind) {
        case "cancelled":
          return; // the loop starts over: the change (or quit) that cancelled it is pending
        case "failed":
        case "error": {
          const what = result.kind === "failed" ? result.exit.describe() : result.message;
          this.log.error(`${describeStep(result.step)} failed (${what}) after ${formatMs(result.ms)}; ${this.keeping()}`, {
            event: "build_failed",
            step: result.step.name,
            code: result.kind === "failed" ? result.exit.code : null,
            signal: result.kind === "failed" ? result.exit.signal : null,
          });
          // An app that crashed meanwhile: run() decides its restart (decideCrashRestart).
          const app = this.state.app;
          if (app.status === "none") {
            this.strategy?.down?.(this.downMessage(`the build failed (${describeStep(result.step)} ${what})`));
          }
          return;
        }
        case "ok":
          buildMs = result.ms;
          builtAt = performance.now();
      }
      if (this.quitRequested) return;
      if (this.waiting("change")) {
        // A change landed right as the build finished: build again before restarting.
        return;
      }
    }
    await this.restart(trigger, buildMs, builtAt);
  }

  /**
   * The one place that decides a crash restart, called by run() after each turn: an app
   * that exited on its own and was not replaced since (its crash, or a build that failed
   * after it) comes back after CrashBackoff's delay with dev.restart_on_crash. Not when a
   * change, r+Enter or quit is waiting (the next turn replaces the app or ends), nor while
   * a timer is already armed (phase backoff).
   */
  private decideCrashRestart(afterBuild: boolean): void {
    const app = this.state.app;
    if (app.status !== "crashed" || !this.cfg.dev.restart_on_crash || this.state.phase.kind !== "idle") return;
    if (this.quitRequested || this.waiting("change") || this.waiting("manual")) return;
    const delayMs = this.crashes.currentDelay();
    if (afterBuild) {
      // onExit announced a restart by the build, which failed: the last good app comes back.
      this.strategy?.down?.(this.downMessage(`the app ${app.exit.describe()}`, delayMs));
      this.log.info(`gen ${app.gen} crashed during the build: restarting it in ${formatMs(delayMs)}`);
    }
    this.scheduleCrashRestart(delayMs);
  }

  /** Arms the crash-restart timer (phase backoff); the loop restarts the app when it fires. */
  private scheduleCrashRestart(delayMs: number): void {
    const timer = setTimeout(() => {
      if (this.state.phase.kind === "backoff") this.state.phase = { kind: "idle" };
      this.inbox.push({ kind: "crash-timer" });
      this.wake();
    }, delayMs);
    this.state.phase = { kind: "backoff", delayMs, timer };
  }

  /** The proxy's 502 text while no app runs. */
  private downMessage(why: string, delayMs?: number): string {
    const next = delayMs !== undefined ? `hr restarts it in ${formatMs(delayMs)}` : `hr is waiting for a file change${this.keys ? " (or r+Enter)" : ""} to rebuild and restart it`;
    return `hr dev: no app is running: ${why}; ${next}.\n`;
  }

  private keeping(): string {
    const app = this.state.app;
    if (app.status === "running") return `gen ${app.gen} (pid ${app.child.pid}) keeps running; waiting for changes`;
    return "no app running; waiting for changes";
  }

  /** Stop the old tree (all of it), then start the new app. */
  private async restart(trigger: Trigger, buildMs: number | null, builtAt: number | null = null): Promise<void> {
    if (this.cfg.run.env_file) {
      try {
        this.fileEnv = readEnvFiles(this.cfg.run.env_file, this.opts.root);
      } catch (error) {
        if (!(error instanceof EnvFileError)) throw error;
        this.log.error(`run.env_file: ${error.message}; ${this.keeping()}`, { event: "env_file_failed", file: error.file, line: error.line ?? null });
        if (this.state.app.status === "none") this.strategy?.down?.(this.downMessage(`${error.file} does not parse`));
        return;
      }
    }
    this.state.phase = { kind: "restarting", trigger };
    const t0 = performance.now();
    const trace = this.trace;
    this.trace = null;
    const old = this.state.app;
    const overlap = this.overlap && old.status === "running" && old.ownPorts.size === 0;
    if (this.overlap && old.status === "running" && old.ownPorts.size > 0)
      this.log.debug(`gen ${old.gen} listens on port ${[...old.ownPorts].join(", ")} itself: stopping it before the new app starts`);
    if (!overlap) await this.stopApp();
    const stoppedAt = performance.now();
    if (this.quitRequested) {
      this.state.phase = { kind: "idle" };
      return;
    }
    const paths = [...this.changed].sort();
    this.changed.clear();
    let app = this.startApp(paths, overlap);
    if (app && overlap) app = await this.overlapWith(app, paths);
    const spawnedAt = performance.now();
    const restartMs = spawnedAt - t0;
    this.state.phase = { kind: "idle" };
    if (!app) return;
    if (trace && trigger === "change") {
      const at = (t: number) => `+${(t - trace.eventAt).toFixed(1)}`;
      this.log.debug(
        `timeline gen ${app.gen} (ms since the first event): debounce fired ${at(trace.debouncedAt)} · batch ${at(trace.batchAt)}` +
          `${builtAt !== null ? ` · built ${at(builtAt)}` : ""} · ${overlap ? "new app listening, old tree gone" : `old tree gone ${at(stoppedAt)} · spawned`} ${at(spawnedAt)}`,
        { event: "timeline", gen: app.gen, debounced: trace.debouncedAt - trace.eventAt, batch: trace.batchAt - trace.eventAt, built: builtAt === null ? null : builtAt - trace.eventAt, stopped: stoppedAt - trace.eventAt, spawned: spawnedAt - trace.eventAt },
      );
    }
    if (trigger !== "crash") this.crashes.reset();
    const c = this.log.colors;
    const parts: string[] = [];
    if (trigger === "change") parts.push(describeChanges(paths));
    else if (trigger === "manual") parts.push("manual restart");
    else if (trigger === "crash") parts.push("after crash");
    if (buildMs !== null) parts.push(`built in ${formatMs(buildMs)}`);
    parts.push(`${trigger === "start" ? "started" : "restarted"}${overlap && app.listening ? " (overlapped)" : ""} in ${formatMs(restartMs)}`);
    this.log.info(`${parts.join(" · ")} ${c.dim(`→ gen ${app.gen}, pid ${app.child.pid}`)}`, {
      event: trigger === "start" ? "started" : "restarted",
      trigger,
      gen: app.gen,
      pid: app.child.pid,
      paths: paths.slice(0, 100),
      changed: paths.length,
      buildMs: buildMs === null ? null : Math.round(buildMs),
      restartMs: Math.round(restartMs),
    });
  }

  private async stopApp(): Promise<void> {
    const app = this.state.app;
    // New requests wait for the next app; the old one finishes what it has before its signal (stopRunning).
    this.strategy?.down?.(null);
    if (app.status === "running") await this.stopRunning(app);
    else if (app.status === "crashed") {
      await app.child.stop({ signal: "SIGKILL", timeoutMs: 0 }); // sweep what it left in its group
    }
    this.state.app = { status: "none" };
  }

  /** Stops one app's whole tree (run.stop_signal, then SIGKILL after run.stop_timeout). */
  private async stopRunning(app: RunningApp): Promise<void> {
    this.stopping.add(app.child);
    if (this.strategy?.retire) {
      const r = await this.strategy.retire(app.gen, this.cfg.run.stop_timeout);
      if (r.requests || r.cut) this.log.debug(`gen ${app.gen}: ${r.requests} request(s) finished, ${r.cut} cut before ${this.cfg.run.stop_signal} (${formatMs(r.durationMs)})`);
    }
    const t0 = performance.now();
    let exitedMs = 0;
    void app.child.exited.then(() => (exitedMs = performance.now() - t0));
    const exit = await app.child.stop({ signal: this.cfg.run.stop_signal, timeoutMs: this.cfg.run.stop_timeout });
    app.capture?.dispose();
    this.log.debug(`gen ${app.gen} (pid ${app.child.pid}) stopped: ${exit.describe()} (exited ${exitedMs.toFixed(1)} ms after ${this.cfg.run.stop_signal}, tree gone after ${(performance.now() - t0).toFixed(1)} ms)`);
  }

  /**
   * dev.overlap: `next` runs beside the live app. Once it listens on hr's socket it
   * becomes the app and the old one is stopped. If it exits first, the old one is
   * stopped and the app started again, sequentially. Returns the app now running.
   */
  private async overlapWith(next: RunningApp, paths: string[]): Promise<RunningApp | null> {
    const old = this.state.app as RunningApp;
    this.pending = next;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeoutMs = this.cfg.serve.ready.timeout;
    const outcome = await Promise.race([
      next.listening!.then(() => "listening" as const),
      next.child.exited.then(() => "exited" as const),
      new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), timeoutMs))),
      new Promise<"quit">((r) => this.quitWaiters.push(() => r("quit"))),
    ]);
    clearTimeout(timer);
    this.pending = null;
    if (outcome === "quit") {
      await this.stopRunning(next);
      return null;
    }
    if (outcome === "exited") {
      const exit = next.child.exitInfo!;
      next.capture?.dispose();
      this.log.warn(`gen ${next.gen} ${exit.describe()} before it listened, while gen ${old.gen} still served (a port, lock or file only one instance can hold?): stopping gen ${old.gen} and starting again (dev.overlap = false always restarts this way)`, {
        event: "overlap_failed",
        gen: next.gen,
        code: exit.code,
        signal: exit.signal,
      });
      await this.stopApp();
      if (this.quitRequested) return null;
      return this.startApp(paths, false);
    }
    if (outcome === "timeout") this.log.warn(`gen ${next.gen} did not listen on hr's socket within ${formatMs(timeoutMs)}: stopping gen ${old.gen} anyway`);
    this.state.app = next;
    this.route(next);
    await this.stopRunning(old);
    return next;
  }

  private startApp(paths: string[], beside = false): RunningApp | null {
    const gen = ++this.gen;
    let argv = toArgv(this.cfg.run.cmd);
    const env: Record<string, string | undefined> = {
      ...this.opts.env,
      ...this.fileEnv,
      ...this.cfg.run.env,
      HR_GENERATION: String(gen),
      HR_CHANGED_PATHS: changedPathsEnv(paths),
    };
    let extraFds: number[] = [];
    let port: number | undefined;
    let capture: CaptureStart | undefined;
    const ownPorts = new Set<number>();
    let listened: () => void = () => {};
    const listening = new Promise<void>((r) => (listened = r));
    let captured = false;
    let warmChild: Child | undefined;
    const strategy = this.strategy!;
    // proxy: the app's private port (under capture, the socket its bind gets is bound there).
    const wiring = strategy.wire(this.cfg, gen);
    const reserved = wiring.port;
    const unreserve = () => strategy.exited?.({ gen, worker: 1, pid: 0, port: reserved });
    try {
      if (wiring.capture instanceof Error) throw wiring.capture;
      if (wiring.capture) {
        const t0 = performance.now();
        const who = () => `gen ${gen}${capture && app ? ` (pid ${app.child.pid})` : ""}`;
        const events: CaptureEvents = {
            onCaptured: (e) => {
              captured = true;
              this.log.debug(`${who()} binds ${e.host}:${e.port}: handed hr's socket (+${(performance.now() - t0).toFixed(1)} ms)`);
            },
            onListening: (e) => {
              this.log.debug(`${who()} listening on hr's socket for :${e.port} (+${(performance.now() - t0).toFixed(1)} ms)`, { event: "listening", gen, pid: e.pid });
              listened();
              // Not at once: the new app is about to serve its first requests (and the old one to stop).
              if (reserved === undefined) setTimeout(() => this.prepareWarm(wiring.capture as Capture), WARM_AFTER_MS).unref();
            },
            onOtherListen: (e) => {
              if (e.fixed) ownPorts.add(e.port);
              const text = otherListenMessage(who(), e, strategy.sockets.describe(), captured);
              if (captured) this.log.debug(text);
              else this.log.warn(text, { event: "other_listen", gen, port: e.port });
            },
            onSkipped: (e) => this.log.warn(`${who()} binds ${e.host}:${e.port}, a port hr holds, but hr cannot hand it over (${e.why}): it will fail with EADDRINUSE`),
            onRefused: (message) => this.log.error(`gen ${gen}: seccomp refused in the launcher (${message}); run.capture cannot work here: set run.capture = false and make the app adopt fd 3, or use dev.strategy = "proxy"`),
            onError: (message) => this.log.warn(`capture: ${message}`),
        };
        const warm = reserved === undefined ? this.takeWarm() : null;
        if (warm) {
          const appEnv = captureEnv(env, strategy.sockets.listeners);
          try {
            warm.launch.start({ argv, cwd: this.opts.root, env: appEnv }, events);
            warmChild = warm.child;
            this.log.debug(`gen ${gen}: started by the launcher waiting since the last start (pid ${warm.child.pid})`);
            capture = { argv: [], extraFds: [], env: appEnv, spawned: () => {}, dispose: () => warm.launch.dispose() };
            Object.assign(env, appEnv);
          } catch (error) {
            this.log.debug(`warm launcher unusable (${(error as Error).message}): starting a fresh one`);
            warm.launch.dispose();
            void warm.child.kill();
          }
        }
        if (!warmChild) {
          capture = captureStart({ capture: wiring.capture, argv, cwd: this.opts.root, env, listeners: strategy.sockets.listeners, privatePort: reserved, events });
          argv = capture.argv;
          extraFds = capture.extraFds;
          Object.assign(env, capture.env);
          port = capture.privatePort;
        }
      } else {
        Object.assign(env, wiring.env);
        argv = wiring.argv(argv);
        extraFds = wiring.fds;
        port = wiring.port;
        const held = strategy.sockets.listeners;
        if (this.observeNext && (strategy.name === "fd" || strategy.name === "proxy") && held.length > 0 && captureUnavailable() === null) {
          const holds = strategy.sockets.describe();
          const name = strategy.name;
          capture = observeStart({
            capture: Capture.get(),
            argv,
            cwd: this.opts.root,
            env,
            listeners: held,
            extraFds,
            events: { onConflict: (e) => this.log.error(conflictMessage(`gen ${gen} (pid ${e.pid})`, e, holds, name), { event: "port_conflict", gen, port: e.port }) },
          });
          argv = capture.argv;
          extraFds = capture.extraFds;
        }
      }
      this.observeNext = false;
    } catch (error) {
      unreserve();
      this.log.error(`run \`${describeCommand(this.cfg.run.cmd)}\`: ${(error as Error).message}; waiting for changes`, { event: "spawn_failed" });
      return null;
    }
    let child: Child;
    let app: RunningApp | undefined;
    try {
      child =
        warmChild ??
        spawnChild({
          argv, cwd: this.opts.root, env, extraFds, stdin: "ignore", dieWithParent: true,
          onEscaped: (procs) => this.log.warn(escapedMessage("the app", procs)),
        });
    } catch (error) {
      capture?.spawned();
      capture?.dispose();
      unreserve();
      const msg = error instanceof SpawnError ? error.message : (error as Error).message;
      this.log.error(`run \`${describeCommand(this.cfg.run.cmd)}\`: ${msg}; waiting for changes`, { event: "spawn_failed" });
      return null;
    }
    capture?.spawned();
    void child.exited.then(() => strategy.exited?.({ gen, worker: 1, pid: child.pid, port }));
    app = { status: "running" as const, child, gen, startedAt: performance.now(), port, capture, listening: capture ? listening : undefined, ownPorts };
    const started = app;
    void child.exited.then((exit) => this.onExit(child, exit, started));
    if (beside) return app; // overlapWith() makes it the app once it listens
    this.state.app = app;
    this.route(app);
    return app;
  }

  /** The waiting launcher, if it is still alive (it is consumed). */
  private takeWarm(): { launch: WarmLaunch; child: Child } | null {
    const w = this.warm;
    this.warm = null;
    if (w && w.child.exitInfo) {
      w.launch.dispose();
      return null;
    }
    return w;
  }

  /** Starts the next app's launcher ahead of time (once; discarded on quit). */
  private prepareWarm(capture: Capture): void {
    if (this.warm || this.quitRequested || !this.strategy) return;
    const launch = capture.prepareWarm({ fdIndex: 3, targets: sharedTargets(this.strategy.sockets.listeners) });
    let child: Child;
    try {
      child = spawnChild({
        argv: launch.argv, cwd: this.opts.root, env: this.opts.env, extraFds: [launch.fd], stdin: "ignore", dieWithParent: true,
        onEscaped: (procs) => this.log.warn(escapedMessage("the app", procs)),
      });
    } catch (error) {
      launch.spawned();
      launch.dispose();
      this.log.debug(`warm launcher: ${(error as Error).message}`);
      return;
    }
    launch.spawned();
    this.warm = { launch, child };
  }

  /**
   * proxy: new requests go to this app. Routable at once: until it listens, requests retry
   * the connect (up to 30 s). With dev.live_reload, open pages reload once a new app replaced one.
   */
  private route(app: RunningApp): void {
    this.strategy?.ready?.({ gen: app.gen, worker: 1, pid: app.child.pid, port: app.port });
    this.strategy?.live?.(app.gen, app.gen > 1);
  }

  private onExit(child: Child, exit: ExitInfo, started: RunningApp): void {
    const app = this.state.app;
    if (app.status !== "running" || app.child !== child || this.stopping.has(child)) {
      if (this.pending !== started && !this.stopping.has(child)) started.capture?.dispose();
      return;
    }
    app.capture?.dispose();
    const ranMs = performance.now() - app.startedAt;
    this.state.app = { status: "crashed", child, gen: app.gen, exit, ranMs };
    const fields = { event: "crashed", gen: app.gen, pid: child.pid, code: exit.code, signal: exit.signal };
    const what = `app ${exit.describe()} (gen ${app.gen}, pid ${child.pid}, after ${formatMs(ranMs)})`;
    if (this.quitRequested) {
      this.strategy?.down?.(null);
      return;
    }
    const crashed = `the app ${exit.describe()}`;
    this.observeNext = true;
    // Recorded and reported here; run() decides the restart (decideCrashRestart). A
    // build or restart under way starts a fresh app itself.
    if (!this.cfg.dev.restart_on_crash) {
      this.strategy?.down?.(this.downMessage(crashed));
      this.log.error(`${what}; restarting on the next change${this.keys ? " or r+Enter" : ""}`, fields);
    } else {
      const { delayMs } = this.crashes.crashed(ranMs);
      this.strategy?.down?.(this.downMessage(crashed, delayMs));
      this.log.error(`${what}; restarting in ${formatMs(delayMs)}`, fields);
    }
    this.inbox.push({ kind: "crashed" });
    this.wake();
  }

  private async teardown(): Promise<void> {
    const phase = this.state.phase;
    if (phase.kind === "backoff") clearTimeout(phase.timer);
    this.state.phase = { kind: "quitting" };
    this.watcher?.close();
    this.envWatch?.close();
    this.keys?.close();
    if (phase.kind === "building") await phase.build.cancel();
    for (const w of this.quitWaiters.splice(0)) w();
    const warm = this.takeWarm();
    if (warm) {
      warm.launch.dispose(); // EOF: the waiting launcher exits 0
      await warm.child.stop({ signal: "SIGTERM", timeoutMs: 1000 });
    }
    await this.stopApp();
    this.strategy?.close();
    for (const c of this.cleanups.splice(0)) c();
    this.log.info("stopped", { event: "stopped" });
  }
}

type App = DevState["app"];
type RunningApp = Extract<App, { status: "running" }>;

/** Entry point for `hr dev`. */
export function runDev(opts: DevOptions): Promise<number> {
  return new DevSession(opts).run();
}
