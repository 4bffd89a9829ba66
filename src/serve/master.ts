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
 *
 * ONE OWNER (tableflip's run(), watchexec's supervisor). Every decision is taken
 * by step(), one event at a time, in arrival order, reading and replacing one
 * MasterState value that carries its own data. Signal handlers, the control
 * socket, the serve.watch watcher and finished jobs (a generation start, a reload,
 * an upgrade, a drain) only send() a MasterEvent. Jobs do work and report; they
 * decide nothing (which generation is live, what is drained, what runs next).
 *
 *   state        may receive → does
 *   ──────────   ───────────────────────────────────────────────────────────────
 *   starting     reload → queued · upgrade → waits for the first generation ·
 *                first-started ok → serving (or the queued reload / upgrade),
 *                failed → failed · stop → draining
 *   serving      reload → reloading · upgrade → upgrading · stop → draining
 *   reloading    reload → joins the queued one · upgrade → runs after the reloads
 *                (further reloads refused) · reload-done → serving / next reload /
 *                upgrading · stop → draining
 *   upgrading    reload → refused · upgrade → joins · upgrade-done failed →
 *                serving, ok → draining (hand-over) · stop → draining
 *   draining     reload, upgrade → refused · stop → kill everything (exit 130) ·
 *                drained → exited (0)
 *   failed       (the first generation failed) stop → kill it now ·
 *                first-gone → exited (1)
 *   exited       terminal: run() resolves with the code
 *
 * NOT covered: a master that is SIGKILLed drains nothing (its workers die with
 * it, the orphan sweeper removes leftovers; sweeper.ts).
 */
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../config/schema.ts";
import { NotRunningError, request } from "../control/client.ts";
import type { ReloadRecord, Request, Response, ServeStatus, UpgradeRecord } from "../control/protocol.ts";
import { ensurePrivateDir, readPid, writeRuntimeFile, runtimePaths, type RuntimePaths } from "../control/runtime.ts";
import { startControlServer, type ControlServer } from "../control/server.ts";
import type { Logger } from "../log/logger.ts";
import { killAllSync } from "../process/child.ts";
import { startReaper } from "../process/reaper.ts";
import type { SocketSet } from "../sockets/handoff.ts";
import { sdNotify } from "../sockets/systemd.ts";
import { buildIfMissing, runBuild } from "./build.ts";
import { openStrategy } from "../strategy/index.ts";
import type { Strategy } from "../strategy/types.ts";
import { Generation, isTerminal, type StartResult } from "./generation.ts";
import { formatMs } from "../config/duration.ts";
import { formatStatus } from "./status.ts";
import { outputStats } from "../log/output.ts";
import { startSweeper, type Sweeper } from "./sweeper.ts";
import { SystemdNotifier } from "./systemd.ts";
import { ENV_FROM, runUpgrade, stagingSocketPath, takeUpgradeHandoff, type UpgradeHandoff, type UpgradeOutcome } from "./upgrade.ts";
import { watchFiles, type FileWatch } from "./watch.ts";
import { EnvFileError, readEnvFiles } from "../config/dotenv.ts";

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

// ---------------------------------------------------------------------------
// The master's state and its events

/** A caller's view of a request: accepted (queued or not) or refused, then its outcome. */
class Reply<T> {
  /** true: queued behind a reload in progress; false: started (or joined a running one); null: refused. */
  readonly accepted: Promise<boolean | null>;
  readonly result: Promise<T>;
  private accept!: (queued: boolean | null) => void;
  private resolve!: (r: T) => void;
  constructor() {
    this.accepted = new Promise((r) => (this.accept = r));
    this.result = new Promise((r) => (this.resolve = r));
  }
  started(queued: boolean) {
    this.accept(queued);
  }
  refused(rec: T) {
    this.accept(null);
    this.resolve(rec);
  }
  done(rec: T) {
    this.accept(false); // no-op when already accepted
    this.resolve(rec);
  }
}

/** Reload requests waiting for the one in progress; they are all answered by one reload. */
interface QueuedReload {
  triggers: string[];
  replies: Reply<ReloadRecord>[];
}

