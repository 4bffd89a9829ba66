#!/usr/bin/env bun
/**
 * Bind capture's cost at app start: time from spawn to the first HTTP 200, for an
 * app binding its hard-coded port itself ("direct") and the same app started under
 * capture (hr's launcher, dist/hr __capture, then the app, whose bind() gets a
 * listening socket hr already holds) — with a cold launcher (spawned now) and a warm
 * one (spawned ahead of time, as hr dev does for restarts). Median of N starts each,
 * alternating, same run.
 * Goal (issue 11): capture adds ≤ 10 ms to an app's start.
 *
 *   bun scripts/bench/capture-start.ts [--starts 20] [--out bench/results/capture-start.json] [--no-docs]
 *
 * Apps, as their docs write them: Node http listen(PORT), Bun.serve({ port }),
 * Python http.server, Go net/http (a static binary, built here with Debian's Go).
 * The client connects with a new connection per request and retries 1 ms after an error.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { Capture } from "../../src/capture/index.ts";
import { sharedTargets } from "../../src/capture/app.ts";
import { bindListener } from "../../src/sockets/listen.ts";
import { parseListenAddress } from "../../src/sockets/address.ts";
import { freePort } from "../../src/sockets/free-port.ts";

const ROOT = join(import.meta.dir, "..", "..");
const HR = join(ROOT, "dist", "hr");
const BIN = join(ROOT, "node_modules", ".bin");
const { values } = parseArgs({
  options: {
    starts: { type: "string", default: "20" },
    out: { type: "string", default: join(ROOT, "bench/results/capture-start.json") },
    docs: { type: "string", default: join(ROOT, "docs/benchmarks.md") },
    "no-docs": { type: "boolean", default: false },
  },
});
const STARTS = Number(values.starts);
const WARMUP = 2;

interface App {
  name: string;
  files: (port: number) => Record<string, string>;
  argv: string[];
  build?: string[];
}

const APPS: App[] = [
  { name: "node http", files: (p) => ({ "server.js": `require("http").createServer((q, s) => s.end("ok")).listen(${p});\n` }), argv: ["node", "server.js"] },
  { name: "Bun.serve", files: (p) => ({ "server.ts": `Bun.serve({ port: ${p}, fetch: () => new Response("ok") });\n` }), argv: [join(BIN, "bun"), "server.ts"] },
  {
    name: "python http.server",
    files: (p) => ({ "server.py": `from http.server import HTTPServer, BaseHTTPRequestHandler\nclass H(BaseHTTPRequestHandler):\n    def do_GET(self):\n        self.send_response(200)\n        self.end_headers()\n        self.wfile.write(b"ok")\nHTTPServer(("", ${p}), H).serve_forever()\n` }),
    argv: ["python3", "server.py"],
  },
  {
    name: "go net/http (static)",
    files: (p) => ({ "main.go": `package main\n\nimport "net/http"\n\nfunc main() {\n\thttp.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })\n\thttp.ListenAndServe(":${p}", nil)\n}\n` }),
    build: ["go", "build", "-o", "app", "main.go"],
    argv: ["./app"],
  },
];

async function firstOk(port: number, timeoutMs: number): Promise<void> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`, { headers: { Connection: "close" }, signal: AbortSignal.timeout(5000) });
      await r.text();
      if (r.status === 200) return;
    } catch {
      /* not up yet */
    }
    await Bun.sleep(1);
  }
  throw new Error(`no 200 on :${port} within ${timeoutMs} ms`);
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

async function stop(proc: Bun.Subprocess): Promise<void> {
  try {
    process.kill(-proc.pid, "SIGKILL");
  } catch {}
  await proc.exited;
}

