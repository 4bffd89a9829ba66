/**
 * Master self-upgrade (SIGUSR2, `hr upgrade`): replace the running hr binary
 * without closing the listening sockets.
 *
 * Old master (O)                                    New master (N)
 *   open a fresh notify socket (upgrade.<O>.sock)
 *   spawn process.execPath (read from disk again:
 *   a new version at the same path) with the same
 *   argv and cwd; listening sockets at fd 3..,
 *   LISTEN_FDS/LISTEN_FDNAMES, LISTEN_PID (shim),
 *   HR_UPGRADE_FROM=O, HR_UPGRADE_GENERATION,
 *   NOTIFY_SOCKET=upgrade socket,
 *   HR_SYSTEMD_NOTIFY_SOCKET=systemd's (if any);
 *   own session, NOT dieWithParent, NOT in O's
 *   orphan sweeper                             ──▶  adopts the fds (openSockets), skips the
 *                                                   "already running" check, binds its control
 *                                                   socket at a staging path
 *                                                   starts its first generation (numbered after
 *                                                   O's) and waits until it is ready
 *                                                   renames its control socket over O's (atomic:
 *                                                   clients never see ENOENT), writes the pid file
 *                                                   sends MAINPID=N READY=1 to systemd
 *                                             ◀──   sends READY=1 to the upgrade socket
 *   sends MAINPID=N READY=1 to systemd too
 *   (works with NotifyAccess=main), drains its
 *   generations, exits 0 (no STOPPING=1)
 *
 * Failure (N exits, or is not ready within serve.ready.timeout + 10 s, or O is
 * shut down meanwhile): O sends N SIGTERM (N drains whatever its workers may
 * already have accepted on the shared socket), SIGKILLs N's whole tree after
 * drain_timeout, keeps serving, and logs why. Until N's READY=1 the control
 * socket, the pid file and the runtime directory belong to O.
 *
 * Workers are not handed over: N starts its own generation and O's drains,
 * exactly like a reload. That is still zero-downtime because the listening
 * sockets never close; both generations accept from the same kernel queue
 * during the overlap.
 */
import { spawnChild, type Child } from "../process/child.ts";
import { accessSync, constants } from "node:fs";
import { join } from "node:path";
import type { Logger } from "../log/logger.ts";
import type { SocketSet } from "../sockets/handoff.ts";
import { openNotifySocket } from "../sockets/notify.ts";
import { formatMs } from "../config/duration.ts";

type Env = Record<string, string | undefined>;

/** Margin on top of serve.ready.timeout for the new master's own start (config, sockets, spawn). */
export const UPGRADE_MARGIN_MS = 10_000;

export const ENV_FROM = "HR_UPGRADE_FROM";
export const ENV_GENERATION = "HR_UPGRADE_GENERATION";
export const ENV_SYSTEMD_NOTIFY = "HR_SYSTEMD_NOTIFY_SOCKET";

// ---------------------------------------------------------------------------
// New master side

export interface UpgradeHandoff {
  /** The old master's pid. */
  from: number;
  /** The old master's last generation number (ours continue after it). */
  generation: number;
  /** The old master's upgrade socket: READY=1 goes there once our first generation is ready. */
  notify: string;
}

/**
 * Reads and removes the upgrade variables from `env` (workers must not see them)
 * and puts systemd's NOTIFY_SOCKET back where the master expects it. Returns null
 * for a normal start. A stray HR_UPGRADE_FROM that doesn't name our parent is
 * ignored (returns null) and reported through `warn`.
 */
