/**
 * serve strategies against real processes:
 *
 *  - fd + the Bun.serve preload shim: the UNMODIFIED examples/bun-serve app
 *    (plain Bun.serve({ port: PORT })) serves hr's inherited socket; 20 reloads
 *    under a non-retrying 50-connection load (half keep-alive): 0 failures.
 *  - reuseport: the same app binds the port itself with SO_REUSEPORT (the shim adds
 *    reusePort: true). Runs inside a private network namespace (`unshare --net`,
 *    we are root) so net.ipv4.tcp_migrate_req can be set to 1 without touching the
 *    host: a runner script (written to a temp dir) starts hr serve, runs the load
 *    and the reloads, and prints one JSON line the test asserts on. A second,
 *    shorter run with tcp_migrate_req = 0 only measures (and checks hr's warning).
 *  - socket audit: a worker that ignores fd 3 and binds a port of its own is
 *    reported (error log + status warning); one that also closed fd 3 fails the reload.
 *
 * Numbers are printed as "[strategies] …" lines.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, ROOT } from "../helpers/hr.ts";
import { get, waitForHttp } from "../helpers/http.ts";
import { startLoad } from "../../scripts/harness/load.ts";
import { BIN_DIR, cleanupServes, EXAMPLES, startServe } from "../helpers/serve.ts";
import { pidsWithEnv } from "../../src/platform/proc.ts";

beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

const BUN_SERVE = join(EXAMPLES, "bun-serve", "server.ts");
const BUN_NET = join(EXAMPLES, "bun-net", "server.ts");

const tomlFor = (strategy: string, workers: number, extra = "") => `[run]
cmd = ["bun", ${JSON.stringify(BUN_SERVE)}]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
strategy = "${strategy}"
workers = ${workers}
drain_timeout = "15s"
ready = { type = "notify", timeout = "20s" }
${extra}
`;

const pct = (xs: number[], p: number) => {
  if (!xs.length) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!);
};

/**
 * The drill, shared by the in-process fd test and the namespaced reuseport runner
 * (which imports this file's source as a string: see RUNNER below).
 */
const DRILL_SOURCE = `
import { waitForHttp } from ${JSON.stringify(join(ROOT, "test/helpers/http.ts"))};
import { startLoad } from ${JSON.stringify(join(ROOT, "scripts/harness/load.ts"))};
import { cleanupServes, startServe } from ${JSON.stringify(join(ROOT, "test/helpers/serve.ts"))};

export async function drill(toml, reloads) {
  const h = await startServe({ toml });
  try {
    const url = \`http://127.0.0.1:\${h.port}/\`;
    const load = startLoad({ url, concurrency: 50, keepAliveShare: 0.5, durationMs: 120_000, timeoutMs: 10_000 });
    const durations = [];
    const reloadErrors = [];
    try {
      await Bun.sleep(300);
      for (let i = 0; i < reloads; i++) {
        const r = await h.reload();
        if (r.code !== 0) { reloadErrors.push(r.stderr || JSON.stringify(r.json)); continue; }
        const gen = r.json.reload.generation;
        durations.push(r.json.reload.durationMs);
        await waitForHttp(url, { match: new RegExp(\`gen=\${gen} \`), timeoutMs: 5000, intervalMs: 10 });
      }
      await Bun.sleep(300);
    } finally {
      var res = await load.stop();
    }
    const st = await h.status();
    const code = await h.stop();
    const gens = [...new Set([...res.bodies.keys()].map((k) => Number(k.match(/gen=(\\d+)/)?.[1])))].sort((a, b) => a - b);
    return { ok: res.ok, failed: res.failed, errors: res.errors, firstFailures: res.failures.slice(0, 5), durations, reloadErrors,
      gens, liveGeneration: st.generation, allReloadsOk: st.reloads.every((r) => r.result === "ok"), exitCode: code,
      elapsedMs: Math.round(res.elapsedMs), p50: res.latenciesMs.length ? res.latenciesMs.sort((a, b) => a - b)[Math.floor(res.latenciesMs.length / 2)] : 0,
      log: h.logs().split("\\n").filter((l) => / warn | error |tcp_migrate_req/.test(l)).slice(0, 20) };
  } finally {
    await cleanupServes();
  }
}
`;

