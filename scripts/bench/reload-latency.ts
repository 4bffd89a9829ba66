#!/usr/bin/env bun
/**
 * Reload latency: time from a file write to the first HTTP 200 carrying the new
 * code, median of N saves, for `hr dev` (fd, fd+capture, proxy, proxy+capture) vs `bun --watch` vs nodemon vs entr
 * (and `node --watch` for the Node app), on the same example apps, in one run.
 *
 *   bun scripts/bench/reload-latency.ts [--saves 20] [--out bench/results/reload-latency.json]
 *
 * Needs: dist/hr (built if missing), node, entr (apt-get install -y entr), nodemon
 * (installed with `npm i --no-save nodemon` into a temp dir if not on PATH).
 * Every tool gets the same app with HR_GRACE_MS=0 (no drain grace; the example apps
 * otherwise keep answering for 1 s after SIGTERM). The client polls with a new
 * connection per request and retries 1 ms after any error; "refused" counts the
 * connection-refused errors it saw per save (the window in which a browser fails).
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { npmPeerBin } from "./lib.ts";
import { freePort } from "../../src/sockets/free-port.ts";

const ROOT = join(import.meta.dir, "..", "..");
const HR = join(ROOT, "dist", "hr");
const BIN = join(ROOT, "node_modules", ".bin");
const { values } = parseArgs({ options: { saves: { type: "string", default: "20" }, out: { type: "string", default: join(ROOT, "bench/results/reload-latency.json") }, docs: { type: "string", default: join(ROOT, "docs/benchmarks.md") } } });
const SAVES = Number(values.saves);
const WARMUP = 2;


const nodemonBin = () => npmPeerBin("nodemon");

interface Case {
  tool: string;
  app: "bun-net" | "node-http" | "bun-serve";
  /** argv, given the app dir, the source file and the port */
  argv: (src: string, port: number) => string[];
  /** hr: write an hr.toml */
  hrToml?: (port: number) => string;
}

const APP_SRC = { "bun-net": "server.ts", "node-http": "server.mjs", "bun-serve": "server.ts" } as const;
const RUNTIME = { "bun-net": "bun", "node-http": "node", "bun-serve": "bun" } as const;

function hrToml(app: keyof typeof APP_SRC, strategy: "fd" | "proxy", capture = false) {
  return (port: number) => `[run]
cmd = ["${RUNTIME[app]}", "${APP_SRC[app]}"]
capture = ${capture}
[watch]
include_ext = ["${APP_SRC[app].split(".").pop()}"]
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
[dev]
strategy = "${strategy}"
`;
}

function cases(): Case[] {
  const nodemon = nodemonBin();
  const out: Case[] = [];
  for (const app of ["bun-net", "node-http"] as const) {
    const rt = RUNTIME[app];
    out.push({ tool: "hr dev (fd)", app, argv: () => [HR, "dev"], hrToml: hrToml(app, "fd") });
    // The app binds PORT itself and gets hr's socket (run.capture); restarts overlap.
    out.push({ tool: "hr dev (fd+capture)", app, argv: () => [HR, "dev"], hrToml: hrToml(app, "fd", true) });
    out.push({ tool: "bun --watch", app, argv: (src) => [join(BIN, "bun"), "--watch", src] });
    if (app === "node-http") out.push({ tool: "node --watch", app, argv: (src) => ["node", "--watch", src] });
    out.push({ tool: "nodemon", app, argv: (src) => [nodemon, "--quiet", "--watch", src, "--exec", `${rt} ${src}`] });
    if (Bun.which("entr")) out.push({ tool: "entr -r", app, argv: (src) => ["sh", "-c", `echo ${src} | exec entr -nr ${rt} ${src}`] });
  }
  out.push({ tool: "hr dev (proxy)", app: "bun-serve", argv: () => [HR, "dev"], hrToml: hrToml("bun-serve", "proxy") });
  out.push({ tool: "hr dev (proxy+capture)", app: "bun-serve", argv: () => [HR, "dev"], hrToml: hrToml("bun-serve", "proxy", true) });
  out.push({ tool: "bun --watch", app: "bun-serve", argv: (src) => [join(BIN, "bun"), "--watch", src] });
  return out;
}

