/**
 * `hr init --yes` on framework layouts, then the config it wrote really runs the app:
 * `hr dev` (answers, an edit → the new code answers) and `hr serve` (answers, a reload
 * → the new generation answers). Apps are written as their docs write them.
 *
 * Apps that adopt the inherited socket (init picks "fd"): Node listen({ fd }) +
 * process.send("ready"), Python socket(fileno=3) + sd_notify, gunicorn (adopts
 * LISTEN_FDS itself), Go net.FileListener(os.NewFile(3)) in GOPATH mode (no go.mod;
 * `hr serve` builds the missing binary on first start). Apps that bind their port
 * themselves (init picks bind capture: dev fd, serve proxy): Gin r.Run(":N") and
 * r.Run() reading PORT in GOPATH mode, node:http `const port = N` and `PORT || N`,
 * Flask app.run(), FastAPI under `python3 -m uvicorn`, a Bun default-export server
 * in a project installed with npm. A PORT-reading app also runs under the proxy
 * half of its config with capture off.
 * Not covered here: capture's own mechanics (its tests), load and zero-drop figures.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { DevHarness, edit, freePort, tempProject, waitForBody } from "../helpers/dev.ts";
import { runHr } from "../helpers/hr.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";

const dev = new DevHarness();
const dirs: string[] = [];
afterEach(async () => {
  await dev.cleanup();
  await cleanupServes();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function project(files: Record<string, string>): string {
  const dir = tempProject(files, "hr-init-runs-");
  dirs.push(dir);
  return dir;
}

/** `hr init --yes` in dir; returns hr.toml and init's stderr (reasons, summary). */
function init(dir: string): { toml: string; said: string } {
  const r = runHr(["init", "--yes", "--cwd", dir], { env: { PATH: `/usr/bin:${process.env.PATH}` } });
  expect(r.code).toBe(0);
  const check = runHr(["check", "--cwd", dir]);
  expect(check.stdout + check.stderr).toStartWith("ok");
  return { toml: readFileSync(join(dir, "hr.toml"), "utf8"), said: r.stderr };
}

/** Debian's python3 (with flask, gunicorn) before any other on PATH. */
const PY_ENV = { PATH: `/usr/bin:${process.env.PATH}` };

/** hr dev on dir: the app answers v1, an edit of `src` makes it answer v2. */
async function devRuns(dir: string, src: string, port: number, env: Record<string, string> = {}) {
  const run = dev.start(dir, [], { ...PY_ENV, ...env });
  const url = `http://127.0.0.1:${port}/`;
  await waitForBody(url, /v1/, 60_000).catch((e) => {
    throw new Error(`${e}\n--- hr dev output ---\n${run.output}`);
  });
  edit(join(dir, src), "v1", "v2");
  await waitForBody(url, /v2/, 60_000).catch((e) => {
    throw new Error(`${e}\n--- hr dev output ---\n${run.output}`);
  });
  expect(await run.kill()).toEqual([]); // frees the port for hr serve
}

/** hr serve with the config init wrote: answers v1; after an edit and a reload, v2. */
async function serveRuns(files: Record<string, string>, toml: string, src: string, port: number, env: Record<string, string> = {}) {
  const h = await startServe({ toml, files, env: { ...PY_ENV, ...env } });
  const url = `http://127.0.0.1:${port}/`;
  expect(await waitForBody(url, /v1/)).toContain("v1");
  edit(join(h.dir, src), "v1", "v2");
  const r = await h.reload();
  expect({ code: r.code, ok: r.json?.ok, stderr: r.stderr }).toMatchObject({ code: 0, ok: true });
  expect(await waitForBody(url, /v2/)).toContain("v2");
  expect(await h.stop()).toBe(0);
  return h;
}

const NODE_FD = (port: number) => `// node:http adopting the socket hr holds (LISTEN_FDS), else its own port.
const http = require("node:http");
const server = http.createServer((req, res) => res.end(\`node v1 \${process.env.GREETING}\\n\`));
const where = process.env.LISTEN_FDS ? { fd: 3 } : { port: ${port} };
server.listen(where, () => process.send?.("ready"));
process.on("SIGTERM", () => server.close(() => process.exit(0)));
`;

