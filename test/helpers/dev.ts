/**
 * Driving `hr dev` in tests: a temp copy of an example app with a generated hr.toml,
 * hr started in its own process group with a unique HR_TEST_TAG in its environment
 * (inherited by every process it starts, including escaped grandchildren), output
 * captured for log assertions, and a cleanup that SIGKILLs hr's group plus every
 * tagged process and verifies through /proc that none is left.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { ensureBinary, ROOT } from "./hr.ts";
import { taggedPids } from "./procs.ts";
import { Harness, type Proc } from "../../scripts/harness/process.ts";

export const BIN_DIR = join(ROOT, "node_modules", ".bin");
export const EXAMPLES = join(ROOT, "examples");

import { freePort } from "../../src/sockets/free-port.ts";
export { freePort };

/** Copies examples/<name> (without hr.toml) into a fresh temp dir. */
export function copyExample(name: string, files?: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), `hr-dev-${name}-`));
  cpSync(join(EXAMPLES, name), dir, {
    recursive: true,
    filter: (src) => !/(^|\/)(hr\.toml|node_modules|tmp|bin|__pycache__)$/.test(src.slice(join(EXAMPLES, name).length)),
  });
  for (const [rel, text] of Object.entries(files ?? {})) writeFileSync(join(dir, rel), text);
  return dir;
}

/** A temp dir holding just the given files (paths may name subdirectories). */
export function tempProject(files: Record<string, string>, prefix = "hr-dev-"): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), text);
  }
  return dir;
}

export { taggedPids };

const harness = new Harness("HR_TEST_TAG");

/** One `hr dev` (scripts/harness/process.ts underneath): its output, keys, signals, cleanup. */
export class DevRun {
  private readonly p: Proc;

  /** `hr` is the command that runs hr (default dist/hr), e.g. [qemu, -L, …, release binary]. */
  constructor(readonly dir: string, args: string[] = [], env: Record<string, string | undefined> = {}, hr: string[] = [ensureBinary()]) {
    this.p = harness.spawn([...hr, "dev", ...args], {
      cwd: dir,
      env: { ...process.env, PATH: `${BIN_DIR}:${process.env.PATH}`, NO_COLOR: "1", ...env },
      stdin: "pipe",
      detached: true, // own process group: cleanup can SIGKILL -pid
    });
  }

  get proc(): Bun.Subprocess<"pipe", "pipe", "pipe"> {
    return this.p.proc as Bun.Subprocess<"pipe", "pipe", "pipe">;
  }

  get tag(): string {
    return this.p.tag;
  }

  get output(): string {
    return this.p.output;
  }

  get pid(): number {
    return this.p.pid;
  }

  /** Number of hr log lines matching re (hr's lines start with "hr "). */
  count(re: RegExp): number {
    return this.output.split("\n").filter((l) => l.startsWith("hr") && re.test(l)).length;
  }

  async waitFor(re: RegExp | (() => boolean), timeoutMs = 15_000, what = String(re)): Promise<void> {
    if (typeof re === "function") await this.p.waitFor(re, timeoutMs, what);
    else await this.p.waitFor(re, timeoutMs, what);
  }

  /** Waits until `count(re)` reaches n. */
  waitCount(re: RegExp, n: number, timeoutMs = 15_000): Promise<void> {
    return this.waitFor(() => this.count(re) >= n, timeoutMs, `${n}× ${re}`);
  }

  type(line: string): void {
    this.proc.stdin.write(`${line}\n`);
    this.proc.stdin.flush();
  }

  signal(sig: NodeJS.Signals): void {
    this.p.signal(sig);
  }

  /** Resolves with hr's exit code, or null if it has not exited within timeoutMs. */
  exited(timeoutMs: number): Promise<number | null> {
    return this.p.exited(timeoutMs);
  }

  /** Live processes started by this hr (hr included). */
  survivors(): number[] {
    return this.p.survivors();
  }

  /** SIGKILL hr's group and every tagged process; returns what was still alive afterwards. */
  kill(): Promise<number[]> {
    return this.p.kill();
  }
}

/** Registry for afterEach: kills every run and removes every temp dir, then checks /proc. */
export class DevHarness {
  private runs: DevRun[] = [];
  private dirs: string[] = [];

  start(dir: string, args: string[] = [], env: Record<string, string | undefined> = {}, hr?: string[]): DevRun {
    const run = new DevRun(dir, args, env, hr);
    this.runs.push(run);
    return run;
  }

  dir(dir: string): string {
    this.dirs.push(dir);
    return dir;
  }

