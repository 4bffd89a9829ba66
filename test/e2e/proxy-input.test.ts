/**
 * The HTTP proxy under bad and hostile input (serve.strategy = "proxy", and
 * `hr dev` with live_reload), black-box over raw sockets:
 *
 *  - a corpus of malformed and smuggling requests, each with the status it must
 *    get per RFC 9112/9110 (400 and close, 431), run in front of a strict app
 *    (node:http, test/fixtures/naive/echo.mjs) and a lenient one (Python
 *    http.server, python-echo.py), both reporting every request they receive: no
 *    smuggled request reaches either, a request refused for its head reaches
 *    neither, one refused for its body is never complete;
 *  - valid but unusual framing that must be forwarded intact (chunk extensions
 *    with BWS, trailers, pipelining, binary bodies, HTTP/1.0), header names and
 *    values byte for byte, hop-by-hop fields removed, X-Forwarded-For/-Proto/-Host
 *    and Forwarded added;
 *  - [[listen]] trust_forwarded (false: client-sent X-Forwarded-* and Forwarded dropped;
 *    true: kept, hr's hop appended) and protocol = "tcp" (raw bytes, across a reload);
 *  - slowloris: hundreds of connections trickling their headers don't stop other
 *    requests being served, and each gets 408 and is closed; with `ulimit -n 256`
 *    and 1,000 idle connections hr keeps serving, answers `hr status`, and says
 *    so in a log line;
 *  - `hr dev` (dev.strategy = "proxy", live_reload on) survives an aborted upload
 *    and malformed chunks (before: exit 1 with a Bun stack trace).
 *
 * Decided per RFC 9112 §7.1.1: `4 ;x` is a valid chunk-size line (BWS before a
 * chunk extension; "recipients MUST parse for such bad whitespace and remove it"),
 * so it must reach the app as a 4-byte body, not be refused. Not covered: what
 * hr answers for ambiguous inputs the RFCs let a recipient either reject or
 * repair (bare CR/NUL in a field value, bare LF line endings, identical duplicate
 * Content-Length values).
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import net from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary, ROOT } from "../helpers/hr.ts";
import { get } from "../helpers/http.ts";
import { cleanupServes, proxyToml, startServe, taggedPids, type ServeHandle } from "../helpers/serve.ts";
import { DevHarness, startLiveReloadDev } from "../helpers/dev.ts";

const ECHO = join(ROOT, "test", "fixtures", "naive", "echo.mjs");
const PY_ECHO = join(ROOT, "test", "fixtures", "naive", "python-echo.py");
const TCP_ECHO = join(ROOT, "test", "fixtures", "naive", "tcp-echo.mjs");
const BUN_NAIVE = join(ROOT, "test", "fixtures", "naive", "bun-serve.ts");

/** One worker, drain_timeout 5 s. */
const serveToml = (cmd: string[], listen?: string) => proxyToml(cmd, { workers: 1, drain: "5s", listen });

interface Response1 {
  status: number;
  head: string;
  body: Buffer;
}

interface Exchange {
  /** Everything the server sent. */
  raw: Buffer;
  /** The complete responses in it, in order (framed by Content-Length, chunked, or the close). */
  responses: Response1[];
  statuses: number[];
  /** The server closed the connection (FIN or reset) within the wait. */
  closed: boolean;
  /** A socket error (e.g. ECONNRESET), if any. */
  error?: string;
}