const RUNNER = `
import { drill } from "./drill.mjs";
const [toml, reloads] = [await Bun.file(process.argv[2]).text(), Number(process.argv[3])];
const migrate = (await Bun.file("/proc/sys/net/ipv4/tcp_migrate_req").text()).trim();
const r = await drill(toml, reloads);
console.log("RESULT " + JSON.stringify({ ...r, tcp_migrate_req: migrate }));
process.exit(0);
`;

function report(name: string, r: any, reloads: number) {
  console.log(
    `[strategies] ${name}: ${reloads} reloads, ${r.ok} ok, ${r.failed} failed${r.failed ? ` ${JSON.stringify(r.errors)}` : ""}; ` +
      `reload ms median ${pct(r.durations, 50)} max ${Math.max(0, ...r.durations)}; latency p50 ${Math.round(r.p50)} ms; ${(r.elapsedMs / 1000).toFixed(1)} s`,
  );
  if (r.failed) console.log(`[strategies] first failures: ${JSON.stringify(r.firstFailures)}`);
}

function expectClean(r: any, reloads: number) {
  expect(r.reloadErrors).toEqual([]);
  expect(r.failed).toBe(0);
  expect(r.ok).toBeGreaterThan(reloads * 20);
  for (let g = 1; g <= reloads + 1; g++) expect(r.gens.includes(g) ? g : `gen ${g} never answered`).toBe(g);
  expect(r.liveGeneration).toBe(reloads + 1);
  expect(r.allReloadsOk).toBe(true);
  expect(r.exitCode).toBe(0);
}

// -------------------------------------------------------------------------
// Processes started inside the namespace carry HR_NS_TAG; afterEach-style cleanup scans for it.

const nsTaggedPids = (tag: string) => pidsWithEnv("HR_NS_TAG", tag);

const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const nsProbe = process.getuid?.() === 0 && have("unshare") && (have("ip") || have("ifconfig")) && spawnSync("unshare", ["--net", "--", "true"]).status === 0;
const nsSkipReason = process.getuid?.() !== 0 ? "not root" : !have("unshare") ? "`unshare` (util-linux) missing" : !(have("ip") || have("ifconfig")) ? "neither `ip` (iproute2) nor `ifconfig` found" : "unshare --net is not permitted here";
if (!nsProbe) console.log(`[strategies] reuseport drill skipped: ${nsSkipReason}`);