/** An accepted self-upgrade (running, or waiting for the reloads before it). */
interface PendingUpgrade {
  rec: UpgradeRecord;
  replies: Reply<UpgradeRecord>[];
}

type DrainReason =
  /** SIGTERM / SIGINT: tell systemd STOPPING=1, exit 0 once drained. */
  | { kind: "shutdown"; signal: string }
  /** A self-upgrade's new master is live: the runtime files are its now; exit 0 once drained. */
  | { kind: "handover"; newPid: number };

export type MasterState =
  /** The first generation is starting (failing it is fatal). */
  | { kind: "starting"; first: Generation; queued?: QueuedReload; upgrade?: PendingUpgrade }
  | { kind: "serving"; live: Generation }
  | { kind: "reloading"; live: Generation; rec: ReloadRecord; queued?: QueuedReload; upgrade?: PendingUpgrade }
  | { kind: "upgrading"; live: Generation; upgrade: PendingUpgrade }
  | { kind: "draining"; reason: DrainReason; live?: Generation; forced: boolean }
  /** The first generation failed: waiting for its processes to go, then exit 1. */
  | { kind: "failed" }
  | { kind: "exited"; code: number };

type MasterEvent =
  // from outside: signals, the control socket, the serve.watch watcher
  | { kind: "reload"; trigger: string; reply: Reply<ReloadRecord> }
  | { kind: "upgrade"; trigger: string; reply: Reply<UpgradeRecord> }
  | { kind: "stop"; signal: string }
  | { kind: "log-status" }
  // from the master's own jobs
  | { kind: "first-started"; gen: Generation; result: StartResult }
  | { kind: "first-gone" }
  | { kind: "reload-done"; rec: ReloadRecord; gen?: Generation; replies: Reply<ReloadRecord>[] }
  | { kind: "upgrade-done"; upgrade: PendingUpgrade; outcome: UpgradeOutcome }
  | { kind: "drained"; ms: number }
  | { kind: "killed" };

export class Master {
  private cfg: Config;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private state: MasterState = { kind: "failed" }; // replaced by run() before any event
  private readonly inbox: MasterEvent[] = [];
  private stepping = false;
  /** The job in flight (first start, reload or upgrade): drain() waits for it. */
  private job: Promise<unknown> = Promise.resolve();

  private paths!: RuntimePaths;
  private sockets!: SocketSet;
  private strategy?: Strategy;
  private control?: ControlServer;
  private watcher?: FileWatch;
  private sweeper?: Sweeper | null;
  private baseEnv: Record<string, string | undefined> = {};
  /** [run] env_file's variables, read at start and at each reload: a generation keeps the ones it started with. */
  private fileEnv: Record<string, string> = {};
  private masterNotify?: string;
  /** sd_notify to hr's own supervisor (systemd's NOTIFY_SOCKET; never the workers'). */
  private notifier = new SystemdNotifier(undefined);
  /** Set when this master was started by another one's self-upgrade (see upgrade.ts). */
  private handoff: UpgradeHandoff | null = null;
  private lastUpgrade?: UpgradeRecord;

  private generations: Generation[] = [];
  private counter = 0;
  private reloads: ReloadRecord[] = [];
  private reloadCount = 0;

  /** Aborted when draining starts: cancels the build, generation start or upgrade in flight. */
  private readonly shutdownAc = new AbortController();
  private finish!: (code: number) => void;
  private readonly done = new Promise<number>((r) => (this.finish = r));
  private readonly signalHandlers: [NodeJS.Signals, () => void][] = [];
  private cleaned = false;

  constructor(private readonly opts: MasterOptions) {
    this.cfg = opts.config;
    this.log = opts.log;
  }

  /** Sets up the sockets and the control socket, starts the first generation; resolves with the exit code. */
  async run(): Promise<number> {
    const envError = this.readEnvFiles();
    if (envError) {
      this.log.error(envError);
      return 1;
    }
    if (!this.opts.env[ENV_FROM] && !(await buildIfMissing(this.cfg, this.opts.root, this.opts.env, this.log))) return 1;
    if (!(await this.setup())) return 1;
    const first = this.newGeneration();
    this.state = { kind: "starting", first };
    this.startJob(first.start(this.shutdownAc.signal).then((result) => this.send({ kind: "first-started", gen: first, result })));
    return this.done;
  }

