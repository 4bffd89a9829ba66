import { afterEach, describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { tempProject } from "../helpers/dev.ts";
import { validate } from "../../src/config/load.ts";
import { defaultAnswers, detectProject, requiredChanges, simpleCommand, toConfigInput, type Detection } from "../../src/init/detect.ts";
import { ADOPT_SNIPPETS, assertRoundTrip, renderConfig } from "../../src/init/render.ts";
import { checkAddress, checkPattern, checkWorkers, showCommand, writeAtomic } from "../../src/init/wizard.ts";
import { BuildSection, ServeSection, WatchSection } from "../../src/config/schema.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function project(files: Record<string, string>): string {
  const dir = tempProject(files, "hr-init-");
  dirs.push(dir);
  return dir;
}

/** Renders the detected defaults and checks the text reads back to a valid config. */
function renderDetected(d: Detection) {
  const answers = defaultAnswers(d);
  const text = renderConfig(toConfigInput(answers), { ...d, changes: requiredChanges(answers, d) });
  const result = validate(Bun.TOML.parse(text), text, "hr.toml");
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return { text, config: result.config };
}

const GO_MOD = "module example.com/shop\n\ngo 1.22\n";
const GIN_MOD = `${GO_MOD}\nrequire github.com/gin-gonic/gin v1.10.0\n`;

/** A PATH with just these commands on it. */
const onPath =
  (...names: string[]) =>
  (cmd: string) =>
    names.includes(cmd) ? `/usr/bin/${cmd}` : null;
const ALL = onPath("go", "node", "bun", "python3", "uvicorn", "gunicorn", "flask", "cargo");
/** A stand-in for Debian's /usr/share/gocode holding Gin. */
function systemGopath(): string {
  return project({ "src/github.com/gin-gonic/gin/gin.go": "package gin\n" });
}
const NO_GOPATH = { HOME: "/nonexistent", GOPATH: "/nonexistent" };
const detect = (files: Record<string, string>, which = ALL, systemGopath = "/nonexistent") =>
  detectProject(project(files), { which, env: NO_GOPATH, systemGopath, captureUnavailable: () => null });

/** The rule for an app that binds its port itself: capture, dev fd, serve proxy, ready on listen(). */
function expectCapture(d: Detection, port: number) {
  expect(d.listen).toBe(`127.0.0.1:${port}`);
  expect(d.adopts).toBe(false);
  expect(d.capture).toBe(true);
  expect(d.devStrategy).toBe("fd");
  expect(d.serveStrategy).toBe("proxy");
  expect(d.readyType).toBe("listen");
  const { text, config } = renderDetected(d);
  expect(config.run.capture).toBe(true);
  expect(config.serve.ready.type).toBe("listen");
  expect(text).toContain("The app needs no code change");
  expect(text).not.toContain("os.NewFile(3");
}

/** An app whose code adopts the inherited socket: fd everywhere, no capture. */
function expectFd(d: Detection, port: number) {
  expect(d.listen).toBe(`127.0.0.1:${port}`);
  expect(d.adopts).toBe(true);
  expect(d.capture).toBe(false);
  expect(d.devStrategy).toBe("fd");
  expect(d.serveStrategy).toBe("fd");
  const { text, config } = renderDetected(d);
  expect(config.run.capture).toBe(false);
  expect(text).toContain("The app needs no code change: it already takes the socket");
}

const GIN_APP = (run: string) => `package main

import "github.com/gin-gonic/gin"

func main() {
	r := gin.Default()
	r.GET("/ping", func(c *gin.Context) { c.JSON(200, gin.H{"message": "pong"}) })
	${run}
}
`;

