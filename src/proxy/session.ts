/**
 * One client connection in `protocol = "http"` mode: requests are parsed
 * (http1.ts), each is forwarded to a worker picked by Backends over a pooled
 * upstream connection, and the response is streamed back.
 *
 * Invariants:
 *  - One request at a time per client connection (pipelined requests wait, their
 *    bytes bounded by PIPELINE_MAX, then the client is paused).
 *  - Bodies stream in both directions with backpressure: at most one read's worth
 *    plus a Conn's queue is held per direction, never a whole body. Only a request
 *    of at most REPLAY_MAX bytes is kept, for one retry.
 *  - A request is retried once, on a fresh connection, only when it failed on a
 *    reused idle upstream connection before any response byte and it is
 *    idempotent or hr holds all of it. Otherwise: 502 (nothing sent yet) or the
 *    client connection is closed (a response was under way).
 *  - Every exchange is registered on its Backend (requests, or tunnels for 101 and
 *    text/event-stream) until it ends, so Backends.drain() knows when a generation
 *    is idle.
 */
import type { Backend, Backends, Cuttable } from "./backends.ts";
import type { Conn, ConnEvents } from "./conn.ts";
import { batch } from "./conn.ts";
import {
  BodyReader,
  chunk,
  endToEnd,
  errorResponse,
  field,
  HttpError,
  IDEMPOTENT,
  lastChunk,
  parseRequest,
  parseResponse,
  serializeFields,
  type RequestHead,
  type ResponseHead,
} from "./http1.ts";

/** Request bytes kept for a retry (head + body); larger requests are not retried. */
const REPLAY_MAX = 64 * 1024;
/** Pipelined bytes read ahead while a response is pending, before pausing the client. */
const PIPELINE_MAX = 64 * 1024;
const EMPTY = Buffer.alloc(0);

/** A response body rewriter (hr dev's live reload): gets the data, returns what to send. */
export interface BodyTransform {
  push(data: Buffer): Buffer;
  end(): Buffer;
  /** When the transform always adds exactly this many bytes, a Content-Length is kept (adjusted). */
  readonly addsBytes?: number;
}

export interface LocalResponder {
  write(data: string | Buffer): void;
  end(data?: string | Buffer): void;
  onClose(cb: () => void): void;
}

export interface SessionContext {
  backends: Backends;
  waitMs: number;
  /** "ready.timeout", "30s" — how long requests wait, for the 503 text. */
  describeWait(): string;
  trustForwarded: boolean;
  /** The app-facing name in error texts ("the app", "hr serve: no ready worker"). */
  filter?: (req: RequestHead, res: ResponseHead) => BodyTransform | null;
  intercept?: (req: RequestHead) => ((res: LocalResponder) => void) | null;
  stats: ProxyStats;
  onUpstreamError?: (message: string) => void;
}

export interface ProxyStats {
  requests: number;
  retried: number;
  badGateway: number;
  rejected: number;
}

type State = "head" | "wait" | "exchange" | "tunnel" | "local" | "closing" | "closed";

export class HttpSession {
  state: State = "head";
  /** When the current head started (ms), for the header timeout; 0 while not reading a head. */
  headSince: number;
  /** Requests completed on this connection (0: a fresh connection). */
  served = 0;
  private buf: Buffer = EMPTY;
  private ex: Exchange | null = null;
  private clientEnded = false;

  constructor(
    readonly client: Conn,
    private readonly ctx: SessionContext,
    private readonly onDone: (s: HttpSession) => void,
  ) {
    this.headSince = Date.now();
    client.events = {
      data: (b) => this.onData(b),
      end: () => this.onEnd(),
      close: () => this.onClose(),
      drain: () => this.ex?.clientDrained(),
    };
  }

  /** Whether the connection may be closed to make room (no request in progress). */
  get idle(): boolean {
    return this.state === "head";
  }

  /** Partial head bytes received (a slow client) vs nothing yet. */
  get hasPartialHead(): boolean {
    return this.state === "head" && this.buf.length > 0;
  }