  // -------------------------------------------------------------------------
  // The one place that decides

  /** The only way in: queue an event; step() handles it (now, or after the one being handled). */
  private send(ev: MasterEvent): void {
    this.inbox.push(ev);
    if (this.stepping) return;
    this.stepping = true;
    try {
      for (let next = this.inbox.shift(); next; next = this.inbox.shift()) {
        try {
          this.step(next);
        } catch (e) {
          this.log.error(`internal error handling ${next.kind}: ${(e as Error).stack ?? e}`);
        }
      }
    } finally {
      this.stepping = false;
    }
  }

  private step(ev: MasterEvent): void {
    const s = this.state;
    switch (ev.kind) {
      case "log-status":
        return this.log.info(`status\n${formatStatus(this.status())}`, { event: "status", status: this.status() });
      case "reload":
        return this.onReloadRequest(s, ev.trigger, ev.reply);
      case "upgrade":
        return this.onUpgradeRequest(s, ev.trigger, ev.reply);
      case "stop":
        return this.onStop(s, ev.signal);
      case "first-started":
        return this.onFirstStarted(s, ev.gen, ev.result);
      case "first-gone":
        return this.exit(1);
      case "reload-done":
        return this.onReloadDone(s, ev.rec, ev.gen, ev.replies);
      case "upgrade-done":
        return this.onUpgradeDone(s, ev.upgrade, ev.outcome);
      case "drained":
        return this.onDrained(s, ev.ms);
      case "killed":
        return this.exit(130);
    }
  }

  private onReloadRequest(s: MasterState, trigger: string, reply: Reply<ReloadRecord>): void {
    const refuse = (error: string) => reply.refused({ id: 0, trigger, startedAt: new Date().toISOString(), result: "failed", error });
    switch (s.kind) {
      case "serving":
        reply.started(false);
        return this.startReload(s.live, [trigger], [reply]);
      case "starting":
      case "reloading": {
        if (s.upgrade) return refuse("a self-upgrade of hr is in progress; reload the new master once it is done");
        if (s.queued) {
          if (!s.queued.triggers.includes(trigger)) s.queued.triggers.push(trigger);
          s.queued.replies.push(reply);
          this.log.info(`reload requested (${trigger}) while one is in progress: joined the queued reload`, { event: "reload_coalesced", trigger });
        } else {
          s.queued = { triggers: [trigger], replies: [reply] };
          this.log.info(`reload requested (${trigger}) while one is in progress: queued`, { event: "reload_queued", trigger });
        }
        return reply.started(true);
      }
      case "upgrading":
        return refuse("a self-upgrade of hr is in progress; reload the new master once it is done");
      default:
        return refuse("hr is shutting down");
    }
  }

  private onUpgradeRequest(s: MasterState, trigger: string, reply: Reply<UpgradeRecord>): void {
    const refuse = (error: string) => reply.refused({ trigger, startedAt: new Date().toISOString(), oldPid: process.pid, result: "failed", error });
    switch (s.kind) {
      case "upgrading":
        this.log.info(`upgrade requested (${trigger}) while one is in progress: joined it`);
        s.upgrade.replies.push(reply);
        return reply.started(false);
      case "starting":
      case "reloading":
        if (s.upgrade) {
          this.log.info(`upgrade requested (${trigger}) while one is in progress: joined it`);
          s.upgrade.replies.push(reply);
          return reply.started(false);
        }
        // Let the reload (and any queued one) finish first; new reloads are refused meanwhile.
        s.upgrade = this.acceptUpgrade(trigger, reply);
        return;
      case "serving":
        return this.startUpgrade(s.live, this.acceptUpgrade(trigger, reply));
      case "draining":
        return refuse(s.reason.kind === "handover" ? `hr was upgraded: pid ${s.reason.newPid} is the master now` : "hr is shutting down");
      default:
        return refuse("hr is shutting down");
    }
  }

