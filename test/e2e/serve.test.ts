/**
 * hr serve against real processes and sockets (examples/bun-net behind a small
 * wrapper script): control socket, rollback, crash replacement, drain, shutdown,
 * SIGKILL of the master, serve.watch, coalesced reloads, failed builds.
 * Every test cleans up every process it started (HR_TEST_TAG scan of /proc).
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { renameSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { get as httpGet, waitForHttp } from "../helpers/http.ts";
import { cleanupServes, EXAMPLES, startServe, taggedPids, type ServeHandle } from "../helpers/serve.ts";

setDefaultTimeout(30_000);
beforeAll(() => void ensureBinary());
afterEach(async () => {
  const left = await cleanupServes();
  expect(left).toEqual([]);
});

const BUN_NET = join(EXAMPLES, "bun-net", "server.ts");

/** Wrapper: `broken` marker → exit 3 at start; `noready` → never sends READY=1 (but listens and answers). */
const APP_SH = `#!/bin/sh
if [ -f broken ]; then echo "boom: bad config in v2" >&2; exit 3; fi
if [ -f noready ]; then unset NOTIFY_SOCKET; fi
exec bun ${BUN_NET}
`;

function config(extra = "", serve = "") {
  return `[run]
cmd = ["./app.sh"]
${extra}
[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
drain_timeout = "5s"
restart_backoff = "100ms"
${serve}
`;
}

/** One non-retrying GET on a new connection (Bun's fetch would silently retry a reset). */
async function get(h: ServeHandle, path = "/"): Promise<{ status: number; body: string }> {
  return httpGet(`http://127.0.0.1:${h.port}${path}`);
}

const gen = (body: string) => Number(body.match(/gen=(\d+)/)?.[1]);

