#!/usr/bin/env bun
/**
 * Proxy throughput and latency: wrk against the same upstream app, direct and
 * through nginx (Debian nginx-light, keep-alive upstream), HAProxy (http mode,
 * http-reuse always), hr serve's proxy with protocol "http" (1 and 2 proxy
 * threads) and with "tcp" —
 * with 1 and with 2 app workers. One run, targets interleaved, ≥ 3 rounds;
 * medians and ratios to nginx measured in the same run.
 *
 *   bun scripts/bench/proxy.ts [--rounds 3] [--seconds 5] [--conns 64] [--out bench/results/proxy.json]
 *
 * Needs: dist/hr (built if missing), wrk, nginx, haproxy (scripts/ci-deps.sh installs none of
 * them: apt-get install -y wrk nginx-light haproxy). All traffic is on 127.0.0.1.
 *
 * The app: Bun.serve answering "hello world" (12 bytes) on PORT. For direct, nginx
 * and HAProxy, W copies bind one port with SO_REUSEPORT (the kernel spreads the
 * proxies' upstream connections over them); hr serve starts its own W workers,
 * each on its private PORT. nginx and HAProxy run with their defaults for worker
 * processes / threads (one per core here).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { freePort } from "../../src/sockets/free-port.ts";

const ROOT = join(import.meta.dir, "..", "..");
const HR = join(ROOT, "dist", "hr");
const { values } = parseArgs({
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "5" },
    conns: { type: "string", default: "64" },
    workers: { type: "string", default: "1,2" },
    out: { type: "string", default: join(ROOT, "bench/results/proxy.json") },
  },
});
const ROUNDS = Number(values.rounds);
const SECONDS = Number(values.seconds);
const CONNS = Number(values.conns);

for (const tool of ["wrk", "nginx", "haproxy"]) {
  if (!Bun.which(tool, { PATH: `${process.env.PATH}:/usr/sbin:/sbin` })) {
    console.error(`${tool} not found: apt-get install -y wrk nginx-light haproxy`);
    process.exit(1);
  }
}
if (!existsSync(HR)) spawnSync(process.execPath, [join(ROOT, "scripts/build.ts")], { stdio: "inherit" });

const dir = mkdtempSync(join(tmpdir(), "hr-bench-proxy-"));
const children: ChildProcess[] = [];
function cleanup() {
  for (const c of children) {
    try {
      if (c.pid) process.kill(-c.pid, "SIGTERM");
    } catch {
      /* gone */
    }
  }
}
process.on("exit", cleanup);
process.on("SIGINT", () => process.exit(130));

const APP = `const server = Bun.serve({ hostname: "127.0.0.1", port: Number(process.env.PORT), reusePort: true, fetch: () => new Response("hello world") });
process.on("SIGTERM", () => process.exit(0));
`;
writeFileSync(join(dir, "app.ts"), APP);

function start(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): ChildProcess {
  const c = spawn(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? dir, env: { ...process.env, ...opts.env }, stdio: ["ignore", "ignore", "pipe"], detached: true });
  c.stderr!.on("data", () => {});
  children.push(c);
  return c;
}

async function waitHttp(port: number, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = spawnSync("curl", ["-sf", "-o", "/dev/null", `http://127.0.0.1:${port}/`], { timeout: 2000 });
    if (r.status === 0) return;
    await Bun.sleep(100);
  }
  throw new Error(`nothing answers on 127.0.0.1:${port}`);
}

interface Target {
  name: string;
  port: number;
}

async function setup(workers: number): Promise<Target[]> {
  const appPort = freePort();
  for (let i = 0; i < workers; i++) start([process.execPath, "app.ts"], { env: { PORT: String(appPort) } });
  await waitHttp(appPort);

  const ngDir = join(dir, `nginx-${workers}`);
  mkdirSync(join(ngDir, "logs"), { recursive: true });
  const ngPort = freePort();
  writeFileSync(
    join(ngDir, "nginx.conf"),
    `worker_processes auto;
daemon off;
pid ${ngDir}/nginx.pid;
error_log ${ngDir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${ngDir}/body; proxy_temp_path ${ngDir}/proxy; fastcgi_temp_path ${ngDir}/fcgi; uwsgi_temp_path ${ngDir}/uwsgi; scgi_temp_path ${ngDir}/scgi;
  upstream app { server 127.0.0.1:${appPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${ngPort};
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
`,
  );
  start(["nginx", "-c", join(ngDir, "nginx.conf"), "-p", ngDir]);

  const haPort = freePort();
  const haCfg = join(dir, `haproxy-${workers}.cfg`);
  writeFileSync(
    haCfg,
    `global
  maxconn 8192
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend f
  bind 127.0.0.1:${haPort}
  default_backend b
backend b
  server s1 127.0.0.1:${appPort}
`,
  );
  start(["haproxy", "-f", haCfg, "-db"]);

  const targets: Target[] = [
    { name: "direct", port: appPort },
    { name: "nginx", port: ngPort },
    { name: "haproxy", port: haPort },
  ];
  for (const [protocol, threads] of [["http", 1], ["http", 2], ["tcp", 1]] as const) {
    const hrDir = join(dir, `hr-${protocol}-${threads}-${workers}`);
    mkdirSync(hrDir, { recursive: true });
    const port = freePort();
    writeFileSync(join(hrDir, "app.ts"), APP);
    writeFileSync(
      join(hrDir, "hr.toml"),
      `[run]
cmd = ["${process.execPath}", "app.ts"]
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
protocol = "${protocol}"
[serve]
strategy = "proxy"
workers = ${workers}
proxy_threads = ${threads}
`,
    );
    start([HR, "serve"], { cwd: hrDir });
    targets.push({ name: threads > 1 ? `hr ${protocol} ×${threads}t` : `hr ${protocol}`, port });
  }
  for (const t of targets) await waitHttp(t.port);
  return targets;
}

