/**
 * dev.live_reload (proxy strategy only): HTTP-aware forwarding. hr parses requests
 * on its public socket (node:http fed with the accepted sockets), forwards each to
 * the app over a fresh upstream connection (DevProxy's wait-for-the-app logic), and
 *
 * - injects RELOAD_SCRIPT before `</body>` of text/html responses that are not
 *   compressed (Content-Length fixed; compressed or non-HTML bodies pass untouched);
 * - serves `GET /__hr/events` itself: a Server-Sent Events stream on which hr sends
 *   `event: reload` after each successful restart (the script reloads the page);
 * - passes Upgrade requests (WebSocket) through as raw bytes.
 *
 * Without live_reload the proxy stays a raw byte pipe (protocol-agnostic).
 */
import http from "node:http";
import type net from "node:net";

export const EVENTS_PATH = "/__hr/events";

export const RELOAD_SCRIPT =
  `<script data-hr-live-reload>(()=>{const s=new EventSource(${JSON.stringify(EVENTS_PATH)});` +
  `s.addEventListener("reload",()=>location.reload());})();</script>`;

/** Inserts the script before the last `</body>` (case-insensitive), else appends it. */
export function injectScript(html: string, script = RELOAD_SCRIPT): string {
  const i = html.toLowerCase().lastIndexOf("</body>");
  return i < 0 ? html + script : html.slice(0, i) + script + html.slice(i);
}

/** Should this response get the script? text/html and not compressed. */
export function injectable(headers: http.IncomingHttpHeaders, method: string | undefined, status: number): boolean {
  if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) return false;
  const type = String(headers["content-type"] ?? "").toLowerCase();
  if (!type.startsWith("text/html")) return false;
  const enc = String(headers["content-encoding"] ?? "identity").toLowerCase().trim();
  return enc === "" || enc === "identity";
}

export interface Upstream {
  /** A connected socket to the app, "down" (no app: `downText` says why), or null (gave up). */
  connect(client: net.Socket): Promise<net.Socket | "down" | null>;
  downText(): string;
}

const HOP = new Set(["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer"]);

export class LiveReload {
  readonly server: http.Server;
  private readonly clients = new Set<http.ServerResponse>();
  private keepalive: ReturnType<typeof setInterval> | null = null;
  /** reload events sent (for tests / logs). */
  sent = 0;

  constructor(private readonly upstream: Upstream) {
    this.server = http.createServer((req, res) => void this.onRequest(req, res));
    this.server.on("upgrade", (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => void this.onUpgrade(req, socket, head));
    this.server.on("clientError", (_e, socket: net.Socket) => socket.destroy());
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.write(": ping\n\n");
    }, 15_000);
    this.keepalive.unref?.();
  }

  /** Feed an accepted socket (from DevProxy's listener). */
  accept(socket: net.Socket): void {
    this.server.emit("connection", socket);
    socket.resume();
  }

  /** Tell every open page to reload. */
  reload(gen: number): void {
    for (const c of this.clients) c.write(`event: reload\ndata: ${gen}\n\n`);
    if (this.clients.size) this.sent++;
  }

  get listeners(): number {
    return this.clients.size;
  }

  close(): void {
    if (this.keepalive) clearInterval(this.keepalive);
    for (const c of this.clients) c.destroy();
    this.clients.clear();
    this.server.close();
  }

  private events(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.writeHead(200, { "Content-Type": "text/event-stream", "Cache-Control": "no-store", Connection: "keep-alive", "X-Accel-Buffering": "no" });
    res.write("retry: 500\n\n");
    this.clients.add(res);
    req.socket.setTimeout(0);
    res.on("close", () => this.clients.delete(res));
  }

  private async onRequest(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (req.url === EVENTS_PATH || req.url?.startsWith(`${EVENTS_PATH}?`)) return this.events(req, res);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const headers: http.OutgoingHttpHeaders = {};
    for (const [k, v] of Object.entries(req.headers)) if (!HOP.has(k) && v !== undefined) headers[k] = v;
    headers.connection = "close";
    if (body.length || req.headers["content-length"] !== undefined) headers["content-length"] = body.length;
    // An app that closes on the request before answering (an old app stopping) gets it
    // again on the next app, as the raw proxy's replay does.
    for (let attempt = 0; attempt < 5; attempt++) {
      const up = await this.upstream.connect(req.socket);
      if (res.destroyed) {
        if (up && up !== "down") up.destroy();
        return;
      }
      if (up === "down" || up === null) {
        const text = up === "down" ? this.upstream.downText() : "hr dev: no app accepted the connection in time.\n";
        res.writeHead(up === "down" ? 502 : 504, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(text), "Cache-Control": "no-store" });
        res.end(text);
        return;
      }
      const answered = await this.forward(req, res, up, headers, body);
      if (answered) return;
    }
    if (!res.headersSent) res.writeHead(502, { "Content-Type": "text/plain; charset=utf-8" });
    res.end("hr dev: the app closed the connection without answering.\n");
  }

  /** Resolves true once a response was (being) sent, false if the app failed before answering. */
  private forward(req: http.IncomingMessage, res: http.ServerResponse, up: net.Socket, headers: http.OutgoingHttpHeaders, body: Buffer): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      // The socket only proves the app accepts (it waited for the app like the raw proxy);
      // the request goes over node:http's own connection (Bun's client ignores createConnection).
      const port = up.remotePort;
      up.destroy();
      const upReq = http.request({ host: "127.0.0.1", port, agent: false, method: req.method, path: req.url, headers, setHost: false });
      upReq.on("error", () => {
        if (!settled) {
          settled = true;
          resolve(false);
        } else res.destroy();
      });
      upReq.on("response", (upRes) => {
        settled = true;
        resolve(true);
        const out: http.OutgoingHttpHeaders = {};
        for (const [k, v] of Object.entries(upRes.headers)) if (!HOP.has(k) && v !== undefined) out[k] = v;
        const status = upRes.statusCode ?? 502;
        if (injectable(upRes.headers, req.method, status)) {
          const parts: Buffer[] = [];
          upRes.on("data", (c: Buffer) => parts.push(c));
          upRes.on("end", () => {
            const html = Buffer.from(injectScript(Buffer.concat(parts).toString("utf8")));
            out["content-length"] = html.length;
            res.writeHead(status, upRes.statusMessage, out);
            res.end(html);
          });
          upRes.on("error", () => res.destroy());
          return;
        }
        res.writeHead(status, upRes.statusMessage, out);
        upRes.pipe(res);
        upRes.on("error", () => res.destroy());
      });
      res.on("close", () => {
        if (!res.writableFinished) upReq.destroy();
      });
      upReq.end(body);
    });
  }

  private async onUpgrade(req: http.IncomingMessage, socket: net.Socket, head: Buffer): Promise<void> {
    const up = await this.upstream.connect(socket);
    if (!up || up === "down") {
      socket.destroy();
      return;
    }
    let raw = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
    for (let i = 0; i < req.rawHeaders.length; i += 2) raw += `${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}\r\n`;
    up.write(`${raw}\r\n`);
    if (head.length) up.write(head);
    up.pipe(socket);
    socket.pipe(up);
    const done = () => {
      up.destroy();
      socket.destroy();
    };
    up.on("error", done);
    socket.on("error", done);
    up.on("close", done);
    socket.on("close", done);
  }
}
