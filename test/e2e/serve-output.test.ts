/**
 * hr's output never blocks hr (src/log/output.ts): drills from issue 13 with real
 * processes. A worker floods its stdout while hr's stderr is a FIFO read at about
 * 1 MB/s; then the reader goes away (EPIPE). A worker prints a 100 MB line without
 * a newline. hr must keep answering `hr status`, reload, serve, stop gracefully,
 * stay small, and say what it dropped.
 */
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, existsSync, readdirSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { get } from "../helpers/http.ts";
import { cleanupServes, startServe, taggedPids, type ServeHandle } from "../helpers/serve.ts";

setDefaultTimeout(60_000);
beforeAll(() => void ensureBinary());
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  expect(await cleanupServes()).toEqual([]);
});

/** HTTP server (gen=N) on fd 3, or on PORT under the proxy strategy in a thread; the main thread floods stdout at FLOOD_MBPS, after an optional BIG_LINE_MB line. */
const APP = `import os, socket, sys, threading, time
from http.server import HTTPServer, BaseHTTPRequestHandler
class H(BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"gen={os.environ.get('HR_GENERATION')}\\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
if os.environ.get("APP_BIND") == "port":  # proxy strategy: the app binds its private PORT
    srv = HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H)
else:  # fd strategy: the inherited socket
    srv = HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
    srv.socket = socket.socket(fileno=3)
threading.Thread(target=srv.serve_forever, daemon=True).start()
rate = int(os.environ.get("FLOOD_MBPS", "0"))
big = int(os.environ.get("BIG_LINE_MB", "0"))
out = sys.stdout.buffer
if big:
    chunk = b"y" * (1 << 20)
    for _ in range(big): out.write(chunk)
    out.write(b"\\nafter the big line\\n"); out.flush()
block = ((b"x" * 999) + b"\\n") * 100
while True:
    t = time.monotonic()
    for _ in range(rate): out.write(block)
    out.flush()
    time.sleep(max(0, 0.1 - (time.monotonic() - t)))
`;

/** Reads the FIFO 16 KiB every 16 ms (~1 MB/s), keeps what it read in a file. */
const READER = `import sys, time
f = open(sys.argv[1], "rb", buffering=0)
o = open(sys.argv[2], "wb")
while True:
    b = f.read(16384)
    if not b: break
    o.write(b); o.flush()
    time.sleep(0.016)
`;

const tomlFor = (strategy: "fd" | "proxy") => `[run]
cmd = ["python3", "app.py"]
[[listen]]
name = "http"
address = "127.0.0.1:0"
[serve]
strategy = "${strategy}"
drain_timeout = "3s"
${strategy === "fd" ? 'ready = { type = "delay", delay = "200ms" }' : ""}
`;
const TOML = tomlFor("fd");

function rssMiB(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/VmRSS:\s+(\d+)/);
  return m ? Math.round(Number(m[1]) / 1024) : 0;
}

async function timedStatus(h: ServeHandle): Promise<{ ms: number; status: Awaited<ReturnType<ServeHandle["status"]>> }> {
  const t0 = performance.now();
  const r = await h.hr(["status", "--json"], 10_000);
  const ms = Math.round(performance.now() - t0);
  if (r.code !== 0) throw new Error(`hr status failed after ${ms} ms (${r.code}): ${r.stderr}`);
  return { ms, status: JSON.parse(r.stdout) };
}