describe("detectProject: each framework layout as its README writes it", () => {
  test('Gin, r.Run(":8080"), go.mod → go build, capture', () => {
    const d = detect({ "go.mod": GIN_MOD, "main.go": GIN_APP('r.Run(":8080")') });
    expect(d.kind).toBe("go-gin");
    expect(d.label).toBe("Go (Gin)");
    expect(d.build).toEqual(["go", "build", "-o", "./tmp/app", "."]);
    expect(d.run).toEqual(["./tmp/app"]);
    expect(d.includeExt).toContain("go");
    expect(d.exclude).toContain("tmp/**");
    expect(d.reasons).toContain("port 8080: main.go binds port 8080");
    expect(d.reasons.some((r) => r.includes("run.capture = true"))).toBe(true);
    expectCapture(d, 8080);
  });

  test("Gin, r.Run() in GOPATH mode (no go.mod): GO111MODULE=off, the system GOPATH, Gin's default port", () => {
    const sys = systemGopath();
    const d = detect({ "main.go": GIN_APP("r.Run() // listen and serve on 0.0.0.0:8080") }, ALL, sys);
    expect(d.kind).toBe("go-gin");
    expect(d.build).toBe(`GO111MODULE=off GOPATH=$HOME/go:${sys} go build -o ./tmp/app .`);
    expect(d.reasons.some((r) => r.includes("no go.mod → GOPATH mode") && r.includes(`imports found in ${sys}`))).toBe(true);
    expect(d.reasons).toContain("port 8080: Gin's r.Run() default (:8080, or $PORT)");
    expectCapture(d, 8080);
  });

  test("Gin with go.mod offline: requirements neither vendored nor cached, but packaged → GOPATH mode; cached → module mode", () => {
    const sys = systemGopath();
    const d = detect({ "go.mod": GIN_MOD, "main.go": GIN_APP('r.Run(":8080")') }, ALL, sys);
    expect(d.build).toBe(`GO111MODULE=off GOPATH=$HOME/go:${sys} go build -o ./tmp/app .`);
    expect(d.reasons.some((r) => r.includes("neither vendored nor in the module cache"))).toBe(true);
    const cache = project({ "github.com/gin-gonic/gin@v1.10.0/go.mod": "module github.com/gin-gonic/gin\n" });
    const cached = detectProject(project({ "go.mod": GIN_MOD, "main.go": GIN_APP('r.Run(":8080")') }), { which: ALL, env: { ...NO_GOPATH, GOMODCACHE: cache }, systemGopath: sys });
    expect(cached.build).toEqual(["go", "build", "-o", "./tmp/app", "."]);
  });

  test('Gin, r.Run(":9000"); a commented-out port is not read', () => {
    const d = detect({ "go.mod": GIN_MOD, "main.go": GIN_APP('// r.Run(":7000")\n\tr.Run(":9000")') });
    expectCapture(d, 9000);
  });

  test("Go net/http reading PORT with a fallback; main package under cmd/", () => {
    const d = detect({
      "go.mod": GO_MOD,
      "cmd/api/main.go": 'package main\nfunc main() {\n\tport := os.Getenv("PORT")\n\tif port == "" {\n\t\tport = "8090"\n\t}\n\thttp.ListenAndServe(":"+port, nil)\n}\n',
    });
    expect(d.kind).toBe("go");
    expect(d.build).toEqual(["go", "build", "-o", "./tmp/app", "./cmd/api"]);
    expect(d.reasons).toContain("port 8090: cmd/api/main.go reads $PORT, default 8090");
    expectCapture(d, 8090);
  });

  test("Go that adopts fd 3 and sends READY=1 → fd + notify", () => {
    const d = detect({
      "go.mod": GIN_MOD,
      "main.go": 'package main\nfunc main() {\n\tln, _ := net.FileListener(os.NewFile(3, "http"))\n\tdaemon.SdNotify(false, daemon.SdNotifyReady)\n\tr.RunListener(ln)\n\tr.Run(":8081")\n}\n',
    });
    expectFd(d, 8081);
    expect(d.readyType).toBe("notify");
    expect(d.reasons.some((r) => r.includes("main.go calls os.NewFile(3, …)"))).toBe(true);
  });

  test("Express: const port = 3000; app.listen(port)", () => {
    const d = detect({
      "package.json": JSON.stringify({ name: "x", main: "app.js", dependencies: { express: "^4" } }),
      "package-lock.json": "{}",
      "app.js": "const express = require('express')\nconst app = express()\nconst port = 3000\n\napp.get('/', (req, res) => res.send('Hello World!'))\n\napp.listen(port, () => console.log(`listening on ${port}`))\n",
    });
    expect(d.kind).toBe("node");
    expect(d.label).toBe("Node (Express)");
    expect(d.run).toEqual(["node", "app.js"]);
    expect(d.build).toBeUndefined();
    expect(d.reasons).toContain("port 3000: app.js listens on port = 3000");
    expectCapture(d, 3000);
  });

  test("Express: process.env.PORT || 3000, start script", () => {
    const d = detect({
      "package.json": JSON.stringify({ scripts: { start: "node server.js" }, dependencies: { express: "^4" } }),
      "server.js": "const app = require('express')()\nconst PORT = process.env.PORT || 3001\napp.listen(PORT)\n",
    });
    expect(d.run).toEqual(["node", "server.js"]);
    expect(d.reasons).toContain("port 3001: server.js reads $PORT, default 3001");
    expectCapture(d, 3001);
  });

  test("Fastify: fastify.listen({ port: 3000 })", () => {
    const d = detect({
      "package.json": JSON.stringify({ type: "module", main: "server.js", dependencies: { fastify: "^4" } }),
      "server.js": "import Fastify from 'fastify'\nconst fastify = Fastify({ logger: true })\nfastify.get('/', async () => ({ hello: 'world' }))\ntry {\n  await fastify.listen({ port: 3000 })\n} catch (err) {\n  process.exit(1)\n}\n",
    });
    expect(d.label).toBe("Node (Fastify)");
    expectCapture(d, 3000);
  });

  test("Hono on Bun installed with npm (no bun on PATH): node_modules/.bin/bun, .ts entry, ts watched, Bun's port 3000", () => {
    const d = detect(
      {
        "package.json": JSON.stringify({ scripts: { dev: "bun run --hot src/index.ts" }, dependencies: { hono: "^4" }, devDependencies: { "@types/bun": "latest" } }),
        "package-lock.json": "{}",
        "node_modules/.bin/bun": "",
        "src/index.ts": "import { Hono } from 'hono'\n\nconst app = new Hono()\n\napp.get('/', (c) => c.text('Hello Hono!'))\n\nexport default app\n",
      },
      onPath("node", "npm"),
    );
    expect(d.kind).toBe("bun");
    expect(d.label).toBe("Bun (Hono)");
    expect(d.run).toEqual(["./node_modules/.bin/bun", "src/index.ts"]);
    expect(d.includeExt).toContain("ts");
    expect(d.reasons.some((r) => r.includes("scripts.dev runs its own watcher"))).toBe(true);
    expect(d.reasons).toContain("port 3000: Bun's default port (3000, or $PORT)");
    expect(d.missing).toEqual([]);
    expectCapture(d, 3000);
  });

  test("Elysia with npm: .listen(3000) → bun", () => {
    const d = detect({
      "package.json": JSON.stringify({ dependencies: { elysia: "^1" } }),
      "package-lock.json": "{}",
      "src/index.ts": "import { Elysia } from 'elysia'\n\nconst app = new Elysia().get('/', () => 'Hello Elysia').listen(3000)\n",
    });
    expect(d.label).toBe("Bun (Elysia)");
    expect(d.run).toEqual(["bun", "src/index.ts"]);
    expect(d.reasons).toContain("port 3000: src/index.ts binds port 3000");
    expectCapture(d, 3000);
  });

  test("Bun.serve({ port: 4000 }) with bun.lock; a .ts entry alone means Bun too", () => {
    expectCapture(detect({ "package.json": "{}", "bun.lock": "{}", "index.ts": "Bun.serve({ port: 4000, fetch: () => new Response('ok') });\n" }), 4000);
    const d = detect({ "package.json": "{}", "server.ts": "Bun.serve({ fetch: () => new Response('ok') });\n" });
    expect(d.kind).toBe("bun");
    expect(d.run).toEqual(["bun", "server.ts"]);
    expectCapture(d, 3000);
  });

  test("bun missing everywhere is reported", () => {
    const d = detect({ "package.json": JSON.stringify({ dependencies: { elysia: "1" } }), "index.ts": "" }, onPath("node"));
    expect(d.missing).toEqual(["bun"]);
  });

  test("Node that adopts fd 3 and calls process.send('ready') → fd + ipc", () => {
    const d = detect({
      "package.json": JSON.stringify({ main: "server.js" }),
      "server.js": "const fd = process.env.LISTEN_FDS ? 3 : undefined;\nserver.listen(fd !== undefined ? { fd } : { port: 3002 }, () => process.send?.('ready'));\n",
    });
    expectFd(d, 3002);
    expect(d.readyType).toBe("ipc");
  });

  test("a lone server.js, no package.json → node server.js; a lone index.ts → bun", () => {
    const d = detect({ "server.js": "require('http').createServer((q, s) => s.end('hi')).listen(3005)\n" });
    expect(d.kind).toBe("node");
    expect(d.run).toEqual(["node", "server.js"]);
    expect(d.reasons[0]).toContain("no package.json");
    expectCapture(d, 3005);
    const b = detect({ "index.ts": "Bun.serve({ port: 3006, fetch: () => new Response('hi') })\n" });
    expect(b.run).toEqual(["bun", "index.ts"]);
    expectCapture(b, 3006);
  });

  test("Node + TypeScript (pnpm): build script, compiled main", () => {
    const d = detect({
      "package.json": JSON.stringify({ main: "dist/index.js", scripts: { build: "tsc", dev: "tsx watch src/index.ts" } }),
      "pnpm-lock.yaml": "",
      "tsconfig.json": '{ "compilerOptions": { "outDir": "dist" } }',
      "src/index.ts": "import http from 'node:http'\nhttp.createServer().listen(8000)\n",
    });
    expect(d.label).toBe("Node (TypeScript)");
    expect(d.build).toEqual(["pnpm", "run", "build"]);
    expect(d.run).toEqual(["node", "dist/index.js"]);
    expect(d.includeExt).toContain("ts");
    expect(d.exclude).toContain("dist/**");
    expectCapture(d, 8000);
  });

  test("Node: a start script with shell syntax runs through the package manager", () => {
    const d = detect({ "package.json": JSON.stringify({ scripts: { start: "NODE_ENV=production node app.js && echo done" } }), "yarn.lock": "" });
    expect(d.run).toEqual(["yarn", "run", "start"]);
  });

  test("Flask with app.run() under __main__ → python3 app.py, port 5000", () => {
    const d = detect({
      "requirements.txt": "Flask==3.0.0\n",
      "app.py": "from flask import Flask\n\napp = Flask(__name__)\n\n@app.route('/')\ndef hello():\n    return 'Hello'\n\nif __name__ == '__main__':\n    app.run()\n",
    });
    expect(d.label).toBe("Python (Flask)");
    expect(d.run).toEqual(["python3", "app.py"]);
    expect(d.exclude).toEqual(expect.arrayContaining(["__pycache__/**", ".venv/**"]));
    expect(d.reasons).toContain("port 5000: Flask's app.run() default (5000)");
    expectCapture(d, 5000);
  });

  test("Flask without app.run(): flask run, python3 -m flask when no flask command", () => {
    const d = detect({ "hello.py": "from flask import Flask\napp = Flask(__name__)\n" }, onPath("python3"));
    expect(d.run).toEqual(["python3", "-m", "flask", "--app", "hello", "run"]);
    expect(d.reasons).toContain("flask: no `flask` command on PATH → python3 -m flask");
    expectCapture(d, 5000);
  });

  test("FastAPI: python3 -m uvicorn main:app when there is no uvicorn command; port 8000", () => {
    const files = {
      "pyproject.toml": '[project]\nname = "api"\ndependencies = ["fastapi>=0.110", "uvicorn[standard]"]\n',
      "main.py": 'from fastapi import FastAPI\n\napp = FastAPI()\n\n@app.get("/")\ndef read_root():\n    return {"Hello": "World"}\n',
    };
    const d = detect(files, onPath("python3"));
    expect(d.label).toBe("Python (FastAPI)");
    expect(d.run).toEqual(["python3", "-m", "uvicorn", "main:app"]);
    expect(d.reasons).toContain("uvicorn: no `uvicorn` command on PATH → python3 -m uvicorn");
    expectCapture(d, 8000);
    expect(detect(files).run).toEqual(["uvicorn", "main:app"]);
  });

  test("FastAPI's bigger-applications layout (app/__init__.py, app/main.py): uvicorn app.main:app, not main:app", () => {
    const d = detect({
      "requirements.txt": "fastapi[standard]\n",
      "app/__init__.py": "",
      "app/main.py": 'from fastapi import FastAPI\n\napp = FastAPI()\n\n@app.get("/")\nasync def root():\n    return {"message": "Hello Bigger Applications!"}\n',
    });
    expect(d.run).toEqual(["uvicorn", "app.main:app"]);
    expect(d.reasons).toContain("run: uvicorn app.main:app (app/main.py defines app = FastAPI())");
  });

  test("Express generator: the port is read from the run file bin/www (no extension), PORT || '3000'", () => {
    const d = detect({
      "package.json": JSON.stringify({ name: "gen", scripts: { start: "node ./bin/www" }, dependencies: { express: "^4" } }),
      "bin/www": "#!/usr/bin/env node\nvar app = require('../app');\nvar http = require('http');\nvar port = normalizePort(process.env.PORT || '3000');\nvar server = http.createServer(app);\nserver.listen(port);\n",
      "app.js": "var express = require('express'); var app = express(); module.exports = app;\n",
    });
    expect(d.run).toEqual(["node", "./bin/www"]);
    expectCapture(d, 3000);
  });

  test("a port other than the framework CLI's default is passed to it: uvicorn --port, flask run --port, runserver ADDR", () => {
    const api = detect({ "requirements.txt": "fastapi\n", "main.py": "app = FastAPI()\n", ".env": "PORT=8100\n" }, onPath("python3"));
    expect(api.run).toEqual(["python3", "-m", "uvicorn", "main:app", "--port", "8100"]);
    expect(api.reasons).toContain("run: python3 -m uvicorn main:app --port 8100 (told the port, which is not the framework's default 8000)");
    expectCapture(api, 8100);
    expect(detect({ "hello.py": "from flask import Flask\napp = Flask(__name__)\n", ".env": "PORT=5001\n" }).run).toEqual(["flask", "--app", "hello", "run", "--port", "5001"]);
    expect(detect({ "requirements.txt": "django\n", "manage.py": "", ".env": "PORT=8200\n" }).run).toEqual(["python3", "manage.py", "runserver", "--noreload", "127.0.0.1:8200"]);
  });

  test("FastAPI run with uvicorn --fd (Procfile) → fd, ready on uvicorn's log line", () => {
    const d = detect({ "requirements.txt": "fastapi\nuvicorn\n", "api.py": "from fastapi import FastAPI\nserver = FastAPI()\n", Procfile: "web: uvicorn --fd 3 api:server\n" });
    expect(d.run).toEqual(["uvicorn", "--fd", "3", "api:server"]);
    expectFd(d, 8000);
    expect(d.readyType).toBe("log");
    expect(d.readyPattern).toBe("Application startup complete");
  });

  test("gunicorn → fd (it adopts LISTEN_FDS), ready at 'Booting worker'", () => {
    const d = detect({ "requirements.txt": "flask\ngunicorn\n", "wsgi.py": "from flask import Flask\napplication = Flask(__name__)\n" });
    expect(d.label).toBe("Python (Flask, gunicorn)");
    expect(d.run).toEqual(["gunicorn", "wsgi:application"]);
    expectFd(d, 8000);
    expect(d.readyType).toBe("log");
    expect(renderDetected(d).config.serve.ready).toMatchObject({ type: "log", pattern: "Booting worker" });
  });

  test("Python that adopts socket(fileno=3) → fd; no ready signal → delay", () => {
    const d = detect({ "server.py": "import socket\nsock = socket.socket(fileno=3)\nport = 8123\n" });
    expectFd(d, 8123);
    expect(d.readyType).toBe("delay");
  });

  test("Python http.server with a hard-coded port", () => {
    const d = detect({ "server.py": 'from http.server import HTTPServer, BaseHTTPRequestHandler\nHTTPServer(("", 8001), BaseHTTPRequestHandler).serve_forever()\n' });
    expect(d.run).toEqual(["python3", "server.py"]);
    expectCapture(d, 8001);
  });

  test("Python's docs http.server: PORT = 8000 and TCPServer((\"\", PORT), Handler)", () => {
    const d = detect({
      "server.py": 'import http.server\nimport socketserver\n\nPORT = 8003\n\nHandler = http.server.SimpleHTTPRequestHandler\n\nwith socketserver.TCPServer(("", PORT), Handler) as httpd:\n    httpd.serve_forever()\n',
    });
    expect(d.run).toEqual(["python3", "server.py"]);
    expect(d.reasons).toContain("port 8003: server.py listens on PORT = 8003");
    expectCapture(d, 8003);
  });

  test("FastAPI that calls uvicorn.run(app, port=…) under __main__ runs as python3 main.py", () => {
    const d = detect({
      "requirements.txt": "fastapi\nuvicorn\n",
      "main.py": 'import uvicorn\nfrom fastapi import FastAPI\n\napp = FastAPI()\n\nif __name__ == "__main__":\n    uvicorn.run(app, host="0.0.0.0", port=8004)\n',
    });
    expect(d.run).toEqual(["python3", "main.py"]);
    expectCapture(d, 8004);
  });

  test("Flask app.run(port=PORT) with a module constant", () => {
    const d = detect({ "app.py": 'from flask import Flask\napp = Flask(__name__)\nPORT = 8005\nif __name__ == "__main__":\n    app.run(port=PORT)\n' });
    expect(d.run).toEqual(["python3", "app.py"]);
    expectCapture(d, 8005);
  });

  test("Django: runserver --noreload on its default port, captured", () => {
    const d = detect({ "requirements.txt": "django\n", "manage.py": "" });
    expect(d.label).toBe("Python (Django)");
    expect(d.run).toEqual(["python3", "manage.py", "runserver", "--noreload", "127.0.0.1:8000"]);
    expectCapture(d, 8000);
  });

  test("a .venv's python and tools are used", () => {
    const d = detect({ "requirements.txt": "fastapi\n", "main.py": "app = FastAPI()\n", ".venv/bin/python": "", ".venv/bin/uvicorn": "" }, onPath());
    expect(d.run).toEqual([".venv/bin/uvicorn", "main:app"]);
    expect(d.missing).toEqual([]);
  });

  test("dotenv files become [run] env_file, in precedence order", () => {
    const one = detect({ "server.js": "require('http').createServer().listen(3000)\n", ".env": "A=1\n" });
    expect(one.envFiles).toEqual([".env"]);
    expect(one.reasons.some((r) => r.startsWith('env: run.env_file = [".env"]'))).toBe(true);
    expect(renderDetected(one).config.run.env_file).toEqual([".env"]);
    expect(renderDetected(one).text).toMatch(/^env_file = "\.env"$/m);
    const two = detect({ "server.js": "", ".env.local": "A=2\n", ".env": "A=1\n" });
    expect(renderDetected(two).config.run.env_file).toEqual([".env", ".env.local"]);
    expect(renderDetected(detect({ "server.js": "" })).config.run.env_file).toBeUndefined();
  });

  test("PORT in .env decides the port", () => {
    const d = detect({ "go.mod": GO_MOD, "main.go": 'package main\nfunc main() { http.ListenAndServe(":8080", nil) }\n', ".env": "DEBUG=1\nPORT=4321\n" });
    expect(d.listen).toBe("127.0.0.1:4321");
    expect(d.reasons).toContain("port 4321: .env sets PORT=4321");
  });

  test("Rust with listenfd → fd; without → capture", () => {
    const d = detect({ "Cargo.toml": '[package]\nname = "svc"\nversion = "0.1.0"\n\n[dependencies]\nlistenfd = "1"\n' });
    expect(d.kind).toBe("rust");
    expect(d.build).toEqual(["cargo", "build"]);
    expect(d.run).toEqual(["./target/debug/svc"]);
    expect(d.exclude).toContain("target/**");
    expectFd(d, 8080);
    expectCapture(detect({ "Cargo.toml": '[package]\nname = "svc"\n', "src/main.rs": 'fn main() { TcpListener::bind("127.0.0.1:7878") }\n' }), 8080);
  });

  test("Makefile", () => {
    const d = detect({ Makefile: "build:\n\tcc -o app main.c\nrun: build\n\t./app\n" });
    expect(d.kind).toBe("make");
    expect(d.build).toEqual(["make", "build"]);
    expect(d.run).toEqual(["make", "run"]);
    renderDetected(d);
  });

  test("empty directory → generic", () => {
    const d = detect({});
    expect(d.kind).toBe("generic");
    expect(d.build).toBeUndefined();
    expect(d.run).toEqual(["./app"]);
    expect(d.reasons[0]).toContain("generic");
    const { text } = renderDetected(d);
    expect(text).toContain("# cmd = "); // no build: the key is shown commented out
  });

  test("missing commands are listed (go not installed)", () => {
    expect(detect({ "go.mod": GO_MOD, "main.go": "package main\n" }, onPath()).missing).toEqual(["go"]);
  });
});

