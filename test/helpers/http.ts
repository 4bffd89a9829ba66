// Tiny HTTP helpers for tests, on node:http rather than fetch: Bun's fetch
// silently retries requests on reset connections, hiding exactly the failures
// drain and handoff tests must see. node:http in Bun (1.4.5) reports a reset as
// ECONNRESET and never retries; agent: false opens a fresh connection.
import http from "node:http";
import { assertLoopback } from "../../scripts/harness/loopback.ts";



export interface HttpResult {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export interface GetOptions {
  /** A keep-alive http.Agent to reuse connections; default false = new connection, `Connection: close`. */
  agent?: http.Agent | false;
  /** Whole-request timeout (connect + response), default 10 s; rejects with code ETIMEDOUT. */
  timeoutMs?: number;
  headers?: Record<string, string>;
}

/** One GET, never retried. Resolves with any status; rejects on a transport error or timeout (err.code set). */
export function get(url: string, opts: GetOptions = {}): Promise<HttpResult> {
  const u = assertLoopback(url);
  const agent = opts.agent ?? false;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const headers: Record<string, string> = { ...(agent === false ? { Connection: "close" } : {}), ...opts.headers };
  return new Promise((resolve, reject) => {
    let settled = false;
    const finish = (err: Error | null, res?: HttpResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(res!);
    };
    const req = http.request(
      { host: u.hostname.replace(/^\[|\]$/g, ""), port: u.port || 80, path: u.pathname + u.search, method: "GET", agent, headers },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          finish(null, { status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8"), headers: res.headers }),
        );
        res.on("aborted", () => finish(Object.assign(new Error("response aborted"), { code: "ECONNRESET" })));
        res.on("error", (e) => finish(e));
      },
    );
    const timer = setTimeout(() => {
      const e = Object.assign(new Error(`timeout after ${timeoutMs} ms`), { code: "ETIMEDOUT" });
      finish(e);
      req.destroy(e);
    }, timeoutMs);
    req.on("error", (e) => finish(e));
    req.end();
  });
}

export interface WaitOptions {
  /** Give up after this long (default 10 s) with an error naming the last failure. */
  timeoutMs?: number;
  /** The body must match (default: any 200). */
  match?: RegExp;
  /** Pause between attempts, default 50 ms. */
  intervalMs?: number;
}

/** Polls until GET url answers 200 with a body matching `match`; returns that response. */
export async function waitForHttp(url: string, opts: WaitOptions = {}): Promise<HttpResult> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const interval = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last = "no attempt";
  while (true) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      const r = await get(url, { timeoutMs: Math.max(100, Math.min(2_000, left)) });
      if (r.status === 200 && (!opts.match || opts.match.test(r.body))) return r;
      last = `status ${r.status} body ${JSON.stringify(r.body.slice(0, 200))}`;
    } catch (e) {
      last = (e as NodeJS.ErrnoException).code ?? String(e);
    }
    await new Promise((r) => setTimeout(r, Math.min(interval, Math.max(0, deadline - Date.now()))));
  }
  throw new Error(`waitForHttp ${url}${opts.match ? ` ${opts.match}` : ""}: not ready after ${timeoutMs} ms (last: ${last})`);
}
