// A bounded, non-retrying HTTP load client for drain/handoff tests and
// benchmarks. Loopback only. Half the workers (keepAliveShare) reuse one
// keep-alive connection each (the case servers get wrong: closing idle
// keep-alive connections races with requests already on their way); the others
// open a new connection per request (Connection: close). A failed request is
// never retried and every failure is counted.
import http from "node:http";
import { assertLoopback } from "./loopback.ts";

export interface LoadOptions {
  url: string;
  /** Concurrent request loops, default 50. */
  concurrency?: number;
  /** Share of loops using a keep-alive connection, default 0.5. */
  keepAliveShare?: number;
  /** Stop by itself after this long (default 30 s; hard cap 10 min). */
  durationMs?: number;
  /** Stop by itself after this many requests in total (default 1,000,000). */
  maxRequests?: number;
  /** Per-request timeout, counted as a failure ("ETIMEDOUT"), default 10 s. */
  timeoutMs?: number;
  /** Optional pause between one loop's requests, default 0. */
  pauseMs?: number;
}

export interface LoadFailure {
  /** ms since start when the request started / failed */
  startMs: number;
  atMs: number;
  keepAlive: boolean;
  error: string;
}

export interface LoadResult {
  ok: number;
  failed: number;
  /** Failures by code/message: "ECONNRESET", "ECONNREFUSED", "ETIMEDOUT", "status 503", ... */
  errors: Record<string, number>;
  /** OK responses per body prefix up to " pid=" (e.g. "hello from x v1 gen=2"). */
  bodies: Map<string, number>;
  /** Latency of every OK request, in order of completion. */
  latenciesMs: number[];
  /** The first 200 failures, with timing, for diagnosis. */
  failures: LoadFailure[];
  /** Wall time from start to the last request's end. */
  elapsedMs: number;
}

export interface LoadHandle {
  /** Stops issuing requests, waits for those in flight (bounded by timeoutMs), returns the totals. */
  stop(): Promise<LoadResult>;
  /** Resolves when the load ends by itself (durationMs/maxRequests) or after stop(). */
  done: Promise<LoadResult>;
  /** Counters so far (ok, failed, issued), without stopping. */
  progress(): { ok: number; failed: number; issued: number };
}

const HARD_CAP_MS = 10 * 60_000;

function bodyKey(body: string): string {
  const i = body.indexOf(" pid=");
  return (i >= 0 ? body.slice(0, i) : body.slice(0, 80)).trim();
}

export function startLoad(opts: LoadOptions): LoadHandle {
  const u = assertLoopback(opts.url);
  const concurrency = Math.max(1, Math.floor(opts.concurrency ?? 50));
  const share = Math.min(1, Math.max(0, opts.keepAliveShare ?? 0.5));
  const keepAliveWorkers = Math.round(concurrency * share);
  const durationMs = Math.min(opts.durationMs ?? 30_000, HARD_CAP_MS);
  const maxRequests = opts.maxRequests ?? 1_000_000;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const pauseMs = opts.pauseMs ?? 0;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const port = Number(u.port || 80);
  const path = u.pathname + u.search;

  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const result: LoadResult = {
    ok: 0,
    failed: 0,
    errors: {},
    bodies: new Map(),
    latenciesMs: [],
    failures: [],
    elapsedMs: 0,
  };
  let issued = 0;
  let stopped = false;
  const agents: http.Agent[] = [];

  const fail = (startMs: number, keepAlive: boolean, error: string) => {
    result.failed++;
    result.errors[error] = (result.errors[error] ?? 0) + 1;
    if (result.failures.length < 200) result.failures.push({ startMs, atMs: now(), keepAlive, error });
  };

  const once = (agent: http.Agent | false): Promise<void> =>
    new Promise((resolve) => {
      const keepAlive = agent !== false;
      const start = now();
      let settled = false;
      const settle = (error: string | null, body?: string) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (error) fail(start, keepAlive, error);
        else {
          result.ok++;
          result.latenciesMs.push(now() - start);
          const k = bodyKey(body ?? "");
          result.bodies.set(k, (result.bodies.get(k) ?? 0) + 1);
        }
        resolve();
      };
      const req = http.request(
        { host, port, path, method: "GET", agent, headers: keepAlive ? {} : { Connection: "close" } },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) settle(null, Buffer.concat(chunks).toString("utf8"));
            else settle(`status ${status}`);
          });
          res.on("aborted", () => settle("response aborted"));
          res.on("error", (e: NodeJS.ErrnoException) => settle(e.code ?? e.message));
        },
      );
      const timer = setTimeout(() => {
        settle("ETIMEDOUT");
        req.destroy();
      }, timeoutMs);
      req.on("error", (e: NodeJS.ErrnoException) => settle(e.code ?? e.message));
      req.end();
    });

  const worker = async (i: number) => {
    let agent: http.Agent | false = false;
    if (i < keepAliveWorkers) {
      agent = new http.Agent({ keepAlive: true, maxSockets: 1, maxFreeSockets: 1 });
      agents.push(agent);
    }
    while (!stopped && issued < maxRequests && now() < durationMs) {
      issued++;
      await once(agent);
      if (pauseMs > 0 && !stopped) await new Promise((r) => setTimeout(r, pauseMs));
    }
  };

  const done = Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i))).then(() => {
    stopped = true;
    result.elapsedMs = now();
    for (const a of agents) a.destroy();
    return result;
  });

  return {
    stop() {
      stopped = true;
      return done;
    },
    done,
    progress: () => ({ ok: result.ok, failed: result.failed, issued }),
  };
}

/** Percentile (0..100) of a list of numbers; NaN when empty. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}