describe("detectProject on the bundled examples", () => {
  const EXAMPLES = join(import.meta.dir, "..", "..", "examples");
  test("apps written to adopt fd 3 get fd and their own ready signal; the unmodified Bun.serve app gets capture", () => {
    const got = Object.fromEntries(
      ["bun-net", "node-http", "python", "go-gin", "bun-serve"].map((name) => {
        const d = detectProject(join(EXAMPLES, name), { which: ALL, env: NO_GOPATH });
        renderDetected(d);
        return [name, `${d.adopts ? "fd" : "capture"} ${d.readyType} ${d.listen} ${showCommand(d.run)}`];
      }),
    );
    expect(got).toEqual({
      "bun-net": "fd notify 127.0.0.1:8080 bun server.ts",
      "node-http": "fd notify 127.0.0.1:8080 node server.mjs",
      python: "fd notify 127.0.0.1:8080 python3 server.py",
      "go-gin": "fd notify 127.0.0.1:8080 ./tmp/app",
      "bun-serve": "capture listen 127.0.0.1:8080 bun server.ts",
    });
  });
});

describe("bind capture unavailable on this machine", () => {
  const why = "seccomp(2) user notification is not available to hr (Operation not permitted): a seccomp profile or security policy forbids it";
  const files = (code: string) => ({ "package.json": JSON.stringify({ main: "app.js" }), "app.js": code });
  test("the config still follows the rule; hr init warns and names the way out (proxy when the app reads PORT)", () => {
    const reads = detectProject(project(files("require('http').createServer().listen(process.env.PORT || 3000)\n")), { which: ALL, captureUnavailable: () => why });
    expect(reads.capture).toBe(true);
    expect(reads.warnings).toHaveLength(1);
    expect(reads.warnings[0]).toStartWith(`${why}: hr dev and hr serve will refuse run.capture here.`);
    expect(reads.warnings[0]).toContain('The app reads $PORT, so it runs without capture behind hr\'s proxy: set run.capture = false and dev.strategy = "proxy"');
    const fixed = detectProject(project(files("require('http').createServer().listen(3000)\n")), { which: ALL, captureUnavailable: () => why });
    expect(fixed.warnings[0]).toContain("Without capture the app must read $PORT (proxy) or adopt hr's socket at fd 3 (fd)");
    const adopts = detectProject(project(files("server.listen({ fd: 3 })\n")), { which: ALL, captureUnavailable: () => why });
    expect(adopts.warnings).toEqual([]);
  });
});