  private onData(b: Buffer): void {
    switch (this.state) {
      case "head":
        this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
        this.nextRequest();
        return;
      case "wait":
        this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
        if (this.buf.length > PIPELINE_MAX) this.client.pause();
        return;
      case "exchange": {
        const ex = this.ex!;
        if (!ex.reqBody.done) {
          const rest = ex.feedBody(b);
          if (rest.length) this.stash(rest);
        } else this.stash(b);
        return;
      }
      case "tunnel":
        this.ex!.tunnelFromClient(b);
        return;
      default:
        return;
    }
  }

  private stash(b: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, b]) : b;
    if (this.buf.length > PIPELINE_MAX) this.client.pause();
  }

  private onEnd(): void {
    this.clientEnded = true;
    if (this.state === "head") {
      if (this.buf.length) this.reject(new HttpError(400, "the connection ended inside a request head"));
      else this.client.end();
    } else if (this.state === "tunnel") this.ex?.tunnelClientEnded();
    else if (this.state === "exchange" && this.ex && !this.ex.reqBody.done) {
      // Request body cut short: the app can't complete it either.
      this.ex.abort();
    }
  }

  private onClose(): void {
    if (this.state === "closed") return;
    this.state = "closed";
    this.headSince = 0;
    this.ex?.abort();
    this.ex = null;
    this.onDone(this);
  }

  /** Answer an error hr found itself and close. */
  reject(e: HttpError): void {
    this.ctx.stats.rejected++;
    this.client.write(errorResponse(e.status, `hr: ${e.message}`, true));
    this.closeGracefully();
  }

  /**
   * Half-closes after what was written and keeps reading (discarding), so unread
   * request bytes don't turn the close into a reset that loses the response; the
   * proxy's sweep destroys it after CLOSING_MS.
   */
  closeGracefully(): void {
    this.state = "closing";
    this.headSince = Date.now();
    this.client.resume();
    this.client.end();
  }

  /** Header timeout (from the proxy's sweep): 408 when part of a head came, silent close when idle between requests. */
  timeout(): void {
    if (this.state !== "head") return;
    if (this.buf.length || this.served === 0) this.reject(new HttpError(408, "the request head did not arrive in time"));
    else this.client.end();
  }

  cutIdle(): void {
    this.client.destroy();
  }

  /** Parses and starts the next buffered request, if complete. */
  nextRequest(): void {
    if (this.state !== "head") return;
    if (!this.buf.length) {
      if (this.clientEnded) this.client.end();
      return;
    }
    let req: RequestHead | null;
    try {
      req = parseRequest(this.buf);
    } catch (e) {
      if (e instanceof HttpError) return this.reject(e);
      throw e;
    }
    if (!req) return;
    this.headSince = 0;
    const rest = this.buf.subarray(req.size);
    this.buf = EMPTY;
    const local = this.ctx.intercept?.(req);
    if (local) {
      this.state = "local";
      const client = this.client;
      const closers: (() => void)[] = [];
      const prev = client.events.close;
      client.events.close = (err) => {
        for (const c of closers) c();
        prev(err);
      };
      local({ write: (d) => client.write(d), end: (d) => (d !== undefined && client.write(d), client.end()), onClose: (cb) => closers.push(cb) });
      return;
    }
    this.ctx.stats.requests++;
    this.state = "wait";
    this.ex = new Exchange(this, req, this.ctx);
    this.buf = rest;
    this.ex.start();
  }

  /** The exchange is attached to an upstream: feed buffered body bytes. */
  attached(): void {
    const ex = this.ex!;
    this.state = "exchange";
    const b = this.buf;
    this.buf = EMPTY;
    if (b.length) {
      if (!ex.reqBody.done) {
        const rest = ex.feedBody(b);
        if (rest.length) this.stash(rest);
      } else this.stash(b);
    }
    if (this.state === "exchange" && this.buf.length <= PIPELINE_MAX) this.client.resume();
  }

  /** The exchange turned into a tunnel (101): buffered bytes belong to it. */
  toTunnel(): Buffer {
    this.state = "tunnel";
    const b = this.buf;
    this.buf = EMPTY;
    this.client.resume();
    return b;
  }

  /** The exchange ended: next request, or close. */
  finished(close: boolean): void {
    this.ex = null;
    if (this.state === "closed") return;
    this.served++;
    if (close || this.clientEnded) {
      this.closeGracefully();
      return;
    }
    this.state = "head";
    this.headSince = Date.now();
    this.client.resume();
    this.nextRequest();
  }

  /** The exchange failed with the client connection unusable. */
  kill(): void {
    this.ex = null;
    this.client.destroy();
  }

  get ended(): boolean {
    return this.clientEnded;
  }
}