async function get(url: string): Promise<{ ok: boolean; body: string; refused: boolean }> {
  try {
    const r = await fetch(url, { keepalive: false, headers: { Connection: "close" }, signal: AbortSignal.timeout(3000) });
    const body = await r.text();
    return { ok: r.status === 200, body, refused: false };
  } catch (e) {
    const msg = String((e as Error).message ?? e);
    return { ok: false, body: "", refused: /refused|ECONNREFUSED/i.test(msg) || (e as NodeJS.ErrnoException).code === "ConnectionRefused" };
  }
}

async function waitFor(url: string, marker: string, timeoutMs: number): Promise<{ ms: number; refused: number; errors: number }> {
  const t0 = performance.now();
  let refused = 0;
  let errors = 0;
  while (performance.now() - t0 < timeoutMs) {
    const r = await get(url);
    if (r.ok && r.body.includes(marker)) return { ms: performance.now() - t0, refused, errors };
    if (r.refused) refused++;
    else if (!r.ok) errors++;
    // A failed attempt returns at once; pause 1 ms so the retry loop does not take
    // a whole core from the tool and the app it is waiting for (2-core machines).
    if (!r.ok) await Bun.sleep(1);
  }
  throw new Error(`no response with ${marker} within ${timeoutMs} ms`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))]!;

async function runCase(c: Case) {
  const dir = mkdtempSync(join(tmpdir(), `hr-bench-${c.app}-`));
  cpSync(join(ROOT, "examples", c.app), dir, { recursive: true });
  rmSync(join(dir, "hr.toml"), { force: true });
  const port = freePort();
  if (c.hrToml) writeFileSync(join(dir, "hr.toml"), c.hrToml(port));
  const srcPath = join(dir, APP_SRC[c.app]);
  const original = readFileSync(srcPath, "utf8");
  const proc = Bun.spawn(c.argv(APP_SRC[c.app], port), {
    cwd: dir,
    env: { ...process.env, PATH: `${BIN}:${process.env.PATH}`, PORT: String(port), HR_GRACE_MS: "0", NO_COLOR: "1" },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "ignore",
    detached: true,
  });
  const url = `http://127.0.0.1:${port}/`;
  const samples: number[] = [];
  const refused: number[] = [];
  try {
    await waitFor(url, "hello from", 20_000);
    await Bun.sleep(500);
    for (let i = 0; i < SAVES + WARMUP; i++) {
      const marker = `r${i}x`;
      const text = original.replace(/VERSION = "v1"/, `VERSION = "${marker}"`);
      const t0 = performance.now();
      writeFileSync(srcPath, text);
      const r = await waitFor(url, ` ${marker} `, 20_000);
      const ms = performance.now() - t0;
      if (i >= WARMUP) {
        samples.push(ms);
        refused.push(r.refused);
      }
      await Bun.sleep(400); // let the tool settle (and editors' double events pass)
    }
  } finally {
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {}
    // Everything the tool started runs in its group or below; sweep the port's holders too.
    spawnSync("sh", ["-c", `pids=$(grep -l "PORT=${port}" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3); [ -n "$pids" ] && kill -9 $pids`], { stdio: "ignore" });
    await Bun.sleep(200);
    rmSync(dir, { recursive: true, force: true });
  }
  return {
    tool: c.tool,
    app: c.app,
    saves: samples.length,
    medianMs: Math.round(median(samples)),
    p90Ms: Math.round(pct(samples, 90)),
    minMs: Math.round(Math.min(...samples)),
    maxMs: Math.round(Math.max(...samples)),
    refusedPerSave: Number((refused.reduce((a, b) => a + b, 0) / refused.length).toFixed(1)),
    savesWithRefused: refused.filter((n) => n > 0).length,
  };
}

if (!existsSync(HR)) spawnSync(process.execPath, [join(ROOT, "scripts/build.ts")], { stdio: "inherit" });
const results: (Awaited<ReturnType<typeof runCase>> | { tool: string; app: string; error: string })[] = [];
for (const c of cases()) {
  process.stderr.write(`${c.tool} on ${c.app} … `);
  try {
    const r = await runCase(c);
    results.push(r);
    process.stderr.write(`median ${r.medianMs} ms, p90 ${r.p90Ms} ms, refused/save ${r.refusedPerSave}\n`);
  } catch (e) {
    process.stderr.write(`failed: ${(e as Error).message}\n`);
    results.push({ tool: c.tool, app: c.app, error: (e as Error).message });
  }
}