describe("requiredChanges: what the app must change", () => {
  const d = detect({ "go.mod": GIN_MOD, "main.go": GIN_APP('r.Run(":8080")') });
  test("capture: nothing; without capture under fd: adopt fd 3; proxy: bind $PORT; a ready signal it does not send", () => {
    const a = defaultAnswers(d);
    expect(requiredChanges(a, d)).toEqual([]);
    expect(requiredChanges({ ...a, capture: false, serveStrategy: "fd", readyType: "notify" }, d)).toEqual([
      "hr dev (strategy fd): adopt the socket at fd 3 (LISTEN_FDS=1) instead of binding the port",
      "hr serve (strategy fd): adopt the socket at fd 3 (LISTEN_FDS=1) instead of binding the port",
      'hr serve (ready "notify"): send READY=1 to $NOTIFY_SOCKET once serving',
    ]);
    expect(requiredChanges({ ...a, capture: false, devStrategy: "proxy", readyType: "tcp" }, d).join("\n")).toContain("bind 127.0.0.1:$PORT");
    const text = renderConfig(toConfigInput({ ...a, capture: false, readyType: "tcp" }), { ...d, changes: requiredChanges({ ...a, capture: false, readyType: "tcp" }, d) });
    expect(text).toContain("# The app must change for this config:");
    expect(text).toContain('net.FileListener(os.NewFile(3, "http"))');
  });
});