class Exchange implements Cuttable, ConnEvents {
  readonly reqBody: BodyReader;
  backend: Backend | null = null;
  private up: Conn | null = null;
  private reused = false;
  private retried = false;
  /** Request bytes sent so far, for a retry; null once over REPLAY_MAX. */
  private replay: Buffer[] | null = [];
  private replayBytes = 0;
  private responseStarted = false;
  private respBuf: Buffer = EMPTY;
  private res: ResponseHead | null = null;
  private resBody: BodyReader | null = null;
  private toClientChunked = false;
  private closeClient = false;
  private transform: BodyTransform | null = null;
  private tunnel = false;
  private ended = false;
  private readonly client: Conn;

  constructor(
    private readonly session: HttpSession,
    readonly req: RequestHead,
    private readonly ctx: SessionContext,
  ) {
    this.client = session.client;
    this.reqBody = req.framing.kind === "none" ? BodyReader.NONE : new BodyReader(req.framing, 400);
    this.closeClient = !req.keepAlive;
  }

  /** Waits for a worker and an upstream connection, then sends the head. */
  start(): void {
    // Fast path: an idle pooled connection to a live worker, no promise involved.
    const b = this.ctx.backends.pick();
    const idle = b && this.ctx.backends.takeIdle(b);
    if (idle) return this.begin(b, idle, true);
    void this.acquire(true, b).then((got) => {
      if (got && !this.ended) batch(() => this.begin(got.b, got.conn, got.reused));
    });
  }

  private begin(b: Backend, conn: Conn, reused: boolean): void {
    this.attach(b, conn, reused);
    this.sendHead();
    this.session.attached();
  }

  /** A worker and a connection to it (Backends.acquire); null when hr answered instead or the client left. */
  private async acquire(reuse: boolean, first?: Backend | null): Promise<{ b: Backend; conn: Conn; reused: boolean } | null> {
    this.client.pause();
    const got = await this.ctx.backends.acquire({
      holder: this,
      kind: "requests",
      waitMs: this.ctx.waitMs,
      describeWait: this.ctx.describeWait(),
      cancelled: () => this.ended,
      reuse,
      first,
    });
    if (got && "status" in got) {
      this.fail(got.status, got.message);
      return null;
    }
    if (got && this.ended) {
      got.b.requests.delete(this);
      got.conn.hangUp();
      return null;
    }
    return got;
  }

  private attach(b: Backend, conn: Conn, reused: boolean): void {
    this.backend = b;
    this.up = conn;
    this.reused = reused;
    b.requests.add(this); // already there unless taken on the fast path
    conn.events = this;
  }

  // ConnEvents of the upstream connection (the exchange is its handler: no per-request closures).
  data(d: Buffer): void {
    this.onUpstreamData(d);
  }

  end(): void {
    this.onUpstreamEnd();
  }

  close(): void {
    this.onUpstreamEnd();
  }

  drain(): void {
    this.client.resume();
  }

  private detach(): void {
    const b = this.backend;
    if (!b) return;
    b.requests.delete(this);
    b.tunnels.delete(this);
    this.ctx.backends.changed();
  }