export function takeUpgradeHandoff(env: Env, warn: (m: string) => void = () => {}): UpgradeHandoff | null {
  const fromRaw = env[ENV_FROM];
  const genRaw = env[ENV_GENERATION];
  const notify = env.NOTIFY_SOCKET;
  const upstream = env[ENV_SYSTEMD_NOTIFY];
  if (fromRaw === undefined) return null;
  delete env[ENV_FROM];
  delete env[ENV_GENERATION];
  delete env[ENV_SYSTEMD_NOTIFY];
  const from = Number(fromRaw);
  if (!Number.isInteger(from) || from <= 1 || from !== process.ppid) {
    warn(`${ENV_FROM}=${fromRaw} is not this process's parent (${process.ppid}): ignoring it, starting as a normal master`);
    return null;
  }
  if (upstream) env.NOTIFY_SOCKET = upstream;
  else delete env.NOTIFY_SOCKET;
  if (!notify) {
    warn(`${ENV_FROM} without NOTIFY_SOCKET: the old master can't be told when we are ready`);
    return null;
  }
  return { from, generation: Math.max(0, Number(genRaw) || 0), notify };
}

/** Staging path for the new master's control socket (renamed over the real one once ready). */
export function stagingSocketPath(socket: string, pid = process.pid): string {
  return `${socket}.${pid}.new`;
}

// ---------------------------------------------------------------------------
// Old master side

export interface UpgradeOptions {
  /** serve.strategy: "fd" hands the listening sockets over; "reuseport" has none to hand over; "proxy" is refused. */
  strategy: string;
  sockets: SocketSet;
  /** The environment the new master starts from (hr's own, minus NOTIFY_SOCKET and LISTEN_*). */
  env: Env;
  /** systemd's NOTIFY_SOCKET (passed on as HR_SYSTEMD_NOTIFY_SOCKET). */
  systemdNotify?: string;
  /** The master's private runtime directory (the upgrade notify socket goes there). */
  workDir: string;
  cwd: string;
  /** The current generation counter (the new master numbers its generations after it). */
  generation: number;
  readyTimeoutMs: number;
  drainTimeoutMs: number;
  log: Logger;
  /** Aborted when the old master shuts down: the new one is stopped. */
  signal: AbortSignal;
}

export type UpgradeOutcome =
  | { ok: true; pid: number; binary: string; ms: number }
  | { ok: false; error: string; pid?: number; binary: string; ms: number };

/** The argv that re-runs this hr: the binary at process.execPath (read from disk again) with the same arguments. */
export function selfArgv(): string[] {
  const [, script, ...rest] = process.argv;
  const exe = binaryPath();
  // A `bun build --compile` binary reports its entry as /$bunfs/root/<name>: the binary is the program.
  if (!script || script.startsWith("/$bunfs/") || script.startsWith("B:/~BUN/")) return [exe, ...rest];
  return [exe, script, ...rest]; // running from source: bun src/cli/main.ts …
}

/**
 * The path hr was started from. Bun reads process.execPath from /proc/self/exe,
 * which says "/usr/local/bin/hr (deleted)" once a new version was renamed over
 * the old one: the path is what we want, the new file is what runs.
 */
export function binaryPath(): string {
  const exe = process.execPath;
  return exe.endsWith(" (deleted)") ? exe.slice(0, -" (deleted)".length) : exe;
}

