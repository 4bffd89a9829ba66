/**
 * hr serve with run.capture = true: stock apps with a hard-coded port, no fd 3,
 * no readiness code (ready.type defaults to "listen": the worker's listen() on
 * hr's socket). gunicorn (arbiter + 2 forked workers) under the fd strategy, and
 * Bun.serve({ port }), Node http listen(PORT) and Python http.server × 2 workers
 * behind hr's proxy (each worker's bind gets a private socket), reloaded under a
 * non-retrying load (the drill: 50 connections, half keep-alive, 0 failed). Without capture, an app
 * binding hr's port is told at once that hr holds it and what fixes it.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { ensureBinary } from "../helpers/hr.ts";
import { freePort } from "../../src/sockets/free-port.ts";
import { cleanupServes, startServe, toml } from "../helpers/serve.ts";
import { reloadDrill } from "../helpers/drill.ts";
import { captureUnavailable } from "../../src/capture/index.ts";

beforeAll(() => ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});
const why = captureUnavailable();
const capTest = why ? test.skip : test;

describe("hr serve, run.capture = true", () => {
  const gunicorn = Bun.which("gunicorn");
  (gunicorn && !why ? test : test.skip)("gunicorn -w 2 -b 0.0.0.0:PORT (fd): 5 reloads under load, 0 failed", async () => {
    const port = freePort();
    const h = await startServe({
      toml: toml`
[run]
cmd = ["gunicorn", "-w", "2", "-b", "0.0.0.0:${port}", "app:app"]
capture = true
stop_timeout = "5s"
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
[serve]
drain_timeout = "10s"
`,
      files: {
        "app.py": `import os\ndef app(environ, start_response):\n    start_response("200 OK", [("Content-Type", "text/plain")])\n    return [f"gunicorn gen={os.environ.get('HR_GENERATION')} pid={os.getpid()}\\n".encode()]\n`,
      },
    });
    expect(h.port).toBe(port);
    expect(h.logs()).toMatch(/gen1 ready in/);
    await reloadDrill(h, { label: "[capture] gunicorn -w 2 fd", reloads: 5, loadMs: 60_000, fresh: "soon" });
  }, 120_000);

  capTest("Bun.serve({ port }) × 2 workers behind the proxy (each worker's bind gets a private socket): 20 reloads under load, 0 failed", async () => {
    const port = freePort();
    const h = await startServe({
      toml: toml`
[run]
cmd = ["${process.execPath}", "server.ts"]
capture = true
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
[serve]
strategy = "proxy"
workers = 2
drain_timeout = "10s"
`,
      files: {
        "server.ts": `Bun.serve({ port: ${port}, fetch: () => new Response(\`bun gen=\${process.env.HR_GENERATION} pid=\${process.pid}\\n\`) });\n`,
      },
    });
    expect(h.port).toBe(port);
    expect(h.logs()).not.toMatch(/EADDRINUSE/);
    await reloadDrill(h, { label: "[capture] bun-serve × 2 proxy", reloads: 20, loadMs: 90_000, fresh: "at-once" });
  }, 150_000);
});

/** Stock apps with a hard-coded port, 2 workers behind the proxy, each worker's bind captured. */
const STOCK: { name: string; file: string; cmd: (port: number) => string[]; src: (port: number) => string; missing?: () => string | null }[] = [
  {
    name: "node http listen(PORT)",
    file: "server.js",
    cmd: () => ["node", "server.js"],
    src: (p) => `require("http").createServer((q, s) => s.end(\`node gen=\${process.env.HR_GENERATION} pid=\${process.pid}\\n\`)).listen(${p});\n`,
  },
  {
    name: "python http.server",
    file: "server.py",
    cmd: () => ["python3", "server.py"],
    src: (p) =>
      `import os\nfrom http.server import HTTPServer, BaseHTTPRequestHandler\nclass H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.end_headers()\n        self.wfile.write(f"python gen={os.environ.get('HR_GENERATION')} pid={os.getpid()}\\n".encode())\nHTTPServer(("", ${p}), H).serve_forever()\n`,
  },
];

describe("hr serve, run.capture = true, stock apps × 2 workers behind the proxy", () => {
  for (const app of STOCK) {
    // 8 reloads each (CI time): Bun.serve above takes the full 20.
    capTest(`${app.name}: 8 reloads under load, 0 failed`, async () => {
      const port = freePort();
      const h = await startServe({
        toml: toml`
[run]
cmd = ${JSON.stringify(app.cmd(port))}
capture = true
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
[serve]
strategy = "proxy"
workers = 2
drain_timeout = "10s"
`,
        files: { [app.file]: app.src(port) },
      });
      await reloadDrill(h, { label: `[capture] ${app.name} × 2 proxy`, reloads: 8, loadMs: 90_000, fresh: "at-once" });
    }, 120_000);
  }
});

describe("hr serve without capture: an app that binds hr's port", () => {
  test("is told at once that hr holds the port and that run.capture fixes it", async () => {
    const port = freePort();
    const h = await startServe({
      toml: toml`
[run]
cmd = ["node", "-e", "require('http').createServer((q, s) => s.end('x')).listen(${port})"]
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
[serve]
ready = { type = "tcp", timeout = "20s" }
`,
      waitReady: false,
    });
    const t0 = Date.now();
    await h.waitForLog(/cannot bind: .*EADDRINUSE.*hr holds http=127\.0\.0\.1:\d+ itself .*set run\.capture = true/, 15_000);
    expect(Date.now() - t0).toBeLessThan(10_000); // not after ready.timeout
    await h.stop();
  }, 30_000);
});
