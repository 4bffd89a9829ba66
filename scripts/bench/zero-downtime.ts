#!/usr/bin/env bun
/**
 * Zero downtime under reloads: a fixed load (the project's non-retrying client,
 * scripts/harness/load.ts: 50 connections, 25 keep-alive + 25 new per request) runs
 * against examples/node-http while it is reloaded N times (one every ~1 s), for
 *
 *   - `hr serve`, every serve.strategy the schema accepts (fd with 1 and 2 workers,
 *     the others with 2; a strategy hr refuses is reported "not implemented"),
 *   - a naive stop-then-start (SIGTERM the node process, wait for it to exit,
 *     start a new one that binds the port itself),
 *   - `pm2 reload` in cluster mode, 2 instances, wait_ready (examples/node-http/ecosystem.config.cjs),
 *
 * and the same for naive apps (test/fixtures/naive: Bun.serve + `await server.stop()`,
 * node:http + `server.close()`, Go net/http + `Shutdown()`, Python http.server,
 * node exiting at once on SIGTERM — no drain code, no readiness signal): `hr serve`
 * with strategy proxy and 2 workers (ready.type tcp), stop-then-start, and for the
 * node apps `pm2 reload` in cluster mode (2 instances, no wait_ready: the apps send
 * no "ready"; pm2 cannot cluster non-node apps). Their rows go to
 * bench/results/zero-downtime-naive.json and their own docs section;
 *
 * and measures failed requests by error kind, p50/p99 latency of requests started
 * in the steady phase (load, no reload yet) vs inside reload windows (reload
 * requested → new generation serving), reload durations, and the idle footprint
 * (RSS, CPU over 60 s) of hr's master vs PM2's God daemon with 2 workers each.
 *
 *   bun scripts/bench/zero-downtime.ts [--quick] [--reloads 20] [--idle 60] [--hr dist/hr]
 *                                      [--only hr-fd-1,naive,pm2,idle,apps] [--out …json] [--docs …md] [--no-docs]
 *
 * --only takes row ids or id prefixes: `apps` = every naive-app row, `apps-go` = the Go
 * app's rows, `apps-node-http-hr` = one row.
 *
 * --quick: 5 reloads, 2 s steady phase, 10 s idle: a smoke run (results go to $TMPDIR, docs untouched).
 * Needs: node, dist/hr (built if missing), go (Debian golang-go; the Go app is built
 * GOPATH-mode into a temp dir, skipped with a note if go is missing), python3, pm2 (installed with `npm i --no-save pm2`
 * into $TMPDIR/hr-bench-pm2 if not on PATH; PM2_HOME is a temp dir, `pm2 kill` always runs).
 * Loopback only. Every process the script starts carries HR_BENCH_TAG in its
 * environment and is started through scripts/harness/process.ts; everything is
 * SIGKILLed at the end (process groups, then a /proc sweep).
 */
