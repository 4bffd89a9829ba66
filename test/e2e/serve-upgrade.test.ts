/**
 * Master self-upgrade (`hr upgrade`, SIGUSR2): the old master re-execs the hr
 * binary at its own path with the listening sockets at fd 3.., the new master
 * takes over once its first generation is ready, the old one drains and exits 0.
 *
 * The binary under test is a copy of dist/hr in a temp dir, so the test can put
 * a "new version" (another copy, renamed over it) or a broken one at that path.
 * Load: scripts/harness/load.ts, 50 connections, non-retrying; every failure counts.
 * Every process is cleaned up (HR_TEST_TAG scan), even on failure.
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdtempSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { processAlive, socketInodesOf } from "../../src/platform/proc.ts";
import { listeningInode } from "../helpers/procs.ts";
import { ensureBinary } from "../helpers/hr.ts";
import { fakeManager as createFakeManager } from "../helpers/systemd.ts";
import { get, waitForHttp } from "../helpers/http.ts";
import { startLoad, type LoadHandle, type LoadResult } from "../../scripts/harness/load.ts";
import { cleanupServes, EXAMPLES, startServe, type ServeHandle } from "../helpers/serve.ts";

setDefaultTimeout(90_000);
beforeAll(() => void ensureBinary());

const cleanups: (() => void | Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
  const left = await cleanupServes();
  expect(left).toEqual([]);
});

const BUN_NET = join(EXAMPLES, "bun-net", "server.ts");
const APP_SH = `#!/bin/sh\nexec bun ${BUN_NET}\n`;

function config(serve = "") {
  return `[run]
cmd = ["./app.sh"]

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
workers = 2
drain_timeout = "5s"
${serve}
`;
}

/** A private copy of dist/hr at <dir>/hr; hr serve runs from there (through a sh that execs it: same pid). */
function privateBinary(): { dir: string; bin: string; replace(withFile: string | null, script?: string): void } {
  const dir = mkdtempSync(join(tmpdir(), "hr-bin-"));
  const bin = join(dir, "hr");
  copyFileSync(ensureBinary(), bin);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return {
    dir,
    bin,
    /** Atomically puts a new file at `bin`: a fresh copy of dist/hr, or a script. */
    replace(withFile, script) {
      const next = join(dir, "hr.next");
      if (withFile) copyFileSync(withFile, next);
      else writeFileSync(next, script ?? "", { mode: 0o755 });
      renameSync(next, bin);
    },
  };
}

function fakeManager() {
  const manager = createFakeManager();
  cleanups.push(() => manager.close());
  return manager;
}