/** Splits what a server sent into responses (Content-Length, chunked, or read-to-close bodies). */
function parseResponses(raw: Buffer, closed: boolean): Response1[] {
  const out: Response1[] = [];
  let at = 0;
  while (at < raw.length) {
    const end = raw.indexOf("\r\n\r\n", at);
    if (end < 0) break;
    const head = raw.subarray(at, end).toString("latin1");
    const status = Number(head.match(/^HTTP\/1\.[01] (\d{3})/)?.[1] ?? 0);
    let p = end + 4;
    let body: Buffer;
    if (/^transfer-encoding:.*chunked/im.test(head)) {
      const parts: Buffer[] = [];
      for (;;) {
        const le = raw.indexOf("\r\n", p);
        if (le < 0) return out;
        const n = parseInt(raw.subarray(p, le).toString("latin1").split(";")[0]!.trim(), 16);
        p = le + 2;
        if (!n) {
          const te = raw.indexOf("\r\n\r\n", p - 2);
          if (te < 0) return out;
          p = te + 4;
          break;
        }
        parts.push(raw.subarray(p, p + n));
        p += n + 2;
      }
      body = Buffer.concat(parts);
    } else if (/^content-length:/im.test(head)) {
      const n = Number(head.match(/^content-length:\s*(\d+)/im)![1]);
      if (raw.length < p + n) return out;
      body = raw.subarray(p, p + n);
      p += n;
    } else if (status === 204 || status === 304 || (status >= 100 && status < 200)) body = Buffer.alloc(0);
    else {
      if (!closed) return out;
      body = raw.subarray(p);
      p = raw.length;
    }
    out.push({ status, head, body });
    at = p;
  }
  return out;
}

/**
 * Sends `data` (parts are written one after another, `pauseMs` apart) on a fresh
 * connection and collects the answer until the server closes the connection, or
 * nothing more came for `quietMs` once `expectResponses` complete responses are in.
 */
function exchange(port: number, data: string | Buffer | (string | Buffer)[], opts: { quietMs?: number; maxMs?: number; expectResponses?: number; pauseMs?: number } = {}): Promise<Exchange> {
  const quietMs = opts.quietMs ?? 700;
  const maxMs = opts.maxMs ?? 8000;
  const parts = Array.isArray(data) ? data : [data];
  return new Promise((resolve) => {
    const sock = net.connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    let done = false;
    let quiet: Timer | undefined;
    let error: string | undefined;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(quiet);
      clearTimeout(cap);
      sock.destroy();
      const raw = Buffer.concat(chunks);
      const responses = parseResponses(raw, closed);
      resolve({ raw, responses, statuses: responses.map((r) => r.status), closed, error });
    };
    const cap = setTimeout(() => finish(false), maxMs);
    sock.on("connect", async () => {
      for (const [i, p] of parts.entries()) {
        if (i > 0 && opts.pauseMs) await Bun.sleep(opts.pauseMs);
        if (done) return;
        sock.write(p);
      }
    });
    sock.on("data", (d: Buffer) => {
      chunks.push(d);
      clearTimeout(quiet);
      if (parseResponses(Buffer.concat(chunks), false).length >= (opts.expectResponses ?? 1)) quiet = setTimeout(() => finish(false), quietMs);
    });
    sock.on("end", () => finish(true));
    sock.on("close", () => finish(true));
    sock.on("error", (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
      finish(true);
    });
  });
}

interface Echoed {
  url: string;
  method: string;
  httpVersion: string;
  rawHeaders: string[];
  bodyBytes: number;
  bodySha256: string;
}

/** The JSON the echo app answered with, for response i. */
function echoed(x: Exchange, i = 0): Echoed {
  const r = x.responses[i];
  if (!r) throw new Error(`no response #${i + 1}; got ${JSON.stringify(x.raw.toString("latin1").slice(0, 300))}`);
  return JSON.parse(r.body.toString("utf8"));
}

const sha = (s: string | Buffer) => createHash("sha256").update(s).digest("hex");
const headerValues = (raw: string[], name: string) => raw.flatMap((v, i) => (i % 2 === 0 && v.toLowerCase() === name.toLowerCase() ? [raw[i + 1]!] : []));
const show = (x: Exchange) => `${JSON.stringify(x.raw.toString("latin1").slice(0, 300))}${x.error ? ` (${x.error})` : ""}`;

const H = "Host: hr.test\r\n";
const SMUGGLED = `GET /smuggled HTTP/1.1\r\n${H}\r\n`;
/**
 * [name, request (with {u} for a unique target), status, where the error is]: "head"
 * errors must never reach the app; "body" errors (found while streaming a body the
 * app already started receiving) must never give the app a complete request.
 */
