/**
 * Child-process supervision shared by `hr dev` and `hr serve`.
 *
 * Guarantees:
 * - The child runs in its own session + process group (Bun.spawn `detached: true`
 *   calls setsid(); pgid = sid = child pid). Its stdio fds are still hr's, so when
 *   hr's stdout is a terminal, the child's isatty(1) is true and colours survive.
 *   The child has no *controlling* terminal: Ctrl-C reaches hr only, and hr decides
 *   what to forward. Opening /dev/tty in the child fails (ENXIO).
 * - stop()/kill() leave nothing behind: the tree (ppid descendants + every process
 *   still in the child's group or session, including grandchildren that setsid'd
 *   into a new group) is collected *before* signalling, because members get
 *   reparented away as soon as their parent dies; stop() resolves only when all
 *   of them are gone (zombies count as gone: they hold no fds or ports).
 * - PIDs are remembered together with their /proc start time, so a pid recycled
 *   during the grace period is never killed.
 * - The direct child is reaped by Bun. hr is a child subreaper (reaper.ts), so
 *   orphaned descendants are reparented to hr and reaped there, also as PID 1.
 * - A descendant that double-forked (setsid'd AND its parent exited: no ppid, pgid
 *   or sid link left) is still found: it was reparented to hr, and it carries the
 *   HR_TREE=<hr pid>.<n> variable every child inherits from spawnChild. Such
 *   escaped members are named through SpawnOptions.onEscaped when stop() runs.
 *
 * Not covered: a double-forked descendant that also cleared its environment, or
 * any escapee when hr cannot be a subreaper (then it goes to PID 1). Linux-only
 * (/proc); on other systems only the process group is signalled.
 */
import { existsSync } from "node:fs";
import { cmdline, environHas, processTable, readStat, type ProcEntry } from "../platform/proc.ts";
import { forgetOwnChild, registerOwnChild } from "./reaper.ts";
import type { SignalName } from "./signals.ts";

export interface ExitInfo {
  /** Exit code when the process exited normally, else null. */
  readonly code: number | null;
  /** Signal name ("SIGKILL") when the process was killed by a signal, else null. */
  readonly signal: string | null;
  /** "exited with code 1" | "killed by SIGSEGV" */
  describe(): string;
}

export interface SpawnOptions {
  /** From command.ts toArgv(). argv[0] is resolved against env.PATH; a missing program throws SpawnError. */
  argv: string[];
  cwd: string;
  /** The complete environment (undefined values are dropped). */
  env: Record<string, string | undefined>;
  /** hr-side fds passed to the child as fd 3, 4, ... in this order (e.g. listening sockets). */
  extraFds?: number[];
  /** Default "inherit". "pipe" exposes Child.stdout / Child.stderr (see lines()). */
  stdout?: "inherit" | "pipe";
  stderr?: "inherit" | "pipe";
  /** Default "ignore" (the child is not in the terminal's foreground group). */
  stdin?: "inherit" | "ignore";
  /**
   * Opens an IPC channel (NODE_CHANNEL_FD): `process.send(msg)` in a Node or Bun child
   * arrives here. JSON serialization, so Node children work too.
   */
  ipc?: (message: unknown) => void;
  /**
   * Wraps argv as `setpriv --pdeathsig SIGKILL -- argv` so the kernel SIGKILLs the
   * child when hr dies, even by SIGKILL. Only the direct child is covered (its own
   * children are orphaned, not killed). Bun forks from the JS main thread (verified
   * with strace: vfork() from tid == pid), so the signal fires on hr's exit, not
   * on some helper thread's. If setpriv (util-linux) is missing, the child is
   * spawned without it and Child.diesWithParent is false.
   */
  dieWithParent?: boolean;
  /**
   * Called by stop()/kill() with the tree members that had left the child's tree
   * (double-forked daemons reparented to hr) before they are signalled, once per pid.
   */
  onEscaped?: (procs: { pid: number; cmd: string }[]) => void;
}