import { spawnSync } from "node:child_process";
import { closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, tmpdir, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { connect } from "node:net";
import { parseArgs } from "node:util";
import { freePort } from "../../src/sockets/free-port.ts";
import { environHas, pidsWithEnv } from "../../src/platform/proc.ts";
import { npmPeerBin } from "./lib.ts";
import { percentile, startLoad, type LoadResult } from "../harness/load.ts";
import { Harness, type Proc } from "../harness/process.ts";

const ROOT = join(import.meta.dir, "..", "..");
const BIN = join(ROOT, "node_modules", ".bin");
const { values } = parseArgs({
  options: {
    quick: { type: "boolean", default: false },
    reloads: { type: "string" },
    idle: { type: "string" },
    warmup: { type: "string" },
    hr: { type: "string", default: join(ROOT, "dist", "hr") },
    only: { type: "string" },
    out: { type: "string" },
    docs: { type: "string", default: join(ROOT, "docs/benchmarks.md") },
    "no-docs": { type: "boolean", default: false },
  },
});
const QUICK = values.quick!;
const RELOADS = Number(values.reloads ?? (QUICK ? 5 : 20));
const IDLE_S = Number(values.idle ?? (QUICK ? 10 : 60));
const STEADY_MS = QUICK ? 2000 : 5000; // load without reloads: the baseline
const WARMUP_MS = Number(values.warmup ?? 3000); // load before the baseline starts (JIT, connection setup)
const TAIL_MS = 2000; // load after the last reload (its drain)
const INTERVAL_MS = 1000; // one reload every ~1 s …
const MIN_GAP_MS = 300; // … but never sooner than this after the previous one ended
const CONCURRENCY = 50;
const HR = resolve(values.hr!);
const OUT = values.out ?? (QUICK ? join(tmpdir(), "hr-zero-downtime.quick.json") : join(ROOT, "bench/results/zero-downtime.json"));
const OUT_NAIVE = values.out ? values.out.replace(/(\.json)?$/, "-naive.json") : QUICK ? join(tmpdir(), "hr-zero-downtime-naive.quick.json") : join(ROOT, "bench/results/zero-downtime-naive.json");
const ONLY = values.only ? new Set(values.only.split(",")) : null;
/** --only: an id, or a prefix of ids ("apps" → every naive-app row). */
const selected = (id: string) => !ONLY || [...ONLY].some((o) => id === o || id.startsWith(`${o}-`));
const TAG = `zd${process.pid}x${Date.now().toString(36)}`;
const T_START = performance.now();
const CAP_MS = 25 * 60_000; // hard cap for the whole run

const sleep = (ms: number) => Bun.sleep(Math.max(0, ms));
const log = (s: string) => process.stderr.write(`${s}\n`);
const round = (x: number, d = 0) => (Number.isFinite(x) ? Number(x.toFixed(d)) : null);

// ---------------------------------------------------------------- processes
/** Every process we start (detached: own session and group), through the shared harness. */
const harness = new Harness("HR_BENCH_PROC");

function tagged(env: Record<string, string | undefined> = {}): Record<string, string> {
  return { ...process.env, PATH: `${BIN}:${process.env.PATH}`, NO_COLOR: "1", ...env, HR_BENCH_TAG: TAG } as Record<string, string>;
}

/** pids whose environment carries our tag (everything we started, however deep). */
function taggedPids(extra?: string): number[] {
  const [k, ...v] = (extra ?? "").split("=");
  return pidsWithEnv("HR_BENCH_TAG", TAG).filter((p) => p !== process.pid && (!extra || environHas(p, k!, v.join("="))));
}

function killGroup(pgid: number, sig: NodeJS.Signals = "SIGKILL") {
  try {
    process.kill(-pgid, sig);
  } catch {}
}

/** SIGKILL every group we started and every tagged process left. */
function sweep(): number {
  harness.killAllNow();
  const left = taggedPids();
  for (const p of left) {
    try {
      process.kill(p, "SIGKILL");
    } catch {}
  }
  return left.length;
}

/** Starts argv in its own group; stdout "pipe" (captured, stderr too), "ignore", or a file path (stderr to path.err). */
function spawnTracked(argv: string[], opts: { cwd: string; env?: Record<string, string | undefined>; stdout?: "pipe" | "ignore" | string }): Proc {
  const out = opts.stdout ?? "ignore";
  if (out === "pipe" || out === "ignore") return harness.spawn(argv, { cwd: opts.cwd, env: tagged(opts.env), output: out, detached: true });
  const stdout = openSync(out, "w");
  const stderr = openSync(`${out}.err`, "w");
  try {
    return harness.spawn(argv, { cwd: opts.cwd, env: tagged(opts.env), output: { stdout, stderr }, detached: true });
  } finally {
    closeSync(stdout);
    closeSync(stderr);
  }
}

interface CmdResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs a command to completion with a timeout; output goes through files (a daemon it forks can't hold a pipe open). */
async function run(argv: string[], opts: { cwd: string; env?: Record<string, string | undefined>; timeoutMs: number }): Promise<CmdResult> {
  const f = join(mkdtempSync(join(tmpdir(), "hr-zd-cmd-")), "out");
  const t0 = performance.now();
  const p = spawnTracked(argv, { cwd: opts.cwd, env: opts.env, stdout: f });
  const timer = setTimeout(() => killGroup(p.pid), opts.timeoutMs);
  const code = await p.proc.exited;
  const ms = performance.now() - t0;
  clearTimeout(timer);
  harness.forget(p);
  const read = (x: string) => (existsSync(x) ? readFileSync(x, "utf8") : "");
  const r = { code, stdout: read(f), stderr: read(`${f}.err`), ms };
  rmSync(join(f, ".."), { recursive: true, force: true });
  return r;
}


async function waitHttp(url: string, timeoutMs: number, alive?: () => boolean): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (alive && !alive()) throw new Error("process exited before serving");
    try {
      const r = await fetch(url, { headers: { Connection: "close" }, signal: AbortSignal.timeout(2000) });
      await r.text();
      if (r.status === 200) return;
    } catch {}
    await sleep(20);
  }
  throw new Error(`${url} not serving within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------- /proc
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim() || 100);
function rssKiB(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(/^VmRSS:\s+(\d+)\s+kB/m);
  return m ? Number(m[1]) : NaN;
}
function cpuTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = s.slice(s.lastIndexOf(")") + 2).split(" "); // f[0] is field 3 (state)
  return Number(f[11]) + Number(f[12]); // utime (14) + stime (15)
}
function loadavg(): string {
  return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
}

// ---------------------------------------------------------------- the app
const APP_DIR = join(ROOT, "examples", "node-http");
function appCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "hr-zd-app-"));
  cpSync(APP_DIR, dir, { recursive: true });
  rmSync(join(dir, "hr.toml"), { force: true });
  return dir;
}

// ---------------------------------------------------------------- naive apps
const NAIVE_DIR = join(ROOT, "test", "fixtures", "naive");
interface NaiveApp {
  id: string;
  label: string;
  /** argv; PORT comes from the environment. */
  cmd: () => string[];
  /** pm2 cluster mode can run it (a node script). */
  pm2?: string;
}
let goBin: string | undefined;
function goApp(): string {
  if (goBin) return goBin;
  const dir = mkdtempSync(join(tmpdir(), "hr-zd-go-"));
  const r = spawnSync("go", ["build", "-o", join(dir, "go-http"), "."], {
    cwd: join(NAIVE_DIR, "go-http"),
    env: { ...process.env, GO111MODULE: "off", GOPATH: join(dir, "gopath"), GOCACHE: join(dir, "gocache"), GOFLAGS: "" },
    encoding: "utf8",
    timeout: 180_000,
  });
  if (r.status !== 0) throw new Error(`go build of test/fixtures/naive/go-http failed (is golang-go installed?): ${(r.stderr ?? r.error?.message ?? "").slice(-300)}`);
  return (goBin = join(dir, "go-http"));
}
const NAIVE_APPS: NaiveApp[] = [
  { id: "bun-serve", label: "Bun.serve, `await server.stop()`", cmd: () => [process.execPath, join(NAIVE_DIR, "bun-serve.ts")] },
  { id: "node-http", label: "node:http, `server.close()`", cmd: () => ["node", join(NAIVE_DIR, "node-http.mjs")], pm2: join(NAIVE_DIR, "node-http.mjs") },
  { id: "go", label: "Go net/http, `srv.Shutdown(ctx)`", cmd: () => [goApp()] },
  { id: "python", label: "Python http.server, no SIGTERM handler", cmd: () => ["python3", join(NAIVE_DIR, "python-http.py")] },
  { id: "exit-now", label: "node:http, `process.exit(0)` on SIGTERM", cmd: () => ["node", join(NAIVE_DIR, "exit-now.mjs")], pm2: join(NAIVE_DIR, "exit-now.mjs") },
];

/** serve.strategy values the binary under test accepts (its JSON Schema). */
function serveStrategies(): string[] {
  try {
    const r = spawnSync(HR, ["schema"], { encoding: "utf8", timeout: 10_000 });
    const list: string[] = JSON.parse(r.stdout).properties.serve.properties.strategy.enum;
    return ["fd", ...list.filter((s) => s !== "fd")];
  } catch {
    return ["fd"];
  }
}

function hrToml(port: number, strategy: string, workers: number, app?: NaiveApp) {
  return `[run]
cmd = ${JSON.stringify(app ? app.cmd() : ["node", "server.mjs"])}
stop_signal = "SIGTERM"

[[listen]]
name = "http"
address = "127.0.0.1:${port}"

[serve]
strategy = "${strategy}"
workers = ${workers}
ready = { type = "${app ? "tcp" : "ipc"}", timeout = "20s" }
drain_timeout = "10s"
`;
}

// ---------------------------------------------------------------- targets
interface ReloadSample {
  ok: boolean;
  /** What the tool reports / what we time: request → new generation serving. */
  ms: number;
  /** Wall time of the command (hr reload --wait, pm2 reload), or the same as ms. */
  cmdMs: number;
  error?: string;
}

interface Target {
  url: string;
  reload(): Promise<ReloadSample>;
  stop(): Promise<void>;
  /** false once the supervisor died (the run is then aborted). */
  alive?(): boolean;
  /** Why it died: the supervisor's key log lines. */
  why?(): string;
  /** pids for the footprint: the supervisor and its workers. */
  pids?(): Promise<{ supervisor: number; workers: number[] }>;
  info: Record<string, unknown>;
}

class NotImplemented extends Error {}

async function startHr(strategy: string, workers: number, app?: NaiveApp): Promise<Target> {
  const dir = app ? mkdtempSync(join(tmpdir(), "hr-zd-naive-")) : appCopy();
  const port = freePort();
  writeFileSync(join(dir, "hr.toml"), hrToml(port, strategy, workers, app));
  const env = { XDG_RUNTIME_DIR: join(dir, "run") };
  const logFile = join(dir, "hr.log");
  const proc = spawnTracked([HR, "serve"], { cwd: dir, env, stdout: logFile });
  const url = `http://127.0.0.1:${port}/`;
  const logs = () => (existsSync(logFile) ? readFileSync(logFile, "utf8") : "") + (existsSync(`${logFile}.err`) ? readFileSync(`${logFile}.err`, "utf8") : "");
  let exited = false;
  void proc.proc.exited.then(() => (exited = true));
  // hr's own error line plus the first error line a worker printed
  const why = () => {
    const lines = logs().split("\n");
    const hrErr = lines.find((l) => /^hr error/.test(l)) ?? lines.filter(Boolean).slice(-1)[0] ?? "";
    const workerErr = lines.find((l) => /^gen\d+\/w\d+ \|.*\b\w*Error\b/.test(l)) ?? "";
    return [hrErr, workerErr].filter(Boolean).join(" — ").replace(/\s+/g, " ").trim();
  };
  const hr = (args: string[], timeoutMs = 60_000) => run([HR, ...args], { cwd: dir, env, timeoutMs });
  try {
    await waitHttp(url, 20_000, () => !exited);
    // Serving is not enough: the first generation must be live (a worker may have answered before its sibling failed).
    const t0 = performance.now();
    for (;;) {
      if (exited) throw new Error("hr serve exited");
      const st = await hr(["status", "--json"], 10_000).catch(() => null);
      try {
        const j = JSON.parse(st?.stdout ?? ""); // `hr status --json` prints the status object itself
        if (typeof (j.status ?? j).generation === "number") break;
      } catch {}
      if (performance.now() - t0 > 20_000) throw new Error("no live generation within 20 s");
      await sleep(100);
    }
  } catch (e) {
    await sleep(300);
    const text = logs();
    const reason = why();
    killGroup(proc.pid);
    await proc.proc.exited;
    for (const p of taggedPids(`PORT=${port}`)) killGroup(p);
    rmSync(dir, { recursive: true, force: true });
    if (/not implemented/i.test(text)) throw new NotImplemented(text.split("\n").find((l) => /not implemented/i.test(l))!.trim());
    throw new Error(`${(e as Error).message}: ${reason}`);
  }
  return {
    url,
    alive: () => !exited,
    why,
    info: { port, strategy, workers, ready: app ? "tcp" : "ipc", pid: proc.pid, ...(app ? { app: app.id, cmd: app.cmd() } : {}) },
    async reload() {
      const r = await hr(["reload", "--wait", "--json"]);
      let json: any = null;
      try {
        json = JSON.parse(r.stdout.trim().split("\n").pop() ?? "");
      } catch {}
      const ok = r.code === 0 && json?.ok === true;
      return { ok, ms: json?.reload?.durationMs ?? r.ms, cmdMs: r.ms, error: ok ? undefined : (json?.error ?? `exit ${r.code}: ${r.stderr.slice(-300)}`) };
    },
    async pids() {
      const st = await hr(["status", "--json"], 10_000);
      const s = JSON.parse(st.stdout).status ?? JSON.parse(st.stdout);
      const live = (s.generations ?? []).find((g: any) => g.generation === s.generation || g.number === s.generation);
      const w = (live?.workers ?? []).map((x: any) => x.pid).filter((p: unknown) => typeof p === "number");
      return { supervisor: proc.pid, workers: w.length ? w : taggedPids(`PORT=${port}`).filter((p) => p !== proc.pid) };
    },
    async stop() {
      try {
        process.kill(proc.pid, "SIGTERM");
      } catch {}
      const t = setTimeout(() => killGroup(proc.pid), 15_000);
      await proc.proc.exited;
      clearTimeout(t);
      for (const p of taggedPids(`PORT=${port}`)) killGroup(p); // workers' own groups, if any were left
      harness.forget(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Resolves once 127.0.0.1:port accepts a connection (an app that prints nothing when it is up). */
async function waitPort(port: number, timeoutMs: number, alive: () => boolean): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (!alive()) throw new Error("process exited before listening");
    const ok = await new Promise<boolean>((res) => {
      const s = connect(port, "127.0.0.1");
      s.once("connect", () => (s.destroy(), res(true)));
      s.once("error", () => (s.destroy(), res(false)));
    });
    if (ok) return;
    await sleep(10);
  }
  throw new Error(`port ${port} not listening within ${timeoutMs} ms`);
}

async function startNaive(app?: NaiveApp): Promise<Target> {
  const dir = app ? mkdtempSync(join(tmpdir(), "hr-zd-naive-")) : appCopy();
  const port = freePort();
  const start = async () => {
    // A naive app's output is not read (Gin logs every request): discarded, not piped.
    const p = spawnTracked(app ? app.cmd() : ["node", "server.mjs"], { cwd: dir, env: { PORT: String(port) }, stdout: app ? "ignore" : "pipe" });
    if (app) await waitPort(port, 20_000, () => p.running);
    else await p.waitFor(/listening on/, 20_000);
    return p;
  };
  let proc = await start();
  return {
    url: `http://127.0.0.1:${port}/`,
    info: app
      ? { port, app: app.id, how: `SIGTERM the app, wait for its exit, start a new one (\`${app.cmd().join(" ")}\`, binds PORT itself)` }
      : { port, how: "SIGTERM the node process, wait for its exit, start a new `node server.mjs` (binds PORT itself)" },
    async reload() {
      const t0 = performance.now();
      try {
        process.kill(proc.pid, "SIGTERM");
        const t = setTimeout(() => killGroup(proc.pid), 15_000);
        await proc.proc.exited;
        clearTimeout(t);
        harness.forget(proc);
        proc = await start();
        const ms = performance.now() - t0;
        return { ok: true, ms, cmdMs: ms };
      } catch (e) {
        const ms = performance.now() - t0;
        return { ok: false, ms, cmdMs: ms, error: (e as Error).message };
      }
    },
    async stop() {
      killGroup(proc.pid);
      await proc.proc.exited;
      harness.forget(proc);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const pm2Bin = () => npmPeerBin("pm2");

async function startPm2(instances = 2, app?: NaiveApp): Promise<Target> {
  const pm2 = pm2Bin();
  const dir = appCopy();
  if (app) {
    // The naive app as pm2's docs run a node server in cluster mode: no wait_ready (it sends no "ready").
    writeFileSync(
      join(dir, "ecosystem.config.cjs"),
      `module.exports = { apps: [{ name: "node-http", script: ${JSON.stringify(app.pm2)}, exec_mode: "cluster", instances: ${instances}, kill_timeout: 10000, env: { PORT: process.env.PORT } }] };\n`,
    );
  }
  const home = mkdtempSync(join(tmpdir(), "hr-zd-pm2home-"));
  const port = freePort();
  const env = { PM2_HOME: home, PORT: String(port), PM2_INSTANCES: String(instances) };
  const cmd = (args: string[], timeoutMs = 60_000) => run([pm2, ...args], { cwd: dir, env, timeoutMs });
  const stop = async () => {
    const k = await cmd(["kill"], 30_000);
    if (k.code !== 0) log(`  pm2 kill: exit ${k.code} ${k.stderr.slice(-200)}`);
    for (const p of taggedPids(`PM2_HOME=${home}`)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {}
    }
    rmSync(dir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
  };
  try {
    const s = await cmd(["start", "ecosystem.config.cjs"]);
    if (s.code !== 0) throw new Error(`pm2 start: exit ${s.code}: ${s.stderr.slice(-300)}`);
    await waitHttp(`http://127.0.0.1:${port}/`, 20_000);
  } catch (e) {
    await stop();
    throw e;
  }
  const god = () => Number(readFileSync(join(home, "pm2.pid"), "utf8").trim());
  return {
    url: `http://127.0.0.1:${port}/`,
    info: app
      ? { port, instances, exec_mode: "cluster", wait_ready: false, kill_timeout: 10000, app: app.id, script: app.pm2 }
      : { port, instances, exec_mode: "cluster", wait_ready: true, listen_timeout: 10000, kill_timeout: 10000, config: "examples/node-http/ecosystem.config.cjs" },
    async reload() {
      const r = await cmd(["reload", "node-http"], 120_000);
      const ok = r.code === 0;
      return { ok, ms: r.ms, cmdMs: r.ms, error: ok ? undefined : `exit ${r.code}: ${(r.stderr + r.stdout).slice(-300)}` };
    },
    async pids() {
      const j = await cmd(["jlist"], 20_000);
      const list = JSON.parse(j.stdout.slice(j.stdout.indexOf("[")));
      return { supervisor: god(), workers: list.map((x: any) => x.pid).filter((p: number) => p > 0) };
    },
    stop,
  };
}

// ---------------------------------------------------------------- one load run
interface Stats {
  n: number;
  p50: number | null;
  p99: number | null;
  max: number | null;
}
const stats = (xs: number[]): Stats => ({ n: xs.length, p50: round(percentile(xs, 50), 1), p99: round(percentile(xs, 99), 1), max: xs.length ? round(xs.reduce((a, b) => (b > a ? b : a), -Infinity), 1) : null });

async function loadRun(t: Target) {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const load = startLoad({ url: t.url, concurrency: CONCURRENCY, keepAliveShare: 0.5, durationMs: 8 * 60_000, timeoutMs: 10_000 });
  // The client records OK latencies in completion order but not when they
  // completed: sample its OK counter every ms to map index → completion time.
  const tickT: number[] = [];
  const tickOk: number[] = [];
  const ticker = setInterval(() => {
    tickT.push(now());
    tickOk.push(load.progress().ok);
  }, 1);
  const windows: { s: number; e: number }[] = [];
  const samples: ReloadSample[] = [];
  let res: LoadResult;
  let steady: { s: number; e: number };
  try {
    await sleep(WARMUP_MS);
    steady = { s: now(), e: now() + STEADY_MS };
    await sleep(STEADY_MS);
    let lastS = now() - INTERVAL_MS;
    let lastE = now() - MIN_GAP_MS;
    for (let i = 0; i < RELOADS; i++) {
      await sleep(Math.max(lastS + INTERVAL_MS, lastE + MIN_GAP_MS) - now());
      if (t.alive && !t.alive()) throw new Error(`the supervisor exited after ${i} reloads: ${t.why?.() ?? "?"}`);
      const s = now();
      const r = await t.reload();
      const e = now();
      windows.push({ s, e });
      samples.push(r);
      lastS = s;
      lastE = e;
      if (!r.ok) log(`  reload ${i + 1} failed: ${r.error}`);
    }
    await sleep(TAIL_MS);
  } finally {
    res = await load.stop();
    clearInterval(ticker);
  }
  const phaseStart = windows[0]?.s ?? Infinity;
  const phaseEnd = now();
  // completion time of OK request #i: the first tick whose counter exceeds i
  const completion = (i: number) => {
    let lo = 0;
    let hi = tickOk.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (tickOk[mid]! > i) hi = mid;
      else lo = mid + 1;
    }
    return lo < tickT.length ? tickT[lo]! : res.elapsedMs;
  };
  const inWindow = (x: number) => windows.some((w) => x >= w.s && x <= w.e);
  const lat = { steady: [] as number[], window: [] as number[], between: [] as number[], phase: [] as number[] };
  res.latenciesMs.forEach((l, i) => {
    const start = completion(i) - l;
    if (start >= steady!.s && start < steady!.e) lat.steady.push(l);
    if (start >= phaseStart && start <= phaseEnd) {
      lat.phase.push(l);
      (inWindow(start) ? lat.window : lat.between).push(l);
    }
  });
  const failuresBy = { warmupOrSteady: 0, window: 0, between: 0 };
  for (const f of res.failures) {
    if (f.startMs < phaseStart) failuresBy.warmupOrSteady++;
    else if (inWindow(f.startMs)) failuresBy.window++;
    else failuresBy.between++;
  }
  const gaps = tickT.slice(1).map((x, i) => x - tickT[i]!);
  const durations = samples.map((s) => s.ms);
  const steadyS = stats(lat.steady);
  const windowS = stats(lat.window);
  const ratio = steadyS.p99 && windowS.p99 ? windowS.p99 / steadyS.p99 : null;
  return {
    requests: res.ok + res.failed,
    ok: res.ok,
    failed: res.failed,
    errors: res.errors,
    failuresBy, // of the first 200 failures the client keeps
    firstFailures: res.failures.slice(0, 5).map((f) => ({ ...f, startMs: round(f.startMs, 1), atMs: round(f.atMs, 1) })),
    bodies: Object.fromEntries(res.bodies),
    elapsedMs: round(res.elapsedMs),
    latencyMs: { steady: steadyS, reloadWindows: windowS, betweenReloads: stats(lat.between), reloadPhase: stats(lat.phase) },
    p99Ratio: round(ratio ?? NaN, 2),
    reloads: {
      count: samples.length,
      failed: samples.filter((s) => !s.ok).length,
      errors: samples.filter((s) => !s.ok).map((s) => s.error),
      medianMs: round(percentile(durations, 50)),
      maxMs: round(Math.max(...durations)),
      ms: durations.map((x) => round(x)),
      cmdMs: samples.map((s) => round(s.cmdMs)),
    },
    windowsMs: windows.map((w) => [round(w.s), round(w.e)]),
    steadyMs: [round(steady!.s), round(steady!.e)],
    timeSampler: { ticks: tickT.length, medianGapMs: round(percentile(gaps, 50), 2), p99GapMs: round(percentile(gaps, 99), 2) },
    goalMet: res.failed === 0 && ratio !== null && ratio <= 2 && samples.every((s) => s.ok),
  };
}

// ---------------------------------------------------------------- idle footprint
async function idle(): Promise<Record<string, unknown>> {
  const hr = await startHr("fd", 2);
  let pm2: Target | undefined;
  try {
    pm2 = await startPm2(2);
    await sleep(5000); // settle
    const who = { hr: await hr.pids!(), pm2: await pm2.pids!() };
    const all = [who.hr.supervisor, who.pm2.supervisor, ...who.hr.workers, ...who.pm2.workers];
    const t0 = Object.fromEntries(all.map((p) => [p, cpuTicks(p)]));
    const w0 = performance.now();
    await sleep(IDLE_S * 1000);
    const secs = (performance.now() - w0) / 1000;
    const one = (pid: number) => {
      const cpuS = (cpuTicks(pid) - t0[pid]!) / CLK_TCK;
      return { pid, rssMiB: round(rssKiB(pid) / 1024, 1), cpuS: round(cpuS, 2), cpuPct: round((100 * cpuS) / secs, 2) };
    };
    const sum = (pids: number[]) => ({ count: pids.length, rssMiB: round(pids.reduce((a, p) => a + rssKiB(p), 0) / 1024, 1) });
    return {
      seconds: round(secs, 1),
      clkTck: CLK_TCK,
      hrMaster: one(who.hr.supervisor),
      hrWorkers: sum(who.hr.workers),
      pm2God: one(who.pm2.supervisor),
      pm2Workers: sum(who.pm2.workers),
      note: "hr master = the `hr serve` process (its orphan sweeper, a ~1 MiB sh, not counted); pm2 = the God daemon; workers are the same node-http app (pm2's run inside its ProcessContainer)",
    };
  } finally {
    await hr.stop();
    await pm2?.stop();
  }
}

// ---------------------------------------------------------------- main
interface CaseDef {
  id: string;
  /** "example": examples/node-http (drains itself); "naive": a test/fixtures/naive app. */
  group: "example" | "naive";
  app?: NaiveApp;
  tool: string;
  strategy: string;
  workers: number;
  start: () => Promise<Target>;
}

const cases: CaseDef[] = [];
for (const s of serveStrategies()) {
  for (const w of s === "fd" ? [1, 2] : [2]) cases.push({ id: `hr-${s}-${w}`, group: "example", tool: "hr serve", strategy: s, workers: w, start: () => startHr(s, w) });
}
cases.push({ id: "naive", group: "example", tool: "stop-then-start", strategy: "SIGTERM, wait, start", workers: 1, start: () => startNaive() });
cases.push({ id: "pm2", group: "example", tool: "pm2 reload", strategy: "cluster, wait_ready", workers: 2, start: () => startPm2(2) });
for (const app of NAIVE_APPS) {
  cases.push({ id: `apps-${app.id}-hr`, group: "naive", app, tool: "hr serve", strategy: "proxy", workers: 2, start: () => startHr("proxy", 2, app) });
  cases.push({ id: `apps-${app.id}-stop-start`, group: "naive", app, tool: "stop-then-start", strategy: "SIGTERM, wait, start", workers: 1, start: () => startNaive(app) });
  if (app.pm2) cases.push({ id: `apps-${app.id}-pm2`, group: "naive", app, tool: "pm2 reload", strategy: "cluster, no wait_ready", workers: 2, start: () => startPm2(2, app) });
}

const git = (args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
const meta = {
  date: new Date().toISOString(),
  quick: QUICK,
  machine: {
    cores: cpus().length,
    cpu: cpus()[0]?.model ?? "?",
    memGiB: round(totalmem() / 2 ** 30, 1),
    freeMemGiBAtStart: round(freemem() / 2 ** 30, 1),
    kernel: spawnSync("uname", ["-sr"], { encoding: "utf8" }).stdout.trim(),
    loadavgAtStart: loadavg(),
    tcpMigrateReq: existsSync("/proc/sys/net/ipv4/tcp_migrate_req") ? readFileSync("/proc/sys/net/ipv4/tcp_migrate_req", "utf8").trim() : "n/a",
  },
  commit: git(["rev-parse", "HEAD"]),
  versions: {} as Record<string, string>,
  load: { client: "scripts/harness/load.ts (non-retrying)", concurrency: CONCURRENCY, keepAlive: CONCURRENCY / 2, newConnectionPerRequest: CONCURRENCY / 2, timeoutMs: 10_000 },
  method: {
    reloads: RELOADS,
    intervalMs: INTERVAL_MS,
    minGapMs: MIN_GAP_MS,
    warmupMs: WARMUP_MS,
    steadyMs: STEADY_MS,
    tailMs: TAIL_MS,
    steady: "requests started during a load phase before the first reload (no reload in progress)",
    reloadWindow: "requests started between the reload request and the new generation serving (hr: `hr reload --wait` returned; pm2: `pm2 reload` returned; naive: the new process printed 'listening')",
    reloadPhase: "every request started from the first reload to the end (includes the old generations' drains)",
    reloadMs: "hr: durationMs reported by `hr reload --wait --json` (request → all new workers ready); pm2: wall time of `pm2 reload` (returns after the old instances exited); naive: SIGTERM → new process listening",
    app: "examples/node-http, HR_GRACE_MS 1000 (1 s Connection: close grace on SIGTERM/SIGINT), ready via process.send('ready') for hr (ready.type ipc) and pm2 (wait_ready)",
    goal: "0 failed requests and p99 in reload windows ≤ 2× steady p99",
  },
};

const watchdog = setTimeout(() => {
  log(`zero-downtime: hard cap of ${CAP_MS / 60000} min reached, killing everything`);
  sweep();
  process.exit(2);
}, CAP_MS);
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.on(sig, () => {
    log(`zero-downtime: ${sig}, cleaning up`);
    sweep();
    process.exit(130);
  });

const results: Record<string, unknown>[] = [];
let idleResult: Record<string, unknown> | null = null;
try {
  if (!existsSync(HR)) spawnSync(process.execPath, [join(ROOT, "scripts/build.ts")], { stdio: "inherit", timeout: 180_000 });
  meta.versions = {
    hr: spawnSync(HR, ["--version"], { encoding: "utf8", timeout: 10_000 }).stdout.trim(),
    bun: Bun.version,
    node: spawnSync("node", ["--version"], { encoding: "utf8", timeout: 10_000 }).stdout.trim(),
    // not `pm2 --version`: that starts a God daemon
    pm2: (JSON.parse(readFileSync(join(realpathSync(pm2Bin()), "..", "..", "package.json"), "utf8")).version as string) ?? "?",
  };
  log(`zero-downtime: ${RELOADS} reloads per row, ${CONCURRENCY} connections; ${meta.versions.hr}; load ${meta.machine.loadavgAtStart}`);
  for (const c of cases) {
    if (!selected(c.id)) continue;
    process.stderr.write(`${c.id} (${c.tool}, ${c.strategy}, ${c.workers} worker(s)) … `);
    const base = { id: c.id, group: c.group, ...(c.app ? { app: c.app.id, appLabel: c.app.label } : {}), tool: c.tool, strategy: c.strategy, workers: c.workers, loadavgBefore: loadavg() };
    let t: Target | undefined;
    try {
      t = await c.start();
      const r = await loadRun(t);
      results.push({ ...base, status: "ok", target: t.info, ...r });
      const L = r.latencyMs;
      log(
        `${r.failed} failed${r.failed ? ` ${JSON.stringify(r.errors)}` : ""} of ${r.requests}; p50/p99 steady ${L.steady.p50}/${L.steady.p99}, windows ${L.reloadWindows.p50}/${L.reloadWindows.p99}, phase ${L.reloadPhase.p50}/${L.reloadPhase.p99} ms; reload median ${r.reloads.medianMs} max ${r.reloads.maxMs} ms${r.reloads.failed ? `, ${r.reloads.failed} reloads failed` : ""}`,
      );
    } catch (e) {
      const ni = e instanceof NotImplemented;
      results.push({ ...base, status: ni ? "not implemented" : "error", error: (e as Error).message });
      log(`${ni ? "not implemented" : "failed"}: ${(e as Error).message}`);
    } finally {
      await t?.stop().catch((e) => log(`  stop: ${(e as Error).message}`));
      const left = sweep();
      if (left) log(`  (${left} leftover processes killed)`);
      await sleep(500);
    }
  }
  if (selected("idle")) {
    process.stderr.write(`idle footprint, 2 workers each, ${IDLE_S} s … `);
    try {
      idleResult = await idle();
      const i = idleResult as any;
      log(`hr master ${i.hrMaster.rssMiB} MiB ${i.hrMaster.cpuS} s CPU; pm2 God ${i.pm2God.rssMiB} MiB ${i.pm2God.cpuS} s CPU`);
    } catch (e) {
      idleResult = { error: (e as Error).message };
      log(`failed: ${(e as Error).message}`);
    } finally {
      sweep();
    }
  }
} finally {
  const left = sweep();
  if (left) log(`(${left} leftover processes killed)`);
  clearTimeout(watchdog);
}

const totalS = round((performance.now() - T_START) / 1000, 1);
const exampleResults = results.filter((r) => r.group === "example");
const naiveResults = results.filter((r) => r.group === "naive");
const ranExamples = exampleResults.length > 0 || idleResult !== null;
const doc = { ...meta, loadavgAtEnd: loadavg(), totalSeconds: totalS, results: exampleResults, idle: idleResult };
if (ranExamples) {
  mkdirSync(join(OUT, ".."), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(doc, null, 2)}\n`);
  log(`wrote ${OUT}`);
}
const naiveDoc = {
  ...meta,
  method: {
    ...meta.method,
    app: "test/fixtures/naive/* (no drain code, no readiness signal; see its README); hr: serve.strategy proxy, ready.type tcp on the private PORT; pm2: cluster mode without wait_ready (node apps only)",
  },
  loadavgAtEnd: loadavg(),
  totalSeconds: totalS,
  results: naiveResults,
};
if (naiveResults.length) {
  mkdirSync(join(OUT_NAIVE, ".."), { recursive: true });
  writeFileSync(OUT_NAIVE, `${JSON.stringify(naiveDoc, null, 2)}\n`);
  log(`wrote ${OUT_NAIVE}`);
}

// ---------------------------------------------------------------- markdown
const fmtErrors = (e: Record<string, number>) =>
  Object.entries(e)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${v} ${k}`)
    .join(", ");
const commitShort = meta.versions.hr?.match(/\(([0-9a-f]{7,}(?:-dirty)?)/)?.[1] ?? meta.commit.slice(0, 12); // the binary's commit
const row = (r: any, naive = false) => {
  const head = `${naive ? `| ${r.appLabel} ` : ""}| ${r.tool} | ${r.strategy} | ${r.workers}`;
  if (r.status === "not implemented") return `${head} | not implemented at ${commitShort} | | | | | | |`;
  if (r.status !== "ok") return `${head} | failed: ${String(r.error).replace(/\|/g, "/").replace(/\s+/g, " ").slice(0, 240)} | | | | | | |`;
  const L = r.latencyMs;
  const failed = r.failed ? `**${r.failed}** (${fmtErrors(r.errors)})` : "**0**";
  const rl = `${r.reloads.medianMs} / ${r.reloads.maxMs}${r.reloads.failed ? ` (${r.reloads.failed} failed)` : ""}`;
  const goal = r.goalMet ? "**met**" : `not met (${[r.failed ? "failures" : "", r.p99Ratio > 2 ? `p99 ×${r.p99Ratio}` : ""].filter(Boolean).join(", ") || "reload failed"})`;
  if (naive) return `${head} | ${r.reloads.count} / ${r.requests.toLocaleString("en-US")} | ${failed} | ${L.steady.p99} / ${L.reloadWindows.p99} | ${rl} | ${r.failed === 0 && r.reloads.failed === 0 ? "**met**" : "not met"} |`;
  return `${head} | ${r.reloads.count} / ${r.requests.toLocaleString("en-US")} | ${failed} | ${L.steady.p50} / ${L.steady.p99} | ${L.reloadWindows.p50} / ${L.reloadWindows.p99} (×${r.p99Ratio}) | ${L.reloadPhase.p99} | ${rl} | ${goal} |`;
};
const rows = exampleResults.map((r) => row(r));
const i = idleResult as any;
const idleRows =
  i && !i.error
    ? [
        `| hr serve master | ${i.hrMaster.rssMiB} | ${i.hrMaster.cpuS} s (${i.hrMaster.cpuPct} %) | ${i.hrWorkers.count} workers, ${i.hrWorkers.rssMiB} MiB |`,
        `| pm2 God daemon | ${i.pm2God.rssMiB} | ${i.pm2God.cpuS} s (${i.pm2God.cpuPct} %) | ${i.pm2Workers.count} workers, ${i.pm2Workers.rssMiB} MiB |`,
      ]
    : [`| idle measurement failed: ${i?.error ?? "not run"} | | | |`];
const section = `<!-- serve:zero-downtime:start (generated by scripts/bench/zero-downtime.ts) -->
## hr serve: zero downtime under reloads

examples/node-http under a fixed load — the project's non-retrying client (scripts/harness/load.ts), ${CONCURRENCY} connections
(${CONCURRENCY / 2} keep-alive, ${CONCURRENCY / 2} new per request), loopback — while it is reloaded ${RELOADS} times, one every ~${INTERVAL_MS / 1000} s
(never sooner than ${MIN_GAP_MS} ms after the previous reload ended). ${meta.machine.cores} cores (${meta.machine.cpu}), ${meta.machine.kernel},
${meta.date.slice(0, 10)}; ${meta.versions.hr}, node ${meta.versions.node}, pm2 ${meta.versions.pm2}; load average ${meta.machine.loadavgAtStart} at start, ${doc.loadavgAtEnd} at end.
Raw numbers: [bench/results/zero-downtime.json](../bench/results/zero-downtime.json). Reproduce: \`bun scripts/bench/zero-downtime.ts\` (${totalS} s).

- *steady*: requests started in a ${STEADY_MS / 1000} s load phase before the first reload; *windows*: requests started between a reload
  request and the new generation serving; *phase p99*: every request from the first reload on (includes the old generations' drains).
- *reload ms*: hr — \`durationMs\` from \`hr reload --wait --json\` (request → all new workers ready, ready.type ipc); pm2 —
  wall time of \`pm2 reload\` (returns once the old instances have exited); stop-then-start — SIGTERM → new process listening.
- The app drains on SIGTERM/SIGINT (1 s \`Connection: close\` grace, then in-flight requests); pm2 uses \`wait_ready\` with
  the app's \`process.send("ready")\`, \`listen_timeout\` and \`kill_timeout\` 10 s (examples/node-http/ecosystem.config.cjs).

| tool | strategy | workers | reloads / requests | failed | p50 / p99 steady ms | p50 / p99 windows ms | phase p99 ms | reload ms median / max | goal |
|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

Goal: 0 failed requests and p99 in the reload windows ≤ 2× steady p99.

Idle footprint, 2 workers each, ${i?.seconds ?? IDLE_S} s without load (RSS from /proc/<pid>/status, CPU = utime+stime delta):

| process | RSS MiB | CPU over the idle period | workers (RSS sum) |
|---|---|---|---|
${idleRows.join("\n")}
<!-- serve:zero-downtime:end -->`;

const naiveSection = `<!-- serve:zero-downtime-naive:start (generated by scripts/bench/zero-downtime.ts) -->
## hr serve: zero downtime for apps as they are

The same load and reload schedule (${RELOADS} reloads, ${CONCURRENCY} connections, non-retrying) against apps written the way their
frameworks' docs write them (test/fixtures/naive: bind PORT, no drain code, no readiness signal — a stock graceful shutdown or
none). hr: \`serve.strategy = "proxy"\`, 2 workers, ready.type tcp on the private PORT; stop-then-start: SIGTERM, wait
for the exit, start again; pm2: \`pm2 reload\` in cluster mode, 2 instances, no wait_ready (the apps send no "ready"; pm2
cannot cluster non-node apps, so only the node apps have a pm2 row). ${meta.date.slice(0, 10)}; ${meta.versions.hr}, node
${meta.versions.node}, pm2 ${meta.versions.pm2}; load average ${meta.machine.loadavgAtStart} at start.
Raw numbers: [bench/results/zero-downtime-naive.json](../bench/results/zero-downtime-naive.json). Reproduce: \`bun scripts/bench/zero-downtime.ts --only apps\`.

| app | tool | strategy | workers | reloads / requests | failed | p99 steady / windows ms | reload ms median / max | goal: 0 failed |
|---|---|---|---|---|---|---|---|---|
${naiveResults.map((r) => row(r, true)).join("\n")}
<!-- serve:zero-downtime-naive:end -->`;

/** Replaces the section between its markers in docs/benchmarks.md (or appends it). */
function writeSection(name: string, text: string) {
  const docs = values.docs!;
  let md = existsSync(docs) ? readFileSync(docs, "utf8") : "# Benchmarks\n";
  const re = new RegExp(`<!-- ${name}:start[\\s\\S]*?<!-- ${name}:end -->`);
  md = re.test(md) ? md.replace(re, () => text) : `${md.trimEnd()}\n\n${text}\n`;
  writeFileSync(docs, md);
}
if (!values["no-docs"] && !QUICK) {
  if (ranExamples) writeSection("serve:zero-downtime", section);
  if (naiveResults.length) writeSection("serve:zero-downtime-naive", naiveSection);
}
if (ranExamples) console.log(section);
if (naiveResults.length) console.log(naiveSection);
log(`zero-downtime: total ${totalS} s`);
process.exit(0);