  private onStop(s: MasterState, signal: string): void {
    switch (s.kind) {
      case "draining":
        if (s.forced) return;
        s.forced = true;
        this.log.warn(`${signal} again: killing every worker now`, { event: "shutdown", state: "forced" });
        return this.startJob(Promise.all(this.generations.map((g) => g.kill())).then(() => this.send({ kind: "killed" })), false);
      case "failed":
        for (const g of this.generations) void g.kill(); // first-gone follows
        return;
      case "exited":
        return;
      default:
        return this.drain(s, { kind: "shutdown", signal });
    }
  }

  private onFirstStarted(s: MasterState, first: Generation, result: StartResult): void {
    if (!result.ok) {
      if (s.kind === "draining") return; // cancelled by the shutdown; drain() waits for it
      this.log.error(`the first generation failed: ${result.reason}`);
      if (s.kind === "starting") {
        for (const r of s.queued?.replies ?? []) r.refused({ id: 0, trigger: s.queued!.triggers.join(", "), startedAt: new Date().toISOString(), result: "failed", error: "the first generation failed" });
        if (s.upgrade) this.finishUpgrade(s.upgrade, { result: "failed", error: "the first generation failed" });
      }
      this.state = { kind: "failed" };
      void first.stopped.then(() => this.send({ kind: "first-gone" }));
      return;
    }
    if (this.handoff) this.takeOver(this.handoff, first.number);
    else this.notifier.ready(`serving gen${first.number}`);
    if (s.kind === "draining") {
      s.live = first;
      return;
    }
    if (s.kind !== "starting") return;
    this.log.info(`serving gen${first.number}; reload with \`hr reload\` or kill -HUP ${process.pid}`);
    this.startWatcher();
    this.next(first, s.queued, s.upgrade);
  }

  private onReloadDone(s: MasterState, rec: ReloadRecord, gen: Generation | undefined, replies: Reply<ReloadRecord>[]): void {
    const reply = () => {
      for (const r of replies) r.done(rec);
    };
    if (s.kind !== "reloading" && s.kind !== "draining") return reply();
    const old = s.live;
    const live = gen ?? old;
    if (gen) {
      this.log.info(`reload #${rec.id} ok in ${formatMs(rec.durationMs ?? 0)}: gen${gen.number} is live${old ? `, gen${old.number} draining` : ""}`, {
        event: "reload",
        id: rec.id,
        state: "ok",
        generation: gen.number,
        durationMs: rec.durationMs,
      });
    } else {
      this.log.error(`reload #${rec.id} failed after ${formatMs(rec.durationMs ?? 0)}: ${rec.error}${old ? `; gen${old.number} keeps serving` : ""}`, {
        event: "reload",
        id: rec.id,
        state: "failed",
        durationMs: rec.durationMs,
        error: rec.error,
        ...(rec.generation ? { generation: rec.generation } : {}),
      });
    }
    this.notifier.reloaded(rec.result === "ok" ? `serving gen${live!.number}` : `reload #${rec.id} failed, rolled back: ${rec.error ?? "?"}; serving gen${live?.number}`);
    this.prune();
    if (s.kind === "draining") {
      s.live = live; // drain() drains every ready generation, this one included
      return reply();
    }
    if (gen && old) {
      void old.drain().then(() => this.prune());
      // proxy: the reply (hr reload --wait) waits for hr's requests to the old generation and reports them.
      if (old.drainReport) {
        const oldNumber = old.number;
        void old.drainReport.then((r) => {
          if (r) rec.drain = { generation: oldNumber, requests: r.requests, tunnels: r.tunnels, cut: r.cut, durationMs: r.durationMs };
          reply();
        });
      } else reply();
    } else reply();
    this.next(live!, s.queued, s.upgrade);
  }