const PY_FD = `import os, socket
from http.server import BaseHTTPRequestHandler, HTTPServer

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"python v1\\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=3)
addr = os.environ.get("NOTIFY_SOCKET")
if addr:
    socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b"READY=1", "\\0" + addr[1:] if addr[0] == "@" else addr)
server.serve_forever()
`;

const FLASK = `from flask import Flask

app = Flask(__name__)

@app.route("/")
def hello():
    return "flask v1\\n"
`;

const GO_FD = `package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
)

func main() {
	ln, err := net.FileListener(os.NewFile(3, "http"))
	if err != nil {
		panic(err)
	}
	http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "go v1")
	}))
}
`;

const EXPRESS_STYLE = `// As Express's docs write it, on node:http: PORT || 3000.
const http = require("node:http");
const port = process.env.PORT || 3000;
http.createServer((req, res) => res.end("port-reader v1\\n")).listen(port);
`;

const hasGunicorn = Boolean(Bun.which("gunicorn", { PATH: PY_ENV.PATH })) && Bun.spawnSync(["/usr/bin/python3", "-c", "import flask"]).exitCode === 0;
const hasGo = Boolean(Bun.which("go"));

describe("hr init --yes, then the config runs the app (apps that adopt the socket → fd)", () => {
  test("Node listen({ fd }) + process.send('ready'): fd + ipc; hr dev and hr serve", async () => {
    const port = freePort();
    const files = { "package.json": JSON.stringify({ name: "n", main: "server.js" }), "server.js": NODE_FD(port), ".env": "GREETING=hello-from-dotenv\n" };
    const dir = project(files);
    const { toml, said } = init(dir);
    expect(toml).toContain(`address = "127.0.0.1:${port}"`);
    expect(Bun.TOML.parse(toml)).toMatchObject({ dev: { strategy: "fd" }, serve: { strategy: "fd" } });
    expect(toml).toContain('type = "ipc"');
    expect(said).toContain("socket: server.js reads LISTEN_FDS");
    expect(said).toContain("The app needs no code change");
    expect(Bun.TOML.parse(toml)).toMatchObject({ run: { env_file: ".env" } });
    await devRuns(dir, "server.js", port);
    const h = await startServe({ toml, files });
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /v1/)).toBe("node v1 hello-from-dotenv\n");
    expect(await h.stop()).toBe(0);
    await serveRuns(files, toml, "server.js", port);
  }, 60_000);

  test("Python socket(fileno=3) + sd_notify: fd + notify; hr dev and hr serve", async () => {
    const port = freePort();
    const files = { "server.py": PY_FD, ".env": `PORT=${port}\n` };
    const dir = project(files);
    const { toml, said } = init(dir);
    expect(toml).toContain(`address = "127.0.0.1:${port}"`);
    expect(toml).toContain('type = "notify"');
    expect(said).toContain("server.py opens socket(fileno=3)");
    await devRuns(dir, "server.py", port);
    await serveRuns(files, toml, "server.py", port);
  }, 60_000);

  test.skipIf(!hasGunicorn)("Flask under gunicorn: gunicorn adopts LISTEN_FDS → fd, ready at 'Booting worker'", async () => {
    const port = freePort();
    const files = { "requirements.txt": "flask\ngunicorn\n", "app.py": FLASK, ".env": `PORT=${port}\n` };
    const dir = project(files);
    const { toml } = init(dir);
    expect(toml).toContain('cmd = ["gunicorn", "app:app"]');
    expect(toml).toContain('pattern = "Booting worker"');
    await devRuns(dir, "app.py", port);
    await serveRuns(files, toml, "app.py", port);
  }, 60_000);

  test.skipIf(!hasGo)("Go net.FileListener(os.NewFile(3)) without go.mod: GOPATH-mode build; hr serve builds the missing binary first", async () => {
    const port = freePort();
    const files = { "main.go": GO_FD, ".env": `PORT=${port}\n` };
    const dir = project(files);
    const { toml, said } = init(dir);
    expect(toml).toContain('cmd = "GO111MODULE=off go build -o ./tmp/app ."');
    expect(toml).toContain('type = "delay"');
    expect(said).toContain("no go.mod → GOPATH mode");
    // init writes serve.build = true (there is a [build]): the first generation is built first.
    expect(toml).toMatch(/^build = true/m);
    const h = await startServe({ toml, files });
    expect(h.logs()).toContain("serve.build = true: building before the first generation");
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /go v1/)).toContain("go v1");
    expect(await h.stop()).toBe(0);
    // With serve.build = false, the missing ./tmp/app is still built before the first generation.
    const missing = await startServe({ toml, files, env: { HR_SERVE_BUILD: "false" } });
    expect(missing.logs()).toContain("./tmp/app does not exist yet: building it before the first generation");
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /go v1/)).toContain("go v1");
    expect(await missing.stop()).toBe(0);
    await devRuns(dir, "main.go", port);
  }, 120_000);
});