/** "gen1/w1: 1 process had left its process tree (double-forked): pid 42 (python3 daemon.py); stopping it with the rest" */
export function escapedMessage(owner: string, procs: readonly { pid: number; cmd: string }[]): string {
  const list = procs.slice(0, 5).map((p) => `pid ${p.pid} (${p.cmd.length > 60 ? `${p.cmd.slice(0, 57)}…` : p.cmd})`).join(", ");
  const more = procs.length > 5 ? `, … +${procs.length - 5}` : "";
  return `${owner}: ${procs.length} process${procs.length === 1 ? " had" : "es had"} left its process tree (double-forked daemon${procs.length === 1 ? "" : "s"}): ${list}${more}; hr is their subreaper and stops them with the rest`;
}

/** Environment variable that marks every process of one spawnChild tree (inherited by descendants). */
export const TREE_VAR = "HR_TREE";
let treeCounter = 0;

export interface Child {
  readonly pid: number;
  /** Resolves once with the direct child's exit (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** The exit, once known (synchronous check). */
  readonly exitInfo: ExitInfo | null;
  readonly stdout?: ReadableStream<Uint8Array>;
  readonly stderr?: ReadableStream<Uint8Array>;
  /** True when dieWithParent was asked for and setpriv was available. */
  readonly diesWithParent: boolean;
  /** Signals the process group and every descendant that left it. No-op once the tree is gone. */
  signal(sig: SignalName): void;
  /**
   * Graceful stop: signal the tree, wait up to timeoutMs for all of it to exit, then
   * SIGKILL whatever is left (group + every collected descendant). Resolves with the
   * direct child's exit once the whole tree is gone. Concurrent calls share one
   * promise; on an already-exited child it only sweeps leftovers of its group.
   */
  stop(opts: { signal: SignalName; timeoutMs: number }): Promise<ExitInfo>;
  /** SIGKILL the whole tree now (second Ctrl-C); escalates a stop() in progress. */
  kill(): Promise<ExitInfo>;
  /** It is not hr's any more (a self-upgrade's new master): not killed when hr exits, not waited for. */
  release(): void;
}

export class SpawnError extends Error {
  override name = "SpawnError";
}

// ---------------------------------------------------------------------------
// The process tree, from /proc: stop() needs pgid and sid (orphans that stayed
// in the group after their parent died are no longer ppid descendants) and
// start time (pid-reuse guard).

const gone = (e: ProcEntry | null | undefined) => !e || e.state === "Z" || e.state === "X";

/**
 * Every live process belonging to the tree rooted at `root` (root excluded):
 * ppid descendants of root and of `known` pids, plus every process in root's
 * process group or session (orphans reparented to init but still in the group),
 * and their descendants.
 */
function collectTree(root: number, known: Iterable<number> = [], marker?: string): ProcEntry[] {
  const table = processTable();
  // Orphans reparented to hr (it is a subreaper) that carry this tree's marker.
  const adopted = marker ? table.filter((e) => e.ppid === process.pid && e.pid !== root && !gone(e) && environHas(e.pid, TREE_VAR, marker)).map((e) => e.pid) : [];
  const children = new Map<number, ProcEntry[]>();
  for (const e of table) {
    let list = children.get(e.ppid);
    if (!list) children.set(e.ppid, (list = []));
    list.push(e);
  }
  const found = new Map<number, ProcEntry>();
  const queue: number[] = [root, ...known, ...adopted];
  for (const e of table) if (e.pid !== root && (e.pgid === root || e.sid === root)) queue.push(e.pid);
  const byPid = new Map(table.map((e) => [e.pid, e]));
  for (const p of queue) {
    const self = byPid.get(p);
    if (p !== root && self && !found.has(p)) found.set(p, self);
  }
  while (queue.length) {
    const p = queue.pop()!;
    for (const c of children.get(p) ?? []) {
      if (c.pid === root || found.has(c.pid)) continue;
      found.set(c.pid, c);
      queue.push(c.pid);
    }
  }
  return [...found.values()].filter((e) => !gone(e));
}

