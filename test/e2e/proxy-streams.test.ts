/**
 * serve.strategy = "proxy", long-lived and large exchanges with a naive app
 * (test/fixtures/naive/bun-serve.ts: `await server.stop()` on SIGTERM):
 *
 *  - WebSocket echo across a reload: the old connection keeps working (answered
 *    by gen1) while a new one reaches gen2; at drain_timeout hr closes the old one.
 *  - an SSE stream across a reload: events arrive as they are sent (not buffered),
 *    the old stream keeps flowing until drain_timeout, a new one reaches gen2.
 *  - 1 GiB upload (Content-Length) and 1 GiB download (chunked: Bun streams so) through hr, with a reader
 *    that pauses mid-way: hr streams (backpressure), its peak RSS (VmHWM of the
 *    `hr serve` process) stays bounded; the same (1 GiB up, 512 MiB down) through
 *    `hr dev` with live_reload on (its response filter must stream too).
 *
 * Clients: Bun's WebSocket, node:http and raw node:net sockets (never fetch).
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import http from "node:http";
import net from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary, ROOT } from "../helpers/hr.ts";
import { get } from "../helpers/http.ts";
import { cleanupServes, proxyToml, startServe } from "../helpers/serve.ts";
import { DevHarness, startLiveReloadDev } from "../helpers/dev.ts";

beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

const BUN_NAIVE = join(ROOT, "test", "fixtures", "naive", "bun-serve.ts");

const bunNaive = (workers: number, drain: string) => proxyToml(["bun", BUN_NAIVE], { workers, drain });

/** Resolves when `cond()` holds (checked every 20 ms), rejects with `what` after timeoutMs. */
async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** A WebSocket client that collects messages; `ask` sends one and waits for the next answer. */
async function wsClient(url: string) {
  const ws = new WebSocket(url);
  const inbox: string[] = [];
  let closedAt = 0;
  ws.onmessage = (e) => inbox.push(String(e.data));
  ws.onclose = () => (closedAt = Date.now());
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error(`websocket ${url} failed to open`));
    setTimeout(() => reject(new Error(`websocket ${url}: no open within 10 s`)), 10_000);
  });
  return {
    ws,
    closed: () => closedAt,
    async ask(text: string): Promise<string> {
      const n = inbox.length;
      ws.send(text);
      await until(() => inbox.length > n || closedAt > 0, 5000, `an echo of ${text}`);
      if (inbox.length === n) throw new Error(`websocket closed before echoing ${text}`);
      return inbox[n]!;
    },
  };
}

/** An SSE reader on node:http: every `data:` line, with its arrival time. */
function sseClient(url: string) {
  const events: { at: number; data: string }[] = [];
  let ended = 0;
  let error = "";
  const req = http.get(url, { agent: false }, (res) => {
    res.setEncoding("utf8");
    let buf = "";
    res.on("data", (chunk: string) => {
      buf += chunk;
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        for (const line of block.split("\n")) if (line.startsWith("data: ")) events.push({ at: Date.now(), data: line.slice(6) });
      }
    });
    res.on("end", () => (ended = Date.now()));
    res.on("error", (e) => ((error = e.message), (ended = Date.now())));
    res.on("aborted", () => ((error = "aborted"), (ended = Date.now())));
  });
  req.on("error", (e) => ((error = e.message), (ended = Date.now())));
  return { events, ended: () => ended, error: () => error, close: () => req.destroy() };
}

/** VmHWM / VmRSS of a process in MiB. */
function memMiB(pid: number): { hwm: number; rss: number } {
  const s = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(s.match(new RegExp(`^${k}:\\s+(\\d+) kB`, "m"))?.[1] ?? NaN);
  return { hwm: kb("VmHWM") / 1024, rss: kb("VmRSS") / 1024 };
}

const GiB = 1024 ** 3;

/** POSTs `total` bytes (Content-Length) from one reused 256 KiB block on a raw socket, honouring backpressure; returns the response. */
function upload(port: number, total: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const block = Buffer.alloc(256 * 1024, 97);
    const sock = net.connect(port, "127.0.0.1");
    let answer = "";
    sock.setEncoding("latin1");
    sock.on("data", (d: string) => (answer += d));
    sock.on("end", () => resolve(answer));
    sock.on("error", (e) => reject(new Error(`upload: ${e.message} after response ${JSON.stringify(answer.slice(0, 200))}`)));
    sock.on("connect", async () => {
      sock.write(`POST /upload HTTP/1.1\r\nHost: hr.test\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`);
      let sent = 0;
      while (sent < total) {
        const n = Math.min(block.length, total - sent);
        sent += n;
        if (!sock.write(n === block.length ? block : block.subarray(0, n))) await new Promise((r) => sock.once("drain", r));
      }
    });
  });
}

/**
 * Counts the payload of a chunked body as it streams (sizes, extensions and
 * trailers skipped); `done` once the last chunk and its trailer section are in.
 */
