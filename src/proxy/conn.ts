/**
 * A Bun TCP/unix socket with a write queue: Bun's socket.write() takes what the
 * kernel accepts and returns the count; the rest waits here until `drain`. Whoever
 * feeds a Conn pauses its source while `backlogged` and resumes on `onDrain` — the
 * only buffering is one read's worth of bytes per direction.
 *
 * Bun.listen({ fd }) adopts an inherited listening socket (node:http and Bun.serve
 * cannot, Bun #22559), so hr's accept loop and upstream connections both use Bun
 * sockets.
 */
import type { Socket, SocketHandler } from "bun";

export interface ConnEvents {
  data(buf: Buffer): void;
  /** The peer half-closed (FIN). */
  end(): void;
  /** Closed (after end or on error). Called once. */
  close(error?: Error): void;
  /** The write queue emptied. */
  drain(): void;
}

let batchDepth = 0;
let touched: Conn[] = [];

/**
 * Runs `fn` with every Conn write corked, then sends each Conn's writes as one:
 * one syscall per direction per event instead of one per head, body piece and
 * chunk frame.
 */
export function batch<T>(fn: () => T): T {
  batchDepth++;
  try {
    return fn();
  } finally {
    if (--batchDepth === 0) {
      const t = touched;
      touched = [];
      for (const c of t) c.uncork();
    }
  }
}

const NOOP: ConnEvents = { data() {}, end() {}, close() {}, drain() {} };

/** How long hangUp() waits for the peer to close before it resets the connection. */
const HANG_UP_MS = 2000;

/** Above this many queued bytes a Conn is `backlogged`. */
const HIGH_WATER = 256 * 1024;

export class Conn {
  events: ConnEvents = NOOP;
  closed = false;
  private queue: Buffer[] = [];
  private queued = 0;
  private ending = false;
  private paused = false;
  private corked: Buffer[] | null = null;

  constructor(readonly socket: Socket<Conn>) {}

  private peer: string | undefined;

  /** The peer's address (read once: Bun formats it on every access). */
  get remoteAddress(): string {
    return (this.peer ??= this.socket.remoteAddress ?? "");
  }

  get backlogged(): boolean {
    return this.queued > HIGH_WATER;
  }

  uncork(): void {
    const c = this.corked;
    if (!c) return;
    this.corked = null;
    if (c.length) this.send(c.length === 1 ? c[0]! : Buffer.concat(c));
  }

  /** Queues bytes; returns false when the caller should pause its source until drain. */
  write(buf: Buffer | string): boolean {
    if (this.closed || this.ending) return false;
    const b = typeof buf === "string" ? Buffer.from(buf, "latin1") : buf;
    if (batchDepth > 0 && !this.corked) {
      this.corked = [];
      touched.push(this);
    }
    if (this.corked) {
      if (b.length) this.corked.push(b);
      return !this.backlogged;
    }
    return this.send(b);
  }

  private send(b: Buffer): boolean {
    if (b.length === 0) return !this.backlogged;
    if (this.queued === 0) {
      const n = this.socket.write(b);
      if (n === b.length) return true;
      if (n < 0) return false;
      this.queue.push(n > 0 ? b.subarray(n) : b);
      this.queued += b.length - Math.max(0, n);
      return !this.backlogged;
    }
    this.queue.push(b);
    this.queued += b.length;
    return !this.backlogged;
  }

  writev(bufs: Buffer[]): boolean {
    if (bufs.length === 1) return this.write(bufs[0]!);
    return this.write(Buffer.concat(bufs));
  }

  /** Half-closes after the queue is flushed. */
  end(): void {
    if (this.closed || this.ending) return;
    this.uncork();
    this.ending = true;
    if (this.queued === 0) this.socket.end();
  }

  /** Stops delivering events to the current owner (before handing the socket on or destroying it). */
  detach(): void {
    this.events = NOOP;
  }

  destroy(): void {
    if (this.closed) return;
    this.socket.terminate();
  }

  /**
   * Closes a connection that carries no exchange (idle in the pool, or connected and
   * never used) the way a client would: FIN, so the app reads EOF instead of a reset
   * (Python's http.server prints a traceback for each reset); destroyed if still open
   * after HANG_UP_MS. Events stop at once.
   */
  hangUp(): void {
    if (this.closed) return;
    this.detach();
    this.end();
    setTimeout(() => this.destroy(), HANG_UP_MS).unref?.();
  }

  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.socket.pause();
  }

  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.socket.resume();
  }

  /** Bun's drain callback: flush what is queued. */
  onWritable(): void {
    while (this.queue.length) {
      const b = this.queue[0]!;
      const n = this.socket.write(b);
      if (n < 0) return;
      this.queued -= Math.max(0, n);
      if (n < b.length) {
        this.queue[0] = b.subarray(n);
        return;
      }
      this.queue.shift();
    }
    if (this.ending) {
      this.socket.end();
      return;
    }
    this.events.drain();
  }

  onClosed(error?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.queue = [];
    this.queued = 0;
    this.events.close(error);
  }
}

/** Socket handlers that route Bun's callbacks to the Conn in socket.data. */
export function connHandlers(onOpen: (conn: Conn) => void): SocketHandler<Conn> {
  return {
    open(socket) {
      const conn = new Conn(socket);
      socket.data = conn;
      onOpen(conn);
    },
    data(socket, buf) {
      const conn = socket.data;
      if (conn) batch(() => conn.events.data(buf));
    },
    drain(socket) {
      socket.data?.onWritable();
    },
    end(socket) {
      socket.data?.events.end();
    },
    close(socket, error) {
      socket.data?.onClosed(error);
    },
    error(socket, error) {
      socket.data?.onClosed(error);
    },
  };
}

/** Where a worker listens: a TCP port on loopback (hr dev/serve PORT), or a unix socket. */
export type UpstreamAddress = { host: string; port: number } | { unix: string };

export function describeAddress(a: UpstreamAddress): string {
  return "unix" in a ? `unix:${a.unix}` : `${a.host}:${a.port}`;
}

const upstreamHandlers = connHandlers(() => {});

/** Connects to an upstream; resolves null when refused or unreachable (the caller decides to retry). */
export async function connect(address: UpstreamAddress): Promise<Conn | null> {
  try {
    const socket = await Bun.connect<Conn>({
      ...("unix" in address ? { unix: address.unix } : { hostname: address.host, port: address.port }),
      allowHalfOpen: true,
      socket: { ...upstreamHandlers, connectError() {} },
    } as Parameters<typeof Bun.connect<Conn>>[0]);
    socket.setNoDelay(true);
    return socket.data!;
  } catch {
    return null;
  }
}