// ---------------------------------------------------------------------------

const live = new Set<ChildImpl>();

/**
 * Last-resort cleanup for process "exit" handlers: synchronously SIGKILLs every
 * live child's tree. Does not wait.
 */
export function killAllSync(): void {
  for (const c of live) c.killSync();
}

function exitInfo(code: number | null, sig: string | number | null): ExitInfo {
  const signal = sig === null ? null : String(sig);
  return {
    code,
    signal,
    describe: () => (signal ? `killed by ${signal}` : `exited with code ${code}`),
  };
}

function trySignal(pid: number, sig: SignalName): boolean {
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false; // ESRCH (gone) or EPERM: nothing we can do
  }
}

let setprivPath: string | null | undefined;

class ChildImpl implements Child {
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  exitInfo: ExitInfo | null = null;
  readonly stdout?: ReadableStream<Uint8Array>;
  readonly stderr?: ReadableStream<Uint8Array>;
  readonly ready?: ReadableStream<Uint8Array>;
  readonly readyFd?: number;
  readonly diesWithParent: boolean;
  private readonly proc: Bun.Subprocess;
  /** Tree members seen so far: pid -> start time. */
  private readonly tracked = new Map<number, number>();
  private stopping: Promise<ExitInfo> | null = null;
  private readonly marker: string;
  private readonly onEscaped?: (procs: { pid: number; cmd: string }[]) => void;
  private readonly escapedSeen = new Set<number>();
  private forceNow: (() => void) | null = null;
  private forced = false;

  constructor(opts: SpawnOptions) {
    if (opts.argv.length === 0 || !opts.argv[0]) throw new SpawnError("cannot spawn: empty argv");
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(opts.env)) if (v !== undefined) env[k] = v;
    this.marker = `${process.pid}.${++treeCounter}`;
    env[TREE_VAR] = this.marker;
    this.onEscaped = opts.onEscaped;

    // Resolve the program ourselves: a clear error for "not found", and setpriv
    // would otherwise turn it into an exit code.
    const prog = opts.argv[0];
    const resolved = Bun.which(prog, { PATH: env.PATH ?? "", cwd: opts.cwd });
    if (!resolved) {
      throw new SpawnError(
        prog.includes("/")
          ? `cannot start ${JSON.stringify(prog)}: no such file or not executable (cwd ${opts.cwd})`
          : `cannot start ${JSON.stringify(prog)}: not found in PATH (or not executable)`,
      );
    }
    let argv = opts.argv;
    let dies = false;
    if (opts.dieWithParent && process.platform === "linux") {
      if (setprivPath === undefined) setprivPath = Bun.which("setpriv") ?? null;
      if (setprivPath) {
        argv = [setprivPath, "--pdeathsig", "SIGKILL", "--", ...opts.argv];
        dies = true;
      }
    }
    this.diesWithParent = dies;

    const extra = opts.extraFds ?? [];
    const stdio: (number | "pipe" | "inherit" | "ignore")[] = [
      opts.stdin ?? "ignore",
      opts.stdout ?? "inherit",
      opts.stderr ?? "inherit",
      ...extra,
    ];