describe("hr serve", () => {
  test("status --json shape; control socket 0600 in a 0700 dir; pid file", async () => {
    const h = await startServe({ toml: config("", "workers = 2"), files: { "app.sh": APP_SH } });
    const st = await h.status();
    expect(st.pid).toBe(h.pid);
    expect(st.generation).toBe(1);
    expect(st.state).toBe("serving");
    expect(st.sockets).toMatch(/^http=127\.0\.0\.1:\d+$/);
    expect(st.generations).toHaveLength(1);
    const g = st.generations[0]!;
    expect(g).toMatchObject({ generation: 1, state: "ready" });
    expect(g.workers.map((w) => w.worker)).toEqual([1, 2]);
    for (const w of g.workers) {
      expect(w.state).toBe("ready");
      expect(w.pid).toBeGreaterThan(0);
      expect(w.uptimeMs).toBeGreaterThanOrEqual(0);
    }
    expect(st.reloads).toEqual([]);
    const rt = join(h.dir, "run", "hr");
    expect(statSync(rt).mode & 0o777).toBe(0o700);
    const { readdirSync, readFileSync } = await import("node:fs");
    const sock = readdirSync(rt).find((f) => f.endsWith(".sock"))!;
    expect(statSync(join(rt, sock)).isSocket()).toBe(true);
    expect(statSync(join(rt, sock)).mode & 0o777).toBe(0o600);
    const pidFile = readdirSync(rt).find((f) => f.endsWith(".pid"))!;
    expect(Number(readFileSync(join(rt, pidFile), "utf8"))).toBe(h.pid);
    // The text form names the workers.
    const text = await h.hr(["status"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`w1 pid ${g.workers[0]!.pid} ready`);
    // Worker env: each worker knows its generation and number, and adopted fd 3.
    expect(h.logs()).toMatch(/gen1\/w1 \| bun-net v1 gen=1 pid=\d+ listening on fd 3/);
    // A second master for the same project is refused.
    const second = await h.hr(["serve"], 10_000);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain("already running");
    expect(await h.stop()).toBe(0);
    expect(readdirSync(rt)).toEqual([]);
  });

  test("rollback: a new version that exits at start is stopped, the old one keeps serving, reload --wait fails with the reason", async () => {
    const h = await startServe({ toml: config(), files: { "app.sh": APP_SH } });
    writeFileSync(join(h.dir, "broken"), "");
    const r = await h.reload();
    expect(r.code).toBe(1);
    expect(r.json.ok).toBe(false);
    expect(r.json.error).toContain("gen2/w1: exited with code 3 before it was ready");
    expect(r.json.reload.output).toContain("boom: bad config in v2");
    const res = await get(h);
    expect(res.status).toBe(200);
    expect(gen(res.body)).toBe(1);
    const st = await h.status();
    expect(st.generation).toBe(1);
    expect(st.generations.find((g) => g.generation === 2)?.state).toBe("failed");
    expect(st.reloads.at(-1)).toMatchObject({ result: "failed", generation: 2 });
    expect(h.logs()).toContain("gen1 keeps serving");
    // Fixed: the next reload works.
    const { rmSync } = await import("node:fs");
    rmSync(join(h.dir, "broken"));
    const ok = await h.reload();
    expect(ok.code).toBe(0);
    expect(ok.json.reload.generation).toBe(3);
    expect(await h.stop()).toBe(0);
  });

  test("rollback: a new version that never gets ready is drained after ready.timeout; the old one keeps serving", async () => {
    const h = await startServe({ toml: config("", 'ready = { timeout = "1500ms" }'), files: { "app.sh": APP_SH } });
    writeFileSync(join(h.dir, "noready"), "");
    const before = (await h.status()).generations[0]!.workers[0]!.pid;
    // Keep requesting while gen2 is up but unready: it accepts some connections; every one must be answered.
    let failures = 0;
    const gens = new Set<number>();
    let stop = false;
    const loop = (async () => {
      while (!stop) {
        try {
          const r = await get(h);
          if (r.status !== 200) failures++;
          gens.add(gen(r.body));
        } catch {
          failures++;
        }
      }
    })();
    const r = await h.reload();
    stop = true;
    await loop;
    expect(r.code).toBe(1);
    expect(r.json.error).toContain("not ready after 1.5s");
    expect(failures).toBe(0);
    const st = await h.status();
    expect(st.generation).toBe(1);
    expect(st.generations[0]!.workers[0]!.pid).toBe(before);
    // gen2's processes go away (drained: stop signal, not SIGKILL first).
    await h.waitForLog(/gen2\/w1 \| bun-net pid=\d+: drained, exiting/, 10_000);
    expect(gen((await get(h)).body)).toBe(1);
    expect(await h.stop()).toBe(0);
  });

  test("crash: a worker killed with -9 is replaced (same generation), the other keeps serving", async () => {
    const h = await startServe({ toml: config("", "workers = 2"), files: { "app.sh": APP_SH } });
    const st = await h.status();
    const [w1, w2] = st.generations[0]!.workers.map((w) => w.pid!);
    process.kill(w1!, "SIGKILL");
    let failures = 0;
    for (let i = 0; i < 20; i++) {
      const r = await get(h).catch(() => null);
      if (!r || r.status !== 200) failures++;
    }
    expect(failures).toBe(0);
    await h.waitForLog(/gen1\/w1 replaced: pid \d+ ready/, 10_000);
    const after = await h.status();
    const ws = after.generations[0]!.workers;
    expect(after.generation).toBe(1);
    expect(ws[0]!.pid).not.toBe(w1);
    expect(ws[0]!.restarts).toBe(1);
    expect(ws[0]!.state).toBe("ready");
    expect(ws[1]!.pid).toBe(w2!);
    expect(h.logs()).toMatch(/gen1\/w1 \(pid \d+\) killed by SIGKILL/);
    expect(await h.stop()).toBe(0);
  });

  test("drain: a /slow?ms=2000 request in flight finishes with 200 across a reload", async () => {
    const h = await startServe({ toml: config(), files: { "app.sh": APP_SH } });
    const slow = get(h, "/slow?ms=2000");
    await Bun.sleep(200);
    const r = await h.reload();
    expect(r.code).toBe(0);
    const res = await slow;
    expect(res.status).toBe(200);
    expect(res.body).toContain("slow 2000ms");
    expect(gen((await get(h)).body)).toBeGreaterThanOrEqual(1);
    expect(await h.stop()).toBe(0);
  });

  test("SIGTERM drains an in-flight request and exits 0; nothing left behind", async () => {
    const h = await startServe({ toml: config("", "workers = 2"), files: { "app.sh": APP_SH } });
    const slow = get(h, "/slow?ms=1500");
    await Bun.sleep(200);
    const code = h.stop("SIGTERM");
    expect((await slow).status).toBe(200);
    expect(await code).toBe(0);
    expect(taggedPids(h.tag)).toEqual([]);
  });

  test("SIGKILL of the master: no worker or grandchild outlives it by 2 s, the port can be bound again, stale runtime files are gone", async () => {
    const h = await startServe({ toml: config("", "workers = 2"), files: { "app.sh": APP_SH }, env: { SPAWN_GRANDCHILD: "1" } });
    const pids = (await h.status()).generations[0]!.workers.map((w) => w.pid!);
    // Each worker forked a long-lived `sleep 600` grandchild (same process group).
    const t1 = Date.now();
    while (Date.now() - t1 < 3000 && taggedPids(h.tag).length < 1 + 1 + pids.length * 2) await Bun.sleep(20);
    const before = taggedPids(h.tag);
    expect(before.length).toBeGreaterThanOrEqual(1 + 1 + pids.length * 2); // master, sweeper, workers, grandchildren
    process.kill(h.pid, "SIGKILL");
    await h.proc.exited;
    const t0 = Date.now();
    while (Date.now() - t0 < 2000 && taggedPids(h.tag).length) await Bun.sleep(20);
    expect(taggedPids(h.tag)).toEqual([]);
    expect(pids.filter(alive)).toEqual([]);
    await new Promise<void>((resolve, reject) => {
      const srv = net.createServer().once("error", reject);
      srv.listen(h.port, "127.0.0.1", () => srv.close(() => resolve()));
    });
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(join(h.dir, "run", "hr"))).toEqual([]);
    // And a new master starts on the same port right away.
    const again = await h.hr(["status"]);
    expect(again.stderr).toContain("no hr serve is running");
  });

  test("a port in use is a clear error naming the address and exit 1", async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const h = await startServe({ toml: config().replace("127.0.0.1:0", `127.0.0.1:${port}`), files: { "app.sh": APP_SH }, waitReady: false });
      const code = await h.stop("SIGCONT", 10_000);
      expect(code).toBe(1);
      expect(h.logs()).toContain(`127.0.0.1:${port}`);
      expect(h.logs()).toMatch(/in use/i);
      expect(h.logs()).toContain(`pid ${process.pid}`);
    } finally {
      srv.close();
    }
  });

  test("reloads never overlap: requests during a reload are coalesced into one queued reload", async () => {
    const h = await startServe({ toml: config("", 'ready = { type = "delay", delay = "1500ms" }'), files: { "app.sh": APP_SH } });
    const results = await Promise.all([h.reload(), Bun.sleep(100).then(() => h.reload()), Bun.sleep(200).then(() => h.reload()), Bun.sleep(300).then(() => h.reload())]);
    expect(results.map((r) => r.code)).toEqual([0, 0, 0, 0]);
    expect(results.map((r) => r.json.reload.generation)).toEqual([2, 3, 3, 3]);
    const st = await h.status();
    expect(st.generation).toBe(3);
    expect(st.reloads).toHaveLength(2);
    expect(st.reloads[1]!.trigger).toBe("hr reload");
    // Never two generations starting at once.
    expect(h.logs()).not.toMatch(/gen3 starting[\s\S]*gen2 ready/);
    expect(await h.stop()).toBe(0);
  });

  test("serve.watch: an atomic replace (rename over) of the watched file triggers a reload; SIGHUP reloads too", async () => {
    const h = await startServe({ toml: config("", 'watch = ["release.txt"]'), files: { "app.sh": APP_SH, "release.txt": "v1" } });
    writeFileSync(join(h.dir, "release.tmp"), "v2");
    renameSync(join(h.dir, "release.tmp"), join(h.dir, "release.txt"));
    await h.waitForLog(/reload #1 \(watch: release\.txt\)/, 5000);
    await h.waitForLog(/reload #1 ok/, 10_000);
    process.kill(h.pid, "SIGHUP");
    await h.waitForLog(/reload #2 \(SIGHUP\)/, 5000);
    await h.waitForLog(/reload #2 ok/, 10_000);
    expect((await h.status()).generation).toBe(3);
    expect(await h.stop()).toBe(0);
  });

  test("serve.build: a failed build is a failed reload and the old generation keeps serving", async () => {
    const h = await startServe({
      toml: `[build]\ncmd = "test ! -f buildfail || { echo compile error: x.go:3 >&2; exit 2; }"\n${config("", "build = true")}`,
      files: { "app.sh": APP_SH },
    });
    writeFileSync(join(h.dir, "buildfail"), "");
    const r = await h.reload();
    expect(r.code).toBe(1);
    expect(r.json.error).toContain("build failed");
    expect(r.json.reload.output).toContain("compile error: x.go:3");
    expect(gen((await get(h)).body)).toBe(1);
    const { rmSync } = await import("node:fs");
    rmSync(join(h.dir, "buildfail"));
    const ok = await h.reload();
    expect(ok.code).toBe(0);
    expect(await h.stop()).toBe(0);
  });

  test("crash loop: 5 crashes of a worker within a minute are reported loudly, backoff doubles, the other worker keeps serving", async () => {
    const crashy = `#!/bin/sh
if [ "$HR_WORKER" = 1 ]; then (sleep 0.3; kill -9 $$) & fi
exec bun ${BUN_NET}
`;
    const h = await startServe({ toml: config("", "workers = 2"), files: { "app.sh": crashy } });
    const w2 = (await h.status()).generations[0]!.workers[1]!.pid;
    await h.waitForLog(/CRASH LOOP: gen1\/w1 crashed 5 times in the last 60s/, 15_000);
    expect(h.logs()).toMatch(/replacing it in 100 ms[\s\S]*replacing it in 200 ms[\s\S]*replacing it in 400 ms[\s\S]*replacing it in 800 ms/);
    const st = await h.status();
    expect(st.generations[0]!.workers[1]!.pid).toBe(w2);
    expect(st.generations[0]!.workers[0]!.restarts).toBeGreaterThanOrEqual(4);
    expect(st.generations[0]!.workers[0]!.recentCrashes).toBeGreaterThanOrEqual(5);
    expect((await h.hr(["status"])).stdout).toMatch(/w1 .*CRASH LOOP \(\d+ crashes in the last minute\)/);
    for (let i = 0; i < 10; i++) expect((await get(h)).status).toBe(200);
    expect(await h.stop()).toBe(0);
  }, 30_000);

  test("log.format = json: one object per line for events and worker output; SIGUSR1 prints the status", async () => {
    const h = await startServe({ toml: config("[log]\nformat = \"json\"\n".replace(/^/, "")).replace("[[listen]]", "[[listen]]"), files: { "app.sh": APP_SH }, waitReady: false });
    await h.waitForLog(/"serving gen1/);
    process.kill(h.pid, "SIGUSR1");
    await h.waitForLog(/"event":"status"/);
    expect((await h.reload()).code).toBe(0);
    expect(await h.stop()).toBe(0);
    const objs = h.logs().trim().split("\n").map((l) => JSON.parse(l));
    const gens = objs.filter((o) => o.event === "generation").map((o) => `${o.generation}:${o.state}`);
    for (const g of [1, 2]) expect(gens.filter((x) => x.startsWith(`${g}:`))).toEqual(["starting", "ready", "draining", "exited"].map((st) => `${g}:${st}`));
    expect(objs.find((o) => o.event === "generation" && o.state === "ready")!.durationMs).toBeGreaterThan(0);
    expect(objs.find((o) => o.event === "reload" && o.state === "ok")).toMatchObject({ generation: 2 });
    expect(objs.find((o) => o.scope === "gen1/w1" && o.stream === "stdout")!.msg).toMatch(/listening on fd 3/);
    expect(objs.find((o) => o.event === "status")!.status.generation).toBe(1);
  });

  test("a second SIGTERM kills at once (exit 130) instead of waiting for the drain", async () => {
    const h = await startServe({ toml: config("", "drain_timeout = \"20s\"").replace('drain_timeout = "5s"\n', ""), files: { "app.sh": APP_SH } });
    const slow = get(h, "/slow?ms=15000").catch((e) => e);
    await Bun.sleep(200);
    process.kill(h.pid, "SIGTERM");
    await h.waitForLog(/draining every generation/);
    const t0 = Date.now();
    process.kill(h.pid, "SIGTERM");
    expect(await h.stop("SIGCONT", 10_000)).toBe(130);
    expect(Date.now() - t0).toBeLessThan(3000);
    await slow;
    expect(h.logs()).toContain("killing every worker now");
  });

  test.skipIf(!Bun.which("systemd-socket-activate"))("adopts a socket passed by systemd (LISTEN_FDS, matched by name; skipped without systemd-socket-activate)", async () => {
    const port = await new Promise<number>((r) => {
      const s = net.createServer().listen(0, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => r(p));
      });
    });
    const h = await startServe({
      toml: config().replace("127.0.0.1:0", "127.0.0.1:1"), // the [[listen]] address is ignored when systemd passes "http"
      files: { "app.sh": APP_SH },
      // It passes only a few variables on: -E the ones hr and the cleanup need.
      wrap: ["systemd-socket-activate", "-l", `127.0.0.1:${port}`, "--fdname=http", ...["PATH", "XDG_RUNTIME_DIR", "HR_TEST_TAG", "NO_COLOR"].map((v) => `-E${v}`)],
      waitReady: false,
    });
    // systemd-socket-activate execs hr on the first connection; that request waits in the queue for gen1.
    h.port = port;
    await Bun.sleep(200);
    expect(gen((await get(h)).body)).toBe(1);
    expect(h.logs()).toContain(`adopted http=127.0.0.1:${port}`);
    expect((await h.reload()).code).toBe(0);
    expect(gen((await get(h)).body)).toBeGreaterThanOrEqual(1);
    expect(await h.stop()).toBe(0);
  });

  test("SIGTERM while the first generation is starting stops it gracefully and exits 0", async () => {
    const h = await startServe({ toml: config("", 'ready = { type = "delay", delay = "5s" }'), files: { "app.sh": APP_SH }, waitReady: false });
    await h.waitForLog(/gen1\/w1 \| bun-net v1 gen=1 pid=\d+ listening/);
    const t0 = Date.now();
    expect(await h.stop("SIGTERM")).toBe(0);
    expect(Date.now() - t0).toBeLessThan(4000);
    expect(h.logs()).toContain("gen1 failed");
    expect(h.logs()).toMatch(/gen1\/w1 \| bun-net pid=\d+: SIGTERM, draining/);
    expect(taggedPids(h.tag)).toEqual([]);
  });

  test("a worker that ignores the stop signal is SIGKILLed after drain_timeout, with a warning", async () => {
    const stubborn = `#!/bin/sh\ntrap '' TERM\necho "gen=$HR_GENERATION up"\nwhile :; do sleep 0.1; done\n`;
    const h = await startServe({ toml: config("", 'ready = { type = "delay", delay = "100ms" }').replace('drain_timeout = "5s"', 'drain_timeout = "500ms"'), files: { "app.sh": stubborn } });
    const old = (await h.status()).generations[0]!.workers[0]!.pid!;
    expect((await h.reload()).code).toBe(0);
    await h.waitForLog(/gen1\/w1 \(pid \d+\) did not exit within 500 ms of SIGTERM: SIGKILLed/, 5000);
    expect(alive(old)).toBe(false);
    const code = await h.stop("SIGTERM");
    expect(code).toBe(0);
  });

  test("reload re-reads hr.toml: [run].env applies to the new generation; an invalid file fails the reload, the old one keeps serving", async () => {
    const tagged = `#!/bin/sh\necho "release=$RELEASE"\nexec bun ${BUN_NET}\n`;
    const h = await startServe({ toml: config('env = { RELEASE = "a" }'), files: { "app.sh": tagged } });
    await h.waitForLog(/gen1\/w1 \| release=a/);
    writeFileSync(join(h.dir, "hr.toml"), config('env = { RELEASE = "b" }'));
    expect((await h.reload()).code).toBe(0);
    await h.waitForLog(/gen2\/w1 \| release=b/);
    expect(h.logs()).toContain("config reloaded: [run] changed");
    await h.waitForLog(/gen1 exited/, 10_000);
    writeFileSync(join(h.dir, "hr.toml"), config('env = { RELEASE = "c" }').replace('drain_timeout = "5s"', "drain_timeout = 5"));
    const bad = await h.reload();
    expect(bad.code).toBe(1);
    expect(bad.json.error).toContain("serve.drain_timeout");
    expect(gen((await get(h)).body)).toBe(2);
    // A [[listen]] change is not applied (the sockets are kept) and says so.
    writeFileSync(join(h.dir, "hr.toml"), config('env = { RELEASE = "d" }').replace("127.0.0.1:0", "127.0.0.1:1"));
    const ok = await h.reload();
    expect(ok.code).toBe(0);
    expect(ok.json.reload.generation).toBe(3); // the failed reload started no generation
    expect(h.logs()).toContain("[[listen]] / serve.strategy changes need a restart");
    await waitForHttp(`http://127.0.0.1:${h.port}/`, { match: /gen=3 /, timeoutMs: 5000 });
    expect(await h.stop()).toBe(0);
  });

  test("hr reload / status without a running master: clear error, exit 1", async () => {
    const h = await startServe({ toml: config(), files: { "app.sh": APP_SH } });
    expect(await h.stop()).toBe(0);
    const r = await h.hr(["status"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no hr serve is running");
  });
});

function alive(pid: number): boolean {
  try {
    const s = require("node:fs").readFileSync(`/proc/${pid}/stat`, "latin1") as string;
    const st = s.slice(s.lastIndexOf(")") + 2, s.lastIndexOf(")") + 3);
    return st !== "Z" && st !== "X";
  } catch {
    return false;
  }
}