class ChunkedCounter {
  payload = 0;
  done = false;
  private line = "";
  private left = 0; // payload bytes still due in the current chunk
  private state: "size" | "data" | "crlf" | "trailer" = "size";
  push(d: Buffer): void {
    let i = 0;
    while (i < d.length && !this.done) {
      if (this.state === "data") {
        const n = Math.min(this.left, d.length - i);
        this.payload += n;
        this.left -= n;
        i += n;
        if (this.left === 0) this.state = "crlf";
        continue;
      }
      const c = d[i++]!;
      if (c !== 10) {
        this.line += String.fromCharCode(c);
        continue;
      }
      const line = this.line.replace(/\r$/, "");
      this.line = "";
      if (this.state === "crlf") {
        if (line !== "") throw new Error(`chunked body: expected CRLF after chunk data, got ${JSON.stringify(line)}`);
        this.state = "size";
      } else if (this.state === "size") {
        const size = parseInt(line.split(";")[0]!.trim(), 16);
        if (!Number.isFinite(size)) throw new Error(`chunked body: bad chunk size line ${JSON.stringify(line)}`);
        if (size === 0) this.state = "trailer";
        else {
          this.left = size;
          this.state = "data";
        }
      } else if (line === "") this.done = true; // end of the trailer section
    }
  }
}

/**
 * GETs /download?bytes=total on a raw socket, pausing for pauseMs after `pauseAfter`
 * payload bytes; returns the header text and the payload byte count (Content-Length
 * or chunked framing, whichever the response uses).
 */
function download(port: number, total: number, pauseAfter: number, pauseMs: number): Promise<{ head: string; bodyBytes: number }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, "127.0.0.1");
    let head = "";
    let headBuf = Buffer.alloc(0);
    let chunked: ChunkedCounter | null = null;
    let plain = 0;
    let paused = false;
    const bytes = () => (chunked ? chunked.payload : plain);
    sock.on("connect", () => sock.write(`GET /download?bytes=${total} HTTP/1.1\r\nHost: hr.test\r\nConnection: close\r\n\r\n`));
    sock.on("data", (d: Buffer) => {
      try {
        if (!head) {
          headBuf = Buffer.concat([headBuf, d]);
          const i = headBuf.indexOf("\r\n\r\n");
          if (i < 0) return;
          head = headBuf.subarray(0, i).toString("latin1");
          if (/^transfer-encoding:.*chunked/im.test(head)) chunked = new ChunkedCounter();
          d = headBuf.subarray(i + 4);
        }
        if (chunked) chunked.push(d);
        else plain += d.length;
      } catch (e) {
        sock.destroy();
        reject(e);
        return;
      }
      if (!paused && bytes() >= pauseAfter) {
        paused = true;
        sock.pause();
        setTimeout(() => sock.resume(), pauseMs);
      }
    });
    sock.on("end", () => {
      if (chunked && !chunked.done) reject(new Error(`download: connection ended inside the chunked body after ${bytes()} bytes`));
      else resolve({ head, bodyBytes: bytes() });
    });
    sock.on("error", (e) => reject(new Error(`download: ${e.message} after ${bytes()} bytes`)));
  });
}