  /** Call from afterEach. Throws if anything survived SIGKILL. */
  async cleanup(): Promise<void> {
    const left: number[] = [];
    for (const r of this.runs.splice(0)) left.push(...(await r.kill()));
    for (const d of this.dirs.splice(0)) rmSync(d, { recursive: true, force: true });
    if (left.length) throw new Error(`processes survived cleanup: ${left.join(", ")}`);
  }
}

/** GET url → body, or throws. No retries. */
export async function body(url: string, timeoutMs = 5000): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { Connection: "close" } });
  return res.text();
}

/** Polls url until the body matches re; returns that body. */
export async function waitForBody(url: string, re: RegExp, timeoutMs = 15_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < until) {
    try {
      last = await body(url, 2000);
      if (re.test(last)) return last;
    } catch (e) {
      last = String(e);
    }
    await Bun.sleep(25);
  }
  throw new Error(`timed out waiting for ${url} to match ${re}; last: ${last}`);
}

/** Rewrites a file in place (a plain save). */
export function edit(path: string, from: string | RegExp, to: string): void {
  const text = readFileSync(path, "utf8");
  const next = text.replace(from, to);
  if (next === text) throw new Error(`edit ${path}: ${from} not found`);
  writeFileSync(path, next);
}

export interface ExampleApp {
  name: string;
  /** Source file holding `VERSION = "v1"`. */
  src: string;
  /** A syntax-check build for apps without a [build] (fails on a broken source file). */
  check?: string;
  /** Text that breaks the build when appended to src. */
  breaker: string;
  /** Why the app cannot run here, or null. */
  missing(): string | null;
}

const has = (cmd: string) => Bun.which(cmd) !== null;

export const EXAMPLE_APPS: ExampleApp[] = [
  { name: "bun-net", src: "server.ts", check: "bun build --target=bun --no-bundle server.ts > /dev/null", breaker: "\nconst = ;\n", missing: () => null },
  { name: "node-http", src: "server.mjs", check: "node --check server.mjs", breaker: "\nconst = ;\n", missing: () => (has("node") ? null : "node is not installed") },
  { name: "bun-serve", src: "server.ts", check: "bun build --target=bun --no-bundle server.ts > /dev/null", breaker: "\nconst = ;\n", missing: () => null },
  {
    name: "go-gin",
    src: "main.go",
    breaker: "\nfunc broken( {\n",
    missing: () =>
      !has("go") ? "go is not installed (scripts/ci-deps.sh installs golang-go and gin)" : Bun.file("/usr/share/gocode/src/github.com/gin-gonic/gin/gin.go").size ? null : "gin is not installed (apt-get install golang-github-gin-gonic-gin-dev)",
  },
  { name: "python", src: "server.py", check: "python3 -m py_compile server.py", breaker: "\ndef broken(:\n", missing: () => (has("python3") ? null : "python3 is not installed") },
];

/**
 * A temp copy of examples/<name> whose own hr.toml listens on a free port; for
 * apps without a build, `check` becomes [build].cmd (a syntax check).
 */
export function exampleProject(app: ExampleApp, opts: { check?: boolean } = {}): { dir: string; port: number; url: string; src: string } {
  const dir = copyExample(app.name);
  const port = freePort();
  let toml = readFileSync(join(EXAMPLES, app.name, "hr.toml"), "utf8").replace(/address = "127\.0\.0\.1:\d+"/, `address = "127.0.0.1:${port}"`);
  if (opts.check !== false && app.check && !/^\[build\]/m.test(toml)) toml = `[build]\ncmd = ${JSON.stringify(app.check)}\n\n${toml}`;
  writeFileSync(join(dir, "hr.toml"), toml);
  return { dir, port, url: `http://127.0.0.1:${port}/`, src: join(dir, app.src) };
}

/**
 * `hr dev` on a temp project running `cmd` with dev.strategy = "proxy" and
 * live_reload on, on a free port. It watches only an empty "watched" folder (no
 * edit restarts the app). Resolves once GET / matches `ready`.
 */
export async function startLiveReloadDev(h: DevHarness, cmd: string[], ready: RegExp): Promise<{ hr: DevRun; port: number; url: string }> {
  const port = freePort();
  const dir = h.dir(
    tempProject({
      "watched/.keep": "",
      "hr.toml": `[run]\ncmd = ${JSON.stringify(cmd)}\n[watch]\npaths = ["watched"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:${port}"\n[dev]\nstrategy = "proxy"\nlive_reload = true\n`,
    }),
  );
  const hr = h.start(dir);
  const url = `http://127.0.0.1:${port}/`;
  await waitForBody(url, ready);
  return { hr, port, url };
}