  private onUpgradeDone(s: MasterState, pending: PendingUpgrade, outcome: UpgradeOutcome): void {
    const rec = pending.rec;
    rec.binary = outcome.binary;
    rec.durationMs = outcome.ms;
    if (outcome.pid) rec.newPid = outcome.pid;
    const live = this.live ? `gen${this.live.number}` : "no generation";
    if (!outcome.ok) {
      this.log.error(`upgrade failed after ${formatMs(outcome.ms)}: ${outcome.error}; this master (pid ${process.pid}) keeps serving ${live}`, { event: "upgrade", state: "failed", error: outcome.error, durationMs: outcome.ms });
      this.finishUpgrade(pending, { result: "failed", error: outcome.error });
      if (s.kind !== "upgrading") return;
      this.reclaimRuntime();
      this.notifier.reloaded(`upgrade failed: ${outcome.error}; serving ${live}`);
      this.state = { kind: "serving", live: s.live };
      return;
    }
    this.log.info(`upgrade ok in ${formatMs(outcome.ms)}: pid ${outcome.pid} is the master now; draining ${live} and exiting`, { event: "upgrade", state: "ok", pid: outcome.pid, durationMs: outcome.ms });
    // Also from here (the main pid) for NotifyAccess=main, before we exit.
    this.notifier.mainPid(outcome.pid, `serving (upgraded: pid ${outcome.pid})`);
    this.finishUpgrade(pending, { result: "ok" });
    if (s.kind === "upgrading") return this.drain(s, { kind: "handover", newPid: outcome.pid });
    if (s.kind !== "draining") return;
    // Shut down while the new master came up: it owns the runtime files now.
    s.reason = { kind: "handover", newPid: outcome.pid };
    this.replaceSweeper([]);
  }

  private onDrained(s: MasterState, ms: number): void {
    if (s.kind !== "draining" || s.forced) return;
    if (s.reason.kind === "shutdown") this.log.info(`stopped in ${formatMs(ms)}`, { event: "shutdown", state: "done", durationMs: ms });
    else this.log.info(`old master (pid ${process.pid}) drained in ${formatMs(ms)}; exiting`, { event: "upgrade", state: "old_exited", durationMs: ms });
    this.exit(0);
  }

  /** After a reload or the first start: the queued reload, else the waiting upgrade, else serve. */
  private next(live: Generation, queued: QueuedReload | undefined, upgrade: PendingUpgrade | undefined): void {
    if (queued) return this.startReload(live, queued.triggers, queued.replies, upgrade);
    if (upgrade) return this.startUpgrade(live, upgrade);
    this.state = { kind: "serving", live };
  }

  private exit(code: number): void {
    if (this.state.kind === "exited") return;
    this.state = { kind: "exited", code };
    this.cleanup();
    this.finish(code);
  }

  // -------------------------------------------------------------------------
  // Jobs: they do the work and report with an event; they decide nothing.

  private startJob(p: Promise<unknown>, track = true): void {
    const caught = p.catch((e) => this.log.error(`internal error: ${(e as Error).stack ?? e}`));
    if (track) this.job = caught;
  }

  private startReload(live: Generation, triggers: string[], replies: Reply<ReloadRecord>[], upgrade?: PendingUpgrade): void {
    const trigger = triggers.join(", ");
    const rec: ReloadRecord = { id: ++this.reloadCount, trigger, startedAt: new Date().toISOString(), result: "running" };
    this.reloads.push(rec);
    if (this.reloads.length > KEEP_RELOADS) this.reloads.shift();
    this.state = { kind: "reloading", live, rec, upgrade };
    this.notifier.reloading(`reloading (${trigger})`);
    this.log.info(`reload #${rec.id} (${trigger})`, { event: "reload", id: rec.id, trigger, state: "start" });
    this.startJob(this.reloadJob(rec).then((gen) => this.send({ kind: "reload-done", rec, gen, replies })));
  }

