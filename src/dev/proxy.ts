/**
 * dev.strategy = "proxy": for apps that can only bind a port themselves (Bun.serve,
 * most frameworks). hr accepts on the public [[listen]] socket (bound once, so it
 * never goes away) and forwards raw bytes to the app on a private 127.0.0.1 port
 * it hands over in PORT (a fresh free port per app start).
 *
 * During a restart the target is cleared: new connections are held (the client's
 * bytes stay queued) and forwarded as soon as the new app accepts — refused
 * connects are retried until the app has bound its port, up to `waitMs`.
 *
 * Protocol-agnostic byte piping, plus one safety net: client bytes sent since the
 * last byte received from the app are remembered, and if the app's side closes or
 * resets before answering them (an old app shutting down just as a keep-alive
 * request arrives), they are replayed to the current app instead of failing.
 */
import net from "node:net";
import type { Logger } from "../log/logger.ts";
import { connectUpstream, listenOnFd } from "../sockets/upstream.ts";
import { LiveReload } from "./livereload.ts";

export interface ProxyOptions {
  /** hr-side listening fds (from openSockets), one server per fd. */
  fds: readonly number[];
  log: Logger;
  /** How long a connection may wait for an app (default 30 s). */
  waitMs?: number;
  /** Max bytes remembered for replay (default 1 MiB); beyond it a connection is plain piping. */
  replayLimit?: number;
  /** Called after each successful connect to the app (latency tracing). */
  onUpstream?: (port: number) => void;
  /** dev.live_reload: HTTP-aware forwarding with script injection and /__hr/events (livereload.ts). */
  liveReload?: boolean;
}


export class DevProxy {
  private servers: net.Server[] = [];
  private target: number | null = null;
  /** Set while no app runs (crashed, failed build): the 502 body. */
  private down: string | null = null;
  private live: LiveReload | null = null;
  private waiters: (() => void)[] = [];
  private readonly conns = new Set<net.Socket>();
  private readonly waitMs: number;
  private readonly replayLimit: number;
  private closed = false;
  /** Connections given up after waitMs (for the log / tests). */
  timedOut = 0;
  /** Requests replayed to a new app after the old one closed on them. */
  replayed = 0;
  /** Connections answered with 502 because no app was running. */
  badGateway = 0;

  constructor(private readonly opts: ProxyOptions) {
    this.waitMs = opts.waitMs ?? 30_000;
    this.replayLimit = opts.replayLimit ?? 1 << 20;
  }