describe("proxy: tunnels and large bodies", () => {
  test("WebSocket echo across a reload: old connection keeps working until drain_timeout, new ones reach gen2", async () => {
    const h = await startServe({ toml: bunNaive(1, "4s") });
    const url = `ws://127.0.0.1:${h.port}/ws`;
    const old = await wsClient(url);
    expect(await old.ask("one")).toMatch(/^gen=1 pid=\d+ echo one$/);
    const reloaded = Date.now();
    // `hr reload --wait` may return only once gen1 has drained (it reports the drain): don't wait for it here.
    const reloading = h.reload();
    await h.waitForLog(/gen2 is live/, 20_000);
    const fresh = await wsClient(url);
    expect(await fresh.ask("two")).toMatch(/^gen=2 pid=\d+ echo two$/);
    // The old tunnel still reaches gen1, for a while after the reload …
    expect(await old.ask("three")).toMatch(/^gen=1 pid=\d+ echo three$/);
    await Bun.sleep(Math.max(0, reloaded + 2000 - Date.now()));
    expect(old.closed()).toBe(0);
    expect(await old.ask("four")).toMatch(/^gen=1 pid=\d+ echo four$/);
    // … and is closed once drain_timeout (4 s) is over; gen1 then exits.
    await until(() => old.closed() > 0, 15_000, "the old websocket to be closed after drain_timeout");
    const openMs = old.closed() - reloaded;
    console.log(`[streams] websocket to gen1 closed ${openMs} ms after the reload (drain_timeout 4 s)`);
    expect(openMs).toBeGreaterThanOrEqual(3000);
    await h.waitForLog(/gen1 exited/, 15_000);
    expect((await reloading).code).toBe(0);
    expect(await fresh.ask("five")).toMatch(/^gen=2 pid=\d+ echo five$/);
    fresh.ws.close();
    expect(await h.stop()).toBe(0);
  }, 40_000);

  test("SSE across a reload: events stream as sent, the old stream flows until drain_timeout, a new one reaches gen2", async () => {
    const h = await startServe({ toml: bunNaive(1, "3s") });
    const url = `http://127.0.0.1:${h.port}/sse`;
    const old = sseClient(url);
    try {
      // The app sends one event every 100 ms: they must arrive while the response is still open.
      await until(() => old.events.length >= 3, 10_000, "3 SSE events from gen1");
      expect(old.ended()).toBe(0);
      expect(old.events.every((e) => e.data.startsWith("gen=1 "))).toBe(true);
      const reloaded = Date.now();
      const reloading = h.reload(); // may return only after gen1's drain
      await h.waitForLog(/gen2 is live/, 20_000);
      const fresh = sseClient(url);
      try {
        await until(() => fresh.events.length >= 2, 10_000, "SSE events from gen2");
        expect(fresh.events[0]!.data).toMatch(/^gen=2 n=0$/);
        const before = old.events.length;
        await until(() => old.events.length >= before + 5 || old.ended() > 0, 5_000, "more events on the old stream");
        expect(old.ended()).toBe(0);
        expect(old.events.slice(before).every((e) => e.data.startsWith("gen=1 "))).toBe(true);
        await until(() => old.ended() > 0, 15_000, "the old SSE stream to end after drain_timeout");
        const lastOld = old.events.at(-1)!.at - reloaded;
        console.log(`[streams] SSE: ${old.events.length} events from gen1, the last ${lastOld} ms after the reload, stream ended after ${old.ended() - reloaded} ms (drain_timeout 3 s)`);
        expect(lastOld).toBeGreaterThanOrEqual(2000);
        expect((await reloading).code).toBe(0);
        // the new stream is unaffected
        const n = fresh.events.length;
        await until(() => fresh.events.length > n + 2, 5_000, "the new stream to keep flowing");
        expect(fresh.ended()).toBe(0);
        expect(fresh.events.every((e) => e.data.startsWith("gen=2 "))).toBe(true);
      } finally {
        fresh.close();
      }
    } finally {
      old.close();
    }
    expect(await h.stop()).toBe(0);
  }, 40_000);

  test("1 GiB upload and 1 GiB download (reader pauses 1.5 s mid-way) stream through hr with its RSS bounded", async () => {
    const h = await startServe({ toml: bunNaive(1, "5s") });
    expect((await get(`http://127.0.0.1:${h.port}/`)).body).toMatch(/gen=1 /);
    const before = memMiB(h.pid);
    const t0 = Date.now();
    const up = await upload(h.port, GiB);
    const upMs = Date.now() - t0;
    expect(up).toMatch(/^HTTP\/1\.1 200 /);
    expect(up).toContain(`received ${GiB} bytes`);
    const afterUp = memMiB(h.pid);
    const t1 = Date.now();
    const down = await download(h.port, GiB, 256 * 1024 ** 2, 1500);
    const downMs = Date.now() - t1;
    expect(down.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(down.bodyBytes).toBe(GiB);
    const after = memMiB(h.pid);
    console.log(
      `[streams] 1 GiB up in ${upMs} ms, down in ${downMs} ms (incl. a 1.5 s pause); hr VmHWM ${before.hwm.toFixed(0)} → ${afterUp.hwm.toFixed(0)} → ${after.hwm.toFixed(0)} MiB, VmRSS ${before.rss.toFixed(0)} → ${after.rss.toFixed(0)} MiB`,
    );
    // 1 GiB went each way; a proxy that streams holds a few buffers per connection, not the body.
    expect(after.hwm - before.hwm).toBeLessThan(192);
    expect(await h.stop()).toBe(0);
  }, 90_000);
});

describe("hr dev (proxy, live_reload on): large bodies", () => {
  const dev = new DevHarness();
  afterEach(() => dev.cleanup());

  test("1 GiB upload and 512 MiB download stream through hr dev with its RSS bounded", async () => {
    const { hr, port } = await startLiveReloadDev(dev, ["bun", BUN_NAIVE], /hello from naive-bun/);
    const before = memMiB(hr.pid);
    const up = await upload(port, GiB);
    expect(up).toMatch(/^HTTP\/1\.1 200 /);
    expect(up).toContain(`received ${GiB} bytes`);
    const down = await download(port, GiB / 2, 128 * 1024 ** 2, 1500);
    expect(down.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(down.bodyBytes).toBe(GiB / 2);
    const after = memMiB(hr.pid);
    console.log(`[streams] hr dev (live_reload): 1 GiB up, 512 MiB down; hr VmHWM ${before.hwm.toFixed(0)} → ${after.hwm.toFixed(0)} MiB`);
    expect(after.hwm - before.hwm).toBeLessThan(192);
    expect(hr.proc.exitCode).toBeNull();
  }, 90_000);
});
