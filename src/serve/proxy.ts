/**
 * serve.strategy = "proxy": for apps that can only bind a port themselves
 * (Bun.serve, most frameworks). hr binds the public [[listen]] sockets once and
 * accepts on them itself; each worker gets a fresh private 127.0.0.1 port in PORT
 * and hr forwards raw bytes (any TCP protocol; HTTP/1.1 keep-alive, WebSocket
 * upgrades, streaming all pass through untouched).
 *
 * Routing:
 *  - New connections go to the ready workers of the LIVE generation, least
 *    connections first (ties round-robin). When a new generation becomes ready it
 *    is live at once; connections already forwarded to the old generation stay
 *    with it until they close (its app drains them after its Connection: close
 *    grace; hr never cuts them). The old generation is stopped by the master with
 *    the usual stop signal + drain_timeout.
 *  - No live generation (first start) or no ready worker in it (every worker
 *    crashed): connections wait, paused, up to ready.timeout, then are closed.
 *  - A worker that dies leaves the routing at once; its proxied connections end
 *    when the kernel closes its sockets (what it already sent is still delivered);
 *    any left open 2 s later (a descendant holding the socket) are cut.
 *
 * No replay (unlike hr dev's proxy): the client socket stays paused until the
 * upstream connection is established, so hr holds no client bytes it could
 * re-send. A failed connect (a worker that just died or has not bound yet) is
 * retried on another worker — no byte has reached any upstream, so that is safe.
 * Once bytes were written to a worker, a failure of that worker is the client's
 * failure: re-sending a request a worker may have read is unsafe for
 * non-idempotent requests.
 */
import { readFileSync } from "node:fs";
import net from "node:net";
import type { Logger } from "../log/logger.ts";
import { freePort } from "../sockets/free-port.ts";
import { connectUpstream, listenOnFd } from "../sockets/upstream.ts";

export interface WorkerEndpoint {
  worker: number;
  pid: number;
  port: number;
}

interface Backend extends WorkerEndpoint {
  generation: string;
  active: number;
  dead: boolean;
  upstreams: Set<net.Socket>;
}

interface GenGroup {
  name: string;
  backends: Backend[];
}

export interface ServeProxyOptions {
  /** hr-side listening fds (openSockets), one accept loop per fd. */
  fds: readonly number[];
  log: Logger;
  /** How long a connection may wait for a ready worker (ready.timeout). */
  waitMs: number;
}

/** Lowest private port hr picks below the ephemeral range. */
const PRIVATE_MIN = 10_000;

/** net.ipv4.ip_local_port_range (Linux default 32768 60999). */
function readPortRange(): [number, number] {
  try {
    const [a, b] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (a && b && a <= b) return [a, b];
  } catch {
    /* not Linux */
  }
  return [32768, 60999];
}