async function waitUntil(what: string, fn: () => boolean, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

/** Runs a load for the whole test; stopped (and awaited) in cleanup even when the test fails. */
function load(h: ServeHandle): LoadHandle {
  const l = startLoad({ url: `http://127.0.0.1:${h.port}/`, concurrency: 50, durationMs: 120_000 });
  cleanups.push(() => l.stop());
  return l;
}

async function moreRequests(l: LoadHandle, n: number): Promise<void> {
  const start = l.progress().ok;
  await waitUntil(`${n} more requests`, () => l.progress().ok >= start + n);
}

/** SIGTERM to a master that isn't our child (the upgraded one) and wait until it is gone. */
async function stopPid(pid: number): Promise<void> {
  process.kill(pid, "SIGTERM");
  await waitUntil(`pid ${pid} to exit`, () => !processAlive(pid), 20_000);
}

function summary(r: LoadResult): string {
  return `${r.ok} ok, ${r.failed} failed${r.failed ? ` ${JSON.stringify(r.errors)}` : ""}`;
}

describe("hr upgrade (master self-upgrade)", () => {
  test("under load: 0 failed requests, same listening socket, new pid; the old master exits 0; hr status answers from the new one; systemd hears MAINPID", async () => {
    const b = privateBinary();
    const mgr = fakeManager();
    const h = await startServe({
      toml: config(),
      files: { "app.sh": APP_SH },
      wrap: ["sh", "-c", `shift; exec ${b.bin} "$@"`, "sh"],
      env: { NOTIFY_SOCKET: mgr.path },
    });
    const oldPid = h.pid;
    const inode = listeningInode(h.port);
    expect(inode).toBeGreaterThan(0);
    expect(socketInodesOf(oldPid).has(inode!)).toBe(true);
    const oldExe = statSync(`/proc/${oldPid}/exe`).ino;

    const l = load(h);
    await moreRequests(l, 300);
    // "Deploy" a new version: a different file renamed over the path hr runs from.
    b.replace(ensureBinary());
    const newExe = statSync(b.bin).ino;
    expect(newExe).not.toBe(oldExe);

    const r = await h.hr(["upgrade", "--wait", "--json"]);
    expect(r.code).toBe(0);
    const ans = JSON.parse(r.stdout);
    expect(ans.ok).toBe(true);
    expect(ans.upgrade).toMatchObject({ result: "ok", oldPid, binary: b.bin });
    const newPid: number = ans.upgrade.newPid;
    expect(newPid).toBeGreaterThan(0);
    expect(newPid).not.toBe(oldPid);
    cleanups.push(() => (processAlive(newPid) ? stopPid(newPid) : undefined));

    // The old master drains its workers and exits 0 while the load keeps going.
    expect(await h.proc.exited).toBe(0);
    await moreRequests(l, 300);
    await waitForHttp(`http://127.0.0.1:${h.port}/`, { match: /gen=2 /, timeoutMs: 10_000 });
    const res = await l.stop();
    console.log(`upgrade under load (50 conns, 2 workers): ${summary(res)}; upgrade took ${ans.upgrade.durationMs} ms; bodies ${JSON.stringify([...res.bodies])}`);
    expect(res.failed).toBe(0);
    expect(res.ok).toBeGreaterThanOrEqual(600);

    // Same socket (inode), now held by the new master; the new master runs the new file.
    expect(listeningInode(h.port)).toBe(inode!);
    expect(socketInodesOf(newPid).has(inode!)).toBe(true);
    expect(statSync(`/proc/${newPid}/exe`).ino).toBe(newExe);

    // hr status answers from the new master.
    const st = await h.status();
    expect(st.pid).toBe(newPid);
    expect(st.upgradedFrom).toBe(oldPid);
    expect(st.generation).toBe(2); // numbering continues after the old master's gen1
    expect(st.state).toBe("serving");
    expect(h.logs()).toContain(`upgrade: pid ${newPid} is the master now (took over from pid ${oldPid})`);

    // systemd: READY=1 (old), then MAINPID=<new> with READY=1, never STOPPING=1 during the upgrade.
    expect(mgr.msgs.some((m) => m.MAINPID === String(newPid) && m.READY === "1")).toBe(true);
    expect(mgr.msgs.some((m) => m.RELOADING === "1" && /^\d+$/.test(m.MONOTONIC_USEC ?? ""))).toBe(true);
    expect(mgr.msgs.some((m) => m.STOPPING === "1")).toBe(false);

    // A reload on the new master works; then it stops cleanly (and says STOPPING=1).
    const rl = await h.reload();
    expect(rl.code).toBe(0);
    expect(rl.json.reload.generation).toBe(3);
    await stopPid(newPid);
    expect(mgr.msgs.some((m) => m.STOPPING === "1")).toBe(true);
    const rt = join(h.dir, "run", "hr");
    expect((require("node:fs") as typeof import("node:fs")).readdirSync(rt)).toEqual([]);
  });

  test("failed upgrade: a broken binary, then one that hangs → the old master keeps serving (0 failed requests), hr upgrade --wait exits 1; a good binary then upgrades", async () => {
    const b = privateBinary();
    const h = await startServe({
      toml: config('ready = { timeout = "1s" }'),
      files: { "app.sh": APP_SH },
      wrap: ["sh", "-c", `shift; exec ${b.bin} "$@"`, "sh"],
    });
    const oldPid = h.pid;
    const l = load(h);
    await moreRequests(l, 200);

    // 1. The new binary exits at once.
    b.replace(null, `#!/bin/sh\necho "hr vNext: cannot start" >&2\nexit 1\n`);
    const r1 = await h.hr(["upgrade", "--wait"]);
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/upgrade failed: the new master \(pid \d+\) exited with code 1 before it was ready/);
    expect(h.logs()).toContain("hr vNext: cannot start");
    expect(h.logs()).toMatch(new RegExp(`this master \\(pid ${oldPid}\\) keeps serving gen1`));

    // 2. The new binary hangs: after serve.ready.timeout + 10 s it is stopped.
    b.replace(null, `#!/bin/sh\necho "hr vNext: hanging"\nexec sleep 600\n`);
    const r2 = await h.hr(["upgrade", "--wait"]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/the new master \(pid (\d+)\) was not ready within 11s/);
    const hung = Number(r2.stderr.match(/pid (\d+)/)![1]);
    expect(processAlive(hung)).toBe(false);

    // The old master kept serving all along, and still owns the control socket.
    await moreRequests(l, 200);
    const st = await h.status();
    expect(st.pid).toBe(oldPid);
    expect(st.generation).toBe(1);
    expect(st.upgrade).toMatchObject({ result: "failed" });
    expect((await get(`http://127.0.0.1:${h.port}/`)).body).toMatch(/gen=1 /);

    // 3. A good binary: the upgrade goes through.
    b.replace(ensureBinary());
    const r3 = await h.hr(["upgrade", "--wait", "--json"]);
    expect(r3.code).toBe(0);
    const newPid: number = JSON.parse(r3.stdout).upgrade.newPid;
    cleanups.push(() => (processAlive(newPid) ? stopPid(newPid) : undefined));
    expect(await h.proc.exited).toBe(0);
    await moreRequests(l, 200);
    const res = await l.stop();
    console.log(`failed upgrades (exit 1, hang) + 1 good one under load: ${summary(res)}`);
    expect(res.failed).toBe(0);
    expect((await h.status()).pid).toBe(newPid);
    await stopPid(newPid);
  });

  test("SIGTERM during an upgrade: the new master is stopped too, the old one drains and exits 0, nothing is left", async () => {
    const b = privateBinary();
    const mgr = fakeManager();
    const h = await startServe({ toml: config(), files: { "app.sh": APP_SH }, wrap: ["sh", "-c", `shift; exec ${b.bin} "$@"`, "sh"], env: { NOTIFY_SOCKET: mgr.path } });
    b.replace(null, `#!/bin/sh\necho "hr vNext: hanging"\nexec sleep 600\n`);
    const r = await h.hr(["upgrade"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("upgrade started");
    await h.waitForLog(/hr vNext: hanging/);
    expect(await h.stop("SIGTERM")).toBe(0);
    expect(h.logs()).toContain("upgrade failed");
    // STOPPING=1 is the last word: no READY=1 from the failed upgrade after it.
    const stop = mgr.msgs.findIndex((m) => m.STOPPING === "1");
    expect(stop).toBeGreaterThan(0);
    expect(mgr.msgs.slice(stop).some((m) => m.READY === "1")).toBe(false);
    // afterEach: no process of this test is left (the hanging "new master" included).
  });

  test("SIGUSR2 upgrades too; hr upgrade without a master: clear error", async () => {
    const b = privateBinary();
    const h = await startServe({ toml: config(), files: { "app.sh": APP_SH }, wrap: ["sh", "-c", `shift; exec ${b.bin} "$@"`, "sh"] });
    process.kill(h.pid, "SIGUSR2");
    expect(await h.proc.exited).toBe(0);
    const m = h.logs().match(/upgrade ok in \d+ ms: pid (\d+) is the master now/);
    expect(m).not.toBeNull();
    const newPid = Number(m![1]);
    cleanups.push(() => (processAlive(newPid) ? stopPid(newPid) : undefined));
    expect((await h.status()).pid).toBe(newPid);
    await stopPid(newPid);
    const r = await h.hr(["upgrade", "--wait"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no hr serve is running");
  });
});