  /** config → [build] → a new generation, started; fills `rec`; resolves with the generation when it is ready. */
  private async reloadJob(rec: ReloadRecord): Promise<Generation | undefined> {
    const t0 = performance.now();
    const fail = (error: string, output?: string[]) => {
      rec.result = "failed";
      rec.error = error;
      if (output?.length) rec.output = output;
      rec.durationMs = Math.round(performance.now() - t0);
      return undefined;
    };
    const signal = this.shutdownAc.signal;
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
      const envError = this.readEnvFiles();
      if (envError) return fail(envError);
      if (this.cfg.serve.build && (this.cfg.build.cmd || this.cfg.build.pre || this.cfg.build.post)) {
        const b = await runBuild(this.cfg, this.opts.root, this.baseEnv, this.log, signal);
        if (!b.ok) return fail(b.error ?? "build failed", b.output);
        this.log.info(`build ok in ${formatMs(b.ms)}`, { event: "build", state: "ok", durationMs: b.ms });
      }
      if (signal.aborted) return fail("hr is shutting down");
      const gen = this.newGeneration();
      rec.generation = gen.number;
      const r = await gen.start(signal);
      if (!r.ok) return fail(r.reason ?? "failed", r.output);
      rec.result = "ok";
      rec.durationMs = Math.round(performance.now() - t0);
      return gen;
    } catch (e) {
      return fail(`internal error: ${(e as Error).stack ?? e}`);
    }
  }

  private acceptUpgrade(trigger: string, reply: Reply<UpgradeRecord>): PendingUpgrade {
    const rec: UpgradeRecord = { trigger, startedAt: new Date().toISOString(), oldPid: process.pid, result: "running" };
    this.lastUpgrade = rec;
    this.log.info(`upgrade (${trigger}): re-executing hr with the listening sockets kept open`, { event: "upgrade", state: "start", trigger });
    reply.started(false);
    return { rec, replies: [reply] };
  }

  private startUpgrade(live: Generation, upgrade: PendingUpgrade): void {
    this.state = { kind: "upgrading", live, upgrade };
    this.notifier.reloading(`upgrading hr (${upgrade.rec.trigger})`);
    const job = runUpgrade({
      strategy: this.strategy!.name,
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
    this.startJob(job.then((outcome) => this.send({ kind: "upgrade-done", upgrade, outcome })));
  }

  private finishUpgrade(p: PendingUpgrade, end: { result: "ok" } | { result: "failed"; error: string }): void {
    Object.assign(p.rec, end);
    for (const r of p.replies) r.done(p.rec);
  }

  /**
   * The one drain sequence, for shutdown and hand-over (Go's Server.Shutdown):
   *  1. stop taking work: refuse what is queued, close the serve.watch watcher,
   *     abort the build / generation start / upgrade in flight;
   *  2. wait for that job to end (an aborted generation start goes failed and
   *     winds its workers down like a drain);
   *  3. every ready generation drains (run.stop_signal, serve.drain_timeout,
   *     SIGKILL); the others are waited for;
   *  4. `drained` → cleanup, exit 0. A stop event meanwhile kills everything (130).
   */
  private drain(s: Exclude<MasterState, { kind: "draining" | "failed" | "exited" }>, reason: DrainReason): void {
    const t0 = performance.now();
    const live = s.kind === "starting" ? undefined : s.live;
    this.state = { kind: "draining", reason, live, forced: false };
    const why = reason.kind === "shutdown" ? "hr is shutting down" : "hr was upgraded";
    if (s.kind === "starting" || s.kind === "reloading") {
      if (s.queued) for (const r of s.queued.replies) r.refused({ id: 0, trigger: s.queued.triggers.join(", "), startedAt: new Date().toISOString(), result: "failed", error: why });
      if (s.upgrade) this.finishUpgrade(s.upgrade, { result: "failed", error: why });
    }
    if (reason.kind === "shutdown") {
      this.log.info(`${reason.signal}: draining every generation (up to ${formatMs(this.cfg.serve.drain_timeout)}); ${reason.signal} again to kill at once`, { event: "shutdown", state: "draining", signal: reason.signal });
      this.notifier.stopping();
    } else {
      this.replaceSweeper([]); // the runtime files are the new master's now
    }
    this.watcher?.close();
    this.watcher = undefined;
    this.shutdownAc.abort(new Error(why));
    const job = this.job;
    void (async () => {
      await job;
      await Promise.all(this.generations.map((g) => (g.state === "ready" ? g.drain() : g.stopped)));
      this.send({ kind: "drained", ms: Math.round(performance.now() - t0) });
    })();
  }

  // -------------------------------------------------------------------------
  // Entry points (signals, control socket, watcher): they only send().

  private reload(trigger: string): Reply<ReloadRecord> {
    const reply = new Reply<ReloadRecord>();
    this.send({ kind: "reload", trigger, reply });
    return reply;
  }

  private upgrade(trigger: string): Reply<UpgradeRecord> {
    const reply = new Reply<UpgradeRecord>();
    this.send({ kind: "upgrade", trigger, reply });
    return reply;
  }

  private async handle(req: Request): Promise<Response> {
    if (req.cmd === "status") return { ok: true, status: this.status() };
    if (req.cmd === "upgrade") {
      const reply = this.upgrade(req.trigger ?? "hr upgrade");
      const accepted = await reply.accepted;
      if (accepted === null || req.wait) {
        const rec = await reply.result;
        return rec.result === "ok" ? { ok: true, upgrade: rec } : { ok: false, error: rec.error ?? "upgrade failed", upgrade: rec };
      }
      return { ok: true, upgrade: { ...this.lastUpgrade! } };
    }
    const reply = this.reload(req.trigger ?? "hr reload");
    const queued = await reply.accepted;
    if (queued === null) return { ok: false, error: (await reply.result).error ?? "reload refused" };
    if (!req.wait) return { ok: true, queued };
    const rec = await reply.result;
    return rec.result === "ok" ? { ok: true, queued, reload: rec } : { ok: false, error: rec.error ?? "reload failed", reload: rec };
  }

  // -------------------------------------------------------------------------
  // Setup and cleanup

  /** Runtime dir, single-instance check, sockets (strategy), control socket, sweeper, signals. False: logged, exit 1. */
  private async setup(): Promise<boolean> {
    const { config: cfg, env, log } = this.opts;
    this.paths = runtimePaths(this.opts.configFile ?? join(this.opts.root, "hr.toml"), env);
    try {
      ensurePrivateDir(this.paths.dir);
    } catch (e) {
      log.error(`runtime directory: ${(e as Error).message}`);
      return false;
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
      return false;
    } catch (e) {
      if (!(e instanceof NotRunningError)) log.debug(`control socket check: ${(e as Error).message}`);
    }

    this.masterNotify = env.NOTIFY_SOCKET;
    this.notifier = new SystemdNotifier(this.masterNotify, (m) => log.debug(m));
    try {
      this.strategy = await openStrategy({ mode: "serve", config: cfg, root: this.opts.root, env, log });
      this.sockets = this.strategy.sockets;
    } catch (e) {
      log.error((e as Error).message);
      return false;
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
      this.strategy.install?.(this.paths.workDir);
      // After a self-upgrade the old master keeps the control socket until our first generation is ready.
      this.control = startControlServer(this.paths.socket, (req) => this.handle(req), this.handoff ? { stagingPath: stagingSocketPath(this.paths.socket) } : {});
      if (!this.handoff) writeRuntimeFile(this.paths.pidFile, `${process.pid}\n`);
      this.sweeper = this.newSweeper(this.handoff ? [stagingSocketPath(this.paths.socket)] : this.runtimeFiles());
      if (!this.sweeper) log.debug("setpriv not found: no orphan sweeper (grandchildren may outlive a SIGKILLed master)");
    } catch (e) {
      log.error(`control socket ${this.paths.socket}: ${(e as Error).message}`);
      this.cleanup();
      return false;
    }
    log.debug(`control socket ${this.paths.socket}`);
    process.on("exit", killAllSync);
    const reaper = startReaper();
    if (process.pid === 1) log.info("running as PID 1: hr reaps orphaned processes itself (no init such as tini needed)", { event: "pid1" });
    else if (!reaper.subreaper) log.debug("not a child subreaper: double-forked descendants of workers go to PID 1");
    this.onSignal("SIGHUP", () => void this.reload("SIGHUP"));
    this.onSignal("SIGTERM", () => this.send({ kind: "stop", signal: "SIGTERM" }));
    this.onSignal("SIGINT", () => this.send({ kind: "stop", signal: "SIGINT" }));
    this.onSignal("SIGUSR2", () => void this.upgrade("SIGUSR2"));
    this.onSignal("SIGUSR1", () => this.send({ kind: "log-status" }));
    return true;
  }

  private onSignal(sig: NodeJS.Signals, fn: () => void) {
    process.on(sig, fn);
    this.signalHandlers.push([sig, fn]);
  }

  /** Reads [run] env_file into fileEnv; returns the problem (file:line) instead of throwing. */
  private readEnvFiles(): string | undefined {
    if (!this.cfg.run.env_file) {
      this.fileEnv = {};
      return undefined;
    }
    try {
      this.fileEnv = readEnvFiles(this.cfg.run.env_file, this.opts.root);
      return undefined;
    } catch (error) {
      if (error instanceof EnvFileError) return `run.env_file: ${error.message}`;
      throw error;
    }
  }

  private newGeneration(): Generation {
    const number = ++this.counter;
    const gen = new Generation({
      number,
      config: this.cfg,
      root: this.opts.root,
      strategy: this.strategy!,
      runtimeDir: this.paths.workDir,
      log: this.log,
      baseEnv: { ...this.baseEnv, ...this.fileEnv }, // env < env files < [run].env (added by the generation)
      onProcessesChanged: () => this.sweeper?.update(this.generations.flatMap((g) => g.pids())),
    });
    this.generations.push(gen);
    return gen;
  }

  private prune() {
    const ended = this.generations.filter((g) => isTerminal(g.state) && g.pids().length === 0);
    const drop = new Set(ended.slice(0, Math.max(0, ended.length - KEEP_ENDED_GENERATIONS)));
    this.generations = this.generations.filter((g) => !drop.has(g));
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
    if (!this.cfg.serve.watch.length || this.state.kind === "draining" || this.state.kind === "exited") return;
    this.watcher = watchFiles(this.cfg.serve.watch, this.opts.root, (changed) => void this.reload(`watch: ${changed.join(", ")}`), {
      onError: (m) => this.log.warn(m),
    });
    this.log.info(`reloading when ${this.cfg.serve.watch.join(", ")} change${this.cfg.serve.watch.length === 1 ? "s" : ""}`);
  }

  private cleanup() {
    if (this.cleaned) return;
    this.cleaned = true;
    this.watcher?.close();
    for (const [sig, fn] of this.signalHandlers) process.off(sig, fn);
    void this.sweeper?.stop();
    this.control?.close();
    this.strategy?.close();
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
  // Runtime files across a self-upgrade (upgrade.ts)

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
      writeRuntimeFile(this.paths.pidFile, `${process.pid}\n`);
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

  /** After a failed upgrade: make sure the control socket and pid file are still ours. */
  private reclaimRuntime() {
    try {
      if (this.control && !this.control.owned()) {
        this.log.warn("upgrade: the failed master had taken the control socket; taking it back");
        this.control.close();
        this.control = startControlServer(this.paths.socket, (req) => this.handle(req));
      }
      if (readPid(this.paths.pidFile) !== process.pid) writeRuntimeFile(this.paths.pidFile, `${process.pid}\n`);
      ensurePrivateDir(this.paths.workDir);
    } catch (e) {
      this.log.error(`upgrade: reclaiming the control socket / pid file: ${(e as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------
  // Status: read from the state, never rebuilt from flags

  private get live(): Generation | undefined {
    const s = this.state;
    return s.kind === "serving" || s.kind === "reloading" || s.kind === "upgrading" || s.kind === "draining" ? s.live : undefined;
  }

  status(): ServeStatus {
    const s = this.state;
    const name: ServeStatus["state"] =
      s.kind === "starting" || s.kind === "failed" ? "starting" : s.kind === "reloading" ? "reloading" : s.kind === "serving" || s.kind === "upgrading" ? "serving" : "stopping";
    return {
      pid: process.pid,
      project: this.paths?.project ?? this.opts.root,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeMs: Date.now() - this.startedAt,
      generation: this.live?.number ?? null,
      sockets: this.sockets?.describe() ?? "",
      state: name,
      generations: this.generations.map((g) => g.status()),
      reloads: this.reloads.map((r) => ({ ...r })),
      reloadQueued: (s.kind === "starting" || s.kind === "reloading") && Boolean(s.queued),
      ...(this.handoff ? { upgradedFrom: this.handoff.from } : {}),
      ...(this.lastUpgrade ? { upgrade: { ...this.lastUpgrade } } : {}),
      output: outputStats(),
    };
  }
}