    const ipc = opts.ipc;
    try {
      this.proc = Bun.spawn({
        cmd: argv,
        cwd: opts.cwd,
        env,
        detached: true,
        stdio: stdio as Bun.SpawnOptions.OptionsObject<"ignore", "inherit", "inherit">["stdio"],
        ...(ipc ? { ipc: (m: unknown) => ipc(m), serialization: "json" as const } : {}),
      });
    } catch (err) {
      // Bun names the program it exec'd (setpriv) when the real cause is a vanished cwd.
      if (!existsSync(opts.cwd)) throw new SpawnError(`cannot start ${JSON.stringify(prog)}: its directory ${opts.cwd} no longer exists (renamed or deleted?)`);
      throw new SpawnError(`cannot start ${JSON.stringify(prog)}: ${(err as Error).message}`);
    }
    const proc = this.proc;
    this.pid = proc.pid;
    registerOwnChild(proc.pid); // before anything can run the reaper: its status is Bun's
    if (opts.stdout === "pipe") this.stdout = proc.stdout as ReadableStream<Uint8Array>;
    if (opts.stderr === "pipe") this.stderr = proc.stderr as ReadableStream<Uint8Array>;
    live.add(this);
    this.exited = proc.exited.then(
      () => {
        this.exitInfo = exitInfo(proc.exitCode, proc.signalCode);
        return this.exitInfo;
      },
      () => {
        this.exitInfo = exitInfo(proc.exitCode, proc.signalCode);
        return this.exitInfo;
      },
    );
    void this.exited.then(() => {
      forgetOwnChild(proc.pid);
      if (!this.stopping) live.delete(this);
    });
  }

  /** Refreshes the tracked set: adds current tree members, drops dead/recycled pids. */
  private refresh(): void {
    for (const [pid, start] of this.tracked) {
      const e = readStat(pid);
      if (gone(e) || e!.start !== start) this.tracked.delete(pid);
    }
    for (const e of collectTree(this.pid, this.tracked.keys(), this.marker)) this.tracked.set(e.pid, e.start);
  }

  /** Tree members reparented to hr (they left the tree by double-forking), not reported yet. */
  private reportEscaped(): void {
    if (!this.onEscaped) return;
    const fresh: { pid: number; cmd: string }[] = [];
    for (const pid of this.tracked.keys()) {
      const e = readStat(pid);
      if (!e || e.ppid !== process.pid || this.escapedSeen.has(pid)) continue;
      this.escapedSeen.add(pid);
      fresh.push({ pid, cmd: cmdline(pid) ?? "?" });
    }
    if (fresh.length) this.onEscaped(fresh);
  }

  /** Signals group + session members + escaped descendants. */
  private signalTree(sig: SignalName): void {
    this.refresh();
    this.reportEscaped();
    // The group id stays allocated while any member lives, so kill(-pid) is safe
    // while the leader lives or a tracked member still carries that pgid.
    let groupAlive = this.exitInfo === null;
    for (const pid of this.tracked.keys()) {
      const e = readStat(pid);
      if (e && e.pgid === this.pid) groupAlive = true;
    }
    if (groupAlive) trySignal(-this.pid, sig);
    for (const [pid, start] of this.tracked) {
      const e = readStat(pid);
      if (!e || e.start !== start) continue;
      if (e.pgid !== this.pid || sig === "SIGKILL") trySignal(pid, sig);
    }
  }

  signal(sig: SignalName): void {
    this.signalTree(sig);
  }

  private treeGone(): boolean {
    if (this.exitInfo === null) return false;
    for (const [pid, start] of this.tracked) {
      const e = readStat(pid);
      if (!gone(e) && e!.start === start) return false;
    }
    return true;
  }

  stop(opts: { signal: SignalName; timeoutMs: number }): Promise<ExitInfo> {
    if (!this.stopping) {
      this.stopping = this.run(opts.signal, Math.max(0, opts.timeoutMs)).finally(() => live.delete(this));
    }
    return this.stopping;
  }

  kill(): Promise<ExitInfo> {
    this.forced = true;
    this.forceNow?.();
    return this.stop({ signal: "SIGKILL", timeoutMs: 0 });
  }

  release(): void {
    live.delete(this);
    this.proc.unref();
  }

  /** Synchronous SIGKILL of everything known (exit handlers). */
  killSync(): void {
    this.signalTree("SIGKILL");
  }

  private async run(sig: SignalName, timeoutMs: number): Promise<ExitInfo> {
    if (this.exitInfo) {
      // Leader already gone: only sweep leftovers still in its group/session.
      this.refresh();
      if (this.tracked.size > 0) {
        this.signalTree("SIGKILL");
        await this.waitGone(5000);
      }
      return this.exitInfo;
    }
    const deadline = Date.now() + timeoutMs;
    if (!this.forced) {
      this.signalTree(sig); // collects the tree first, then signals
      const force = new Promise<void>((r) => (this.forceNow = r));
      // Wait for the leader (event-driven), then for the rest (polling), until the deadline.
      let handle: ReturnType<typeof setTimeout> | undefined;
      const timer = new Promise<void>((r) => (handle = setTimeout(r, timeoutMs)));
      try {
        await Promise.race([this.exited, timer, force]);
        while (!this.forced && Date.now() < deadline) {
          this.refresh();
          if (this.treeGone()) return this.exitInfo!;
          await Promise.race([Bun.sleep(Math.min(20, Math.max(1, deadline - Date.now()))), force]);
        }
      } finally {
        clearTimeout(handle); // a pending grace timer must not keep hr alive
        this.forceNow = null;
      }
    }
    this.signalTree("SIGKILL");
    await this.waitGone(5000);
    return this.exited;
  }

  /** After SIGKILL: poll until the leader is reaped and every tracked pid is gone. */
  private async waitGone(capMs: number): Promise<void> {
    const until = Date.now() + capMs;
    let n = 0;
    while (Date.now() < until) {
      if (this.treeGone()) return;
      // Re-sweep occasionally: a member may have forked between scan and kill.
      if (++n % 10 === 0) this.signalTree("SIGKILL");
      await Bun.sleep(5);
    }
    // Uninterruptible (D state) processes: give up waiting rather than hang hr.
    await Promise.race([this.exited, Bun.sleep(100)]);
  }
}

