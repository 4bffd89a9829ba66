/**
 * hr keeps the process trees it starts: it is a child subreaper
 * (prctl(PR_SET_CHILD_SUBREAPER)), so a worker's double-forked descendants are
 * reparented to hr instead of PID 1, and child.ts still finds and stops them
 * with their worker. As PID 1 (a container's entrypoint) every orphan of the
 * container is reparented to hr anyway.
 *
 * Invariants:
 * - Bun waits for the children it spawned by pid. hr reaps ONLY the zombies among
 *   its children that it did not spawn itself (ownChildren: every Bun.spawn of hr
 *   registers its pid, synchronously after the spawn, on the JS thread this reaper
 *   runs on), so the exit statuses of workers and builds stay Bun's; a blanket
 *   waitpid(-1) would steal them.
 * - Reaping runs on SIGCHLD (coalesced) and on a slow timer (a signal can be lost
 *   while a scan runs); each pass reads /proc/self/task/<tid>/children, not all of /proc.
 *
 * Not covered: systems without PR_SET_CHILD_SUBREAPER (orphans go to PID 1, as
 * before); a descendant that clears its environment AND double-forks (child.ts
 * recognises an adopted orphan by the HR_TREE variable it inherited).
 */
import { isChildSubreaper, reapChild, setChildSubreaper } from "../platform/libc.ts";
import { childrenOf, readStat } from "../platform/proc.ts";

const own = new Set<number>();

/** A pid hr spawned itself (Bun reaps it): never reaped here. */
export function registerOwnChild(pid: number): void {
  own.add(pid);
}

/** Bun has reaped it: the pid may be reused by anything. */
export function forgetOwnChild(pid: number): void {
  own.delete(pid);
}

export interface Reaper {
  /** True when this process is a child subreaper (or PID 1). */
  readonly subreaper: boolean;
  /** Orphans reaped so far. */
  readonly reaped: number;
  /** One pass now (tests, shutdown). */
  reap(): number;
  stop(): void;
}

const POLL_MS = 2000;
let active: ReaperImpl | undefined;

class ReaperImpl implements Reaper {
  subreaper = false;
  reaped = 0;
  private timer: ReturnType<typeof setInterval>;
  private pending = false;
  private readonly onChld = () => {
    if (this.pending) return;
    this.pending = true;
    setTimeout(() => {
      this.pending = false;
      this.reap();
    }, 0).unref?.();
  };

  constructor() {
    try {
      setChildSubreaper(true);
      this.subreaper = isChildSubreaper();
    } catch {
      this.subreaper = process.pid === 1;
    }
    if (process.pid === 1) this.subreaper = true;
    process.on("SIGCHLD", this.onChld);
    this.timer = setInterval(() => this.reap(), POLL_MS);
    this.timer.unref?.();
  }

  reap(): number {
    const kids = childrenOf("self");
    if (!kids) return 0;
    let n = 0;
    for (const pid of kids) {
      if (own.has(pid)) continue;
      const st = readStat(pid);
      if (st?.state === "Z" && reapChild(pid)) n++;
    }
    this.reaped += n;
    return n;
  }

  stop(): void {
    clearInterval(this.timer);
    process.off("SIGCHLD", this.onChld);
    if (active === this) active = undefined;
  }
}

/**
 * Makes hr a subreaper and starts reaping adopted orphans (idempotent: one
 * reaper per process). Linux only; elsewhere a no-op reaper.
 */
export function startReaper(): Reaper {
  if (process.platform !== "linux") return { subreaper: false, reaped: 0, reap: () => 0, stop() {} };
  active ??= new ReaperImpl();
  return active;
}
