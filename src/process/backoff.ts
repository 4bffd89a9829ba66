/**
 * The crash-restart policy — one for hr dev's app and hr serve's workers.
 *
 *  - The n-th consecutive crash waits base·2^(n−1) before the restart, capped at
 *    MAX_BACKOFF_MS (30 s). hr dev's base is DEFAULT_BASE_MS; hr serve's is
 *    serve.restart_backoff.
 *  - A process that stayed up STABLE_AFTER_MS (10 s) starts the count over, and
 *    so does a restart that was not a crash (reset(): a change, r+Enter).
 *  - CRASH_LOOP_COUNT crashes within CRASH_LOOP_WINDOW_MS is a crash loop: the
 *    caller reports it loudly; restarts go on with the capped delay.
 *
 * Pure bookkeeping (times are passed in): the caller owns the timer and decides
 * whether to restart at all (dev.restart_on_crash, a generation being live).
 */

export const DEFAULT_BASE_MS = 500;
export const MAX_BACKOFF_MS = 30_000;
/** A process that stayed up this long resets its backoff. */
export const STABLE_AFTER_MS = 10_000;
/** CRASH_LOOP_COUNT crashes within CRASH_LOOP_WINDOW_MS is reported as a crash loop. */
export const CRASH_LOOP_COUNT = 5;
export const CRASH_LOOP_WINDOW_MS = 60_000;

/** Delay before the n-th consecutive restart (n ≥ 1): base, 2·base, 4·base, … capped at 30 s. */
export function backoffDelay(baseMs: number, consecutive: number): number {
  return Math.min(MAX_BACKOFF_MS, baseMs * 2 ** Math.max(0, consecutive - 1));
}

/** Crashes in the window ending at `now` (timestamps in ms). */
export function crashesInWindow(times: readonly number[], now: number, windowMs = CRASH_LOOP_WINDOW_MS): number {
  return times.filter((t) => now - t <= windowMs).length;
}

export interface CrashVerdict {
  /** Wait this long before the restart. */
  delayMs: number;
  /** Consecutive crashes without a stable run, this one included. */
  consecutive: number;
  /** Crashes in the last CRASH_LOOP_WINDOW_MS, this one included. */
  recent: number;
  /** recent ≥ CRASH_LOOP_COUNT. */
  loop: boolean;
}

/** One process slot's crash history (hr dev's app, one hr serve worker). */
export class CrashBackoff {
  private consecutive = 0;
  private times: number[] = [];

  constructor(readonly baseMs = DEFAULT_BASE_MS) {}

  /** Records a crash after `upMs` of uptime; returns how long to wait before the restart. */
  crashed(upMs: number, now = Date.now()): CrashVerdict {
    if (upMs >= STABLE_AFTER_MS) this.consecutive = 0;
    this.consecutive++;
    this.times = [...this.times.filter((t) => now - t <= CRASH_LOOP_WINDOW_MS), now];
    const recent = crashesInWindow(this.times, now);
    return { delayMs: backoffDelay(this.baseMs, this.consecutive), consecutive: this.consecutive, recent, loop: recent >= CRASH_LOOP_COUNT };
  }

  /** The delay for the current count (a restart that was postponed, e.g. by a build). */
  currentDelay(): number {
    return backoffDelay(this.baseMs, Math.max(1, this.consecutive));
  }

  /** Crashes in the window ending now. */
  recent(now = Date.now()): number {
    return crashesInWindow(this.times, now);
  }

  /** A restart that was not a crash: the next crash waits the base delay again. */
  reset(): void {
    this.consecutive = 0;
  }
}
