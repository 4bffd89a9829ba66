/**
 * hr's one proxy (hr dev and hr serve with strategy "proxy"): accepts on hr's
 * [[listen]] sockets (bound by hr or inherited — Bun.listen adopts an fd, a dup of
 * hr's, so hr's own copy outlives the proxy) and forwards to the workers Backends
 * routes to, per listener either as HTTP/1.1 (session.ts) or raw TCP (tcp.ts).
 *
 * The caller owns the lifecycle; the proxy only routes:
 *   workerReady / workerExited   a worker's private address becomes usable / goes away
 *   setLive(gen)                 new requests go to `gen` (it must have passed readiness)
 *   drain(gen, timeout)          resolves when `gen` has nothing in flight (or cuts it at
 *                                the deadline); only then may its processes be signalled
 *   setDown(message) / clearLive hr dev: no app (answer 502 at once) / restarting (wait)
 *
 * Connection limits: hr keeps client connections below what RLIMIT_NOFILE allows
 * for a client plus its upstream. At the limit the longest-idle connection (no
 * request in progress) is closed to make room; when none is idle the new one is
 * answered 503 — and hr says so in its log, once per 10 s.
 * NOT covered: HTTP/2, TLS (put hr behind a TLS terminator or use fd strategy).
 */
import { openFilesLimit } from "../platform/proc.ts";
import type { Logger } from "../log/logger.ts";
import { formatMs } from "../config/duration.ts";
import { libc } from "../platform/libc.ts";
import { Backends, type DrainReport, type WorkerEndpoint } from "./backends.ts";
import { connHandlers, type Conn } from "./conn.ts";
import { errorResponse } from "./http1.ts";
import { HttpSession, type BodyTransform, type LocalResponder, type ProxyStats } from "./session.ts";
import type { RequestHead, ResponseHead } from "./http1.ts";
import { TcpSession } from "./tcp.ts";

export type { DrainReport, WorkerEndpoint } from "./backends.ts";
export type { BodyTransform, LocalResponder } from "./session.ts";

export interface ProxyListener {
  fd: number;
  protocol: "http" | "tcp";
  /** Keep client-sent X-Forwarded-* / Forwarded (hr behind a trusted proxy) instead of replacing them. */
  trustForwarded: boolean;
}

export interface ProxyOptions {
  listeners: readonly ProxyListener[];
  log: Logger;
  /** How long a request (or tcp connection) waits for a ready worker. */
  waitMs: number;
  /** Names the wait for error texts, e.g. "ready.timeout". */
  waitSetting?: string;
  filter?: (req: RequestHead, res: ResponseHead) => BodyTransform | null;
  intercept?: (req: RequestHead) => ((res: LocalResponder) => void) | null;
  /** How many proxies share the process's open-file limit (proxy threads). */
  fdShare?: number;
}

/** A partial request head may take this long (then 408). */
export const HEADER_TIMEOUT_MS = 10_000;
/** An idle keep-alive client connection is closed after this long. */
export const KEEPALIVE_TIMEOUT_MS = 60_000;
const CLOSING_MS = 5_000;
const F_DUPFD_CLOEXEC = 1030;

type Session = HttpSession | TcpSession;

/** Soft RLIMIT_NOFILE (Infinity if unknown). */
function fdLimit(): number {
  return openFilesLimit() ?? Infinity;
}

export class Proxy {
  readonly backends = new Backends();
  readonly stats: ProxyStats = { requests: 0, retried: 0, badGateway: 0, rejected: 0 };
  waitMs: number;
  private readonly sessions = new Set<Session>();
  private readonly listeners: { stop(closeActive?: boolean): void }[] = [];
  private readonly sweep: ReturnType<typeof setInterval>;
  private readonly maxClients: number;
  private lastLimitLog = 0;
  private closed = false;

  constructor(private readonly opts: ProxyOptions) {
    this.waitMs = opts.waitMs;
    const limit = fdLimit();
    this.maxClients = Number.isFinite(limit) ? Math.max(16, Math.floor((limit - 64) / 2 / (opts.fdShare ?? 1))) : 1 << 20;
    this.sweep = setInterval(() => this.sweepSessions(), 1000);
    this.sweep.unref?.();
  }