  private sendUp(bufs: Buffer[]): void {
    if (this.replay && this.req.framing.kind !== "none") {
      for (const x of bufs) this.replayBytes += x.length;
      if (this.replayBytes > REPLAY_MAX) this.replay = null;
      else this.replay.push(...bufs);
    }
    if (!this.up!.writev(bufs)) this.client.pause();
  }

  private sendHead(): void {
    const req = this.req;
    const fields = endToEnd(req, req.upgrade ? ["upgrade"] : [], FORWARDED);
    let head = `${req.method} ${req.target} HTTP/1.1\r\n${serializeFields(fields)}${forwardedBlock(req, this.client.remoteAddress, this.ctx.trustForwarded)}`;
    // Forwarded as HTTP/1.1, which needs a Host (RFC 9112 §3.2): empty when an HTTP/1.0 client sent none.
    if (req.host === null) head += "Host: \r\n";
    if (req.framing.kind === "length") head += `Content-Length: ${req.framing.length}\r\n`;
    else if (req.framing.kind === "chunked") head += "Transfer-Encoding: chunked\r\n";
    if (req.upgrade) head += "Connection: upgrade\r\n";
    head += "\r\n";
    this.sendUp([Buffer.from(head, "latin1")]);
  }

  /** Forwards request body bytes; returns what is left after the body (the next request). */
  feedBody(b: Buffer): Buffer {
    let r: { data: Buffer[]; used: number };
    try {
      r = this.reqBody.read(b);
    } catch (e) {
      if (!(e instanceof HttpError)) throw e;
      if (!this.responseStarted) {
        this.fail(e.status, e.message);
      } else this.abort();
      return EMPTY;
    }
    const out: Buffer[] = [];
    if (this.req.framing.kind === "chunked") {
      for (const d of r.data) out.push(...chunk(d));
      if (this.reqBody.done) out.push(lastChunk(this.reqBody.trailers));
    } else out.push(...r.data);
    if (out.length) this.sendUp(out);
    return r.used < b.length ? b.subarray(r.used) : EMPTY;
  }

  clientDrained(): void {
    this.up?.resume();
  }

  private onUpstreamData(d: Buffer): void {
    if (this.ended) return;
    this.responseStarted = true;
    if (this.tunnel) {
      if (!this.client.write(d)) this.up!.pause();
      return;
    }
    if (this.resBody) return this.responseBody(d);
    this.respBuf = this.respBuf.length ? Buffer.concat([this.respBuf, d]) : d;
    this.parseHead();
  }

  private parseHead(): void {
    for (;;) {
      let res: ResponseHead | null;
      try {
        res = parseResponse(this.respBuf, this.req.method);
      } catch (e) {
        if (!(e instanceof HttpError)) throw e;
        this.ctx.onUpstreamError?.(e.message);
        this.fail(502, e.message);
        return;
      }
      if (!res) return;
      const rest = this.respBuf.subarray(res.size);
      this.respBuf = EMPTY;
      if (res.status === 101) {
        if (!this.req.upgrade) {
          this.fail(502, "the app switched protocols without an Upgrade request");
          return;
        }
        return this.startTunnel(res, rest);
      }
      if (res.status >= 100 && res.status < 200) {
        // Interim response (100 Continue, 103): passed on to HTTP/1.1 clients.
        if (this.req.minor === 1) this.client.write(`HTTP/1.1 ${res.status} ${res.reason}\r\n${serializeFields(endToEnd(res))}\r\n`);
        this.respBuf = rest;
        if (!rest.length) return;
        continue;
      }
      this.res = res;
      this.respond(res);
      if (rest.length || this.resBody!.done) this.responseBody(rest);
      return;
    }
  }

