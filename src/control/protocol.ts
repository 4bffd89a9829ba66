/**
 * Control protocol between `hr status` / `hr reload` and a running `hr serve`:
 * over the project's unix socket, the client writes ONE JSON request line and
 * reads ONE JSON response line, then the connection closes.
 *
 *   {"cmd":"status"}                 → {"ok":true,"status":{…ServeStatus}}
 *   {"cmd":"reload"}                 → {"ok":true,"queued":false}          (accepted, not waited for)
 *   {"cmd":"reload","wait":true}     → {"ok":true,"reload":{…ReloadRecord}} once ready,
 *                                      {"ok":false,"error":"…","reload":{…}} on rollback
 *   {"cmd":"upgrade"}                → {"ok":true,"upgrade":{…UpgradeRecord,"result":"running"}}
 *   {"cmd":"upgrade","wait":true}    → {"ok":true,"upgrade":{…,"result":"ok","newPid":…}} once the new
 *                                      master is ready (this master then drains and exits),
 *                                      {"ok":false,"error":"…","upgrade":{…}} when it failed
 *   anything else                    → {"ok":false,"error":"…"}
 */
import type { OutputStats } from "../log/output.ts";

export type Request = { cmd: "status" } | { cmd: "reload"; wait?: boolean; trigger?: string } | { cmd: "upgrade"; wait?: boolean; trigger?: string };

/** A master self-upgrade (SIGUSR2, `hr upgrade`): re-exec the hr binary, sockets kept open. */
export interface UpgradeRecord {
  /** What asked for it: "SIGUSR2", "hr upgrade". */
  trigger: string;
  startedAt: string;
  /** The master that started the upgrade. */
  oldPid: number;
  /** The new master (once spawned). */
  newPid?: number;
  /** The program re-executed (process.execPath, read from disk again). */
  binary?: string;
  durationMs?: number;
  result: "running" | "ok" | "failed";
  error?: string;
}

export interface ReloadRecord {
  /** 1-based reload counter of this master. */
  id: number;
  /** What asked for it: "SIGHUP", "hr reload", "watch: ./bin/app", … (coalesced requests are joined with ", "). */
  trigger: string;
  /** The generation it started (absent when the build failed). */
  generation?: number;
  startedAt: string;
  durationMs?: number;
  /** pending → running → ok | failed */
  result: "pending" | "running" | "ok" | "failed";
  error?: string;
  /** The failing worker's (or build's) last output lines. */
  output?: string[];
  /**
   * serve.strategy = "proxy", with --wait: how the old generation drained before it
   * got stop_signal — requests and tunnels (WebSocket, SSE) hr had in flight to it
   * that finished, and how many were cut at drain_timeout. An open tunnel makes the
   * drain (and so --wait) last until it ends or drain_timeout.
   */
  drain?: { generation: number; requests: number; tunnels: number; cut: number; durationMs: number };
}

export interface WorkerStatus {
  worker: number;
  pid: number | null;
  /** serve/generation.ts has the worker state machine. */
  state: "starting" | "ready" | "backoff" | "stopping" | "exited";
  uptimeMs: number | null;
  restarts: number;
  /** Crashes in the last minute (≥ 5: crash loop). */
  recentCrashes: number;
  lastExit?: string;
  /** Something hr noticed about this worker, e.g. it binds a port of its own instead of fd 3 (strategy/socket-audit.ts). */
  warning?: string;
}

export interface GenerationStatus {
  generation: number;
  /** serve/generation.ts has the generation state machine. */
  state: "starting" | "ready" | "draining" | "exited" | "failed";
  startedAt: string;
  /** starting → ready (or → failed), ms. */
  startMs?: number;
  uptimeMs: number;
  error?: string;
  workers: WorkerStatus[];
}

export interface ServeStatus {
  pid: number;
  project: string;
  startedAt: string;
  uptimeMs: number;
  /** The live generation's number (null before the first one is ready). */
  generation: number | null;
  sockets: string;
  state: "starting" | "serving" | "reloading" | "stopping";
  /** Generations with processes (live, starting, draining, failing) plus the last few that ended. */
  generations: GenerationStatus[];
  /** Most recent last. */
  reloads: ReloadRecord[];
  reloadQueued: boolean;
  /** The pid of the master this one replaced by a self-upgrade. */
  upgradedFrom?: number;
  /** The last (or running) self-upgrade of this master. */
  upgrade?: UpgradeRecord;
  /** hr's own output (log/output.ts): what a slow or vanished reader made it drop. */
  output?: OutputStats;
}

export type Response =
  | { ok: true; status: ServeStatus }
  | { ok: true; queued: boolean; reload?: ReloadRecord }
  | { ok: true; upgrade: UpgradeRecord }
  | { ok: false; error: string; reload?: ReloadRecord; upgrade?: UpgradeRecord };

export function parseRequest(line: string): Request | { error: string } {
  let data: unknown;
  try {
    data = JSON.parse(line);
  } catch {
    return { error: "request is not JSON" };
  }
  if (!data || typeof data !== "object") return { error: "request must be a JSON object" };
  const o = data as Record<string, unknown>;
  if (o.cmd === "status") return { cmd: "status" };
  const trigger = typeof o.trigger === "string" ? o.trigger.slice(0, 100) : undefined;
  if (o.cmd === "reload") return { cmd: "reload", wait: o.wait === true, trigger };
  if (o.cmd === "upgrade") return { cmd: "upgrade", wait: o.wait === true, trigger };
  return { error: `unknown cmd ${JSON.stringify(o.cmd)}; expected "status", "reload" or "upgrade"` };
}