const versions = {
  bun: spawnSync(join(BIN, "bun"), ["--version"], { encoding: "utf8" }).stdout.trim(),
  node: spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim(),
  nodemon: spawnSync(nodemonBin(), ["--version"], { encoding: "utf8" }).stdout.trim(),
  entr: Bun.which("entr") ? "installed" : "missing",
  hr: spawnSync(HR, ["--version"], { encoding: "utf8" }).stdout.trim(),
};
const meta = {
  date: new Date().toISOString(),
  machine: `${spawnSync("nproc", { encoding: "utf8" }).stdout.trim()} cores, ${spawnSync("uname", ["-sr"], { encoding: "utf8" }).stdout.trim()}`,
  saves: SAVES,
  warmup: WARMUP,
  versions,
  method: "write the source file (VERSION → unique marker), poll GET / with a new connection per request until the body carries the marker; HR_GRACE_MS=0 for every tool",
};
mkdirSync(join(values.out!, ".."), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ ...meta, results }, null, 2)}\n`);

function goals(): string[] {
  const med = (app: string, tool: string) => {
    const r = results.find((x) => x.app === app && x.tool === tool);
    return r && "medianMs" in r ? r.medianMs : null;
  };
  const out = ["Goals (from the issue), checked against this run:", ""];
  const hb = med("bun-net", "hr dev (fd)");
  const bw = med("bun-net", "bun --watch");
  if (hb !== null && bw !== null)
    out.push(`- bun-net: hr within 15 ms of \`bun --watch\` — **${hb - bw <= 15 ? "met" : "not met"}** (${hb} vs ${bw} ms, ${hb - bw >= 0 ? "+" : ""}${hb - bw} ms).`);
  for (const app of ["bun-net", "node-http"]) {
    const h = med(app, "hr dev (fd)");
    const n = med(app, "nodemon");
    if (h !== null && n !== null)
      out.push(`- ${app}: hr ≥ 3× faster than nodemon — **${n / h >= 3 ? "met" : "not met"}** (${h} vs ${n} ms, ${(n / h).toFixed(2)}×).`);
  }
  return out;
}

const rows = results.map((r) =>
  "error" in r
    ? `| ${r.app} | ${r.tool} | failed: ${r.error} | | | |`
    : `| ${r.app} | ${r.tool} | **${r.medianMs}** | ${r.p90Ms} | ${r.minMs}–${r.maxMs} | ${r.refusedPerSave} (${r.savesWithRefused}/${r.saves} saves) |`,
);
const section = `<!-- dev:reload-latency:start (generated by scripts/bench/reload-latency.ts) -->
## hr dev: reload latency

Time from a file write to the first HTTP 200 from the new code, ${SAVES} saves per row (after ${WARMUP} warm-up saves),
${meta.machine}, ${meta.date.slice(0, 10)}; bun ${versions.bun}, node ${versions.node}, nodemon ${versions.nodemon}, ${versions.hr}.
The client polls \`GET /\` with a new connection per request and retries 1 ms after any error; *refused* is the
number of "connection refused" errors it saw per save — what a browser reload during the restart would show.
Every tool runs the same example app with \`HR_GRACE_MS=0\` (no drain grace). Raw numbers:
[bench/results/reload-latency.json](../bench/results/reload-latency.json). Reproduce: \`bun scripts/bench/reload-latency.ts\`.

| app | tool | median ms | p90 ms | min–max ms | refused per save |
|---|---|---|---|---|---|
${rows.join("\n")}

${goals().join("\n")}
<!-- dev:reload-latency:end -->`;

const docs = values.docs!;
let text = existsSync(docs) ? readFileSync(docs, "utf8") : "# Benchmarks\n";
const re = /<!-- dev:reload-latency:start[\s\S]*?<!-- dev:reload-latency:end -->/;
text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
writeFileSync(docs, text);
console.log(section);