describe("apps that bind their port themselves get bind capture", () => {
  test("Express style PORT || 3000: capture config; its proxy half runs the app under hr dev and hr serve", async () => {
    const port = freePort();
    const files = { "package.json": JSON.stringify({ name: "e", main: "app.js", dependencies: { express: "4" } }), "app.js": EXPRESS_STYLE, ".env": `PORT=${port}\n` };
    const dir = project(files);
    const { toml, said } = init(dir);
    expect(toml).toContain("capture = true");
    expect(Bun.TOML.parse(toml)).toMatchObject({ run: { capture: true }, dev: { strategy: "fd" }, serve: { strategy: "proxy" } });
    expect(said).toContain("app.js binds the port itself");
    // Without capture, the same file under the proxy: the app binds the private PORT hr gives it.
    const noCapture = { HR_RUN_CAPTURE: "false", HR_DEV_STRATEGY: "proxy", HR_SERVE_READY_TYPE: "tcp" };
    await devRuns(dir, "app.js", port, noCapture);
    await serveRuns(files, toml, "app.js", port, noCapture);
  }, 60_000);
});

const hasFastapi = Bun.spawnSync(["/usr/bin/python3", "-c", "import fastapi, uvicorn"]).exitCode === 0;
const hasFlask = Bun.spawnSync(["/usr/bin/python3", "-c", "import flask"]).exitCode === 0;
const hasGin = hasGo && Bun.spawnSync(["test", "-d", "/usr/share/gocode/src/github.com/gin-gonic/gin"]).exitCode === 0;

const GIN = (run: string) => `package main

import "github.com/gin-gonic/gin"

func main() {
	r := gin.Default()
	r.GET("/", func(c *gin.Context) {
		c.String(200, "gin v1\\n")
	})
	${run}
}
`;

/** init --yes, then hr dev (v1, edit → v2) and hr serve (v1, edit + reload → v2) with the capture config it wrote. */
async function captureRuns(files: Record<string, string>, src: string, port: number, initEnv: Record<string, string> = {}) {
  const dir = project(files);
  const r = runHr(["init", "--yes", "--cwd", dir], { env: { PATH: `/usr/bin:${process.env.PATH}`, ...initEnv } });
  expect(r.code).toBe(0);
  const toml = readFileSync(join(dir, "hr.toml"), "utf8");
  expect(Bun.TOML.parse(toml)).toMatchObject({ run: { capture: true }, listen: [{ address: `127.0.0.1:${port}` }], dev: { strategy: "fd" }, serve: { strategy: "proxy", ready: { type: "listen" } } });
  expect(r.stderr).toContain(`The app needs no code change: when it binds port ${port}`);
  await devRuns(dir, src, port);
  const copy = Object.fromEntries(Object.keys(files).filter((f) => !f.includes("/")).map((f) => [f, readFileSync(join(dir, f), "utf8").replace("v2", "v1")]));
  await serveRuns(copy, toml, src, port);
  return { dir, toml };
}

