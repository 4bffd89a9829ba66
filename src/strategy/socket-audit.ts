/**
 * fd strategy, Linux: after a generation is ready, check that its workers serve
 * the inherited socket rather than a port of their own (the classic mistake:
 * Bun.serve / node:http / a framework default binding 3000 and ignoring fd 3 —
 * clients of hr's address then wait in a queue nobody accepts from).
 *
 * For each worker, the listening TCP sockets of its process tree (the worker and
 * its descendants, from /proc) are compared with hr's own sockets by inode. A
 * listening socket that is not hr's (and not the worker's $HR_HEALTH_PORT) is
 * reported loudly and shown in `hr status` (worker.warning).
 *
 * Verdict: a worker whose tree does not even hold hr's socket open any more (it
 * closed the inherited fds) and listens elsewhere FAILS the generation (the old
 * one keeps serving). A worker that still holds the fd is only warned about: it
 * may serve fd 3 and open an admin/metrics/debug port as well, which is fine.
 */
import type { Logger } from "../log/logger.ts";
import type { AuditResult } from "./types.ts";
import { descendants, environValue, hasTcpTables, listeningTcpSockets, socketInodesOf } from "../platform/proc.ts";

export interface ForeignListener {
  /** The process holding it (the worker or one of its descendants). */
  pid: number;
  address: string;
  port: number;
  inode: number;
}

export interface WorkerAudit {
  worker: number;
  pid: number;
  /** Listening TCP sockets in the worker's tree that are not hr's. */
  foreign: ForeignListener[];
  /** Some process of the tree holds one of hr's sockets open. */
  holdsInherited: boolean;
}


/** Inodes of the sockets `pid` holds at the given fds (hr's own listeners: pass process.pid and sockets.fds). */
export function inodesAtFds(pid: number, fds: readonly number[]): Set<number> {
  const want = new Set(fds);
  const out = new Set<number>();
  for (const [inode, at] of socketInodesOf(pid)) if (at.some((fd) => want.has(fd))) out.add(inode);
  return out;
}

/** $HR_HEALTH_PORT from the worker's initial environment (its own health listener is expected). */
function healthPort(pid: number): number | undefined {
  const v = environValue(pid, "HR_HEALTH_PORT");
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** Listening TCP sockets of a network namespace by inode (platform/proc.ts reads them). */
export function listeningTcp(pid: number | "self" = "self"): Map<number, { address: string; port: number }> {
  return new Map(listeningTcpSockets(pid).map((s) => [s.inode, { address: s.address, port: s.port! }]));
}

export function auditWorker(worker: number, pid: number, hrInodes: ReadonlySet<number>, listening = listeningTcp(pid)): WorkerAudit {
  const tree = [pid, ...descendants(pid)];
  const health = healthPort(pid);
  let holdsInherited = false;
  const foreign = new Map<number, ForeignListener>();
  for (const p of tree) {
    for (const inode of socketInodesOf(p).keys()) {
      if (hrInodes.has(inode)) {
        holdsInherited = true;
        continue;
      }
      const s = listening.get(inode);
      if (!s || (health !== undefined && s.port === health)) continue;
      if (!foreign.has(inode)) foreign.set(inode, { pid: p, address: s.address, port: s.port, inode });
    }
  }
  return { worker, pid, foreign: [...foreign.values()], holdsInherited };
}

/** The message for one worker (also the status warning). `count`: how many sockets hr passes (at fd 3, 4, …). */
export function describeAudit(gen: string, a: WorkerAudit, count: number): string {
  const where = a.foreign.map((f) => f.address + (f.pid !== a.pid ? ` (child pid ${f.pid})` : "")).join(", ");
  const fdText = count <= 1 ? "fd 3" : `fds 3–${2 + count}`;
  const head = `worker ${gen}/w${a.worker} (pid ${a.pid}) listens on ${where} itself`;
  return a.holdsInherited
    ? `${head} instead of using the inherited socket at ${fdText} — see docs/serve.md#adopting`
    : `${head} and no longer holds the inherited socket (${fdText}): it cannot be serving hr's address — see docs/serve.md#adopting`;
}

/** Audits every worker of a just-ready generation; logs an error per offending worker. Linux only (no-op elsewhere). */
export function auditGeneration(gen: string, workers: readonly { worker: number; pid: number }[], hrInodes: ReadonlySet<number>, log: Logger): AuditResult {
  const verdict: AuditResult = { warnings: new Map() };
  if (!hrInodes.size || !workers.length || !hasTcpTables()) return verdict;
  const t0 = performance.now();
  const listening = listeningTcp(workers[0]!.pid); // the workers share hr's network namespace
  for (const { worker, pid } of workers) {
    const a = auditWorker(worker, pid, hrInodes, listening);
    if (!a.foreign.length) continue;
    const msg = describeAudit(gen, a, hrInodes.size);
    verdict.warnings.set(worker, msg);
    log.error(msg, {
      event: "foreign_listener",
      generation: Number(gen.replace(/^gen/, "")),
      worker,
      pid,
      addresses: a.foreign.map((f) => f.address),
      holdsInherited: a.holdsInherited,
    });
    if (!a.holdsInherited && !verdict.fail) verdict.fail = { worker, reason: msg };
  }
  log.debug(`${gen}: socket audit of ${workers.length} worker${workers.length === 1 ? "" : "s"} in ${Math.round(performance.now() - t0)} ms`);
  return verdict;
}
