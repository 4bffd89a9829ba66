/**
 * Who may receive requests: workers grouped by generation, one generation live.
 *
 * Invariants:
 *  - Only ready workers of the live generation are picked (least in flight, ties
 *    round-robin). A generation that never becomes live receives nothing.
 *  - Every request and tunnel is counted on the backend that took it until it ends;
 *    drain(gen) resolves when the generation has none left (or at its deadline, when
 *    what remains is cut) and its idle pooled connections are closed. Only then may
 *    the caller signal the generation's processes.
 *  - Idle upstream connections are pooled per backend (LIFO, bounded, closed after
 *    IDLE_MS — shorter than common app keep-alive timeouts, e.g. Node's 5 s).
 */
import { connect, describeAddress, type Conn, type UpstreamAddress } from "./conn.ts";

export interface WorkerEndpoint {
  worker: number;
  pid: number;
  address: UpstreamAddress;
}

/** Something in flight on a backend that drain() can cut at its deadline. */
export interface Cuttable {
  cut(reason: string): void;
}

export interface Backend extends WorkerEndpoint {
  generation: string;
  dead: boolean;
  /** Requests in flight (counts toward least-in-flight picking). */
  requests: Set<Cuttable>;
  /** WebSocket / SSE and other long-lived exchanges. */
  tunnels: Set<Cuttable>;
  idle: PooledConn[];
}

export interface PooledConn {
  conn: Conn;
  since: number;
}

export interface AcquireOptions {
  /** Counted on the picked backend from the pick on (so a drain waits for the connect too). */
  holder: Cuttable;
  kind: "requests" | "tunnels";
  waitMs: number;
  /** "30s (serve.ready.timeout)" for the error texts. */
  describeWait: string;
  /** Stop trying (the client went away). */
  cancelled(): boolean;
  /** An idle pooled connection may be used. */
  reuse: boolean;
  /** Already picked (the synchronous fast path found no idle connection to it). */
  first?: Backend | null;
}

export type Acquired = { b: Backend; conn: Conn; reused: boolean } | { status: 502 | 503; message: string } | null;

export interface DrainReport {
  /** Requests in flight when the drain started that finished normally. */
  requests: number;
  /** Tunnels (WebSocket, SSE, tcp) that ended by themselves before the deadline. */
  tunnels: number;
  /** Requests or tunnels still open at the deadline, cut by hr. */
  cut: number;
  durationMs: number;
}

interface Group {
  name: string;
  backends: Backend[];
  draining: boolean;
}

const IDLE_MS = 4000;
const MAX_IDLE = 128;

export class Backends {
  private readonly groups = new Map<string, Group>();
  private live: Group | null = null;
  private rr = 0;
  private waiters: (() => void)[] = [];
  private changeListeners: (() => void)[] = [];
  private readonly sweep: ReturnType<typeof setInterval>;
  /** Set while no app runs and none is coming (hr dev: crash, failed build): waiting requests get this at once. */
  down: string | null = null;
  /** Refused connects retried; waits that ran out (stats). */
  connectRetries = 0;
  timedOut = 0;

  constructor() {
    this.sweep = setInterval(() => this.closeStaleIdle(), 1000);
    this.sweep.unref?.();
  }

  private group(name: string): Group {
    let g = this.groups.get(name);
    if (!g) this.groups.set(name, (g = { name, backends: [], draining: false }));
    return g;
  }

  workerReady(gen: string, w: WorkerEndpoint): void {
    const g = this.group(gen);
    g.backends = g.backends.filter((b) => b.worker !== w.worker);
    g.backends.push({ ...w, generation: gen, dead: false, requests: new Set(), tunnels: new Set(), idle: [] });
    if (this.live === g) this.wake();
  }

  workerExited(gen: string, worker: number, pid: number): void {
    const g = this.groups.get(gen);
    if (!g) return;
    for (const b of g.backends) {
      if (b.worker !== worker || b.pid !== pid) continue;
      b.dead = true;
      for (const p of b.idle) p.conn.hangUp();
      b.idle = [];
    }
    g.backends = g.backends.filter((b) => !b.dead);
    this.forget(g);
    this.changed();
  }

