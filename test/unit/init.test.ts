import { afterEach, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { validate } from "../../src/config/load.ts";
import { defaultAnswers, detectProject, simpleCommand, toConfigInput, type Detection } from "../../src/init/detect.ts";
import { ADOPT_SNIPPETS, assertRoundTrip, renderConfig } from "../../src/init/render.ts";
import { checkAddress, checkPattern, checkWorkers, showCommand, writeAtomic } from "../../src/init/wizard.ts";
import { BuildSection, ServeSection, WatchSection } from "../../src/config/schema.ts";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "hr-init-"));
  dirs.push(dir);
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/** Renders the detected defaults and checks the text reads back to a valid config. */
function renderDetected(d: Detection) {
  const text = renderConfig(toConfigInput(defaultAnswers(d)), d);
  const result = validate(Bun.TOML.parse(text), text, "hr.toml");
  if (!result.ok) throw new Error(JSON.stringify(result.problems));
  return { text, config: result.config };
}

const GO_MOD = "module example.com/shop\n\ngo 1.22\n";
const GIN_MOD = `${GO_MOD}\nrequire github.com/gin-gonic/gin v1.10.0\n`;

describe("detectProject", () => {
  test("Go with Gin", () => {
    const d = detectProject(project({ "go.mod": GIN_MOD, "main.go": 'package main\nfunc main() { r.Run(":9000") }\n' }));
    expect(d.kind).toBe("go-gin");
    expect(d.label).toBe("Go (Gin)");
    expect(d.build).toEqual(["go", "build", "-o", "./tmp/app", "."]);
    expect(d.run).toEqual(["./tmp/app"]);
    expect(d.includeExt).toContain("go");
    expect(d.exclude).toContain("tmp/**");
    expect(d.listen).toBe("127.0.0.1:9000");
    expect(d.devStrategy).toBe("fd");
    expect(d.serveStrategy).toBe("fd");
    expect(d.readyType).toBe("notify");
    expect(d.reasons).toContain("go.mod requires github.com/gin-gonic/gin");
    expect(d.reasons).toContain("main.go uses port 9000");
    const { text, config } = renderDetected(d);
    expect(text).toContain('net.FileListener(os.NewFile(3, "http"))');
    expect(config.listen[0]).toMatchObject({ name: "http", address: "127.0.0.1:9000" });
  });

  test("plain Go; main package under cmd/", () => {
    const d = detectProject(project({ "go.mod": GO_MOD, "cmd/api/main.go": "package main\n" }));
    expect(d.kind).toBe("go");
    expect(d.build).toEqual(["go", "build", "-o", "./tmp/app", "./cmd/api"]);
    expect(d.listen).toBe("127.0.0.1:8080");
    expect(d.reasons.some((r) => r.includes("gin"))).toBe(false);
    renderDetected(d);
  });

  test("PORT in .env decides the listen address", () => {
    const d = detectProject(project({ "go.mod": GO_MOD, "main.go": "package main\n", ".env": "DEBUG=1\nPORT=4321\n" }));
    expect(d.listen).toBe("127.0.0.1:4321");
    expect(d.reasons).toContain(".env sets PORT=4321");
  });

  test("Bun (bun.lock) with Bun.serve → proxy", () => {
    const d = detectProject(
      project({
        "package.json": JSON.stringify({ name: "web", module: "server.ts", scripts: { dev: "bun --hot server.ts" } }),
        "bun.lock": "{}",
        "server.ts": "Bun.serve({ port: Number(process.env.PORT), fetch() { return new Response('hi') } });\n",
      }),
    );
    expect(d.kind).toBe("bun");
    expect(d.language).toBe("bun-serve");
    expect(d.build).toBeUndefined();
    expect(d.run).toEqual(["bun", "server.ts"]);
    expect(d.devStrategy).toBe("proxy");
    expect(d.serveStrategy).toBe("proxy");
    expect(d.readyType).toBe("ipc");
    expect(d.reasons.some((r) => r.includes("scripts.dev runs its own watcher"))).toBe(true);
    expect(renderDetected(d).text).toContain("Bun.serve({ port: Number(process.env.PORT");
  });

  test("Bun with bun.lockb and node:net → fd", () => {
    const d = detectProject(project({ "package.json": "{}", "bun.lockb": "", "index.ts": "import net from 'node:net';\n" }));
    expect(d.kind).toBe("bun");
    expect(d.language).toBe("bun");
    expect(d.run).toEqual(["bun", "index.ts"]);
    expect(d.devStrategy).toBe("fd");
    renderDetected(d);
  });

  test("Node: start script, npm lockfile, port from code", () => {
    const d = detectProject(
      project({
        "package.json": JSON.stringify({ scripts: { start: "node server.js" } }),
        "package-lock.json": "{}",
        "server.js": "require('http').createServer().listen(3000);\n",
      }),
    );
    expect(d.kind).toBe("node");
    expect(d.run).toEqual(["node", "server.js"]);
    expect(d.build).toBeUndefined();
    expect(d.listen).toBe("127.0.0.1:3000");
    expect(d.devStrategy).toBe("fd");
    expect(d.readyType).toBe("ipc");
    expect(d.reasons.some((r) => r.includes("package-lock.json"))).toBe(true);
    expect(renderDetected(d).text).toContain("listen(");
  });

  test("Node + TypeScript (pnpm): build script, compiled main", () => {
    const d = detectProject(
      project({
        "package.json": JSON.stringify({ main: "dist/index.js", scripts: { build: "tsc", dev: "tsx watch src/index.ts" } }),
        "pnpm-lock.yaml": "",
        "tsconfig.json": '{ "compilerOptions": { "outDir": "dist" } }',
        "src/index.ts": "",
      }),
    );
    expect(d.label).toBe("Node (TypeScript)");
    expect(d.build).toEqual(["pnpm", "run", "build"]);
    expect(d.run).toEqual(["node", "dist/index.js"]);
    expect(d.includeExt).toContain("ts");
    expect(d.exclude).toContain("dist/**");
    renderDetected(d);
  });

  test("Node: a start script with shell syntax runs through the package manager", () => {
    const d = detectProject(project({ "package.json": JSON.stringify({ scripts: { start: "NODE_ENV=production node app.js && echo done" } }), "yarn.lock": "" }));
    expect(d.run).toEqual(["yarn", "run", "start"]);
  });

  test("Python: requirements.txt with flask", () => {
    const d = detectProject(project({ "requirements.txt": "Flask==3.0.0\nrequests\n", "app.py": "from flask import Flask\n" }));
    expect(d.kind).toBe("python");
    expect(d.label).toBe("Python (Flask)");
    expect(d.run).toEqual(["python3", "app.py"]);
    expect(d.exclude).toEqual(expect.arrayContaining(["__pycache__/**", ".venv/**"]));
    expect(d.devStrategy).toBe("fd");
    expect(d.readyType).toBe("notify");
    expect(d.reasons).toContain("requirements.txt names flask");
    expect(renderDetected(d).text).toContain("socket.socket(fileno=3)");
  });

  test("Python: pyproject with fastapi → uvicorn --fd 3", () => {
    const d = detectProject(
      project({ "pyproject.toml": '[project]\nname = "api"\ndependencies = ["fastapi>=0.110", "uvicorn[standard]"]\n', "main.py": "" }),
    );
    expect(d.label).toBe("Python (FastAPI)");
    expect(d.run).toEqual(["uvicorn", "--fd", "3", "main:app"]);
    expect(d.readyType).toBe("log");
    const { config } = renderDetected(d);
    expect(config.serve.ready).toMatchObject({ type: "log", pattern: "Application startup complete" });
  });

  test("Python: django runs behind the proxy on $PORT", () => {
    const d = detectProject(project({ "requirements.txt": "django\n", "manage.py": "" }));
    expect(d.label).toBe("Python (Django)");
    expect(d.run).toBe("python3 manage.py runserver --noreload 127.0.0.1:$PORT");
    expect(d.devStrategy).toBe("proxy");
    expect(d.readyType).toBe("tcp");
    renderDetected(d);
  });

  test("Python: plain pyproject falls back to python3 main.py", () => {
    const d = detectProject(project({ "pyproject.toml": '[project]\nname = "x"\n' }));
    expect(d.label).toBe("Python");
    expect(d.run).toEqual(["python3", "main.py"]);
    renderDetected(d);
  });

  test("Rust", () => {
    const d = detectProject(project({ "Cargo.toml": '[package]\nname = "svc"\nversion = "0.1.0"\n\n[dependencies]\nlistenfd = "1"\n' }));
    expect(d.kind).toBe("rust");
    expect(d.build).toEqual(["cargo", "build"]);
    expect(d.run).toEqual(["./target/debug/svc"]);
    expect(d.exclude).toContain("target/**");
    expect(d.devStrategy).toBe("fd");
    expect(d.readyType).toBe("tcp");
    renderDetected(d);
  });

  test("Makefile", () => {
    const d = detectProject(project({ Makefile: "build:\n\tcc -o app main.c\nrun: build\n\t./app\n" }));
    expect(d.kind).toBe("make");
    expect(d.build).toEqual(["make", "build"]);
    expect(d.run).toEqual(["make", "run"]);
    renderDetected(d);
  });

  test("empty directory → generic", () => {
    const d = detectProject(project({}));
    expect(d.kind).toBe("generic");
    expect(d.build).toBeUndefined();
    expect(d.run).toEqual(["./app"]);
    expect(d.reasons[0]).toContain("generic");
    const { text } = renderDetected(d);
    expect(text).toContain("# cmd = "); // no build: the key is shown commented out
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