describe("hr init --yes on apps that bind their port themselves → bind capture; hr dev and hr serve run them unmodified", () => {
  test.skipIf(!hasGin)('Gin r.Run(":N") in GOPATH mode (no go.mod)', async () => {
    const port = freePort();
    await captureRuns({ "main.go": GIN(`r.Run(":${port}")`) }, "main.go", port);
  }, 120_000);

  test.skipIf(!hasGin)("Gin r.Run() reading PORT (.env PORT=N)", async () => {
    const port = freePort();
    await captureRuns({ "main.go": GIN("r.Run()"), ".env": `PORT=${port}\n` }, "main.go", port);
  }, 120_000);

  test("node:http as Express's docs write it: const port = N; app.listen(port)", async () => {
    const port = freePort();
    const app = `const http = require("node:http");\nconst port = ${port};\nhttp.createServer((req, res) => res.end("express-shaped v1\\n")).listen(port, () => console.log(\`listening on \${port}\`));\n`;
    await captureRuns({ "package.json": JSON.stringify({ name: "e", main: "app.js" }), "app.js": app }, "app.js", port);
  }, 60_000);

  test.skipIf(!hasFlask)("Flask app.run(port=N) under __main__", async () => {
    const port = freePort();
    const app = `${FLASK}\nif __name__ == "__main__":\n    app.run(port=${port})\n`;
    await captureRuns({ "requirements.txt": "flask\n", "app.py": app }, "app.py", port);
  }, 60_000);

  test.skipIf(!hasFastapi)("FastAPI: python3 -m uvicorn main:app (no uvicorn command)", async () => {
    const port = freePort();
    const app = 'from fastapi import FastAPI\nfrom fastapi.responses import PlainTextResponse\n\napp = FastAPI()\n\n@app.get("/", response_class=PlainTextResponse)\ndef root():\n    return "fastapi v1\\n"\n';
    const { toml } = await captureRuns({ "requirements.txt": "fastapi\nuvicorn\n", "main.py": app, ".env": `PORT=${port}\n` }, "main.py", port, { PATH: "/usr/bin:/bin" });
    expect(toml).toContain(`cmd = ["python3", "-m", "uvicorn", "main:app", "--port", "${port}"]`);
  }, 60_000);

  test("Bun default-export server, installed with npm (bun only in node_modules/.bin)", async () => {
    const port = freePort();
    const dir = project({
      "package.json": JSON.stringify({ name: "h", scripts: { dev: "bun run --hot src/index.ts" }, dependencies: { hono: "4" }, devDependencies: { "@types/bun": "latest" } }),
      "package-lock.json": "{}",
      "src/index.ts": `export default {\n  port: ${port},\n  fetch: () => new Response("bun v1\\n"),\n};\n`,
    });
    mkdirSync(join(dir, "node_modules", ".bin"), { recursive: true });
    symlinkSync(Bun.which("bun")!, join(dir, "node_modules", ".bin", "bun"));
    const r = runHr(["init", "--yes", "--cwd", dir], { env: { PATH: "/usr/bin:/bin" } });
    expect(r.code).toBe(0);
    const toml = readFileSync(join(dir, "hr.toml"), "utf8");
    expect(Bun.TOML.parse(toml)).toMatchObject({ run: { cmd: ["./node_modules/.bin/bun", "src/index.ts"], capture: true }, watch: { include_ext: expect.arrayContaining(["ts"]) } });
    await devRuns(dir, "src/index.ts", port);
  }, 60_000);
});

describe("hr serve and a missing binary", () => {
  test("no [build]: hr serve says the program is missing and how to fix it, exits 1", async () => {
    const h = await startServe({ toml: '[run]\ncmd = ["./tmp/app"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:0"\n', waitReady: false });
    expect(await h.proc.exited).toBe(1);
    expect(h.logs()).toContain("run.cmd: ./tmp/app does not exist");
    expect(h.logs()).toContain('add [build] cmd = "…"');
  }, 20_000);

  test("a [build] that fails: the build's error, nothing started, exit 1", async () => {
    const h = await startServe({ toml: '[build]\ncmd = "echo broken >&2; exit 3"\n[run]\ncmd = ["./tmp/app"]\n', waitReady: false });
    expect(await h.proc.exited).toBe(1);
    expect(h.logs()).toContain("broken");
    expect(h.logs()).toContain("./tmp/app is still missing, nothing started");
  }, 20_000);
});