/** Runs the drill in a fresh network namespace with the given tcp_migrate_req; returns the runner's JSON. */
async function nsDrill(toml: string, reloads: number, migrateReq: 0 | 1): Promise<any> {
  const dir = mkdtempSync(join(tmpdir(), "hr-ns-"));
  const tag = `ns${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  writeFileSync(join(dir, "drill.mjs"), DRILL_SOURCE);
  writeFileSync(join(dir, "runner.mjs"), RUNNER);
  writeFileSync(join(dir, "hr.toml"), toml);
  const lo = have("ip") ? "ip link set lo up" : "ifconfig lo up";
  const script = `${lo} && sysctl -q -w net.ipv4.tcp_migrate_req=${migrateReq} && exec "$0" "$@"`;
  const proc = Bun.spawn(["unshare", "--net", "--", "sh", "-c", script, process.execPath, join(dir, "runner.mjs"), join(dir, "hr.toml"), String(reloads)], {
    cwd: dir,
    env: { ...process.env, PATH: `${BIN_DIR}:${process.env.PATH}`, NO_COLOR: "1", HR_NS_TAG: tag },
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const killer = setTimeout(() => proc.kill("SIGKILL"), 80_000);
  try {
    const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    const line = out.split("\n").find((l) => l.startsWith("RESULT "));
    if (!line) throw new Error(`runner printed no result (exit ${proc.exitCode})\n--- stdout ---\n${out.slice(-3000)}\n--- stderr ---\n${err.slice(-3000)}`);
    return JSON.parse(line.slice(7));
  } finally {
    clearTimeout(killer);
    for (const p of nsTaggedPids(tag)) {
      try {
        process.kill(p, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    for (let i = 0; i < 100 && nsTaggedPids(tag).length; i++) await Bun.sleep(20);
    const left = nsTaggedPids(tag);
    rmSync(dir, { recursive: true, force: true });
    expect(left).toEqual([]);
  }
}

describe("serve strategies: unmodified examples/bun-serve (Bun.serve on $PORT), 50 connections, non-retrying", () => {
  test("fd + Bun.serve shim: 2 workers, 20 reloads, 0 failed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hr-fd-"));
    try {
      writeFileSync(join(dir, "drill.mjs"), DRILL_SOURCE);
      const { drill } = await import(join(dir, "drill.mjs"));
      const r = await drill(tomlFor("fd", 2), 20);
      report("fd + bun shim, bun-serve, 2 workers", r, 20);
      expectClean(r, 20);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test.skipIf(!nsProbe)("reuseport, net.ipv4.tcp_migrate_req = 1 (private netns): 2 workers, 20 reloads, 0 failed", async () => {
    const r = await nsDrill(tomlFor("reuseport", 2), 20, 1);
    report(`reuseport (tcp_migrate_req=${r.tcp_migrate_req}), bun-serve, 2 workers`, r, 20);
    expect(r.tcp_migrate_req).toBe("1");
    expect(r.log.filter((l: string) => l.includes("tcp_migrate_req = 0"))).toEqual([]);
    expectClean(r, 20);
  }, 90_000);

  test.skipIf(!nsProbe)("reuseport, net.ipv4.tcp_migrate_req = 0 (private netns): hr warns; failures measured, not asserted", async () => {
    const r = await nsDrill(tomlFor("reuseport", 2), 10, 0);
    report(`reuseport (tcp_migrate_req=${r.tcp_migrate_req}), bun-serve, 2 workers`, r, 10);
    expect(r.tcp_migrate_req).toBe("0");
    const warning = r.log.find((l: string) => l.includes("net.ipv4.tcp_migrate_req = 0"));
    expect(warning).toContain("sysctl -w net.ipv4.tcp_migrate_req=1");
    expect(warning).toContain("/etc/sysctl.d/");
    expect(r.reloadErrors).toEqual([]);
  }, 90_000);
});

describe("socket audit (fd strategy)", () => {
  // good: bun-net adopts fd 3. ignore: the Bun.serve example without the shim binds
  // a port of its own (PORT=0) and leaves fd 3 open but unused. drop: the same after
  // closing fd 3.
  const APP = `#!/bin/sh
if [ -f ignore ]; then PORT=0 exec bun ${BUN_SERVE}; fi
if [ -f drop ]; then exec 3>&-; PORT=0 exec bun ${BUN_SERVE}; fi
exec bun ${BUN_NET}
`;
  const toml = `[run]
cmd = ["./app.sh"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
bun_shim = false
drain_timeout = "5s"
`;

  test("a worker that binds its own port is reported (log + status); one that closed fd 3 fails the reload", async () => {
    const h = await startServe({ toml, files: { "app.sh": APP } });
    const url = `http://127.0.0.1:${h.port}/`;
    expect((await get(url)).body).toContain("gen=1");
    let st = await h.status();
    expect(st.generations[0]!.workers[0]!.warning).toBeUndefined();

    // ignore: reported, not failed (it still holds fd 3; it could be serving it plus an admin port).
    writeFileSync(join(h.dir, "ignore"), "");
    const r2 = await h.reload();
    expect(r2.code).toBe(0);
    const m = h.logs().match(/worker gen2\/w1 \(pid (\d+)\) listens on 127\.0\.0\.1:(\d+) itself instead of using the inherited socket at fd 3 — see docs\/serve\.md#adopting/);
    expect(m).not.toBeNull();
    expect(Number(m![2])).not.toBe(h.port);
    st = await h.status();
    const w = st.generations.find((g) => g.generation === 2)!.workers[0]!;
    expect(w.pid).toBe(Number(m![1]));
    expect(w.warning).toContain("listens on 127.0.0.1:");
    expect(w.warning).toContain("docs/serve.md#adopting");

    // drop: fails; gen2 stays live.
    rmSync(join(h.dir, "ignore"));
    writeFileSync(join(h.dir, "drop"), "");
    const r3 = await h.reload();
    expect(r3.code).toBe(1);
    expect(r3.json.error).toMatch(/gen3\/w1 \(pid \d+\) listens on 127\.0\.0\.1:\d+ itself and no longer holds the inherited socket \(fd 3\)/);
    st = await h.status();
    expect(st.generation).toBe(2);
    expect(st.generations.find((g) => g.generation === 3)!.state).toBe("failed");
    expect(await h.stop()).toBe(0);
  }, 30_000);
});