describe("renderConfig", () => {
  const d = detectProject(project({ "go.mod": GIN_MOD }));

  test("comments come from the schema's descriptions", () => {
    const { text } = renderDetected(d);
    expect(text.split("\n")[1]).toContain("Generated by `hr init`");
    // Descriptions of sections and of keys, set or commented-out, are there (wrapped; compare the start).
    for (const s of [BuildSection, WatchSection, ServeSection]) expect(text).toContain(`# ${s.description!.slice(0, 40)}`);
    expect(text).toContain(`# ${WatchSection.shape.debounce.description!.slice(0, 40)}`);
    expect(text).toContain('# debounce = "10ms"');
    expect(text).toContain("[serve.ready]");
    for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(120);
  });

  test("no socket: no [[listen]], dev strategy none, still valid", () => {
    const input = toConfigInput({ ...defaultAnswers(d), listen: null, devStrategy: "fd" });
    const text = renderConfig(input, d);
    const r = validate(Bun.TOML.parse(text));
    expect(r.ok && r.config.listen).toEqual([]);
    expect(r.ok && r.config.dev.strategy).toBe("none");
    expect(text).toContain("# [[listen]]");
  });

  test("string commands, env tables, odd characters and log readiness round-trip", () => {
    const input = toConfigInput({ ...defaultAnswers(d), run: `sh -c 'echo "hi \\ there"' && ./app` });
    input.run = { cmd: input.run.cmd, env: { "APP ENV": "dev", PORT_HINT: "8080" } };
    input.serve = { ...input.serve, ready: { type: "log", pattern: "listening on \\d+" } };
    const text = renderConfig(input, d);
    const r = validate(Bun.TOML.parse(text));
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.config.run.cmd).toBe(`sh -c 'echo "hi \\ there"' && ./app`);
      expect(r.config.run.env).toEqual({ "APP ENV": "dev", PORT_HINT: "8080" });
      expect(r.config.serve.ready.pattern).toBe("listening on \\d+");
    }
  });

  test("an invalid config is refused, not rendered", () => {
    const input = toConfigInput(defaultAnswers(d));
    input.serve = { ...input.serve, ready: { type: "log" } }; // log needs a pattern
    expect(() => renderConfig(input, d)).toThrow(/pattern/);
    expect(() => renderConfig({ ...toConfigInput(defaultAnswers(d)), listen: [] }, d)).toThrow(/dev\.strategy/);
  });

  test("assertRoundTrip catches text that reads back differently", () => {
    const input = toConfigInput(defaultAnswers(d));
    const text = renderConfig(input, d);
    expect(() => assertRoundTrip(input, text.replace('workers = 1', 'workers = 2'))).toThrow(/does not read back/);
    expect(() => assertRoundTrip(input, `${text}\n[[[`)).toThrow(/does not parse/);
  });

  test("every language has an adopt snippet", () => {
    for (const lines of Object.values(ADOPT_SNIPPETS)) expect(lines.length).toBeGreaterThan(0);
  });
});

