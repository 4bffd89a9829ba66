import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, formatProblem } from "../../src/config/errors.ts";
import { envOverrides, listenEntries, loadConfig, validate } from "../../src/config/load.ts";
import { parseDuration } from "../../src/config/duration.ts";
import { jsonSchema } from "../../src/config/schema.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "hr-config-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function write(text: string) {
  writeFileSync(join(dir, "hr.toml"), text);
}
function problems(options: Partial<Parameters<typeof loadConfig>[0]> = {}): string[] {
  try {
    loadConfig({ cwd: dir, ...options });
  } catch (error) {
    if (error instanceof ConfigError) return error.problems.map((p) => formatProblem(p).split("\n")[0]!);
    throw error;
  }
  throw new Error("expected the config to be rejected");
}

describe("durations", () => {
  test("parse units and compounds", () => {
    expect(parseDuration("250ms")).toBe(250);
    expect(parseDuration("5s")).toBe(5000);
    expect(parseDuration("2m")).toBe(120_000);
    expect(parseDuration("1m30s")).toBe(90_000);
    expect(parseDuration("1.5s")).toBe(1500);
    expect(parseDuration("30")).toBeUndefined();
    expect(parseDuration("5 seconds")).toBeUndefined();
  });
});

describe("defaults", () => {
  test("a minimal file gets every default", () => {
    write(`[run]\ncmd = "./app"\n`);
    const { config, file, root } = loadConfig({ cwd: dir });
    expect(file).toBe(join(dir, "hr.toml"));
    expect(root).toBe(dir);
    expect(config.run).toEqual({ cmd: "./app", env: {}, stop_signal: "SIGTERM", stop_timeout: 5000, capture: false });
    expect(config.dev.overlap).toBeUndefined();
    expect(config.watch).toMatchObject({ paths: ["."], include_ext: [], exclude: [], gitignore: true, debounce: 10 });
    expect(config.watch.poll).toBeUndefined();
    expect(config.serve).toMatchObject({ strategy: "fd", workers: 1, drain_timeout: 30_000, ready: { type: "notify", timeout: 30_000 } });
    expect(config.listen).toEqual([]);
    expect(config.log.format).toBe("text");
  });

  test("the issue's full example is valid", () => {
    write(`[build]
cmd = "go build -o ./tmp/app ."
[run]
cmd = ["./tmp/app"]
env = { GIN_MODE = "debug" }
stop_signal = "SIGTERM"
stop_timeout = "5s"
[watch]
paths = ["."]
include_ext = ["go", "html"]
exclude = ["tmp/**", "**/*_test.go"]
gitignore = true
debounce = "50ms"
[[listen]]
name = "http"
address = "127.0.0.1:8080"
[dev]
strategy = "fd"
[serve]
strategy = "fd"
workers = 1
ready = { type = "notify", timeout = "30s" }
drain_timeout = "30s"
[log]
format = "text"
`);
    const { config } = loadConfig({ cwd: dir });
    expect(config.build.cmd).toBe("go build -o ./tmp/app .");
    expect(config.run.env).toEqual({ GIN_MODE: "debug" });
    expect(config.listen).toEqual([{ name: "http", address: "127.0.0.1:8080", backlog: 4096, protocol: "http", trust_forwarded: false }]);
    expect(config.dev.strategy).toBe("fd");
  });

  test("stop_signal accepts short and lower-case names", () => {
    write(`[run]\ncmd = "x"\nstop_signal = "int"\n`);
    expect(loadConfig({ cwd: dir }).config.run.stop_signal).toBe("SIGINT");
  });
});

