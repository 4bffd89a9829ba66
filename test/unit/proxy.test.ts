/**
 * src/proxy against real sockets: upstream apps are Bun.serve / raw Bun.listen
 * servers on 127.0.0.1, clients are raw TCP (to send exactly the bytes under test)
 * or node:http (never fetch: it retries silently).
 */
import { afterEach, describe, expect, test } from "bun:test";
import http from "node:http";
import net from "node:net";
import { Logger } from "../../src/log/logger.ts";
import { Proxy, type ProxyListener } from "../../src/proxy/proxy.ts";
import { ProxyThreads } from "../../src/proxy/threads.ts";
import { BodyReader, HttpError, parseRequest } from "../../src/proxy/http1.ts";
import { bindListener, type Listener } from "../../src/sockets/listen.ts";
import { parseListenAddress } from "../../src/sockets/address.ts";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) {
    try {
      c();
    } catch {
      /* already gone */
    }
  }
});

const log = new Logger({ level: "error" } as ConstructorParameters<typeof Logger>[0]);

function listen(): Listener {
  const l = bindListener({ name: "t", address: parseListenAddress("127.0.0.1:0"), backlog: 512 });
  cleanups.push(() => l.close());
  return l;
}

function startProxy(opts: Partial<ProxyListener> & { waitMs?: number } = {}): { proxy: Proxy; port: number } {
  const l = listen();
  const proxy = new Proxy({ listeners: [{ fd: l.fd, protocol: opts.protocol ?? "http", trustForwarded: opts.trustForwarded ?? false }], log, waitMs: opts.waitMs ?? 3000, waitSetting: "test" });
  proxy.start();
  cleanups.push(() => proxy.close());
  return { proxy, port: l.port! };
}

/** A Bun.serve app; `name` is echoed in the x-app header. */
function app(name: string, handler?: (req: Request) => Response | Promise<Response>) {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: handler ?? ((req) => new Response(`${name} ${new URL(req.url).pathname}`, { headers: { "x-app": name } })),
    websocket: { message: (ws, m) => void ws.send(`${name}:${m}`) },
  });
  cleanups.push(() => server.stop(true));
  return server;
}

let workerSeq = 0;
function addWorker(proxy: Proxy, gen: string, port: number) {
  const w = { worker: workerSeq++, pid: process.pid, address: { host: "127.0.0.1", port } };
  proxy.workerReady(gen, w);
  return w;
}

/** Sends raw bytes, returns everything received until the server closes (or `idleMs` of silence). */
function raw(port: number, data: string | Buffer, idleMs = 1500): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let out = "";
    let timer = setTimeout(() => s.destroy(), idleMs);
    s.on("data", (d) => {
      out += d.toString("latin1");
      clearTimeout(timer);
      timer = setTimeout(() => s.destroy(), idleMs);
    });
    s.on("close", () => {
      clearTimeout(timer);
      resolve(out);
    });
    s.on("error", () => {});
    s.write(data);
  });
}

function request(port: number, opts: http.RequestOptions & { body?: string | Buffer } = {}): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: "127.0.0.1", port, agent: false, ...opts }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), headers: res.headers }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(opts.body);
  });
}