  private respond(res: ResponseHead): void {
    const req = this.req;
    this.resBody = res.framing.kind === "none" ? BodyReader.NONE : new BodyReader(res.framing, 502);
    this.transform = res.framing.kind !== "none" ? (this.ctx.filter?.(req, res) ?? null) : null;
    if (!this.reqBody.done || res.framing.kind === "close" || this.session.ended) this.closeClient = true;
    const fields = endToEnd(res);
    let head = `HTTP/1.1 ${res.status} ${res.reason}\r\n${serializeFields(fields)}`;
    const f = res.framing;
    if (f.kind === "none") {
      const cl = field(res, "content-length");
      if (cl !== undefined) head += `Content-Length: ${cl}\r\n`;
    } else if (f.kind === "length" && (!this.transform || this.transform.addsBytes !== undefined)) head += `Content-Length: ${f.length + (this.transform?.addsBytes ?? 0)}\r\n`;
    else if (req.minor === 1 && f.kind !== "close") {
      head += "Transfer-Encoding: chunked\r\n";
      this.toClientChunked = true;
    } else if (req.minor === 1 && this.transform) {
      head += "Transfer-Encoding: chunked\r\n";
      this.toClientChunked = true;
      this.closeClient = true;
    } else this.closeClient = true;
    if (this.closeClient) head += "Connection: close\r\n";
    else if (req.minor === 0) head += "Connection: keep-alive\r\n";
    head += "\r\n";
    // Server-sent events live as long as the page: a tunnel for drain purposes.
    const type = field(res, "content-type") ?? "";
    if (/^text\/event-stream/i.test(type) && this.backend) {
      this.backend.requests.delete(this);
      this.backend.tunnels.add(this);
      this.ctx.backends.changed();
    }
    if (!this.client.write(head)) this.up?.pause();
  }

  private responseBody(d: Buffer): void {
    let r: { data: Buffer[]; used: number };
    try {
      r = this.resBody!.read(d);
    } catch (e) {
      this.ctx.onUpstreamError?.((e as Error).message);
      this.abort();
      return;
    }
    let data = r.data;
    if (this.transform) {
      const t = this.transform;
      data = data.map((x) => t.push(x)).filter((x) => x.length);
      if (this.resBody!.done) {
        const tail = t.end();
        if (tail.length) data.push(tail);
      }
    }
    const out: Buffer[] = [];
    if (this.toClientChunked) {
      for (const x of data) out.push(...chunk(x));
      if (this.resBody!.done) out.push(lastChunk(this.resBody!.trailers));
    } else out.push(...data);
    if (out.length && !this.client.writev(out)) this.up?.pause();
    if (this.resBody!.done) this.complete(r.used < d.length);
  }