describe("precedence: defaults < file < HR_* env < flags", () => {
  test("each layer overrides the one before", () => {
    write(`[run]\ncmd = "x"\n[serve]\nworkers = 2\ndrain_timeout = "10s"\n[watch]\ninclude_ext = ["go"]\n`);
    expect(loadConfig({ cwd: dir }).config.serve.workers).toBe(2);
    const env = { HR_SERVE_WORKERS: "3", HR_SERVE_DRAIN_TIMEOUT: "4s", HR_WATCH_INCLUDE_EXT: "ts,tsx", HR_WATCH_GITIGNORE: "false" };
    const fromEnv = loadConfig({ cwd: dir, env }).config;
    expect(fromEnv.serve.workers).toBe(3);
    expect(fromEnv.serve.drain_timeout).toBe(4000);
    expect(fromEnv.watch.include_ext).toEqual(["ts", "tsx"]);
    expect(fromEnv.watch.gitignore).toBe(false);
    const fromFlags = loadConfig({ cwd: dir, env, flags: { serve: { workers: 5 } } }).config;
    expect(fromFlags.serve.workers).toBe(5);
    expect(fromFlags.serve.drain_timeout).toBe(4000);
  });

  test("variables hr sets for apps are not config", () => {
    expect(envOverrides({ HR_GENERATION: "3", HR_CHANGED_PATHS: "a.go", HR_WORKER: "1" })).toEqual({ ok: true, values: {} });
  });

  test("nested keys: HR_SERVE_READY_TYPE and friends reach [serve.ready]", () => {
    write(`[run]\ncmd = "x"\n[serve.ready]\ntype = "notify"\ntimeout = "9s"\n`);
    const env = { HR_SERVE_READY_TYPE: "http", HR_SERVE_READY_PATH: "/up", HR_SERVE_READY_PORT: "9090", HR_SERVE_DRAIN_TIMEOUT: "2s" };
    const cfg = loadConfig({ cwd: dir, env }).config;
    expect(cfg.serve.ready).toMatchObject({ type: "http", path: "/up", port: 9090, timeout: 9000 });
    expect(cfg.serve.drain_timeout).toBe(2000);
    expect(envOverrides({ HR_SERVE_READY_TYPE: "tcp" })).toEqual({ ok: true, values: { serve: { ready: { type: "tcp" } } } });
    expect(problems({ env: { HR_SERVE_READY_TYPO: "tcp" } }).join("\n")).toContain("HR_SERVE_READY_TYPO sets no known key; did you mean HR_SERVE_READY_TYPE?");
    expect(problems({ env: { HR_SERVE_READY: "tcp" } }).join("\n")).toContain("HR_SERVE_READY sets no known key");
    expect(problems({ env: { HR_SERVE_READY_TYPE: "smoke" } }).join("\n")).toMatch(/serve\.ready\.type: expected one of .*got "smoke"/);
  });

  test("HR_LISTEN and --listen values: ADDRESS or NAME=ADDRESS, named http, http2, … in order", () => {
    expect(listenEntries([":8080"])).toEqual([{ name: "http", address: ":8080" }]);
    expect(listenEntries(["127.0.0.1:3000", "admin=unix:./a.sock", "[::1]:4000"])).toEqual([
      { name: "http", address: "127.0.0.1:3000" },
      { name: "admin", address: "unix:./a.sock" },
      { name: "http2", address: "[::1]:4000" },
    ]);
    expect(listenEntries(["http=:1", ":2"])).toEqual([{ name: "http", address: ":1" }, { name: "http2", address: ":2" }]);
    write(`[run]\ncmd = "x"\n[[listen]]\nname = "web"\naddress = ":1"\n`);
    expect(loadConfig({ cwd: dir, env: { HR_LISTEN: ":8080, admin=:8081" } }).config.listen.map((l) => [l.name, l.address])).toEqual([
      ["http", ":8080"],
      ["admin", ":8081"],
    ]);
    expect(problems({ env: { HR_LISTEN: "8080" } }).join("\n")).toMatch(/listen\[0\]\.address/);
  });

  test("no hr.toml: the command from flags or HR_RUN_CMD is enough", () => {
    rmSync(join(dir, "hr.toml"), { force: true });
    expect(loadConfig({ cwd: dir, flags: { run: { cmd: ["./app"] }, listen: listenEntries([":8080"]) } })).toMatchObject({ file: null, config: { run: { cmd: ["./app"] } } });
    expect(loadConfig({ cwd: dir, env: { HR_RUN_CMD: "./app --x" } }).config.run.cmd).toBe("./app --x");
    expect(problems()[0]).toContain("give the command: hr dev [--listen :8080] -- CMD");
  });

  test("a misspelt HR_ variable is an error with a suggestion", () => {
    write(`[run]\ncmd = "x"\n`);
    expect(problems({ env: { HR_SERVE_WORKRES: "3" } }).join("\n")).toContain("HR_SERVE_WORKRES sets no known key; did you mean HR_SERVE_WORKERS?");
  });

  test("an env value of the wrong type is reported like a file value", () => {
    write(`[run]\ncmd = "x"\n`);
    expect(problems({ env: { HR_SERVE_WORKERS: "many" } }).join("\n")).toContain(`serve.workers: expected a whole number from 1 to 1024, got "many"`);
  });
});