  async start(): Promise<void> {
    if (this.opts.liveReload) {
      this.live = new LiveReload({
        connect: (client) => this.awaitUpstream(Date.now() + this.waitMs, client),
        downText: () => this.down ?? "hr dev: no app is running.\n",
      });
    }
    for (const fd of this.opts.fds) {
      const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (socket) => {
        const live = this.live;
        if (!live) return this.onClient(socket);
        this.conns.add(socket);
        socket.on("close", () => this.conns.delete(socket));
        live.accept(socket);
      });
      await listenOnFd(server, fd);
      server.on("error", (e) => this.opts.log.warn(`proxy: ${e.message}`));
      this.servers.push(server);
    }
  }

  /** Point new connections at the app on 127.0.0.1:port, or hold them (null). */
  setTarget(port: number | null): void {
    this.target = port;
    this.down = null;
    if (port !== null) this.wakeWaiters();
  }

  /**
   * No app is running and none is coming until something happens (crash, failed
   * first build): answer new and waiting connections at once with a 502 carrying
   * `message`, instead of holding them for waitMs. setTarget() ends it.
   */
  setDown(message: string): void {
    this.target = null;
    this.down = message;
    this.wakeWaiters();
  }

  private wakeWaiters(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }

  get currentTarget(): number | null {
    return this.target;
  }

  /** live_reload: tell open pages to reload (after a successful restart). */
  reload(gen: number): void {
    this.live?.reload(gen);
  }

  /** live_reload: pages listening on /__hr/events. */
  get liveListeners(): number {
    return this.live?.listeners ?? 0;
  }

  close(): void {
    this.closed = true;
    this.live?.close();
    for (const s of this.servers) s.close();
    for (const c of this.conns) c.destroy();
    for (const w of this.waiters) w();
    this.waiters = [];
  }

  /** Resolves with a connected upstream socket, "down" (no app, see setDown), or null after the deadline. */
  private async awaitUpstream(deadline: number, client: net.Socket): Promise<net.Socket | "down" | null> {
    let delay = 5;
    while (!this.closed && !client.destroyed && Date.now() < deadline) {
      const port = this.target;
      if (port === null && this.down !== null) return "down";
      if (port === null) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()));
          this.waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
        continue;
      }
      const up = await connectUpstream(port);
      if (up) {
        this.opts.onUpstream?.(port);
        return up;
      }
      // Not bound yet (or gone): retry, quickly at first.
      await Bun.sleep(delay);
      delay = Math.min(50, delay * 2);
    }
    return null;
  }

  private onClient(client: net.Socket): void {
    this.conns.add(client);
    client.setNoDelay(true);
    const deadline = Date.now() + this.waitMs;
    /** Client bytes not yet answered by the app (since its last byte). */
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    let replayable = true;
    let clientEnded = false;
    let upstream: net.Socket | null = null;
    let done = false;

    const finish = () => {
      if (done) return;
      done = true;
      this.conns.delete(client);
      client.destroy();
      upstream?.destroy();
    };

    const remember = (chunk: Buffer) => {
      if (!replayable) return;
      pending.push(chunk);
      pendingBytes += chunk.length;
      if (pendingBytes > this.replayLimit) {
        replayable = false;
        pending = [];
      }
    };

    client.on("data", (chunk: Buffer) => {
      remember(chunk);
      if (upstream && !upstream.destroyed && upstream.writable) {
        if (!upstream.write(chunk)) client.pause();
      }
    });
    client.on("end", () => {
      clientEnded = true;
      if (upstream && !upstream.destroyed) upstream.end();
    });
    client.on("error", () => finish());
    client.on("close", () => finish());

    client.on("drain", () => upstream?.resume());

    const attach = async (): Promise<void> => {
      const up = await this.awaitUpstream(deadline, client);
      if (done) {
        if (up && up !== "down") up.destroy();
        return;
      }
      if (up === "down") {
        this.badGateway++;
        answer502(client, this.down ?? "hr dev: no app is running.\n");
        return;
      }
      if (!up) {
        this.timedOut++;
        this.opts.log.warn(`proxy: no app accepted a connection within ${Math.round(this.waitMs / 1000)} s; closing it`);
        finish();
        return;
      }
      upstream = up;
      up.on("data", (chunk: Buffer) => {
        pending = [];
        pendingBytes = 0;
        if (!client.write(chunk)) up.pause();
      });
      up.on("drain", () => client.resume());
      const lost = (graceful: boolean) => {
        if (upstream !== up || done) return;
        upstream = null;
        up.destroy();
        // The app went away with client bytes unanswered: replay them to the current app.
        if (replayable && pendingBytes > 0 && !client.destroyed) {
          this.replayed++;
          void attach();
          return;
        }
        // A clean close (FIN) is passed on once our writes are flushed; anything else resets.
        if (graceful) client.end();
        else finish();
      };
      up.on("end", () => lost(true));
      up.on("error", () => lost(false));
      up.on("close", () => lost(false));
      for (const chunk of pending) up.write(chunk);
      if (clientEnded) up.end();
      client.resume();
    };
    void attach();
  }
}

/** Writes a 502 with `text`, half-closes, and keeps reading (so unread request bytes cause no RST). */
function answer502(client: net.Socket, text: string): void {
  const body = Buffer.from(text);
  client.resume();
  client.end(
    `HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${body.length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${text}`,
  );
  setTimeout(() => client.destroy(), 5000).unref();
}