const REJECTED: [string, string, 400 | 431, "head" | "body"][] = [
  ["Content-Length + Transfer-Encoding (CL.TE)", `POST {u} HTTP/1.1\r\n${H}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400, "head"],
  ["Transfer-Encoding + Content-Length (TE.CL)", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n2f\r\n${SMUGGLED}\r\n0\r\n\r\n`, 400, "head"],
  ["two different Content-Length fields", `POST {u} HTTP/1.1\r\n${H}Content-Length: 3\r\nContent-Length: 40\r\n\r\nabc${SMUGGLED}`, 400, "head"],
  ["Content-Length list with different values", `POST {u} HTTP/1.1\r\n${H}Content-Length: 3, 40\r\n\r\nabc${SMUGGLED}`, 400, "head"],
  ["Content-Length not a number", `POST {u} HTTP/1.1\r\n${H}Content-Length: abc\r\n\r\n`, 400, "head"],
  ["Content-Length negative", `POST {u} HTTP/1.1\r\n${H}Content-Length: -1\r\n\r\n`, 400, "head"],
  ["Content-Length with a sign", `POST {u} HTTP/1.1\r\n${H}Content-Length: +3\r\n\r\nabc`, 400, "head"],
  ["Content-Length in hex", `POST {u} HTTP/1.1\r\n${H}Content-Length: 0x3\r\n\r\nabc`, 400, "head"],
  ["Content-Length empty", `POST {u} HTTP/1.1\r\n${H}Content-Length: \r\n\r\n`, 400, "head"],
  ["Transfer-Encoding whose final coding is not chunked", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400, "head"],
  ["Transfer-Encoding: xchunked", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400, "head"],
  ["Transfer-Encoding split over two fields, chunked not last", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400, "head"],
  ["whitespace between field name and colon", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n${SMUGGLED}`, 400, "head"],
  ["obsolete line folding (obs-fold)", `GET {u} HTTP/1.1\r\n${H}X-Folded: one\r\n two\r\n\r\n`, 400, "head"],
  ["a header line without a colon", `GET {u} HTTP/1.1\r\n${H}NoColonHere\r\n\r\n`, 400, "head"],
  ["HTTP/1.1 without Host", `GET {u} HTTP/1.1\r\nX-A: 1\r\n\r\n`, 400, "head"],
  ["two Host fields", `GET {u} HTTP/1.1\r\n${H}Host: other.test\r\n\r\n`, 400, "head"],
  ["a space inside the request target", `GET {u} b HTTP/1.1\r\n${H}\r\n`, 400, "head"],
  ["garbage request line", `HELLO {u}\r\n${H}\r\n`, 400, "head"],
  ["chunk size zz", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n`, 400, "body"],
  ["chunk size -1", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n-1\r\nabcd\r\n0\r\n\r\n`, 400, "body"],
  ["chunk size 0x4", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n0x4\r\nabcd\r\n0\r\n\r\n`, 400, "body"],
  ["chunk size overflowing 64 bits", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n10000000000000004\r\nabcd\r\n0\r\n\r\n${SMUGGLED}`, 400, "body"],
  ["chunk data longer than its size", `POST {u} HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n4\r\nabcdXX\r\n0\r\n\r\n`, 400, "body"],
  ["header block of 256 KiB", `GET {u} HTTP/1.1\r\n${H}X-Big: ${"b".repeat(256 * 1024)}\r\n\r\n`, 431, "head"],
  ["500 header fields (4.5 KiB)", `GET {u} HTTP/1.1\r\n${H}${"X-N: 1\r\n".repeat(500)}\r\n`, 431, "head"],
];

// Each corpus runs against a strict backend (node:http, llhttp) and a lenient one
// (Python http.server, HTTP/1.1): what hr lets through, the lenient one acts on.
for (const [backend, cmd] of [
  ["node:http", ["node", ECHO]],
  ["python http.server (lenient)", ["python3", PY_ECHO]],
] as const) {
  describe(`proxy in front of ${backend}: malformed and smuggling requests`, () => {
    let h: ServeHandle;
    beforeAll(async () => {
      ensureBinary();
      h = await startServe({ toml: serveToml([...cmd]) });
    });
    afterAll(async () => {
      if (!h) return;
      if (process.env.HR_TEST_SHOW_LOGS) console.log(`exit ${h.proc.exitCode} ${h.proc.signalCode}`, h.logs());
      await h.stop();
      // This describe's own processes only (another describe's hr may still be running).
      for (let i = 0; i < 100 && taggedPids(h.tag).length; i++) await Bun.sleep(20);
      expect(taggedPids(h.tag)).toEqual([]);
    });

    async function appSaw(): Promise<{ started: string[]; completed: string[] }> {
      return JSON.parse((await get(`http://127.0.0.1:${h.port}/__count`)).body);
    }

    REJECTED.forEach(([name, req, status, where], i) => {
      test(`${name} → ${status} and close`, async () => {
        const u = `/c${i}`;
        const x = await exchange(h.port, req.replaceAll("{u}", u), { maxMs: 5000 });
        expect(x.statuses, `answer: ${show(x)}`).toEqual([status]);
        expect(x.closed, `the connection must be closed after the ${status}; answer: ${show(x)}`).toBe(true);
        const saw = await appSaw();
        expect(saw.started.filter((t) => t.includes("smuggled"))).toEqual([]);
        if (where === "head") expect(saw.started.filter((t) => t === u), "a request refused for its head must not reach the app").toEqual([]);
        expect(saw.completed.filter((t) => t === u), "the app must not get a complete request out of it").toEqual([]);
      }, 20_000);
    });

    test("chunk extension after BWS (`4 ;x`, valid per RFC 9112 §7.1.1) and quoted ones: forwarded, body intact", async () => {
      for (const ext of [" ;x", ';name="quoted;value"', ";a=b ; c"]) {
        const x = await exchange(h.port, `POST /ext HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n4${ext}\r\nabcd\r\n3\r\nefg\r\n0\r\n\r\n`);
        expect(x.statuses, `chunk-size line 4${ext}: ${show(x)}`).toEqual([200]);
        const e = echoed(x);
        expect(e.bodyBytes).toBe(7);
        expect(e.bodySha256).toBe(sha("abcdefg"));
      }
    }, 20_000);

    test("chunked body with a trailer section, then a pipelined request on the same connection", async () => {
      const x = await exchange(h.port, `POST /t1 HTTP/1.1\r\n${H}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nGET /t2 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { expectResponses: 2 });
      expect(x.statuses, show(x)).toEqual([200, 200]);
      expect(echoed(x, 0).url).toBe("/t1");
      expect(echoed(x, 0).bodySha256).toBe(sha("hello"));
      expect(echoed(x, 1).url).toBe("/t2");
    }, 20_000);

    test("pipelining: three requests in one write are answered in order", async () => {
      const x = await exchange(h.port, `GET /p1 HTTP/1.1\r\n${H}\r\nPOST /p2 HTTP/1.1\r\n${H}Content-Length: 3\r\n\r\nxyzGET /p3 HTTP/1.1\r\n${H}Connection: close\r\n\r\n`, { expectResponses: 3 });
      expect(x.statuses, show(x)).toEqual([200, 200, 200]);
      expect([0, 1, 2].map((i) => echoed(x, i).url)).toEqual(["/p1", "/p2", "/p3"]);
      expect(echoed(x, 1).bodySha256).toBe(sha("xyz"));
    }, 20_000);

    test("a binary body (every byte value) and header names and values arrive byte for byte", async () => {
      const body = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
      const head = `PUT /bin HTTP/1.1\r\n${H}X-MiXeD-CaSe: Va  lue, "q" ; x=1\r\nx-lower: a\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`;
      const x = await exchange(h.port, [Buffer.from(head, "latin1"), body]);
      expect(x.statuses, show(x)).toEqual([200]);
      const e = echoed(x);
      expect(e.method).toBe("PUT");
      expect(e.bodyBytes).toBe(512);
      expect(e.bodySha256).toBe(sha(body));
      expect(e.rawHeaders).toContain("X-MiXeD-CaSe");
      expect(headerValues(e.rawHeaders, "X-MiXeD-CaSe")).toEqual(['Va  lue, "q" ; x=1']);
      expect(e.rawHeaders).toContain("x-lower");
    }, 20_000);

    test("HTTP/1.0 request without Host: answered, then closed", async () => {
      const x = await exchange(h.port, "GET /old HTTP/1.0\r\n\r\n", { maxMs: 5000 });
      expect(x.statuses, show(x)).toEqual([200]);
      expect(x.closed).toBe(true);
      expect(echoed(x).url).toBe("/old");
    }, 20_000);

    test("hop-by-hop fields are removed (Connection and what it names); X-Forwarded-For/-Proto/-Host and Forwarded are added", async () => {
      const x = await exchange(h.port, `GET /fwd HTTP/1.1\r\nHost: example.test:8443\r\nConnection: X-Hop, keep-alive\r\nX-Hop: secret\r\nX-Forwarded-For: 203.0.113.9\r\nX-End: kept\r\n\r\n`);
      expect(x.statuses, show(x)).toEqual([200]);
      const e = echoed(x);
      const v = (n: string) => headerValues(e.rawHeaders, n);
      expect(v("X-Hop")).toEqual([]);
      expect(v("X-End")).toEqual(["kept"]);
      expect(v("Host")).toEqual(["example.test:8443"]);
      // Spoof-safe whichever way incoming X-Forwarded-For is treated (dropped, or kept and
      // appended to): exactly one field, and its last hop is the real peer.
      const xff = v("X-Forwarded-For");
      expect(xff.length).toBe(1);
      expect(xff[0]!.split(",").at(-1)!.trim()).toBe("127.0.0.1");
      expect(v("X-Forwarded-Proto")).toEqual(["http"]);
      expect(v("X-Forwarded-Host")).toEqual(["example.test:8443"]);
      const fwd = v("Forwarded").join(",");
      expect(fwd).toMatch(/for="?127\.0\.0\.1"?/i);
      expect(fwd).toMatch(/proto=http\b/i);
    }, 20_000);
  });
}

describe("[[listen]] settings: trust_forwarded, protocol = \"tcp\"", () => {
  afterEach(async () => {
    expect(await cleanupServes()).toEqual([]);
  });

  const spoofed = `GET /fwd HTTP/1.1\r\nHost: inner.test\r\nX-Forwarded-For: 203.0.113.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: public.example\r\nForwarded: for=203.0.113.9;proto=https;host=public.example\r\nConnection: close\r\n\r\n`;
  const withListen = (extra: string) => serveToml(["node", ECHO], extra);

  test("trust_forwarded = false: client-sent X-Forwarded-* and Forwarded are dropped, hr's own are set", async () => {
    const h = await startServe({ toml: withListen("trust_forwarded = false") });
    const x = await exchange(h.port, spoofed);
    expect(x.statuses, show(x)).toEqual([200]);
    const e = echoed(x);
    const v = (n: string) => headerValues(e.rawHeaders, n);
    expect(v("X-Forwarded-For")).toEqual(["127.0.0.1"]);
    expect(v("X-Forwarded-Proto")).toEqual(["http"]);
    expect(v("X-Forwarded-Host")).toEqual(["inner.test"]);
    expect(v("Forwarded").join(",")).not.toContain("203.0.113.9");
    expect(v("Forwarded").join(",")).toMatch(/for="?127\.0\.0\.1"?/);
    expect(await h.stop()).toBe(0);
  });

  test("trust_forwarded = true: client-sent ones are kept and hr's hop is appended", async () => {
    const h = await startServe({ toml: withListen("trust_forwarded = true") });
    const x = await exchange(h.port, spoofed);
    expect(x.statuses, show(x)).toEqual([200]);
    const e = echoed(x);
    const v = (n: string) => headerValues(e.rawHeaders, n);
    expect(v("X-Forwarded-For").join(", ").replace(/\s+/g, "")).toBe("203.0.113.9,127.0.0.1");
    expect(v("X-Forwarded-Proto")).toEqual(["https"]);
    expect(v("X-Forwarded-Host")).toEqual(["public.example"]);
    const fwd = v("Forwarded").join(", ");
    expect(fwd).toContain("203.0.113.9");
    expect(fwd).toMatch(/for="?127\.0\.0\.1"?/);
    expect(fwd.indexOf("203.0.113.9")).toBeLessThan(fwd.search(/for="?127\.0\.0\.1/));
    expect(await h.stop()).toBe(0);
  });

  test("protocol = \"tcp\": a non-HTTP service gets raw bytes; across a reload the old connection keeps working until drain_timeout, new ones reach gen2", async () => {
    const toml = proxyToml(["node", TCP_ECHO], { workers: 1, drain: "3s", listen: 'protocol = "tcp"' });
    const h = await startServe({ toml });
    const line = (sock: net.Socket, text: string) =>
      new Promise<string>((resolve, reject) => {
        let got = "";
        const onData = (d: Buffer) => {
          got += d.toString("utf8");
          if (got.includes("\n")) {
            sock.off("data", onData);
            resolve(got.trim());
          }
        };
        sock.on("data", onData);
        sock.once("close", () => reject(new Error(`connection closed before answering ${JSON.stringify(text)} (got ${JSON.stringify(got)})`)));
        sock.write(`${text}\n`);
      });
    const open = () =>
      new Promise<net.Socket>((resolve, reject) => {
        const s = net.connect(h.port, "127.0.0.1", () => resolve(s));
        s.on("error", reject);
      });
    const old = await open();
    let oldClosedAt = 0;
    old.on("close", () => (oldClosedAt = Date.now()));
    try {
      // Bytes no HTTP parser would accept pass through untouched.
      expect(await line(old, "HELO \u00e9 \x01 not http")).toBe("gen=1 HELO \u00e9 \x01 not http");
      const reloadAt = Date.now();
      const reloading = h.reload();
      await h.waitForLog(/gen2 is live/, 20_000);
      const fresh = await open();
      try {
        expect(await line(fresh, "b")).toBe("gen=2 b");
        expect(await line(old, "c")).toBe("gen=1 c");
        for (let i = 0; i < 500 && !oldClosedAt; i++) await Bun.sleep(20);
        expect(oldClosedAt - reloadAt).toBeGreaterThanOrEqual(2000); // drain_timeout 3 s
        expect(await line(fresh, "d")).toBe("gen=2 d");
      } finally {
        fresh.destroy();
      }
      expect((await reloading).code).toBe(0);
    } finally {
      old.destroy();
    }
    expect(await h.stop()).toBe(0);
  }, 30_000);
});

describe("proxy: slow and idle clients", () => {
  afterEach(async () => {
    expect(await cleanupServes()).toEqual([]);
  });

  test("300 connections trickling their headers: other requests are served meanwhile; each slow one gets 408 and is closed", async () => {
    const h = await startServe({ toml: serveToml(["node", ECHO]) });
    const started = Date.now();
    // One header byte per second, for up to 40 s (a header timeout is expected well before).
    const slow = Array.from({ length: 300 }, (_, i) =>
      exchange(h.port, [`GET /slow${i} HTTP/1.1\r\n${"Host: hr.test\r\n"}X-Slow: `, ...Array.from({ length: 40 }, () => "x")], { pauseMs: 1000, maxMs: 45_000, quietMs: 3000 }), // hr closes right after its 408; under load the FIN can trail the response by more than a few hundred ms
    );
    await Bun.sleep(1000);
    const t0 = Date.now();
    const fast = await Promise.all(Array.from({ length: 50 }, (_, i) => get(`http://127.0.0.1:${h.port}/fast${i}`, { timeoutMs: 10_000 }).then((r) => r.status, (e: NodeJS.ErrnoException) => e.code ?? e.message)));
    const fastMs = Date.now() - t0;
    expect(fast.filter((s) => s !== 200)).toEqual([]);
    const results = await Promise.all(slow);
    const endMs = Date.now() - started;
    const statuses = new Map<string, number>();
    for (const r of results) {
      const k = `${r.statuses.join(",") || "none"}${r.closed ? " closed" : " open"}`;
      statuses.set(k, (statuses.get(k) ?? 0) + 1);
    }
    console.log(`[input] slowloris: 50 other requests answered in ${fastMs} ms while 300 trickled; slow ones ended after ${endMs} ms: ${JSON.stringify([...statuses])}`);
    expect([...statuses]).toEqual([["408 closed", 300]]);
    expect((await get(`http://127.0.0.1:${h.port}/after`)).status).toBe(200);
    const saw = JSON.parse((await get(`http://127.0.0.1:${h.port}/__count`)).body);
    expect(saw.started.filter((u: string) => u.startsWith("/slow"))).toEqual([]);
    expect(await h.stop()).toBe(0);
  }, 60_000);

  test("ulimit -n 256 and 1,000 idle connections: hr keeps serving, answers hr status, and logs the limit", async () => {
    const h = await startServe({ toml: serveToml(["node", ECHO]), wrap: ["sh", "-c", 'ulimit -n 256 && exec "$@"', "sh"] });
    const idle: net.Socket[] = [];
    try {
      for (let i = 0; i < 1000; i++) {
        const s = net.connect(h.port, "127.0.0.1");
        s.on("error", () => {});
        idle.push(s);
      }
      await Bun.sleep(1500);
      const cpu = (pid: number) => {
        const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        return Number(f[11]) + Number(f[12]);
      };
      const c0 = cpu(h.pid);
      const w0 = Date.now();
      const statuses: (number | string)[] = [];
      for (let i = 0; i < 20; i++) statuses.push(await get(`http://127.0.0.1:${h.port}/busy${i}`, { timeoutMs: 10_000 }).then((r) => r.status, (e: NodeJS.ErrnoException) => e.code ?? e.message));
      const st = await h.hr(["status", "--json"], 15_000);
      await Bun.sleep(2000); // idle: hr should not spin
      const cpuShare = (cpu(h.pid) - c0) / 100 / ((Date.now() - w0) / 1000);
      const limitLine = h.logs().split("\n").find((l) => /ulimit|open.file|file descriptor|RLIMIT_NOFILE|EMFILE/i.test(l));
      console.log(`[input] 1,000 idle connections under ulimit -n 256: 20 requests ${JSON.stringify(statuses)}; hr status exit ${st.code}; hr CPU ${(cpuShare * 100).toFixed(0)}% of a core; log: ${limitLine}`);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      expect(st.code).toBe(0);
      expect(limitLine).toBeDefined();
      expect(cpuShare).toBeLessThan(0.6); // a spinning accept loop takes a whole core
    } finally {
      for (const s of idle) s.destroy();
    }
    expect(await h.stop()).toBe(0);
  }, 60_000);
});