describe("errors name where, what was expected and what was found", () => {
  test("the issue's example message, with its line", () => {
    write(`[run]\ncmd = "x"\n[serve]\ndrain_timeout = 30\n`);
    expect(problems()).toEqual([`hr.toml:4: serve.drain_timeout: expected a duration like "30s", got 30`]);
  });

  test("a TOML syntax error names line and column", () => {
    write(`[run]\ncmd = "x"\n\n[serve]\nworkers = \n`);
    const [message] = problems();
    expect(message).toMatch(/^hr\.toml:5:\d+: TOML syntax error: /);
  });

  test("an unterminated string points at its line", () => {
    write(`[run]\ncmd = "x\n[serve]\nworkers = 1\n`);
    expect(problems()[0]).toMatch(/^hr\.toml:2:\d+: TOML syntax error/);
  });

  test("unknown keys get a did-you-mean, at any depth", () => {
    write(`[run]\ncmd = "x"\n[watch]\ninclude_exts = ["go"]\n[serve]\nready = { tyep = "tcp" }\n[[listen]]\nname = "http"\nadress = "127.0.0.1:1"\n[sevre]\n`);
    const all = problems().join("\n");
    expect(all).toContain(`hr.toml:4: watch.include_exts: unknown key in [watch]; did you mean "include_ext"?`);
    expect(all).toContain(`hr.toml:6: serve.ready.tyep: unknown key in [serve.ready]; did you mean "type"?`);
    expect(all).toContain(`listen[0].adress: unknown key in [listen[0]]; did you mean "address"?`);
    expect(all).toContain(`sevre: unknown key at the top level; did you mean "serve"?`);
  });

  test("wrong types and enum values", () => {
    write(`[run]\ncmd = 3\nstop_signal = "SIGFOO"\n[serve]\nworkers = 0\nstrategy = "magic"\n[watch]\nexclude = "tmp"\n`);
    const all = problems().join("\n");
    expect(all).toContain(`hr.toml:2: run.cmd: expected a command: a string for \`sh -c\`, or an array like ["./tmp/app", "--flag"], got 3`);
    expect(all).toContain(`run.stop_signal: expected one of "SIGTERM"`);
    expect(all).toContain(`serve.workers: expected a whole number from 1 to 1024, got 0`);
    expect(all).toContain(`serve.strategy: expected one of "fd", "reuseport", "proxy", got "magic"`);
    expect(all).toContain(`watch.exclude: expected an array of strings, got "tmp"`);
  });

  test("every problem is reported at once", () => {
    write(`[run]\ncmd = "x"\n[serve]\nworkers = 0\ndrain_timeout = 3\n`);
    expect(problems()).toHaveLength(2);
  });

  test("a missing [run] says what to add", () => {
    write(`[serve]\nworkers = 1\n`);
    expect(problems()).toEqual([`hr.toml: run: missing; expected a [run] table with cmd = "…"`]);
  });

  test("cross-field rules: unique listen names, log readiness needs a pattern, dev fd needs a socket", () => {
    write(`[run]\ncmd = "x"\n[[listen]]\nname = "a"\naddress = ":1"\n[[listen]]\nname = "a"\naddress = ":2"\n[serve]\nready = { type = "log" }\n`);
    const all = problems().join("\n");
    expect(all).toContain(`listen[1].name: duplicate listen name "a"`);
    expect(all).toContain(`serve.ready.pattern: ready.type = "log" needs a pattern`);
    write(`[run]\ncmd = "x"\n[dev]\nstrategy = "fd"\n`);
    expect(problems().join("\n")).toContain(`dev.strategy: dev.strategy = "fd" needs at least one [[listen]] socket`);
  });

  test("a missing file suggests hr init", () => {
    expect(problems()[0]).toContain("hr.toml: no such file; run `hr init` to create one");
  });
});

