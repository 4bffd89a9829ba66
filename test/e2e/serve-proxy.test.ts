/**
 * serve.strategy = "proxy" against real processes: hr accepts on [[listen]] and
 * forwards to each worker's private PORT (apps bind PORT themselves, unmodified).
 *
 *  - zero-downtime drills: a non-retrying client (50 connections, half
 *    keep-alive) while hr reloads; 0 failed requests, every generation answered,
 *    a fresh connection reaches the new generation after each reload.
 *    examples/bun-serve (plain Bun.serve on PORT, no shim) and examples/node-http
 *    (binds 127.0.0.1:PORT when no LISTEN_FDS), readiness "tcp" on the private PORT;
 *    shorter runs with notify and ipc readiness.
 *  - first start: connections made while no generation is ready wait and are
 *    answered once it is.
 *  - kill -9 of one worker: its in-flight request gets hr's 502, new connections
 *    are answered by the other worker, then by the replacement too.
 *
 * Numbers are printed as "[proxy] …" lines.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { get, waitForHttp } from "../helpers/http.ts";
import { reloadDrill } from "../helpers/drill.ts";
import { cleanupServes, EXAMPLES, proxyToml, startServe } from "../helpers/serve.ts";

beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

const BUN_SERVE = join(EXAMPLES, "bun-serve", "server.ts");
const NODE_HTTP = join(EXAMPLES, "node-http", "server.mjs");


async function drill(name: string, cmd: string[], workers: number, reloads: number, ready = "tcp") {
  const h = await startServe({ toml: proxyToml(cmd, { workers, ready: `{ type = "${ready}", timeout = "20s" }` }) });
  // A fresh connection goes to the new generation at once (it is live as soon as it is ready).
  await reloadDrill(h, { label: `[proxy] ${name} workers=${workers} ready=${ready}`, reloads, loadMs: 80_000, fresh: "at-once" });
}

describe("serve.strategy = proxy", () => {
  test("bun-serve (unmodified Bun.serve on PORT), 2 workers, 20 reloads under load: 0 failures", () => drill("bun-serve", ["bun", BUN_SERVE], 2, 20), 60_000);

  test("node-http (binds PORT), 2 workers, 20 reloads under load: 0 failures", () => drill("node-http", ["node", NODE_HTTP], 2, 20), 60_000);

  test("bun-serve, 1 worker, 5 reloads, notify readiness (sd_notify via bun:ffi): 0 failures", () => drill("bun-serve", ["bun", BUN_SERVE], 1, 5, "notify"), 30_000);

  test("node-http, 2 workers, 5 reloads, ipc readiness (process.send): 0 failures", () => drill("node-http", ["node", NODE_HTTP], 2, 5, "ipc"), 30_000);

  test("first start: connections wait for the first generation, then are answered", async () => {
    // The app binds its PORT only after 1.5 s; hr accepts on the public address at once.
    const h = await startServe({ toml: proxyToml(["sh", "-c", `sleep 1.5; exec bun ${BUN_SERVE}`], { workers: 1 }), waitReady: false });
    const m = await h.waitForLog(/listening on http=127\.0\.0\.1:(\d+)/);
    const url = `http://127.0.0.1:${m[1]}/`;
    const early = Array.from({ length: 5 }, () => get(url, { timeoutMs: 15_000 }).then((r) => r, (e: Error) => e));
    // Sent before the generation was ready (the ready line comes after the app's 1.5 s sleep).
    expect(h.logs()).not.toMatch(/gen1 ready/);
    const answers = await Promise.all(early);
    for (const a of answers) {
      if (a instanceof Error) throw a;
      expect(a.status).toBe(200);
      expect(a.body).toMatch(/^hello from bun-serve v1 gen=1 /);
    }
    expect(h.logs()).toMatch(/gen1 ready/);
    expect(await h.stop()).toBe(0);
  }, 30_000);

  test("kill -9 of a worker: its request gets a 502, new connections go to the other worker and then the replacement", async () => {
    const h = await startServe({ toml: proxyToml(["bun", BUN_SERVE], { serve: `restart_backoff = "300ms"` }) });
    const url = `http://127.0.0.1:${h.port}/`;
    const pidsOf = async () => (await h.status()).generations.find((g) => g.state === "ready")!.workers.map((w) => w.pid!);
    const [a, b] = await pidsOf();
    // Two slow requests in flight: least-connections puts one on each worker.
    const slow = [0, 1].map(() => get(`${url}slow?ms=3000`, { timeoutMs: 15_000 }).then((r) => r, (e: Error) => e));
    await Bun.sleep(300);
    process.kill(a!, "SIGKILL");
    // Once hr has seen the death (a connection racing the kill itself can land in the dying
    // worker's private backlog and be reset; see docs/serve.md, proxy), new connections are
    // answered by the surviving worker (or the replacement once ready).
    await h.waitForLog(new RegExp(`gen1/w\\d \\(pid ${a}\\) .*replacing it`));
    const bodies: string[] = [];
    for (let i = 0; i < 30; i++) {
      const r = await get(url);
      expect(r.status).toBe(200);
      bodies.push(r.body);
    }
    expect(bodies.some((x) => x.includes(`pid=${a} `) || x.endsWith(`pid=${a}\n`))).toBe(false);
    const results = (await Promise.all(slow)) as { status: number; body: string }[];
    expect(results.filter((r) => r instanceof Error)).toEqual([]);
    // The request on the killed worker gets hr's 502 saying why (no response byte had come), not a hang.
    const crashed = results.filter((r) => r.status === 502);
    const ok = results.filter((r) => r.status === 200);
    expect(crashed.length).toBe(1);
    expect(crashed[0]!.body).toContain("closed the connection without answering");
    expect(ok.length).toBe(1);
    expect(ok[0]!.body).toContain(`pid=${b}`);
    await h.waitForLog(/gen1\/w\d replaced: pid (\d+)/);
    const after = await pidsOf();
    const replacement = after.find((p) => p !== a && p !== b)!;
    expect(replacement).toBeGreaterThan(0);
    await waitForHttp(url, { match: new RegExp(`pid=${replacement}\\b`), timeoutMs: 5000, intervalMs: 10 });
    const st = await h.status();
    expect(st.generation).toBe(1);
    expect(await h.stop()).toBe(0);
    console.log(`[proxy] kill -9: ${bodies.length}/30 new connections answered after the kill, slow requests: 1 answered 502 by hr, 1 answered; replacement pid ${replacement}`);
  }, 30_000);
});