  /** `gen` is live: new requests go to its ready workers from now on. */
  setLive(gen: string): void {
    const prev = this.live;
    this.live = this.group(gen);
    this.down = null;
    if (prev && prev !== this.live) this.forget(prev);
    this.wake();
  }

  /** No live generation (hr dev restarting): requests wait. */
  clearLive(): void {
    const prev = this.live;
    this.live = null;
    if (prev) this.forget(prev);
  }

  setDown(message: string): void {
    this.clearLive();
    this.down = message.trim();
    this.wake();
  }

  get liveGeneration(): string | null {
    return this.live?.name ?? null;
  }

  get inFlight(): number {
    let n = 0;
    for (const g of this.groups.values()) for (const b of g.backends) n += b.requests.size + b.tunnels.size;
    return n;
  }

  /** Least in-flight ready worker of the live generation, not in `exclude`. */
  pick(exclude?: ReadonlySet<Backend>): Backend | null {
    const bs = this.live?.backends;
    if (!bs?.length) return null;
    const n = bs.length;
    const start = this.rr++ % n;
    let best: Backend | null = null;
    for (let i = 0; i < n; i++) {
      const b = bs[(start + i) % n]!;
      if (b.dead || exclude?.has(b)) continue;
      if (!best || b.requests.size < best.requests.size) best = b;
    }
    return best;
  }

  /** Whether there is a live generation with at least one worker. */
  get available(): boolean {
    return !!this.live?.backends.some((b) => !b.dead);
  }

