/**
 * `hr serve`: the zero-downtime master.
 *
 * The master binds every [[listen]] socket once (or adopts systemd's) and never
 * accepts on them. Workers of each generation inherit them at fd 3, 4, …; the
 * kernel's accept queue is shared, so while one generation hands over to the
 * next, connections wait in the queue instead of being refused.
 *
 * Reload (SIGHUP, `hr reload`, a change of a serve.watch file):
 *   [build] (serve.build) → start generation N+1 → wait until ALL its workers are
 *   ready → generation N gets run.stop_signal and drains (drain_timeout, then
 *   SIGKILL). If N+1 fails (build error, exit, not ready in time), N+1 is stopped
 *   and N keeps serving, untouched. Reloads never overlap: one requested while
 *   another runs is queued, and further requests join that queued one.
 *
 * Shutdown (SIGTERM/SIGINT): every generation drains, then hr exits 0; a second
 * signal SIGKILLs everything at once (exit 130).
 */
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { NotRunningError, request } from "../control/client.ts";
import type { ReloadRecord, Request, Response, ServeStatus, UpgradeRecord } from "../control/protocol.ts";
import { ensurePrivateDir, readPid, runtimePaths, type RuntimePaths } from "../control/runtime.ts";
import { startControlServer, type ControlServer } from "../control/server.ts";
import type { Logger } from "../log/logger.ts";
import { killAllSync } from "../process/child.ts";
import type { SocketSet } from "../sockets/handoff.ts";
import { sdNotify } from "../sockets/systemd.ts";
import { runBuild } from "./build.ts";
import { openStrategy, type ServeStrategy } from "./strategy.ts";
import { Generation, isTerminal } from "./generation.ts";
import { formatMs } from "../config/duration.ts";
import { formatStatus } from "./status.ts";
import { startSweeper, type Sweeper } from "./sweeper.ts";
import { SystemdNotifier } from "./systemd.ts";
import { runUpgrade, stagingSocketPath, takeUpgradeHandoff, type UpgradeHandoff } from "./upgrade.ts";
import { watchFiles, type FileWatch } from "./watch.ts";

export interface MasterOptions {
  config: Config;
  root: string;
  /** The config file's absolute path (null: none, flags only): the control socket derives from it. */
  configFile: string | null;
  log: Logger;
  env: Record<string, string | undefined>;
  /**
   * Re-reads the config (hr.toml + env + the same flags) at each reload; throws
   * ConfigError. The new generation uses the result; [[listen]] changes need a restart.
   */
  reloadConfig?: () => Config;
}

const KEEP_RELOADS = 20;
const KEEP_ENDED_GENERATIONS = 3;

interface Queued {
  triggers: string[];
  promise: Promise<ReloadRecord>;
  resolve: (r: ReloadRecord) => void;
}

export class Master {
  private cfg: Config;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private paths!: RuntimePaths;
  private sockets!: SocketSet;
  private strategy!: ServeStrategy;
  private control?: ControlServer;
  private watcher?: FileWatch;
  private sweeper?: Sweeper | null;
  private baseEnv: Record<string, string | undefined> = {};
  private masterNotify?: string;
  /** sd_notify to hr's own supervisor (systemd's NOTIFY_SOCKET; never the workers'). */
  private notifier = new SystemdNotifier(undefined);
  /** Set when this master was started by another one's self-upgrade (see upgrade.ts). */
  private handoff: UpgradeHandoff | null = null;
  private upgrading?: Promise<UpgradeRecord>;
  private lastUpgrade?: UpgradeRecord;
  /** A self-upgrade succeeded: the new master owns the control socket, pid file and runtime dir. */
  private handedOver = false;

  private generations: Generation[] = [];
  private live?: Generation;
  private counter = 0;
  private reloads: ReloadRecord[] = [];
  private reloadCount = 0;
  private busy = false;
  /** The reload (or first start) in progress. */
  private current?: Promise<unknown>;
  private queued?: Queued;