for (const strategy of ["fd", "proxy"] as const)
test(`${strategy}: a slow reader of hr's output, then none at all: hr keeps serving, reloading, answering status, and stops gracefully`, async () => {
  const scratch = mkdtempSync(join(tmpdir(), "hr-slowreader-"));
  const fifo = join(scratch, "fifo");
  const got = join(scratch, "read.log");
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
  expect(spawnSync("mkfifo", [fifo]).status).toBe(0);
  Bun.write(join(scratch, "reader.py"), READER);
  await Bun.sleep(10);
  const reader = Bun.spawn(["python3", join(scratch, "reader.py"), fifo, got], { stdio: ["ignore", "ignore", "inherit"] });
  cleanups.push(() => reader.kill("SIGKILL"));
  const fd = openSync(fifo, "w"); // blocks until the reader has opened its end
  let h: ServeHandle;
  try {
    // ~30 MB/s of worker output against ~1 MB/s of reading.
    h = await startServe({ toml: tomlFor(strategy), files: { "app.py": APP }, env: { FLOOD_MBPS: "30", APP_BIND: strategy === "proxy" ? "port" : "fd" }, output: fd });
  } finally {
    closeSync(fd); // hr has its own copy; the reader's EOF must come from hr alone
  }
  const latencies: number[] = [];
  let maxRss = 0;
  let served = 0;
  for (let i = 0; i < 8; i++) {
    const { ms } = await timedStatus(h);
    latencies.push(ms);
    maxRss = Math.max(maxRss, rssMiB(h.pid));
    const res = await get(`http://127.0.0.1:${h.port}/`, { timeoutMs: 5000 });
    if (res.status === 200) served++;
    await Bun.sleep(150);
  }
  const reload = await h.reload();
  expect(reload.code).toBe(0);
  expect(reload.json.reload.generation).toBe(2);
  expect((await get(`http://127.0.0.1:${h.port}/`)).body).toContain("gen=2");
  const { status } = await timedStatus(h);
  maxRss = Math.max(maxRss, rssMiB(h.pid));
  expect(served).toBe(8);
  expect(status.output!.droppedBytes).toBeGreaterThan(1_000_000);
  expect(Math.max(...latencies)).toBeLessThan(5000); // before: every status call timed out
  expect(maxRss).toBeLessThan(400); // before: unbounded (the drill's 100 MB line alone took 1.16 GB)
  // The reader was told what it missed.
  const until = Date.now() + 5000;
  while (!/the reader of hr's stderr was too slow: [\d.]+ [KM]iB in [\d,]+ lines dropped/.test(readFileSync(got, "latin1")) && Date.now() < until) await Bun.sleep(100);
  expect(readFileSync(got, "latin1")).toMatch(/the reader of hr's stderr was too slow: [\d.]+ [KM]iB in [\d,]+ lines dropped/);
  console.log(`${strategy}, slow reader: hr status latency median ${latencies.sort((a, b) => a - b)[latencies.length >> 1]} ms, max ${latencies.at(-1)} ms; hr RSS max ${maxRss} MiB; dropped ${(status.output!.droppedBytes / 1e6).toFixed(0)} MB`);

  // The reader goes away (`hr serve | head`, a restarted journald): EPIPE is not hr's end.
  reader.kill("SIGKILL");
  await reader.exited;
  await Bun.sleep(300);
  const after = await timedStatus(h);
  expect(after.status.output!.readerGone).toBe(true);
  expect((await h.reload()).code).toBe(0);
  expect((await get(`http://127.0.0.1:${h.port}/`)).body).toContain("gen=3");
  const runDir = join(h.dir, "run", "hr");
  expect(await h.stop("SIGTERM", 15_000)).toBe(0);
  expect(taggedPids(h.tag)).toEqual([]);
  expect(existsSync(runDir) ? readdirSync(runDir).filter((n) => /\.(pid|sock)$/.test(n)) : []).toEqual([]);
});

test("a 100 MB line without a newline is cut at 64 KiB; hr stays small and answers status meanwhile", async () => {
  const h = await startServe({ toml: TOML, files: { "app.py": APP }, env: { BIG_LINE_MB: "100" } });
  let maxRss = rssMiB(h.pid);
  const latencies: number[] = [];
  const done = h.waitForLog(/after the big line/, 40_000);
  let finished = false;
  void done.then(() => (finished = true), () => (finished = true));
  while (!finished) {
    latencies.push((await timedStatus(h)).ms);
    maxRss = Math.max(maxRss, rssMiB(h.pid));
    await Bun.sleep(100);
  }
  await done;
  const cut = h.logs().match(/gen1\/w1 \| (y+) \[… (\d+) bytes cut by hr\]/);
  expect(cut).not.toBeNull();
  expect(cut![1]!.length).toBe(64 * 1024);
  expect(Number(cut![2])).toBe(100 * 1024 * 1024 - 64 * 1024);
  expect(maxRss).toBeLessThan(300); // before: 1.16 GB
  expect(Math.max(...latencies)).toBeLessThan(5000); // before: the control socket stalled ~10 s
  console.log(`100 MB line: hr RSS max ${maxRss} MiB, status latency max ${Math.max(...latencies)} ms over ${latencies.length} calls`);
  expect(await h.stop("SIGTERM")).toBe(0);
});

test("[log] file: worker output and hr's lines go to the rotated file, not stderr; hr status stays on the terminal", async () => {
  const toml = `${TOML}[log]\nfile = "logs/hr.log"\nmax_size = "64KB"\nkeep = 2\n`;
  const h = await startServe({ toml, files: { "app.py": APP }, env: { FLOOD_MBPS: "1" }, waitReady: false });
  await h.waitForLog(/hr: logging to .*logs\/hr\.log/);
  const log = join(h.dir, "logs", "hr.log");
  const until = Date.now() + 15_000;
  while (!existsSync(`${log}.2`) && Date.now() < until) await Bun.sleep(100);
  expect(readdirSync(join(h.dir, "logs")).sort()).toEqual(["hr.log", "hr.log.1", "hr.log.2"]);
  expect(statSync(`${log}.1`).size).toBeLessThanOrEqual(64 * 1024);
  expect(readFileSync(`${log}.1`, "utf8")).toMatch(/^gen1\/w1 \| x{999}$/m);
  expect(h.logs()).not.toContain("gen1/w1 |"); // nothing of it on stderr
  const st = await h.hr(["status"]);
  expect(st.code).toBe(0);
  expect(st.stdout).toContain("gen1 ready");
  expect(await h.stop()).toBe(0);
});