  /** The response is complete: give the upstream back (when reusable) and the client its next request. */
  private complete(extraBytes: boolean): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    const up = this.up!;
    this.up = null;
    const reusable = !extraBytes && this.res!.keepAlive && this.reqBody.done;
    if (reusable) this.ctx.backends.release(this.backend!, up);
    else up.destroy();
    this.session.finished(this.closeClient);
  }

  private onUpstreamEnd(): void {
    if (this.ended) return;
    if (this.tunnel) {
      this.client.end();
      if (this.up?.closed) this.finishTunnel();
      return;
    }
    if (this.resBody?.framing.kind === "close") {
      // Close-delimited body: its end is the upstream's FIN.
      if (this.transform) {
        const tail = this.transform.end();
        if (tail.length) this.client.writev(this.toClientChunked ? chunk(tail) : [tail]);
      }
      if (this.toClientChunked) this.client.write(lastChunk());
      this.resBody.done = true;
      this.closeClient = true;
      this.complete(false);
      return;
    }
    if (!this.responseStarted) {
      const safe = IDEMPOTENT.has(this.req.method) || (this.reqBody.done && this.replay !== null);
      if (this.reused && !this.retried && safe && this.replay !== null) {
        void this.retry();
        return;
      }
      this.ctx.stats.badGateway++;
      this.fail(502, "the app closed the connection without answering (it crashed or is shutting down)");
      return;
    }
    // Cut in the middle of a response: the client can only see the connection close.
    this.abort();
  }

  private async retry(): Promise<void> {
    this.retried = true;
    this.ctx.stats.retried++;
    const old = this.up;
    this.up = null;
    old?.detach();
    old?.destroy();
    this.detach();
    this.backend = null;
    const got = await this.acquire(false);
    if (!got || this.ended) return;
    this.attach(got.b, got.conn, false);
    const bytes = this.replay!;
    this.replay = null;
    if (this.req.framing.kind === "none") {
      // Nothing was kept for a bodiless request: its head is built again.
      batch(() => this.sendHead());
      this.client.resume();
      return;
    }
    if (!got.conn.writev(bytes)) this.client.pause();
    this.client.resume();
  }

  private startTunnel(res: ResponseHead, rest: Buffer): void {
    this.tunnel = true;
    const b = this.backend!;
    b.requests.delete(this);
    b.tunnels.add(this);
    this.ctx.backends.changed();
    this.client.write(`HTTP/1.1 101 ${res.reason}\r\n${serializeFields(endToEnd(res, ["upgrade"]))}Connection: upgrade\r\n\r\n`);
    if (rest.length) this.client.write(rest);
    const pending = this.session.toTunnel();
    if (pending.length) this.up!.write(pending);
    this.up!.events.close = () => {
      this.client.end();
      this.finishTunnel();
    };
  }

  tunnelFromClient(d: Buffer): void {
    if (this.up && !this.up.write(d)) this.client.pause();
  }

  tunnelClientEnded(): void {
    this.up?.end();
  }

  private finishTunnel(): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
  }

  /** hr answers the request itself (no response byte went out yet) and closes. */
  private fail(status: number, message: string): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    this.up?.destroy();
    this.up = null;
    if (this.responseStarted && this.res) {
      this.session.kill();
      return;
    }
    this.client.write(errorResponse(status, message.startsWith("hr") ? message : `hr: ${message}`, true));
    this.session.finished(true);
  }

  /** Gives up: both connections closed. */
  abort(): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    this.up?.destroy();
    this.up = null;
    this.session.kill();
  }

  /** drain() deadline or hr stopping. */
  cut(reason: string): void {
    if (!this.responseStarted) this.fail(503, reason);
    else {
      this.abort();
    }
  }
}

const FORWARDED = new Set(["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host", "forwarded"]);

/**
 * X-Forwarded-For/-Proto/-Host and Forwarded (RFC 7239) as header lines. Untrusted
 * (default): those the client sent are dropped (endToEnd) and hr's own set;
 * trusted (hr behind another proxy): hr appends its hop to For/Forwarded and keeps
 * the incoming Proto/Host.
 */
export function forwardedBlock(req: RequestHead, clientIp: string, trust: boolean): string {
  let xff: string | undefined;
  let proto: string | undefined;
  let xhost: string | undefined;
  let fwd: string | undefined;
  if (trust) {
    const join = (a: string | undefined, b: string) => (a === undefined ? b : `${a}, ${b}`);
    for (let i = 0; i < req.names.length; i++) {
      const n = req.names[i]!;
      const v = req.headers[i]![1];
      if (n === "x-forwarded-for") xff = join(xff, v);
      else if (n === "x-forwarded-proto") proto = join(proto, v);
      else if (n === "x-forwarded-host") xhost = join(xhost, v);
      else if (n === "forwarded") fwd = join(fwd, v);
    }
  }
  const ip = (clientIp.startsWith("::ffff:") ? clientIp.slice(7) : clientIp) || "unknown";
  const host = req.host ?? "";
  let out = `X-Forwarded-For: ${xff ? `${xff}, ${ip}` : ip}\r\nX-Forwarded-Proto: ${proto ?? "http"}\r\n`;
  if (host || xhost) out += `X-Forwarded-Host: ${xhost ?? host}\r\n`;
  const node = ip.includes(":") ? `"[${ip}]"` : ip;
  const quoted = /["\\]/.test(host) ? JSON.stringify(host) : `"${host}"`;
  const hop = `for=${node}${host ? `;host=${quoted}` : ""};proto=http`;
  return `${out}Forwarded: ${fwd ? `${fwd}, ${hop}` : hop}\r\n`;
}