describe("JSON Schema", () => {
  test("describes the file as written, with defaults and descriptions", () => {
    const schema = jsonSchema() as { properties: Record<string, { properties: Record<string, Record<string, unknown>> }>; required: string[] };
    expect(schema.required).toEqual(["run"]);
    const drain = schema.properties.serve!.properties.drain_timeout!;
    expect(drain.type).toBe("string");
    expect(drain.default).toBe("30s");
    expect(String(drain.description)).toContain("drain");
    expect(schema.properties.serve!.properties.strategy!.enum).toEqual(["fd", "reuseport", "proxy"]);
  });

  test("validate() accepts what the schema's defaults describe", () => {
    expect(validate({ run: { cmd: ["./app"] } }).ok).toBe(true);
  });
});

describe("docs", () => {
  test("README's config reference is the one generated from the schema", () => {
    const run = Bun.spawnSync([process.execPath, "scripts/gen-docs.ts", "--check"], { cwd: join(import.meta.dir, "..", "..") });
    expect(run.stderr.toString()).toBe("");
    expect(run.exitCode).toBe(0);
  });
});

describe("listen addresses are checked by hr check", () => {
  test("a bare port and an unresolvable host are rejected with a hint", () => {
    const result = validate({ run: { cmd: "x" }, listen: [{ name: "a", address: "8080" }, { name: "b", address: "example:1" }, { name: "c", address: "[::1]:80" }, { name: "d", address: "unix:./a.sock" }] });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.problems.map((p) => `${p.path}: ${p.message}`)).toEqual([
      `listen[0].address: "8080" is not an address; did you mean ":8080" (all interfaces) or "127.0.0.1:8080"?`,
      `listen[1].address: "example:1" is not an address; hostnames other than "localhost" are not resolved; use an IP address such as "0.0.0.0:1"`,
    ]);
  });
});

describe("log readiness", () => {
  test("an invalid regular expression is caught by hr check, not at the first reload", () => {
    const result = validate({ run: { cmd: "x" }, serve: { ready: { type: "log", pattern: "listening (on" } } });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.problems[0]!.message).toStartWith(`expected a regular expression, got "listening (on" (`);
  });
});

describe("readiness default follows the strategy", () => {
  test("notify by default, tcp under proxy, an explicit type always wins", () => {
    const ready = (serve: Record<string, unknown>) => {
      const result = validate({ run: { cmd: "x" }, serve });
      if (!result.ok) throw new Error(JSON.stringify(result.problems));
      return result.config.serve.ready.type;
    };
    expect(ready({})).toBe("notify");
    expect(ready({ strategy: "proxy" })).toBe("tcp");
    expect(ready({ strategy: "proxy", ready: { type: "ipc" } })).toBe("ipc");
    expect(ready({ strategy: "reuseport" })).toBe("notify");
  });

  test("listen under capture (fd or proxy); listen without capture is an error that says why", () => {
    const ready = (run: Record<string, unknown>, serve: Record<string, unknown>) => {
      const result = validate({ run: { cmd: "x", ...run }, serve });
      return result.ok ? result.config.serve.ready.type : result.problems.map((p) => `${p.path}: ${p.message}`).join("\n");
    };
    expect(ready({ capture: true }, {})).toBe("listen");
    expect(ready({ capture: true }, { strategy: "proxy" })).toBe("listen");
    expect(ready({ capture: true }, { ready: { type: "http" } })).toBe("http");
    expect(ready({}, { ready: { type: "listen" } })).toContain('ready.type = "listen" needs run.capture = true');
  });
});