export async function runUpgrade(o: UpgradeOptions): Promise<UpgradeOutcome> {
  const t0 = performance.now();
  const ms = () => Math.round(performance.now() - t0);
  const argv = selfArgv();
  const binary = argv[0]!;
  const failed = (error: string, pid?: number): UpgradeOutcome => ({ ok: false, error, binary, ms: ms(), ...(pid ? { pid } : {}) });
  if (o.strategy === "proxy") {
    return failed('serve.strategy = "proxy" can\'t self-upgrade yet (hr accepts on the socket itself); restart hr serve instead');
  }
  if (process.pid === 1) {
    return failed("hr runs as PID 1 (a container's init): the container would stop when the old master exits; roll out a new image instead");
  }
  try {
    accessSync(binary, constants.X_OK);
  } catch (e) {
    return failed(`${binary}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : "not executable"}`);
  }
  if (o.signal.aborted) return failed("hr is shutting down");

  const notify = openNotifySocket(join(o.workDir, `upgrade.${process.pid}.sock`));
  try {
    // Only the socket-activation variables: PORT, HOST, … are for workers, not for hr.
    const listen = Object.fromEntries(Object.entries(o.sockets.appEnv()).filter(([k]) => k === "LISTEN_FDS" || k === "LISTEN_FDNAMES"));
    let child: Child;
    try {
      child = spawnChild({
        argv: o.sockets.wrapArgv(argv),
        cwd: o.cwd,
        env: {
          ...o.env,
          ...listen,
          [ENV_FROM]: String(process.pid),
          [ENV_GENERATION]: String(o.generation),
          [ENV_SYSTEMD_NOTIFY]: o.systemdNotify,
          NOTIFY_SOCKET: notify.path,
        },
        // stdout/stderr inherited: the new master logs where this one did (journal, terminal).
        extraFds: o.sockets.fds,
        // Its own process group and session (spawnChild): a terminal's Ctrl-C aimed at us doesn't reach it; NOT dieWithParent.
      });
    } catch (e) {
      return failed(`cannot start ${binary}: ${(e as Error).message}`);
    }
    const pid = child.pid;
    o.log.info(`upgrade: started the new master ${binary} (pid ${pid}); waiting up to ${formatMs(o.readyTimeoutMs + UPGRADE_MARGIN_MS)} for its first generation`, {
      event: "upgrade",
      state: "spawned",
      pid,
      binary,
    });

    const ac = new AbortController();
    const onAbort = () => ac.abort();
    o.signal.addEventListener("abort", onAbort, { once: true });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      notify.waitFor("READY", { signal: ac.signal }).then(
        (m) => ({ kind: "ready" as const, mainPid: Number(m.MAINPID) || pid }),
        () => ({ kind: "aborted" as const }),
      ),
      child.exited.then((exit) => ({ kind: "exited" as const, exit })),
      new Promise<{ kind: "timeout" }>((r) => (timer = setTimeout(() => r({ kind: "timeout" }), o.readyTimeoutMs + UPGRADE_MARGIN_MS))),
    ]);
    clearTimeout(timer);
    ac.abort();
    o.signal.removeEventListener("abort", onAbort);

    if (outcome.kind === "ready" && !child.exitInfo) {
      if (outcome.mainPid !== pid) o.log.debug(`upgrade: the new master reported MAINPID=${outcome.mainPid}, spawned pid ${pid}`);
      child.release(); // it outlives us
      return { ok: true, pid, binary, ms: ms() };
    }
    const error =
      outcome.kind === "exited"
        ? `the new master (pid ${pid}) ${outcome.exit.signal ? `was killed by ${outcome.exit.signal}` : `exited with code ${outcome.exit.code}`} before it was ready`
        : outcome.kind === "timeout"
          ? `the new master (pid ${pid}) was not ready within ${formatMs(o.readyTimeoutMs + UPGRADE_MARGIN_MS)} (serve.ready.timeout + ${formatMs(UPGRADE_MARGIN_MS)})`
          : outcome.kind === "ready"
            ? `the new master (pid ${pid}) exited right after it said READY=1`
            : "hr is shutting down";
    // SIGTERM: it drains its own generation (its workers may already have accepted
    // connections on the shared socket); then SIGKILL to its whole tree.
    const graceMs = o.drainTimeoutMs + 1000;
    const wasRunning = !child.exitInfo;
    const exit = await child.stop({ signal: "SIGTERM", timeoutMs: graceMs });
    if (wasRunning && exit.signal === "SIGKILL") {
      o.log.warn(`upgrade: the new master (pid ${pid}) or its processes did not stop within ${formatMs(graceMs)}: SIGKILL`, { event: "upgrade", state: "killed", pid });
    }
    return failed(error, pid);
  } finally {
    notify.close();
  }
}
