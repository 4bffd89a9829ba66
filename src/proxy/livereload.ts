/**
 * dev.live_reload: a response filter and one endpoint on hr's proxy (src/proxy).
 *
 * - HTML responses that are not compressed get RELOAD_SCRIPT before their last
 *   `</body>` (appended when there is none), streamed: only the bytes from the
 *   latest `</body>` on are held back (at most HOLD_MAX, beyond which the script
 *   goes at the end). The body grows by exactly the script, so a Content-Length is
 *   adjusted, not dropped. Compressed or non-HTML bodies pass untouched.
 * - `GET /__hr/events` is answered by hr itself: a Server-Sent Events stream on
 *   which hr sends `event: reload` after each successful restart.
 */
import type { BodyTransform, LocalResponder } from "./proxy.ts";
import type { RequestHead, ResponseHead } from "./http1.ts";

export const EVENTS_PATH = "/__hr/events";

export const RELOAD_SCRIPT =
  `<script data-hr-live-reload>(()=>{const s=new EventSource(${JSON.stringify(EVENTS_PATH)});` +
  `s.addEventListener("reload",()=>location.reload());})();</script>`;

/** Should this response get the script? text/html and not compressed. */
export function injectable(headers: Record<string, string | string[] | undefined>, method: string | undefined, status: number): boolean {
  if (method === "HEAD" || status === 204 || status === 304 || (status >= 100 && status < 200)) return false;
  const type = String(headers["content-type"] ?? "").toLowerCase();
  if (!type.startsWith("text/html")) return false;
  const enc = String(headers["content-encoding"] ?? "identity").toLowerCase().trim();
  return enc === "" || enc === "identity";
}

const HOLD_MAX = 1 << 20;
const CLOSE_BODY = "</body>";

/** Streams a body, inserting `script` before the last `</body>` seen. */
export class ScriptInjector implements BodyTransform {
  readonly addsBytes: number;
  private held: Buffer = Buffer.alloc(0);
  private readonly script: Buffer;

  constructor(script = RELOAD_SCRIPT) {
    this.script = Buffer.from(script);
    this.addsBytes = this.script.length;
  }

  push(data: Buffer): Buffer {
    const all = this.held.length ? Buffer.concat([this.held, data]) : data;
    // Latest "</body>" in the held bytes + new data (case-insensitive; latin1 is byte-safe for UTF-8).
    const i = all.toString("latin1").toLowerCase().lastIndexOf(CLOSE_BODY);
    let cut: number;
    if (i >= 0) cut = i;
    else cut = Math.max(0, all.length - (CLOSE_BODY.length - 1)); // a "</bo" may be split across reads
    if (all.length - cut > HOLD_MAX) cut = all.length;
    this.held = all.subarray(cut);
    return all.subarray(0, cut);
  }

  end(): Buffer {
    const tail = this.held;
    this.held = Buffer.alloc(0);
    const i = tail.toString("latin1").toLowerCase().lastIndexOf(CLOSE_BODY);
    if (i < 0) return Buffer.concat([tail, this.script]);
    return Buffer.concat([tail.subarray(0, i), this.script, tail.subarray(i)]);
  }
}

function headerMap(res: ResponseHead): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of res.headers) out[k.toLowerCase()] = v;
  return out;
}

export class LiveReload {
  private readonly clients = new Set<LocalResponder>();
  private readonly keepalive: ReturnType<typeof setInterval>;
  /** reload events sent (for tests / logs). */
  sent = 0;

  constructor() {
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.write(": ping\n\n");
    }, 15_000);
    this.keepalive.unref?.();
  }

  /** Proxy filter: an injector for HTML responses. */
  readonly filter = (req: RequestHead, res: ResponseHead): BodyTransform | null =>
    injectable(headerMap(res), req.method, res.status) ? new ScriptInjector() : null;

  /** Proxy intercept: hr answers /__hr/events itself. */
  readonly intercept = (req: RequestHead): ((res: LocalResponder) => void) | null => {
    if (req.target !== EVENTS_PATH && !req.target.startsWith(`${EVENTS_PATH}?`)) return null;
    return (res) => {
      res.write("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\nretry: 500\n\n");
      this.clients.add(res);
      res.onClose(() => this.clients.delete(res));
    };
  };

  /** Tell every open page to reload. */
  reload(gen: number): void {
    for (const c of this.clients) c.write(`event: reload\ndata: ${gen}\n\n`);
    if (this.clients.size) this.sent++;
  }

  get listeners(): number {
    return this.clients.size;
  }

  close(): void {
    clearInterval(this.keepalive);
    for (const c of this.clients) c.end();
    this.clients.clear();
  }
}