describe("hr dev (proxy, live_reload on) under bad input", () => {
  const dev = new DevHarness();
  afterEach(() => dev.cleanup());

  test("an aborted upload and malformed chunks don't crash hr dev; the app keeps answering", async () => {
    const { hr, port, url } = await startLiveReloadDev(dev, ["bun", BUN_NAIVE], /hello from naive-bun/);
    // 1. An upload announced as 10 MiB, cut after 1 MiB.
    await new Promise<void>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.write(`POST /upload HTTP/1.1\r\nHost: hr.test\r\nContent-Length: ${10 * 1024 * 1024}\r\n\r\n`);
        s.write(Buffer.alloc(1024 * 1024, 1), () => setTimeout(() => (s.destroy(), resolve()), 100));
      });
      s.on("error", () => resolve());
    });
    // 2. A chunked upload cut in the middle of a chunk.
    await new Promise<void>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.write(`POST /upload HTTP/1.1\r\nHost: hr.test\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\n${"y".repeat(1000)}`, () => setTimeout(() => (s.destroy(), resolve()), 100));
      });
      s.on("error", () => resolve());
    });
    // 3. Malformed and unusual chunk-size lines.
    const answers: Record<string, number[]> = {};
    for (const line of ["zz", "4 ;x", "-1", "ffffffffffffffffffff"]) {
      const x = await exchange(port, `POST /upload HTTP/1.1\r\nHost: hr.test\r\nTransfer-Encoding: chunked\r\n\r\n${line}\r\nabcd\r\n0\r\n\r\n`, { maxMs: 5000 });
      answers[line] = x.statuses;
    }
    await Bun.sleep(500);
    console.log(`[input] hr dev: chunk-size lines answered ${JSON.stringify(answers)}; hr running: ${hr.proc.exitCode === null}`);
    expect(hr.proc.exitCode).toBeNull();
    expect((await get(url)).status).toBe(200);
    expect(answers["zz"]).toEqual([400]);
    expect(answers["-1"]).toEqual([400]);
    expect(answers["ffffffffffffffffffff"]).toEqual([400]);
    expect(answers["4 ;x"]).toEqual([200]);
    expect(hr.output).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m); // no stack trace
  }, 40_000);
});