/** Starts argv in its own session/process group. Throws SpawnError if it cannot start. */
export function spawnChild(opts: SpawnOptions): Child {
  return new ChildImpl(opts);
}

/** Longest line passed on whole; the rest of a longer one is replaced by a "cut" marker. */
export const LINE_CAP = 64 * 1024;

/**
 * Splits a byte stream into lines (LF or CRLF; the terminator is dropped) and
 * calls onLine for each, including a final line without newline. Resolves at EOF.
 * Linear in the input: each byte is scanned once, and at most `cap` bytes of a
 * line are held; a longer line is passed on as its first `cap` bytes followed by
 * " [… N bytes cut by hr]" when its newline (or EOF) arrives.
 */
export async function lines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void, cap = LINE_CAP): Promise<void> {
  const decoder = new TextDecoder();
  let parts: Uint8Array[] = [];
  let held = 0;
  let cut = 0;
  const emit = () => {
    const whole = parts.length === 1 ? parts[0]! : Buffer.concat(parts, held);
    let text = decoder.decode(whole);
    if (cut === 0 && text.endsWith("\r")) text = text.slice(0, -1);
    onLine(cut ? `${text} [… ${cut} bytes cut by hr]` : text);
    parts = [];
    held = 0;
    cut = 0;
  };
  const take = (piece: Uint8Array) => {
    const room = cap - held;
    if (piece.length > room) {
      cut += piece.length - room;
      piece = piece.subarray(0, room);
    }
    if (piece.length) {
      parts.push(piece.slice()); // copy: the reader may reuse its chunk
      held += piece.length;
    }
  };
  for await (const chunk of stream) {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(10, start);
      if (nl < 0) break;
      if (held === 0 && cut === 0 && nl - start <= cap) {
        // The common case: a whole line inside one chunk, decoded in place.
        const text = decoder.decode(chunk.subarray(start, nl));
        onLine(text.endsWith("\r") ? text.slice(0, -1) : text);
      } else {
        take(chunk.subarray(start, nl));
        emit();
      }
      start = nl + 1;
    }
    if (start < chunk.length) take(chunk.subarray(start));
  }
  if (held > 0 || cut > 0) emit();
}