  /** Resolves when routing changes (a worker or generation becomes ready, hr dev goes down) or at `deadline`. */
  waitForChange(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** An idle pooled connection to `b`, or null. */
  takeIdle(b: Backend): Conn | null {
    for (;;) {
      const p = b.idle.pop();
      if (!p) return null;
      if (!p.conn.closed) return p.conn;
    }
  }

  /** Whether `b` belongs to the live generation (a draining one takes nothing new). */
  isLive(b: Backend): boolean {
    return !b.dead && this.live?.name === b.generation;
  }

  /**
   * A ready worker of the live generation and a connection to it, waiting (up to
   * waitMs) while there is none and retrying refused connects (nothing was sent:
   * always safe). The holder is counted on the backend from the pick, so a drain
   * that starts during the connect waits for it; a connect that completes after
   * its generation stopped being live is dropped and another worker picked.
   * Resolves to the error hr answers instead, or null when cancelled.
   */
  async acquire(o: AcquireOptions): Promise<Acquired> {
    const deadline = Date.now() + o.waitMs;
    const failed = new Set<Backend>();
    let delay = 5;
    let refused: Backend | null = null;
    let first = o.first;
    while (!o.cancelled() && Date.now() < deadline) {
      const b = first && this.isLive(first) ? first : this.pick(failed);
      first = null;
      if (!b) {
        if (this.down !== null && !this.available) return { status: 502, message: this.down };
        if (failed.size) {
          failed.clear();
          await Bun.sleep(Math.min(delay, Math.max(0, deadline - Date.now())));
          delay = Math.min(100, delay * 2);
        } else await this.waitForChange(deadline);
        continue;
      }
      if (o.reuse) {
        const idle = this.takeIdle(b);
        if (idle) {
          b[o.kind].add(o.holder);
          return { b, conn: idle, reused: true };
        }
      }
      b[o.kind].add(o.holder);
      const conn = await connect(b.address);
      if (conn && !o.cancelled() && this.isLive(b)) return { b, conn, reused: false };
      b[o.kind].delete(o.holder);
      this.changed();
      conn?.hangUp();
      if (!conn) {
        this.connectRetries++;
        refused = b;
        failed.add(b);
      }
    }
    if (o.cancelled()) return null;
    this.timedOut++;
    if (refused) return { status: 502, message: `the app is not accepting connections on its PORT (${describeAddress(refused.address)}) after ${o.describeWait}` };
    return { status: 503, message: `no ready app within ${o.describeWait}` };
  }

  /** Returns a connection whose exchange completed cleanly; closed instead when its generation drains. */
  release(b: Backend, conn: Conn): void {
    const g = this.groups.get(b.generation);
    if (b.dead || conn.closed || !g || g.draining || g !== this.live || b.idle.length >= MAX_IDLE) {
      conn.hangUp();
      return;
    }
    conn.resume();
    conn.events = {
      data: () => conn.destroy(), // an idle upstream must not talk
      end: () => conn.destroy(),
      close: () => {
        const i = b.idle.findIndex((p) => p.conn === conn);
        if (i >= 0) b.idle.splice(i, 1);
      },
      drain() {},
    };
    b.idle.push({ conn, since: Date.now() });
  }

  private closeStaleIdle(): void {
    const limit = Date.now() - IDLE_MS;
    for (const g of this.groups.values())
      for (const b of g.backends) {
        if (!b.idle.length || b.idle[0]!.since > limit) continue;
        const keep: PooledConn[] = [];
        for (const p of b.idle) {
          if (p.since <= limit) p.conn.hangUp();
          else keep.push(p);
        }
        b.idle = keep;
      }
  }

  /** Called when an exchange on `b` ends (for drain()). */
  changed(): void {
    const ls = this.changeListeners;
    this.changeListeners = [];
    for (const l of ls) l();
  }

  private onceChanged(): Promise<void> {
    return new Promise((resolve) => this.changeListeners.push(resolve));
  }

  /**
   * Takes `gen` out of routing (if live it stays live only until another is made
   * live — callers drain a generation after replacing it) and waits until its
   * requests (and, when `tunnels` is "wait", its tunnels) have ended, up to
   * `timeoutMs`; then cuts what remains and closes its idle connections.
   */
  async drain(gen: string, timeoutMs: number, tunnels: "wait" | "cut" = "wait"): Promise<DrainReport> {
    const started = Date.now();
    const g = this.groups.get(gen);
    if (!g) return { requests: 0, tunnels: 0, cut: 0, durationMs: 0 };
    g.draining = true;
    if (this.live === g) this.live = null;
    for (const b of g.backends) {
      for (const p of b.idle) p.conn.hangUp();
      b.idle = [];
    }
    const count = (k: "requests" | "tunnels") => g.backends.reduce((n, b) => n + b[k].size, 0);
    const startRequests = count("requests");
    const startTunnels = count("tunnels");
    let cut = 0;
    if (tunnels === "cut") {
      for (const b of g.backends) for (const t of [...b.tunnels]) t.cut("the app is restarting");
      cut += startTunnels;
    }
    const deadline = started + timeoutMs;
    while (Date.now() < deadline) {
      const left = count("requests") + (tunnels === "wait" ? count("tunnels") : 0);
      if (left === 0) break;
      const timer = Bun.sleep(Math.max(0, deadline - Date.now()));
      await Promise.race([this.onceChanged(), timer]);
    }
    const leftRequests = count("requests");
    const leftTunnels = tunnels === "wait" ? count("tunnels") : 0;
    for (const b of g.backends) {
      for (const r of [...b.requests]) r.cut(`the old generation did not finish within the drain timeout`);
      for (const t of [...b.tunnels]) t.cut("drain timeout");
      for (const p of b.idle) p.conn.hangUp();
      b.idle = [];
    }
    cut += leftRequests + leftTunnels;
    return {
      requests: startRequests - leftRequests,
      tunnels: tunnels === "wait" ? startTunnels - leftTunnels : 0,
      cut,
      durationMs: Date.now() - started,
    };
  }

  private forget(g: Group): void {
    if (g !== this.live && g.backends.length === 0) this.groups.delete(g.name);
  }

  close(): void {
    clearInterval(this.sweep);
    for (const g of this.groups.values())
      for (const b of g.backends) {
        for (const p of b.idle) p.conn.hangUp();
        for (const r of [...b.requests, ...b.tunnels]) r.cut("hr is stopping");
      }
    this.wake();
    this.changed();
  }
}