async function measure(app: App): Promise<{ app: string; directMs: number; captureMs: number; overheadMs: number; warmMs: number; warmOverheadMs: number; starts: number }> {
  const dir = mkdtempSync(join(tmpdir(), "hr-bench-capture-"));
  const port = freePort();
  await Bun.sleep(20); // freePort's probe socket is closed by Bun's event loop
  for (const [name, text] of Object.entries(app.files(port))) writeFileSync(join(dir, name), text);
  const env = { ...process.env, PATH: `${BIN}:${process.env.PATH}`, CGO_ENABLED: "0", GO111MODULE: "off", GOFLAGS: "" };
  if (app.build) {
    const r = spawnSync(app.build[0]!, app.build.slice(1), { cwd: dir, env, stdio: "inherit" });
    if (r.status !== 0) throw new Error(`${app.build.join(" ")} failed`);
  }
  const capture = Capture.get();
  const direct: number[] = [];
  const captured: number[] = [];
  const warmed: number[] = [];
  try {
    for (let i = 0; i < STARTS + WARMUP; i++) {
      for (const mode of ["direct", "capture", "warm"] as const) {
        // direct: hr's socket must not be there (the app binds the port itself); capture: hr holds it.
        let proc: Bun.Subprocess;
        const t0 = performance.now();
        if (mode === "warm") {
          // hr dev's restarts: the launcher was started ahead of time and waits; the clock starts when hr hands it the app.
          const w = capture.prepareWarm({ fdIndex: 3, targets: sharedTargets([heldNow()]), launcher: [HR] });
          proc = Bun.spawn(w.argv, { cwd: dir, env, stdio: ["ignore", "ignore", "ignore", w.fd], detached: true });
          w.spawned();
          await Bun.sleep(300); // the launcher is up and waiting
          const t1 = performance.now();
          w.start({ argv: app.argv, cwd: dir, env }, {});
          try {
            await firstOk(port, 20_000);
          } finally {
            const ms = performance.now() - t1;
            await stop(proc);
            w.dispose();
            if (i >= WARMUP) warmed.push(ms);
          }
          continue;
        }
        if (mode === "direct") {
          current?.close();
          proc = Bun.spawn(app.argv, { cwd: dir, env, stdio: ["ignore", "ignore", "ignore"], detached: true });
        } else {
          const launch = capture.prepare({ argv: app.argv, cwd: dir, path: env.PATH!, fdIndex: 3, mode: "capture", targets: sharedTargets([heldNow()]), events: {}, launcher: [HR] });
          proc = Bun.spawn(launch.argv, { cwd: dir, env, stdio: ["ignore", "ignore", "ignore", launch.fd], detached: true });
          launch.spawned();
          try {
            await firstOk(port, 20_000);
          } finally {
            const ms = performance.now() - t0;
            await stop(proc);
            launch.dispose();
            if (i >= WARMUP) captured.push(ms);
          }
          continue;
        }
        try {
          await firstOk(port, 20_000);
        } finally {
          const ms = performance.now() - t0;
          await stop(proc);
          if (i >= WARMUP) direct.push(ms);
        }
      }
    }
  } finally {
    current?.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const d = median(direct);
  const c = median(captured);
  const w = median(warmed);
  const r1 = (x: number) => Number(x.toFixed(1));
  return { app: app.name, directMs: r1(d), captureMs: r1(c), overheadMs: r1(c - d), warmMs: r1(w), warmOverheadMs: r1(w - d), starts: direct.length };

  // The held socket is re-bound for each captured start (a direct start needs the port free).
  function heldNow() {
    current?.close();
    current = bindListener({ name: "http", address: parseListenAddress(`127.0.0.1:${port}`) });
    return current;
  }
}
let current: ReturnType<typeof bindListener> | undefined;

if (!existsSync(HR)) spawnSync(process.execPath, [join(ROOT, "scripts/build.ts")], { stdio: "inherit" });
const results: (Awaited<ReturnType<typeof measure>> | { app: string; error: string })[] = [];
for (const app of APPS) {
  if (!Bun.which(app.argv[0]!) && !app.build) continue;
  if (app.build && !Bun.which(app.build[0]!)) continue;
  process.stderr.write(`${app.name} … `);
  try {
    const r = await measure(app);
    results.push(r);
    process.stderr.write(`direct ${r.directMs} ms, capture ${r.captureMs} ms (+${r.overheadMs}), warm launcher ${r.warmMs} ms (+${r.warmOverheadMs})\n`);
  } catch (e) {
    process.stderr.write(`failed: ${(e as Error).message}\n`);
    results.push({ app: app.name, error: (e as Error).message });
  }
}
const hrVersion = spawnSync(HR, ["--version"], { encoding: "utf8" }).stdout.trim();
const launcher: number[] = [];
for (let i = 0; i < STARTS; i++) {
  const t0 = performance.now();
  spawnSync(HR, ["--version"]);
  launcher.push(performance.now() - t0);
}
const meta = {
  date: new Date().toISOString(),
  machine: `${spawnSync("nproc", { encoding: "utf8" }).stdout.trim()} cores, ${spawnSync("uname", ["-sr"], { encoding: "utf8" }).stdout.trim()}`,
  starts: STARTS,
  warmup: WARMUP,
  hr: hrVersion,
  hrVersionMedianMs: Number(median(launcher).toFixed(1)),
  method: "spawn → first HTTP 200 (new connection per request, 1 ms retry), median of N starts; direct and captured starts alternate",
};
mkdirSync(join(values.out!, ".."), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ ...meta, results }, null, 2)}\n`);

const sign = (x: number) => `${x >= 0 ? "+" : ""}${x}`;
const rows = results.map((r) =>
  "error" in r ? `| ${r.app} | failed: ${r.error} | | | | |` : `| ${r.app} | ${r.directMs} | ${r.captureMs} | **${sign(r.overheadMs)}** | ${r.warmMs} | **${sign(r.warmOverheadMs)}** |`,
);
const ok = results.filter((r): r is Awaited<ReturnType<typeof measure>> => !("error" in r));
const worst = ok.length ? Math.max(...ok.map((r) => r.overheadMs)) : NaN;
const worstWarm = ok.length ? Math.max(...ok.map((r) => r.warmOverheadMs)) : NaN;
const section = `<!-- capture:start-overhead:start (generated by scripts/bench/capture-start.ts) -->
## Bind capture: cost at app start