describe("http1 framing", () => {
  const corpus: [string, string, number][] = [
    ["CL and TE", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["duplicate CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400],
    ["CL list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n", 400],
    ["signed CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n", 400],
    ["obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", 400],
    ["space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400],
    ["bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400],
    ["no Host", "GET / HTTP/1.1\r\n\r\n", 400],
    ["two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400],
    ["TE gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 400],
    ["TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501],
    ["TE chunked, identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n", 400],
    ["TE chunked twice", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["TE in 1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400],
    ["HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505],
    ["space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400],
  ];
  for (const [name, text, status] of corpus) {
    test(`${name} → ${status}`, () => {
      let got = 0;
      try {
        parseRequest(Buffer.from(text));
      } catch (e) {
        got = (e as HttpError).status;
      }
      expect(got).toBe(status);
    });
  }

  test("chunked: sizes, extensions, trailers; bad sizes refused", () => {
    const r = new BodyReader({ kind: "chunked" });
    const { data, used } = r.read(Buffer.from("4 ;x\r\nabcd\r\n2;a=b\r\nef\r\n0\r\nX-T: 1\r\n\r\nNEXT"));
    expect(Buffer.concat(data).toString()).toBe("abcdef");
    expect(r.done).toBe(true);
    expect(r.trailers).toEqual([["X-T", "1"]]);
    expect(used).toBe(36);
    for (const bad of ["zz\r\n", "-1\r\n", "4\r\nabcdX\r\n", "1234567890abcdef0\r\n", "4\nabcd"]) {
      expect(() => new BodyReader({ kind: "chunked" }).read(Buffer.from(bad))).toThrow(HttpError);
    }
  });
});

describe("proxy", () => {
  test("forwards with keep-alive; X-Forwarded-* replaced unless trusted", async () => {
    let seen: Record<string, string> = {};
    const a = app("a", (req) => {
      seen = Object.fromEntries(req.headers);
      return new Response("ok");
    });
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    const out = await raw(port, "GET /x HTTP/1.1\r\nHost: h.example\r\nX-Forwarded-For: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\n\r\nGET /y HTTP/1.1\r\nHost: h.example\r\nConnection: close\r\n\r\n");
    expect(out.match(/HTTP\/1.1 200/g)?.length).toBe(2);
    expect(seen["x-forwarded-for"]).toBe("127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("http");
    expect(seen["x-forwarded-host"]).toBe("h.example");
    expect(seen.forwarded).toBe('for=127.0.0.1;host="h.example";proto=http');

    const t = startProxy({ trustForwarded: true });
    addWorker(t.proxy, "g1", a.port!);
    t.proxy.setLive("g1");
    await raw(t.port, "GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For: 10.0.0.1\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n");
    expect(seen["x-forwarded-for"]).toBe("10.0.0.1, 127.0.0.1");
    expect(seen["x-forwarded-proto"]).toBe("https");
  });

  test("malformed requests are refused by hr and never reach the app", async () => {
    const paths: string[] = [];
    const a = app("a", (req) => {
      paths.push(new URL(req.url).pathname);
      return new Response("ok");
    });
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    expect(await raw(port, "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n")).toStartWith("HTTP/1.1 400 ");
    expect(await raw(port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")).toStartWith("HTTP/1.1 400 ");
    expect(await raw(port, `GET / HTTP/1.1\r\nHost: a\r\n${"X-Big: aaaaaaaaaa\r\n".repeat(2000)}\r\n`)).toStartWith("HTTP/1.1 431 ");
    // The chunked request's head may reach the app, its bad body never does; nothing smuggled.
    expect(paths.filter((p) => p !== "/")).toEqual([]);
  });

  test("chunked upload is re-framed canonically; the response streams back", async () => {
    const a = app("a", async (req) => {
      const body = await req.text();
      const stream = new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode(`got ${body.length}:`));
          c.enqueue(new TextEncoder().encode(body.slice(0, 5)));
          c.close();
        },
      });
      return new Response(stream);
    });
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    const out = await raw(port, "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
    expect(out).toStartWith("HTTP/1.1 200");
    expect(out).toContain("got 11:");
    expect(out).toContain("hello");
  });

  test("requests wait for a live generation, then 503 at the deadline", async () => {
    const a = app("a");
    const { proxy, port } = startProxy({ waitMs: 400 });
    expect(await raw(port, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")).toStartWith("HTTP/1.1 503 ");
    const pending = request(port, { path: "/late" });
    await Bun.sleep(100);
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    expect((await pending).body).toBe("a /late");
    proxy.setDown("the build failed");
    const down = await request(port);
    expect(down.status).toBe(502);
    expect(down.body).toContain("the build failed");
  });

  test("drain: a ready-but-not-live generation gets nothing; the old one finishes in-flight requests before drain resolves", async () => {
    let slowDone = false;
    const oldApp = app("old", async (req) => {
      if (new URL(req.url).pathname === "/slow") {
        await Bun.sleep(300);
        slowDone = true;
      }
      return new Response("old");
    });
    let newHits = 0;
    const newApp = app("new", () => {
      newHits++;
      return new Response("new");
    });
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", oldApp.port!);
    proxy.setLive("g1");
    addWorker(proxy, "g2", newApp.port!); // ready, not live
    const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
    cleanups.push(() => agent.destroy());
    for (let i = 0; i < 5; i++) expect((await request(port, { agent })).body).toBe("old");
    expect(newHits).toBe(0);
    const slow = request(port, { path: "/slow", agent });
    await Bun.sleep(50);
    proxy.setLive("g2");
    const report = await proxy.drain("g1", 5000);
    expect(slowDone).toBe(true);
    expect(report).toMatchObject({ requests: 1, cut: 0 });
    expect((await slow).body).toBe("old");
    // Kept-alive client connections now reach the new generation.
    for (let i = 0; i < 3; i++) expect((await request(port, { agent })).body).toBe("new");
  });

  test("a request that fails on a reused idle upstream connection is retried once on a fresh one", async () => {
    // An app that answers the first request on each connection and closes on the second, unanswered.
    let conns = 0;
    const upstream = Bun.listen<{ n: number }>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open(s) {
          conns++;
          s.data = { n: 0 };
        },
        data(s) {
          if (s.data.n++ === 0) s.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
          else s.end();
        },
      },
    });
    cleanups.push(() => upstream.stop(true));
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", upstream.port);
    proxy.setLive("g1");
    expect((await request(port)).body).toBe("ok");
    expect((await request(port)).body).toBe("ok"); // reused conn closed → retried fresh
    expect(proxy.stats.retried).toBe(1);
    expect(conns).toBe(2);
    // POST with a body hr holds in full is retried too; nothing is retried twice.
    expect((await request(port, { method: "POST", body: "x=1" })).body).toBe("ok");
  });

  test("WebSocket upgrade is tunnelled and survives a switch of the live generation until drain cuts it", async () => {
    const a = app("a", (req, ) => (a.upgrade(req) ? (undefined as unknown as Response) : new Response("no")));
    const b = app("b");
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`);
    const messages: string[] = [];
    const closed = new Promise((r) => ws.addEventListener("close", r));
    ws.addEventListener("message", (e) => messages.push(String(e.data)));
    await new Promise((r, j) => {
      ws.addEventListener("open", r);
      ws.addEventListener("error", j);
    });
    ws.send("1");
    addWorker(proxy, "g2", b.port!);
    proxy.setLive("g2");
    ws.send("2");
    const t0 = Date.now();
    const report = await proxy.drain("g1", 400);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(350);
    expect(messages).toEqual(["a:1", "a:2"]);
    expect(report.cut).toBe(1);
    await closed;
    expect((await request(port)).body).toBe("b /");
  });

  test("a 32 MiB upload and download stream through", async () => {
    const size = 32 << 20;
    const a = app("a", async (req) => {
      if (req.method === "POST") {
        let n = 0;
        for await (const c of req.body!) n += c.length;
        return new Response(String(n));
      }
      return new Response(new Uint8Array(size));
    });
    const { proxy, port } = startProxy();
    addWorker(proxy, "g1", a.port!);
    proxy.setLive("g1");
    const up = await new Promise<string>((resolve, reject) => {
      const req = http.request({ host: "127.0.0.1", port, method: "POST", agent: false, headers: { "content-length": size } }, (res) => {
        let s = "";
        res.on("data", (c) => (s += c));
        res.on("end", () => resolve(s));
      });
      req.on("error", reject);
      const chunk = Buffer.alloc(1 << 20);
      let i = 0;
      const pump = () => {
        while (i < 32) {
          i++;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    expect(up).toBe(String(size));
    const down = await new Promise<number>((resolve, reject) => {
      http.get({ host: "127.0.0.1", port, agent: false }, (res) => {
        let n = 0;
        res.on("data", (c) => (n += c.length));
        res.on("end", () => resolve(n));
      }).on("error", reject);
    });
    expect(down).toBe(size);
  });

  test("tcp mode pipes bytes", async () => {
    const echo = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data: (s, d) => void s.write(`echo:${d}`) } });
    cleanups.push(() => echo.stop(true));
    const { proxy, port } = startProxy({ protocol: "tcp" });
    addWorker(proxy, "g1", echo.port);
    proxy.setLive("g1");
    expect(await raw(port, "hello", 300)).toBe("echo:hello");
  });

  test("proxy_threads = 2: routing changes reach the worker thread, requests are answered whichever thread accepts them, a drain sums both threads", async () => {
    let slowDone = false;
    const a = app("a", async (req) => {
      if (new URL(req.url).pathname === "/slow") {
        await Bun.sleep(300);
        slowDone = true;
      }
      return new Response("a");
    });
    const l = listen();
    const threads = new ProxyThreads({ listeners: [{ fd: l.fd, protocol: "http", trustForwarded: false }], log, waitMs: 3000 }, 2);
    threads.start();
    cleanups.push(() => threads.close());
    threads.workerReady("g1", { worker: 1, pid: process.pid, address: { host: "127.0.0.1", port: a.port! } });
    threads.setLive("g1");
    // The worker thread gets its messages asynchronously: wait until any connection is answered.
    for (let i = 0; i < 100; i++) if ((await request(l.port!).catch(() => null))?.body === "a") break;
    const bodies = await Promise.all(Array.from({ length: 40 }, () => request(l.port!).then((r) => r.body)));
    expect(bodies.every((b) => b === "a")).toBe(true);
    const slow = request(l.port!, { path: "/slow" });
    await Bun.sleep(100);
    const report = await threads.drain("g1", 3000);
    expect(slowDone).toBe(true);
    expect(report.requests).toBe(1);
    expect((await slow).body).toBe("a");
  });
});