  /** Starts accepting on every listener (connections before this wait in the kernel backlog). */
  start(): void {
    for (const l of this.opts.listeners) {
      const fd = libc.fcntl(l.fd, F_DUPFD_CLOEXEC, 3);
      const handlers = connHandlers((conn) => this.accept(conn, l));
      const server = (Bun.listen as (o: unknown) => { stop(closeActive?: boolean): void })({ fd, allowHalfOpen: true, socket: handlers });
      this.listeners.push(server);
    }
  }

  private accept(conn: Conn, l: ProxyListener): void {
    if (this.closed) {
      conn.destroy();
      return;
    }
    if (this.sessions.size >= this.maxClients && !this.makeRoom()) {
      this.limitLog();
      if (l.protocol === "http") conn.write(errorResponse(503, "hr: too many open connections", true));
      conn.end();
      return;
    }
    conn.socket.setNoDelay(true);
    const done = (s: Session) => this.sessions.delete(s);
    if (l.protocol === "tcp") {
      this.sessions.add(new TcpSession(conn, this.backends, this.waitMs, this.stats, done));
      return;
    }
    const opts = this.opts;
    const wait = () => `${formatMs(this.waitMs)}${opts.waitSetting ? ` (${opts.waitSetting})` : ""}`;
    this.sessions.add(
      new HttpSession(
        conn,
        {
          backends: this.backends,
          waitMs: this.waitMs,
          describeWait: wait,
          trustForwarded: l.trustForwarded,
          filter: opts.filter,
          intercept: opts.intercept,
          stats: this.stats,
          onUpstreamError: (m) => opts.log.warn(`proxy: ${m}`),
        },
        done,
      ),
    );
  }

  /** Closes the longest-idle HTTP connection; false when every connection is busy. */
  private makeRoom(): boolean {
    let victim: HttpSession | null = null;
    for (const s of this.sessions) {
      if (!(s instanceof HttpSession) || !s.idle) continue;
      if (!victim || s.headSince < victim.headSince) victim = s;
    }
    if (!victim) return false;
    this.limitLog();
    this.sessions.delete(victim);
    victim.cutIdle();
    return true;
  }

  private limitLog(): void {
    const now = Date.now();
    if (now - this.lastLimitLog < 10_000) return;
    this.lastLimitLog = now;
    this.opts.log.warn(
      `proxy: ${this.sessions.size} client connections open, the most the open-file limit allows (ulimit -n ${fdLimit()}); closing idle connections and refusing new ones with 503 — raise the limit (LimitNOFILE= in systemd, ulimit -n)`,
      { event: "proxy_fd_limit" },
    );
  }

  private sweepSessions(): void {
    const now = Date.now();
    for (const s of this.sessions) {
      if (!(s instanceof HttpSession) || !s.headSince) continue;
      if (s.state === "closing") {
        if (now - s.headSince > CLOSING_MS) s.cutIdle();
      } else if (s.state === "head") {
        const limit = s.hasPartialHead || s.served === 0 ? HEADER_TIMEOUT_MS : KEEPALIVE_TIMEOUT_MS;
        if (now - s.headSince > limit) s.timeout();
      }
    }
  }

  workerReady(gen: string, w: WorkerEndpoint): void {
    if (!this.closed) this.backends.workerReady(gen, w);
  }

  workerExited(gen: string, worker: number, pid: number): void {
    this.backends.workerExited(gen, worker, pid);
  }

  setLive(gen: string): void {
    this.backends.setLive(gen);
  }

  clearLive(): void {
    this.backends.clearLive();
  }

  setDown(message: string): void {
    this.backends.setDown(message);
  }

  drain(gen: string, timeoutMs: number, tunnels: "wait" | "cut" = "wait"): Promise<DrainReport> {
    return this.backends.drain(gen, timeoutMs, tunnels);
  }

  get liveGeneration(): string | null {
    return this.backends.liveGeneration;
  }

  /** Client connections open (HTTP and tcp). */
  get connections(): number {
    return this.sessions.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweep);
    for (const l of this.listeners) l.stop(false);
    this.backends.close();
    for (const s of this.sessions) s.client.destroy();
    this.sessions.clear();
  }
}