/** "1.23ms" → 1.23 */
function ms(s: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "s" ? v * 1000 : v;
}

interface Sample {
  rps: number;
  p50: number;
  p99: number;
}

function wrk(port: number, seconds: number): Sample {
  const r = spawnSync("wrk", ["-t2", `-c${CONNS}`, `-d${seconds}s`, "--latency", `http://127.0.0.1:${port}/`], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  const out = r.stdout ?? "";
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const p50 = ms(/\s50%\s+(\S+)/.exec(out)?.[1] ?? "");
  const p99 = ms(/\s99%\s+(\S+)/.exec(out)?.[1] ?? "");
  const errors = /Socket errors: (.*)/.exec(out)?.[1];
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1];
  if (errors || non2xx) console.log(`    (port ${port}: socket errors ${errors ?? "none"}, non-2xx ${non2xx ?? 0})`);
  return { rps, p50, p99 };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const results: Record<string, Record<string, { rps: number; p50: number; p99: number; samples: Sample[] }>> = {};
const cpu = spawnSync("nproc", { encoding: "utf8" }).stdout.trim();
console.log(`proxy bench: ${ROUNDS} rounds × ${SECONDS}s, wrk -t2 -c${CONNS}, ${cpu} cores, load ${(await Bun.file("/proc/loadavg").text()).split(" ").slice(0, 3).join(" ")}`);

for (const workers of values.workers!.split(",").map(Number)) {
  const targets = await setup(workers);
  for (const t of targets) wrk(t.port, 1); // warm-up (JIT, pools)
  const samples = new Map<string, Sample[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    // Interleaved, rotated each round so no target always runs first.
    const order = targets.map((_, i) => targets[(i + round - 1) % targets.length]!);
    for (const t of order) {
      const s = wrk(t.port, SECONDS);
      samples.get(t.name)!.push(s);
      console.log(`  workers=${workers} round ${round} ${t.name.padEnd(12)} ${Math.round(s.rps).toString().padStart(7)} req/s  p50 ${s.p50.toFixed(2)} ms  p99 ${s.p99.toFixed(2)} ms`);
    }
  }
  const row: (typeof results)[string] = {};
  for (const [name, ss] of samples) row[name] = { rps: median(ss.map((s) => s.rps)), p50: median(ss.map((s) => s.p50)), p99: median(ss.map((s) => s.p99)), samples: ss };
  results[`workers=${workers}`] = row;
  cleanup();
  children.length = 0;
  await Bun.sleep(1000);
}

console.log("\nmedians (ratio to nginx in the same run):");
console.log("| workers | target | req/s | × nginx | p50 ms | p99 ms | p99 − nginx |");
console.log("|---|---|---:|---:|---:|---:|---:|");
for (const [w, row] of Object.entries(results)) {
  const ng = row.nginx!;
  for (const [name, r] of Object.entries(row)) {
    console.log(`| ${w.slice(8)} | ${name} | ${Math.round(r.rps)} | ${(r.rps / ng.rps).toFixed(2)} | ${r.p50.toFixed(2)} | ${r.p99.toFixed(2)} | ${(r.p99 - ng.p99 >= 0 ? "+" : "") + (r.p99 - ng.p99).toFixed(2)} |`);
  }
}
mkdirSync(join(values.out!, ".."), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ date: new Date().toISOString(), cores: Number(cpu), rounds: ROUNDS, seconds: SECONDS, conns: CONNS, results }, null, 2)}\n`);
console.log(`\nwrote ${values.out}`);
rmSync(dir, { recursive: true, force: true });