/** Whether 127.0.0.1:port can be bound right now (bind, then close). */
function canBind(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

/** How long connections of a dead worker may stay open before hr cuts them. */
const DEAD_GRACE_MS = 2000;

export class ServeProxy {
  private readonly servers: net.Server[] = [];
  private readonly groups = new Map<string, GenGroup>();
  private live: GenGroup | null = null;
  private readonly reserved = new Set<number>();
  private waiters: (() => void)[] = [];
  private readonly clients = new Set<net.Socket>();
  private rr = 0;
  private closed = false;
  waitMs: number;
  /** Counters (hr status / tests). */
  forwarded = 0;
  timedOut = 0;
  connectRetries = 0;

  constructor(private readonly opts: ServeProxyOptions) {
    this.waitMs = opts.waitMs;
  }

  /** Starts accepting on every fd. Connections arriving before wait in the kernel backlog. */
  async start(): Promise<void> {
    for (const fd of this.opts.fds) {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => this.onClient(socket));
      await listenOnFd(server, fd);
      server.on("error", (e) => this.opts.log.warn(`proxy: ${e.message}`));
      this.servers.push(server);
    }
  }

  /**
   * A private port for a new worker (PORT): free now, not handed to another running
   * worker, and outside the kernel's ephemeral range when possible — a port from
   * bind(:0) is ephemeral, so between our probe and the worker's bind, one of hr's
   * own outgoing connections (to other workers, under load) could take it as its
   * source port and the worker would fail with EADDRINUSE.
   */
  reservePort(): number {
    const [lo, hi] = readPortRange();
    const pool: [number, number] | null = lo - 1 >= PRIVATE_MIN + 1000 ? [PRIVATE_MIN, lo - 1] : hi + 1 <= 65535 - 1000 ? [hi + 1, 65535] : null;
    for (let i = 0; pool && i < 50; i++) {
      const p = pool[0] + Math.floor(Math.random() * (pool[1] - pool[0] + 1));
      if (this.reserved.has(p) || !canBind(p)) continue;
      this.reserved.add(p);
      return p;
    }
    for (let i = 0; i < 20; i++) {
      const p = freePort();
      if (!this.reserved.has(p)) {
        this.reserved.add(p);
        return p;
      }
    }
    throw new Error("proxy: no free private port found");
  }

  private group(n: string): GenGroup {
    let g = this.groups.get(n);
    if (!g) this.groups.set(n, (g = { name: n, backends: [] }));
    return g;
  }

  /** A worker of generation `gen` (its name, e.g. "gen3") passed its readiness probe: routable once the generation is live. */
  workerReady(gen: string, w: WorkerEndpoint): void {
    if (this.closed) return;
    const g = this.group(gen);
    g.backends = g.backends.filter((b) => b.worker !== w.worker || b.pid !== w.pid);
    g.backends.push({ ...w, generation: gen, active: 0, dead: false, upstreams: new Set() });
    if (this.live === g) this.wake();
  }

  /** A worker process exited (or never started): no new connections; its port is released. */
  workerExited(gen: string, w: WorkerEndpoint): void {
    this.reserved.delete(w.port);
    const g = this.groups.get(gen);
    if (!g) return;
    const b = g.backends.find((x) => x.worker === w.worker && x.pid === w.pid);
    g.backends = g.backends.filter((x) => x !== b);
    if (b) {
      b.dead = true;
      if (b.upstreams.size) {
        // The kernel closes the dead worker's sockets (we still read what it sent
        // before dying); a descendant holding them open must not keep clients hanging.
        setTimeout(() => {
          for (const up of b.upstreams) up.destroy();
        }, DEAD_GRACE_MS).unref();
      }
    }
    this.forget(g);
  }

  /** Generation `gen` is ready: new connections go to it from now on. */
  generationReady(gen: string): void {
    const prev = this.live;
    this.live = this.group(gen);
    if (prev && prev !== this.live) this.forget(prev);
    this.wake();
  }

  private forget(g: GenGroup) {
    if (g !== this.live && g.backends.length === 0) this.groups.delete(g.name);
  }

  get liveGeneration(): string | null {
    return this.live?.name ?? null;
  }

  /** Connections currently proxied (or waiting). */
  get connections(): number {
    return this.clients.size;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.servers) s.close();
    for (const c of this.clients) c.destroy();
    for (const g of this.groups.values()) for (const b of g.backends) for (const up of b.upstreams) up.destroy();
    this.wake();
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  /** Least connections among the live generation's ready workers; ties round-robin. */
  private pick(exclude: ReadonlySet<Backend>): Backend | null {
    const bs = (this.live?.backends ?? []).filter((b) => !b.dead && !exclude.has(b));
    if (!bs.length) return null;
    const start = this.rr++ % bs.length;
    let best: Backend | null = null;
    for (let i = 0; i < bs.length; i++) {
      const b = bs[(start + i) % bs.length]!;
      if (!best || b.active < best.active) best = b;
    }
    return best;
  }

  private waitForChange(deadline: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Connects to a ready worker of the live generation; null after the deadline (or when closed). */
  private async connect(client: net.Socket, deadline: number): Promise<{ up: net.Socket; backend: Backend } | null> {
    const failed = new Set<Backend>();
    let delay = 5;
    while (!this.closed && !client.destroyed && Date.now() < deadline) {
      const b = this.pick(failed);
      if (!b) {
        if (failed.size) {
          // Every worker refused (just died, or not listening yet): retry them shortly.
          failed.clear();
          await Bun.sleep(delay);
          delay = Math.min(100, delay * 2);
        } else {
          await this.waitForChange(deadline);
        }
        continue;
      }
      const up = await connectUpstream(b.port);
      if (up) {
        if (b.dead || this.closed || client.destroyed) {
          up.destroy();
          continue;
        }
        return { up, backend: b };
      }
      this.connectRetries++;
      failed.add(b);
    }
    return null;
  }

  private onClient(client: net.Socket): void {
    if (this.closed) {
      client.destroy();
      return;
    }
    this.clients.add(client);
    client.setNoDelay(true);
    let upstream: net.Socket | null = null;
    let backend: Backend | null = null;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.clients.delete(client);
      client.destroy();
      if (upstream) {
        upstream.destroy();
        backend!.upstreams.delete(upstream);
      }
    };
    // Until connected the client stays paused: its bytes wait in the kernel, never in hr.
    client.on("error", finish);
    client.on("close", finish);

    void this.connect(client, Date.now() + this.waitMs).then((r) => {
      if (done) {
        r?.up.destroy();
        return;
      }
      if (!r) {
        if (!this.closed) {
          this.timedOut++;
          this.opts.log.warn(`proxy: no ready worker within ${Math.round(this.waitMs / 1000)} s (ready.timeout); closing a waiting connection`, { event: "proxy_timeout" });
        }
        finish();
        return;
      }
      const { up, backend: b } = r;
      upstream = up;
      backend = b;
      b.active++;
      b.upstreams.add(up);
      this.forwarded++;
      up.setNoDelay(true);
      let upEnded = false;
      up.on("data", (chunk: Buffer) => {
        if (!client.write(chunk)) up.pause();
      });
      client.on("drain", () => up.resume());
      client.on("data", (chunk: Buffer) => {
        if (!up.write(chunk)) client.pause();
      });
      up.on("drain", () => client.resume());
      client.on("end", () => {
        if (!up.destroyed) up.end();
      });
      up.on("end", () => {
        upEnded = true;
        // FIN from the worker: passed on once everything it sent is flushed to the client.
        if (!client.destroyed) client.end();
      });
      up.on("error", () => {});
      up.on("close", () => {
        b.active--;
        b.upstreams.delete(up);
        // After a clean FIN the client side closes by itself once flushed; a reset is passed on.
        if (!upEnded) finish();
      });
      client.resume();
    });
  }
}