describe("wizard helpers", () => {
  test("commands: simple lines become arrays and show back the same", () => {
    expect(simpleCommand("./tmp/app --port=8080")).toEqual(["./tmp/app", "--port=8080"]);
    expect(simpleCommand("make && ./app")).toBe("make && ./app");
    expect(simpleCommand("echo $HOME")).toBe("echo $HOME");
    for (const cmd of [["go", "build", "-o", "./tmp/app", "."], "a | b"]) expect(simpleCommand(showCommand(cmd))).toEqual(cmd);
    expect(showCommand(["echo", "a b"])).toBe("echo 'a b'");
  });

  test("address check", () => {
    for (const ok of ["", "127.0.0.1:8080", ":8080", "*:80", "[::1]:8080", "localhost:3000", "unix:./app.sock", "unix:@abstract"])
      expect(checkAddress(ok)).toBeUndefined();
    for (const bad of ["8080", "127.0.0.1", "host:99999", "unix:", "http://x:80"]) expect(checkAddress(bad)).toBeString();
  });

  test("pattern check", () => {
    expect(checkPattern("listening on \\d+")).toBeUndefined();
    expect(checkPattern("")).toBeString();
    expect(checkPattern("(")).toMatch(/not a regular expression/);
  });

  test("workers check", () => {
    expect(checkWorkers("4")).toBeUndefined();
    for (const bad of ["0", "-1", "two", "1.5", ""]) expect(checkWorkers(bad)).toBeString();
  });

  test("writeAtomic replaces the file and leaves no temp file", () => {
    const dir = project({ "hr.toml": "old" });
    writeAtomic(join(dir, "hr.toml"), "new\n");
    expect(readFileSync(join(dir, "hr.toml"), "utf8")).toBe("new\n");
    expect(readdirSync(dir)).toEqual(["hr.toml"]);
  });
});
