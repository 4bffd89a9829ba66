/**
 * Running `hr serve` in tests: a temp project with an hr.toml, a private
 * XDG_RUNTIME_DIR, and a unique HR_TEST_TAG in the environment that every
 * worker (and grandchild) inherits, so cleanup() can find and SIGKILL every
 * process a test started, even orphans, by scanning /proc/<pid>/environ.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, ROOT } from "./hr.ts";
import { taggedPids } from "./procs.ts";
import { Harness } from "../../scripts/harness/process.ts";
import type { ServeStatus } from "../../src/control/protocol.ts";

export const BIN_DIR = join(ROOT, "node_modules", ".bin");

export interface ServeOptions {
  /** hr.toml contents (null: no hr.toml); "{PORT}" is not substituted: use address "127.0.0.1:0" and read the port from status. */
  toml: string | null;
  /** Extra files to create in the project dir (name → contents). */
  files?: Record<string, string>;
  env?: Record<string, string | undefined>;
  /** Extra hr serve args. */
  args?: string[];
  /** Wait for the first generation (default true). */
  waitReady?: boolean;
  /** Run hr under this command, e.g. ["systemd-socket-activate", "-l", "127.0.0.1:8080"]. */
  wrap?: string[];
  /** Runs in the project dir before hr starts (e.g. to plant files in its runtime dir). */
  before?: (dir: string, env: Record<string, string | undefined>) => void;
  /** hr's stdout and stderr go to this fd (e.g. a FIFO with a slow reader) instead of pipes read here; logs() stays empty. */
  output?: number;
  /** The hr binary to run (default dist/hr), e.g. a release target's under `wrap: [qemu…]`. */
  binary?: string;
}

export interface HrResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface ServeHandle {
  readonly dir: string;
  readonly pid: number;
  readonly tag: string;
  readonly env: Record<string, string | undefined>;
  /** The first [[listen]] TCP port, once ready. */
  port: number;
  readonly proc: ReturnType<typeof Bun.spawn>;
  logs(): string;
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Runs `hr …` in the project (async: doesn't block the event loop, so load keeps flowing). */
  hr(args: string[], timeoutMs?: number): Promise<HrResult>;
  status(): Promise<ServeStatus>;
  /** `hr reload --wait --json`: the parsed answer plus exit code. */
  reload(): Promise<{ code: number | null; json: any; ms: number; stderr: string }>;
  /** Sends a signal and waits for the master to exit; returns its exit code. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
}

const harness = new Harness("HR_TEST_TAG");
const dirs = new Set<string>();

export function testEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return { ...process.env, PATH: `${BIN_DIR}:${process.env.PATH}`, NO_COLOR: "1", ...extra };
}

export async function runHrAsync(args: string[], opts: { cwd: string; env: Record<string, string | undefined>; timeoutMs?: number }): Promise<HrResult> {
  const t0 = performance.now();
  const p = Bun.spawn([ensureBinary(), ...args], { cwd: opts.cwd, env: opts.env as Record<string, string>, stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const timer = setTimeout(() => p.kill("SIGKILL"), opts.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr, ms: Math.round(performance.now() - t0) };
}

export async function startServe(opts: ServeOptions): Promise<ServeHandle> {
  const dir = mkdtempSync(join(tmpdir(), "hr-serve-"));
  dirs.add(dir);
  if (opts.toml !== null) writeFileSync(join(dir, "hr.toml"), opts.toml);
  for (const [name, text] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), text, { mode: 0o755 });
  const env = testEnv({ XDG_RUNTIME_DIR: join(dir, "run"), ...opts.env });
  opts.before?.(dir, env);
  const p = harness.spawn([...(opts.wrap ?? []), opts.binary ?? ensureBinary(), "serve", ...(opts.args ?? [])], { cwd: dir, env, output: opts.output ?? "pipe" });
  const proc = p.proc;
  const tag = p.tag;
  env.HR_TEST_TAG = tag; // what hr and every process it starts carry

  const h: ServeHandle = {
    dir,
    pid: proc.pid,
    tag,
    env,
    port: 0,
    proc,
    logs: () => p.output,
    waitForLog: (re, timeoutMs = 15_000) => p.waitFor(re, timeoutMs),
    hr: (args, timeoutMs) => runHrAsync(args, { cwd: dir, env, timeoutMs }),
    async status() {
      const r = await h.hr(["status", "--json"]);
      if (r.code !== 0) throw new Error(`hr status failed (${r.code}): ${r.stderr}`);
      return JSON.parse(r.stdout) as ServeStatus;
    },
    async reload() {
      const r = await h.hr(["reload", "--wait", "--json"]);
      let json: any = null;
      try {
        json = JSON.parse(r.stdout);
      } catch {
        /* keep null */
      }
      return { code: r.code, json, ms: r.ms, stderr: r.stderr };
    },
    stop: (signal = "SIGTERM", timeoutMs = 20_000) => p.stop(signal, timeoutMs),
  };
  if (opts.waitReady ?? true) {
    if (opts.output === undefined) await h.waitForLog(/serving gen1/, 20_000);
    else {
      const until = Date.now() + 20_000;
      while ((await h.status().catch(() => null))?.generation !== 1) {
        if (Date.now() > until || proc.exitCode !== null) throw new Error("hr serve did not serve gen1 within 20 s");
        await Bun.sleep(100);
      }
    }
    const st = await h.status();
    const m = st.sockets.match(/:(\d+)(,|$)/);
    if (m) h.port = Number(m[1]);
  }
  return h;
}

export { taggedPids };

/**
 * afterEach: SIGKILLs every process any startServe() of this test file left
 * (master, workers, grandchildren), removes the temp dirs, and returns the pids
 * that were still alive (a test that expected a clean exit can assert it's empty).
 */
export async function cleanupServes(): Promise<number[]> {
  const { leftovers } = await harness.cleanup();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs.clear();
  return leftovers;
}

export function toml(strings: TemplateStringsArray, ...values: unknown[]): string {
  return String.raw({ raw: strings }, ...values);
}

export const EXAMPLES = join(ROOT, "examples");

export interface ProxyTomlOptions {
  /** serve.workers, default 2. */
  workers?: number;
  /** serve.ready as an inline table, default tcp with a 20 s timeout. */
  ready?: string;
  /** serve.drain_timeout, default "15s". */
  drain?: string;
  /** Extra lines for the [[listen]] table (e.g. `protocol = "tcp"`). */
  listen?: string;
  /** Extra lines for [serve]. */
  serve?: string;
}

/** An hr.toml running `cmd` under serve.strategy = "proxy", one [[listen]] "http" on 127.0.0.1:0. */
export function proxyToml(cmd: string[], opts: ProxyTomlOptions = {}): string {
  return `[run]
cmd = ${JSON.stringify(cmd)}

[[listen]]
name = "http"
address = "127.0.0.1:0"
${opts.listen ? `${opts.listen}\n` : ""}
[serve]
strategy = "proxy"
workers = ${opts.workers ?? 2}
drain_timeout = "${opts.drain ?? "15s"}"
ready = ${opts.ready ?? `{ type = "tcp", timeout = "20s" }`}
${opts.serve ? `${opts.serve}\n` : ""}`;
}
