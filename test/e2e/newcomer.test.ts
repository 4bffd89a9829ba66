/**
 * Regressions found by running apps exactly as their frameworks' READMEs write them
 * (hard-coded port, no drain code, stock logging) under `hr serve` / `hr dev`, the way a
 * newcomer would. Each test reproduces one surprise with a plain node:http / Python app
 * (no download needed).
 *
 *  - proxy: hr closes the upstream connections it no longer needs (abandoned connects at
 *    a drain, pooled idle ones) with a FIN, not a reset: Python's single-threaded
 *    http.server printed a ConnectionResetError traceback into the app's log for every
 *    reset, on every reload.
 *  - serve.build = true (what hr init writes for Go): hr serve builds before its first
 *    generation too; it used to start the binary hr dev had left, i.e. old code.
 *  - serve: a worker that got ready and died while its siblings were still starting was
 *    never replaced and never reported: the generation went live one worker short.
 *  - serve: an app that binds a second, fixed port of its own cannot run two workers; hr
 *    said "hr holds <its port> itself … set run.capture = true" — wrong port, wrong fix.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { get } from "../helpers/http.ts";
import { freePort } from "../helpers/dev.ts";
import { ensureBinary } from "../helpers/hr.ts";
import { startLoad } from "../../scripts/harness/load.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";

beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

/** Python's docs' http.server: single-threaded HTTPServer, HTTP/1.0, request log on stderr. */
const PY_SINGLE = `import os
from http.server import HTTPServer, BaseHTTPRequestHandler

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"hello gen=" + os.environ.get("HR_GENERATION", "0").encode() + b"\\n")

HTTPServer(("", int(os.environ.get("PORT", "8000"))), Handler).serve_forever()
`;

test("proxy: reloading a single-threaded Python http.server under load prints no ConnectionResetError into its log", async () => {
  const h = await startServe({
    toml: `[run]
cmd = ["python3", "app.py"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
strategy = "proxy"
workers = 2
ready = { type = "tcp", timeout = "20s" }
`,
    files: { "app.py": PY_SINGLE },
  });
  const load = startLoad({ url: `http://127.0.0.1:${h.port}/`, concurrency: 16, keepAliveShare: 0.5, durationMs: 40_000, timeoutMs: 10_000 });
  try {
    await Bun.sleep(300);
    for (let i = 0; i < 3; i++) {
      const r = await h.reload();
      expect(r.code).toBe(0);
    }
    await Bun.sleep(300);
  } finally {
    const res = await load.stop();
    expect(res.failed).toBe(0);
    expect(res.ok).toBeGreaterThan(50);
  }
  expect(await h.stop()).toBe(0);
  const resets = h.logs().split("\n").filter((l) => /ConnectionResetError|Exception occurred during processing/.test(l));
  expect(resets).toEqual([]);
}, 60_000);

test("serve.build = true: the first generation runs freshly built code, not a binary an earlier build left", async () => {
  // "build" copies the source into place; the stale copy is what an earlier build left.
  const app = (v: string) => `require("http").createServer((q, s) => s.end("${v}\\n")).listen(+process.env.PORT);\n`;
  const h = await startServe({
    toml: `[build]
cmd = "mkdir -p tmp && cp app.src.js tmp/app.js"

[run]
cmd = ["node", "tmp/app.js"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
strategy = "proxy"
build = true
ready = { type = "tcp", timeout = "20s" }
`,
    files: { "app.src.js": app("v2 new"), "stale.js": app("v1 stale") },
    before: (dir) => {
      mkdirSync(join(dir, "tmp"));
      copyFileSync(join(dir, "stale.js"), join(dir, "tmp", "app.js"));
    },
  });
  expect((await get(`http://127.0.0.1:${h.port}/`)).body).toBe("v2 new\n");
  expect(h.logs()).toMatch(/building before the first generation/);
  expect(await h.stop()).toBe(0);
}, 30_000);

test("serve.build = true: a build that fails at start starts nothing and says why", async () => {
  const h = await startServe({
    toml: `[build]
cmd = "echo 'main.go:3: syntax error' >&2; exit 2"

[run]
cmd = ["node", "-e", "setInterval(() => {}, 1000)"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
build = true
`,
    waitReady: false,
  });
  const code = await Promise.race([h.proc.exited, Bun.sleep(15_000).then(() => "timeout")]);
  expect(code).toBe(1);
  expect(h.logs()).toMatch(/syntax error/);
  expect(h.logs()).toMatch(/build failed.*nothing started/);
}, 30_000);

test("serve: a worker that gets ready and then dies before the other workers are ready fails the start (no generation goes live short of a worker)", async () => {
  // w1 listens at once, then dies (like an app whose second, fixed port is taken); w2 listens after 1.5 s.
  const app = `const w = process.env.HR_WORKER;
const server = require("http").createServer((q, s) => s.end("w" + w + "\\n"));
if (w === "1")
  server.listen(+process.env.PORT, () => setTimeout(() => { console.error("Error: listen EADDRINUSE: address already in use 0.0.0.0:4101"); process.exit(1); }, 200));
else setTimeout(() => server.listen(+process.env.PORT), 1500);
`;
  const h = await startServe({
    toml: `[run]
cmd = ["node", "app.js"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
strategy = "proxy"
workers = 2
ready = { type = "tcp", timeout = "20s" }
`,
    files: { "app.js": app },
    waitReady: false,
  });
  const code = await Promise.race([h.proc.exited, Bun.sleep(15_000).then(() => "timeout")]);
  expect(h.logs()).not.toMatch(/serving gen1/);
  expect(code).toBe(1);
  expect(h.logs()).toMatch(/gen1\/w1: ready, then exited with code 1 before the generation was ready/);
  expect(h.logs()).toMatch(/EADDRINUSE/);
}, 30_000);

test("serve: two workers of an app that binds a fixed port of its own — hr names that port as not its own, not hr's", async () => {
  const admin = freePort();
  const app = `const http = require("http");
http.createServer((q, s) => s.end("ok\\n")).listen(+process.env.PORT);
if (process.env.HR_WORKER === "2") setTimeout(() => http.createServer((q, s) => s.end("admin\\n")).listen(${admin}, "127.0.0.1"), 300);
else http.createServer((q, s) => s.end("admin\\n")).listen(${admin}, "127.0.0.1");
`;
  const h = await startServe({
    toml: `[run]
cmd = ["node", "app.js"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
strategy = "proxy"
workers = 2
ready = { type = "tcp", timeout = "20s" }
`,
    files: { "app.js": app },
    waitReady: false,
  });
  const m = await h.waitForLog(/cannot bind: .*/, 15_000);
  expect(m[0]).toContain(`Port ${admin} is not one hr holds`);
  expect(m[0]).not.toContain("set run.capture = true");
  await h.stop();
}, 30_000);