  private stopping = false;
  private forced = false;
  private readonly shutdownAc = new AbortController();
  private finish!: (code: number) => void;
  private readonly done = new Promise<number>((r) => (this.finish = r));
  private readonly signalHandlers: [NodeJS.Signals, () => void][] = [];

  constructor(private readonly opts: MasterOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
  }

  /** Runs until shut down; resolves with the exit code. */
  async run(): Promise<number> {
    const { config: cfg, env, log } = this.opts;
    this.paths = runtimePaths(this.opts.configFile ?? join(this.opts.root, "hr.toml"), env);
    try {
      ensurePrivateDir(this.paths.dir);
    } catch (e) {
      log.error(`runtime directory: ${(e as Error).message}`);
      return 1;
    }
    this.handoff = takeUpgradeHandoff(env, (m) => log.warn(`upgrade: ${m}`));
    if (this.handoff) {
      this.counter = this.handoff.generation;
      log.info(`upgrade: taking over from pid ${this.handoff.from} (its sockets are at fd 3..)`, { event: "upgrade", state: "new_master", from: this.handoff.from });
    }
    // One master per project (a self-upgrade's new master takes over from the running one).
    if (!this.handoff) try {
      await request(this.paths.socket, { cmd: "status" }, 2000);
      log.error(`hr serve is already running for ${this.paths.project} (pid ${readPid(this.paths.pidFile) ?? "?"}); use \`hr reload\` or stop it first`);
      return 1;
    } catch (e) {
      if (!(e instanceof NotRunningError)) log.debug(`control socket check: ${(e as Error).message}`);
    }

    this.masterNotify = env.NOTIFY_SOCKET;
    this.notifier = new SystemdNotifier(this.masterNotify, (m) => log.debug(m));
    try {
      this.strategy = openStrategy(cfg, this.opts.root, env, log);
      this.sockets = this.strategy.sockets;
    } catch (e) {
      log.error((e as Error).message);
      return 1;
    }
    this.baseEnv = { ...env };
    delete this.baseEnv.NOTIFY_SOCKET;
    if (this.strategy.name === "reuseport") {
      // reuseport.ts logged what the workers bind (hr holds no socket).
    } else if (this.sockets.listeners.length === 0) {
      log.warn("no [[listen]] sockets: hr cannot hold a socket for the workers, so a reload only overlaps processes; add a [[listen]] entry for zero-downtime reloads");
    } else {
      log.info(`${this.sockets.inherited ? "adopted" : "listening on"} ${this.sockets.describe()}`, { event: "listen", sockets: this.sockets.describe() });
    }

    try {
      ensurePrivateDir(this.paths.workDir);
      this.strategy.install(this.paths.workDir);
      // After a self-upgrade the old master keeps the control socket until our first generation is ready.
      this.control = startControlServer(this.paths.socket, (req) => this.handle(req), this.handoff ? { stagingPath: stagingSocketPath(this.paths.socket) } : {});
      if (!this.handoff) writeFileSync(this.paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
      this.sweeper = this.newSweeper(this.handoff ? [stagingSocketPath(this.paths.socket)] : this.runtimeFiles());
      if (!this.sweeper) log.debug("setpriv not found: no orphan sweeper (grandchildren may outlive a SIGKILLed master)");
    } catch (e) {
      log.error(`control socket ${this.paths.socket}: ${(e as Error).message}`);
      this.cleanup();
      return 1;
    }
    log.debug(`control socket ${this.paths.socket}`);
    process.on("exit", killAllSync);
    this.onSignal("SIGHUP", () => void this.requestReload("SIGHUP"));
    this.onSignal("SIGTERM", () => void this.shutdown("SIGTERM"));
    this.onSignal("SIGINT", () => void this.shutdown("SIGINT"));
    this.onSignal("SIGUSR2", () => void this.requestUpgrade("SIGUSR2"));
    this.onSignal("SIGUSR1", () => this.log.info(`status\n${formatStatus(this.status())}`, { event: "status", status: this.status() }));

    // The first generation: failing it is fatal.
    this.busy = true;
    const first = this.newGeneration();
    const starting = first.start(this.shutdownAc.signal);
    this.current = starting; // shutdown() waits for it like for a reload
    const r = await starting;
    this.current = undefined;
    this.busy = false;
    if (!r.ok) {
      if (!this.stopping) {
        log.error(`the first generation failed: ${r.reason}`);
        await first.stopped;
        this.cleanup();
        return 1;
      }
    } else {
      this.live = first;
      if (this.handoff) this.takeOver(this.handoff, first.number);
      else this.notifier.ready(`serving gen${first.number}`);
      if (!this.stopping) {
        log.info(`serving gen${first.number}; reload with \`hr reload\` or kill -HUP ${process.pid}`);
        this.startWatcher();
      }
      if (this.queued && !this.stopping) this.startQueued();
    }
    return this.done;
  }

  private onSignal(sig: NodeJS.Signals, fn: () => void) {
    process.on(sig, fn);
    this.signalHandlers.push([sig, fn]);
  }

  private newGeneration(): Generation {
    const number = ++this.counter;
    const gen = new Generation({
      number,
      config: this.cfg,
      root: this.opts.root,
      ...this.strategy.generation(this.cfg, `gen${number}`), // sockets (+ Bun shim argv/env), fd socket audit
      runtimeDir: this.paths.workDir,
      log: this.log,
      baseEnv: this.baseEnv,
      onProcessesChanged: () => this.sweeper?.update(this.generations.flatMap((g) => g.pids())),
    });
    this.generations.push(gen);
    void gen.stopped; // nothing yet; pruned on changes
    return gen;
  }

  private prune() {
    const ended = this.generations.filter((g) => isTerminal(g.state) && g.pids().length === 0);
    const drop = new Set(ended.slice(0, Math.max(0, ended.length - KEEP_ENDED_GENERATIONS)));
    this.generations = this.generations.filter((g) => !drop.has(g));
  }

  // -------------------------------------------------------------------------
  // Reloads

  /** Asks for a reload; resolves when it (or the queued reload it joined) is over. */
  requestReload(trigger: string): Promise<ReloadRecord> {
    if (this.stopping) return Promise.resolve(this.rejected(trigger, "hr is shutting down"));
    if (this.upgrading) return Promise.resolve(this.rejected(trigger, "a self-upgrade of hr is in progress; reload the new master once it is done"));
    if (!this.busy) return this.runReload(trigger);
    if (this.queued) {
      if (!this.queued.triggers.includes(trigger)) this.queued.triggers.push(trigger);
      this.log.info(`reload requested (${trigger}) while one is in progress: joined the queued reload`, { event: "reload_coalesced", trigger });
      return this.queued.promise;
    }
    let resolve!: (r: ReloadRecord) => void;
    const promise = new Promise<ReloadRecord>((r) => (resolve = r));
    this.queued = { triggers: [trigger], promise, resolve };
    this.log.info(`reload requested (${trigger}) while one is in progress: queued`, { event: "reload_queued", trigger });
    return promise;
  }

  private rejected(trigger: string, error: string): ReloadRecord {
    return { id: 0, trigger, startedAt: new Date().toISOString(), result: "failed", error };
  }

  private startQueued() {
    const q = this.queued;
    if (!q) return;
    this.queued = undefined;
    if (this.stopping) return q.resolve(this.rejected(q.triggers.join(", "), "hr is shutting down"));
    void this.runReload(q.triggers.join(", ")).then(q.resolve);
  }

  private runReload(trigger: string): Promise<ReloadRecord> {
    this.busy = true; // synchronously: a request arriving now is queued
    const rec: ReloadRecord = { id: ++this.reloadCount, trigger, startedAt: new Date().toISOString(), result: "running" };
    this.reloads.push(rec);
    if (this.reloads.length > KEEP_RELOADS) this.reloads.shift();
    this.notifier.reloading(`reloading (${trigger})`);
    const p = this.doReload(rec).finally(() => {
      const live = this.live ? `serving gen${this.live.number}` : "no live generation";
      this.notifier.reloaded(rec.result === "ok" ? live : `reload #${rec.id} failed, rolled back: ${rec.error ?? "?"}; ${live}`);
      this.busy = false;
      this.current = undefined;
      this.startQueued();
    });
    this.current = p;
    return p;
  }

  private async doReload(rec: ReloadRecord): Promise<ReloadRecord> {
    const t0 = performance.now();
    const log = this.log;
    const old = this.live;
    log.info(`reload #${rec.id} (${rec.trigger})`, { event: "reload", id: rec.id, trigger: rec.trigger, state: "start" });
    const fail = (error: string, output?: string[]) => {
      rec.result = "failed";
      rec.error = error;
      if (output?.length) rec.output = output;
      rec.durationMs = Math.round(performance.now() - t0);
      log.error(`reload #${rec.id} failed after ${formatMs(rec.durationMs)}: ${error}${old ? `; gen${old.number} keeps serving` : ""}`, {
        event: "reload",
        id: rec.id,
        state: "failed",
        durationMs: rec.durationMs,
        error,
        ...(rec.generation ? { generation: rec.generation } : {}),
      });
      return rec;
    };
    try {
      if (this.opts.reloadConfig) {
        let next: Config;
        try {
          next = this.opts.reloadConfig();
        } catch (e) {
          return fail(`config: ${(e as Error).message}`);
        }
        this.applyConfig(next);
      }
      if (this.cfg.serve.build && (this.cfg.build.cmd || this.cfg.build.pre || this.cfg.build.post)) {
        const b = await runBuild(this.cfg, this.opts.root, this.baseEnv, log, this.shutdownAc.signal);
        if (!b.ok) return fail(b.error ?? "build failed", b.output);
        log.info(`build ok in ${formatMs(b.ms)}`, { event: "build", state: "ok", durationMs: b.ms });
      }
      if (this.stopping) return fail("hr is shutting down");
      const gen = this.newGeneration();
      rec.generation = gen.number;
      const r = await gen.start(this.shutdownAc.signal);
      if (!r.ok) return fail(r.reason ?? "failed", r.output);
      this.live = gen;
      rec.result = "ok";
      rec.durationMs = Math.round(performance.now() - t0);
      log.info(`reload #${rec.id} ok in ${formatMs(rec.durationMs)}: gen${gen.number} is live${old ? `, gen${old.number} draining` : ""}`, {
        event: "reload",
        id: rec.id,
        state: "ok",
        generation: gen.number,
        durationMs: rec.durationMs,
      });
      if (old && !this.stopping) void old.drain().then(() => this.prune());
      return rec;
    } catch (e) {
      return fail(`internal error: ${(e as Error).stack ?? e}`);
    } finally {
      this.prune();
    }
  }

  /** Takes a re-read config for the next generation; what can't change without a restart is kept and warned about. */
  private applyConfig(next: Config) {
    const prev = this.cfg;
    const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
    const changed = (Object.keys(next) as (keyof Config)[]).filter((k) => !same(prev[k], next[k]));
    if (!changed.length) return;
    if (!same(prev.listen, next.listen) || prev.serve.strategy !== next.serve.strategy) {
      this.log.warn("[[listen]] / serve.strategy changes need a restart of hr serve; keeping the current sockets");
    }
    this.cfg = { ...next, listen: prev.listen, serve: { ...next.serve, strategy: prev.serve.strategy } };
    this.log.info(`config reloaded: ${changed.map((k) => `[${k}]`).join(", ")} changed`, { event: "config", changed });
    if (!same(prev.serve.watch, next.serve.watch) && this.watcher) {
      this.watcher.close();
      this.watcher = undefined;
      this.startWatcher();
    }
  }

  private startWatcher() {
    if (!this.cfg.serve.watch.length || this.stopping) return;
    this.watcher = watchFiles(this.cfg.serve.watch, this.opts.root, (changed) => void this.requestReload(`watch: ${changed.join(", ")}`), {
      onError: (m) => this.log.warn(m),
    });
    this.log.info(`reloading when ${this.cfg.serve.watch.join(", ")} change${this.cfg.serve.watch.length === 1 ? "s" : ""}`);
  }

  // -------------------------------------------------------------------------
  // Shutdown

  async shutdown(sig: string): Promise<void> {
    if (this.stopping) {
      if (this.forced) return;
      this.forced = true;
      this.log.warn(`${sig} again: killing every worker now`, { event: "shutdown", state: "forced" });
      await Promise.all(this.generations.map((g) => g.kill()));
      this.cleanup();
      this.finish(130);
      return;
    }
    this.stopping = true;
    const t0 = performance.now();
    this.log.info(`${sig}: draining every generation (up to ${formatMs(this.cfg.serve.drain_timeout)}); ${sig} again to kill at once`, { event: "shutdown", state: "draining", signal: sig });
    this.notifier.stopping();
    this.watcher?.close();
    this.shutdownAc.abort(new Error("hr is shutting down"));
    if (this.queued) this.startQueued();
    // A reload in progress ends quickly once aborted (its generation goes failed and winds down).
    await this.current?.catch(() => {});
    // So does an upgrade (the new master gets SIGTERM and drains what it started).
    await this.upgrading?.catch(() => {});
    await Promise.all(this.generations.map((g) => (g.state === "ready" ? g.drain() : g.stopped)));
    if (this.forced) return;
    // Generations started while we waited (none should be) are covered by the exit handler.
    const ms = Math.round(performance.now() - t0);
    this.log.info(`stopped in ${formatMs(ms)}`, { event: "shutdown", state: "done", durationMs: ms });
    this.cleanup();
    this.finish(0);
  }

  private cleaned = false;
  private cleanup() {
    if (this.cleaned) return;
    this.cleaned = true;
    this.watcher?.close();
    for (const [sig, fn] of this.signalHandlers) process.off(sig, fn);
    void this.sweeper?.stop();
    this.control?.close();
    this.sockets?.close();
    if (this.paths) {
      // The runtime files belong to whoever the pid file names: after a self-upgrade
      // (either side of it) they may be another master's.
      rmSync(this.groupsFile(), { force: true });
      if (readPid(this.paths.pidFile) === process.pid) {
        rmSync(this.paths.pidFile, { force: true });
        rmSync(this.paths.workDir, { recursive: true, force: true });
      }
    }
  }

  // -------------------------------------------------------------------------
  // Control

  private async handle(req: Request): Promise<Response> {
    if (req.cmd === "status") return { ok: true, status: this.status() };
    if (req.cmd === "upgrade") {
      if (this.stopping) return { ok: false, error: this.handedOver ? `hr was upgraded: pid ${this.lastUpgrade?.newPid} is the master now` : "hr is shutting down" };
      const p = this.requestUpgrade(req.trigger ?? "hr upgrade");
      if (!req.wait) {
        const early = await Promise.race([p, Promise.resolve(null)]); // refused at once?
        if (early?.result === "failed") return { ok: false, error: early.error ?? "upgrade failed", upgrade: early };
        return { ok: true, upgrade: { ...(early ?? this.lastUpgrade!) } };
      }
      const rec = await p;
      return rec.result === "ok" ? { ok: true, upgrade: rec } : { ok: false, error: rec.error ?? "upgrade failed", upgrade: rec };
    }
    const trigger = req.trigger ?? "hr reload";
    if (this.stopping) return { ok: false, error: "hr is shutting down" };
    const queued = this.busy;
    const p = this.requestReload(trigger);
    if (!req.wait) return { ok: true, queued };
    const rec = await p;
    return rec.result === "ok" ? { ok: true, queued, reload: rec } : { ok: false, error: rec.error ?? "reload failed", reload: rec };
  }

  // -------------------------------------------------------------------------
  // Self-upgrade (upgrade.ts)

  private groupsFile(): string {
    return join(this.paths.workDir, `groups.${process.pid}`);
  }

  /** What this master's sweeper removes if it is SIGKILLed (only what it owns). */
  private runtimeFiles(): string[] {
    return [this.paths.workDir, this.paths.socket, this.paths.pidFile];
  }

  private newSweeper(removeOnSweep: string[]): Sweeper | null {
    const s = startSweeper(this.groupsFile(), removeOnSweep, this.baseEnv);
    s?.update(this.generations.flatMap((g) => g.pids()));
    return s;
  }

  /** Swaps the orphan sweeper for one that removes other files (ownership of the runtime files changed). */
  private replaceSweeper(removeOnSweep: string[]) {
    const old = this.sweeper;
    this.sweeper = this.newSweeper(removeOnSweep);
    void old?.stop();
  }

  /** New master, first generation ready: take the control socket and pid file over, tell systemd and the old master. */
  private takeOver(h: UpgradeHandoff, gen: number) {
    try {
      this.control?.publish();
      const tmp = `${this.paths.pidFile}.${process.pid}`;
      writeFileSync(tmp, `${process.pid}\n`, { mode: 0o600 });
      renameSync(tmp, this.paths.pidFile);
      this.replaceSweeper(this.runtimeFiles());
    } catch (e) {
      this.log.error(`upgrade: taking over the control socket / pid file failed: ${(e as Error).message}`);
    }
    // MAINPID first (NotifyAccess=all), then the old master, which exits once it has drained.
    this.notifier.mainPid(process.pid, `serving gen${gen} (upgraded from pid ${h.from})`);
    try {
      sdNotify(`READY=1\nMAINPID=${process.pid}`, { NOTIFY_SOCKET: h.notify });
    } catch (e) {
      this.log.warn(`upgrade: could not tell the old master (pid ${h.from}) we are ready: ${(e as Error).message}`);
    }
    this.log.info(`upgrade: pid ${process.pid} is the master now (took over from pid ${h.from})`, { event: "upgrade", state: "took_over", from: h.from });
  }

  /** SIGUSR2 / `hr upgrade`: re-exec the hr binary with the sockets kept open; resolves with the outcome. */
  requestUpgrade(trigger: string): Promise<UpgradeRecord> {
    const rec = (error: string): UpgradeRecord => ({ trigger, startedAt: new Date().toISOString(), oldPid: process.pid, result: "failed", error });
    if (this.stopping) return Promise.resolve(rec(this.handedOver ? "hr was already upgraded" : "hr is shutting down"));
    if (!this.live && !this.current) return Promise.resolve(rec("no generation is live yet"));
    if (this.upgrading) {
      this.log.info(`upgrade requested (${trigger}) while one is in progress: joined it`);
      return this.upgrading;
    }
    const p = this.doUpgrade(trigger).finally(() => (this.upgrading = undefined));
    this.upgrading = p;
    return p;
  }

  private async doUpgrade(trigger: string): Promise<UpgradeRecord> {
    const rec: UpgradeRecord = { trigger, startedAt: new Date().toISOString(), oldPid: process.pid, result: "running" };
    this.lastUpgrade = rec;
    this.log.info(`upgrade (${trigger}): re-executing hr with the listening sockets kept open`, { event: "upgrade", state: "start", trigger });
    // Let a reload (and any queued one) finish first; new reloads are refused meanwhile.
    while (this.current) await this.current.catch(() => {});
    if (this.stopping) return Object.assign(rec, { result: "failed", error: "hr is shutting down" });
    this.notifier.reloading(`upgrading hr (${trigger})`);
    const r = await runUpgrade({
      strategy: this.strategy.name,
      sockets: this.sockets,
      env: this.baseEnv,
      systemdNotify: this.masterNotify,
      workDir: this.paths.workDir,
      cwd: process.cwd(),
      generation: this.counter,
      readyTimeoutMs: this.cfg.serve.ready.timeout,
      drainTimeoutMs: this.cfg.serve.drain_timeout,
      log: this.log,
      signal: this.shutdownAc.signal,
    });
    rec.binary = r.binary;
    rec.durationMs = r.ms;
    if (r.pid) rec.newPid = r.pid;
    const live = this.live ? `gen${this.live.number}` : "no generation";
    if (!r.ok) {
      rec.result = "failed";
      rec.error = r.error;
      this.log.error(`upgrade failed after ${formatMs(r.ms)}: ${r.error}; this master (pid ${process.pid}) keeps serving ${live}`, { event: "upgrade", state: "failed", error: r.error, durationMs: r.ms });
      if (!this.stopping) {
        this.reclaimRuntime();
        this.notifier.reloaded(`upgrade failed: ${r.error}; serving ${live}`);
      }
      return rec;
    }
    rec.result = "ok";
    this.log.info(`upgrade ok in ${formatMs(r.ms)}: pid ${r.pid} is the master now; draining ${live} and exiting`, { event: "upgrade", state: "ok", pid: r.pid, durationMs: r.ms });
    // Also from here (the main pid) for NotifyAccess=main, before we exit.
    this.notifier.mainPid(r.pid, `serving (upgraded: pid ${r.pid})`);
    void this.handOver();
    return rec;
  }

  /** After a failed upgrade: make sure the control socket and pid file are still ours. */
  private reclaimRuntime() {
    try {
      if (this.control && !this.control.owned()) {
        this.log.warn("upgrade: the failed master had taken the control socket; taking it back");
        this.control.close();
        this.control = startControlServer(this.paths.socket, (req) => this.handle(req));
      }
      if (readPid(this.paths.pidFile) !== process.pid) writeFileSync(this.paths.pidFile, `${process.pid}\n`, { mode: 0o600 });
      ensurePrivateDir(this.paths.workDir);
    } catch (e) {
      this.log.error(`upgrade: reclaiming the control socket / pid file: ${(e as Error).message}`);
    }
  }

  /** The new master is live: drain every generation (no STOPPING=1: the service goes on) and exit 0. */
  private async handOver(): Promise<void> {
    this.stopping = true;
    this.handedOver = true;
    const t0 = performance.now();
    this.watcher?.close();
    this.replaceSweeper([]); // the runtime files are the new master's now
    this.shutdownAc.abort(new Error("hr was upgraded"));
    if (this.queued) this.startQueued();
    await this.current?.catch(() => {});
    await Promise.all(this.generations.map((g) => (g.state === "ready" ? g.drain() : g.stopped)));
    if (this.forced) return;
    const ms = Math.round(performance.now() - t0);
    this.log.info(`old master (pid ${process.pid}) drained in ${formatMs(ms)}; exiting`, { event: "upgrade", state: "old_exited", durationMs: ms });
    this.cleanup();
    this.finish(0);
  }

  status(): ServeStatus {
    return {
      pid: process.pid,
      project: this.paths?.project ?? this.opts.root,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      generation: this.live?.number ?? null,
      sockets: this.sockets?.describe() ?? "",
      state: this.stopping ? "stopping" : !this.live ? "starting" : this.busy ? "reloading" : "serving",
      generations: this.generations.map((g) => g.status()),
      reloads: this.reloads.map((r) => ({ ...r })),
      reloadQueued: Boolean(this.queued),
      ...(this.handoff ? { upgradedFrom: this.handoff.from } : {}),
      ...(this.lastUpgrade ? { upgrade: { ...this.lastUpgrade } } : {}),
    };
  }
}