Spawn → first HTTP 200, median of ${STARTS} starts per column (after ${WARMUP} warm-ups), direct and captured starts
alternating, ${meta.machine}, ${meta.date.slice(0, 10)}; ${hrVersion}. *direct*: the app binds its hard-coded port
itself. *capture*: hr's launcher (\`dist/hr __capture\`) installs the seccomp filter and execs the app, whose
bind() gets a socket hr already holds. *warm*: what \`hr dev\` restarts pay — the launcher was started ahead of time
(once the previous app listened) and waits with the filter installed; the clock starts when hr hands it the app. One start of the hr binary (\`hr --version\`) took ${meta.hrVersionMedianMs} ms (median)
in this run: the floor of a self-re-executing launcher. Raw numbers:
[bench/results/capture-start.json](../bench/results/capture-start.json). Reproduce: \`bun scripts/bench/capture-start.ts\`.

| app | direct ms | capture (cold launcher) ms | adds ms | capture (warm launcher) ms | adds ms |
|---|---|---|---|---|---|
${rows.join("\n")}

Goal (issue 11): capture adds ≤ 10 ms to an app's start — cold launcher (hr serve, hr dev's first start):
**${worst <= 10 ? "met" : "not met"}** (worst ${worst} ms); warm launcher (hr dev restarts): **${worstWarm <= 10 ? "met" : "not met"}** (worst ${worstWarm} ms).
<!-- capture:start-overhead:end -->`;
if (!values["no-docs"]) {
  const docs = values.docs!;
  let text = existsSync(docs) ? readFileSync(docs, "utf8") : "# Benchmarks\n";
  const re = /<!-- capture:start-overhead:start[\s\S]*?<!-- capture:start-overhead:end -->/;
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(docs, text);
}
console.log(section);
process.exit(0);
