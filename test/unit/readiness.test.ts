/** Readiness probes, each against a real tiny process (bun, node, sh), plus timeout / exit-before-ready failures. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ReadyConfig } from "../../src/config/schema.ts";
import { spawnChild, lines, type Child } from "../../src/process/child.ts";
import { waitReady, type ReadyResult } from "../../src/readiness/index.ts";
import { isReadyMessage } from "../../src/readiness/ipc.ts";
import { openNotifySocket } from "../../src/sockets/notify.ts";
import { freePort } from "../../src/sockets/free-port.ts";

const BUN = process.execPath;
const ROOT = join(import.meta.dir, "..", "..");
const children: Child[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const cfg = (over: Partial<ReadyConfig>): ReadyConfig => ({ type: "notify", timeout: 5000, path: "/health", delay: 1000, ...over });

function spawn(argv: string[], env: Record<string, string | undefined> = {}, extra: Partial<Parameters<typeof spawnChild>[0]> = {}): Child {
  const c = spawnChild({ argv, cwd: ROOT, env: { ...process.env, ...env }, stdout: "pipe", stderr: "pipe", ...extra });
  children.push(c);
  return c;
}

/** Output lines of a child, fanned out to subscribers. */
function lineFeed(c: Child) {
  const subs = new Set<(l: string) => void>();
  for (const s of [c.stdout, c.stderr]) if (s) void lines(s, (l) => subs.forEach((cb) => cb(l)));
  return (cb: (l: string) => void) => {
    subs.add(cb);
    return () => subs.delete(cb);
  };
}

function expectOk(r: ReadyResult) {
  if (!r.ok) throw new Error(`expected ready, got ${r.kind}: ${r.reason}`);
}

describe("readiness probes", () => {
  test("notify: READY=1 on the worker's own NOTIFY_SOCKET (bun sender)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hr-ready-"));
    dirs.push(dir);
    const sock = openNotifySocket(join(dir, "n.sock"));
    try {
      const c = spawn([BUN, "-e", `await Bun.sleep(150); const { sdNotify } = await import(${JSON.stringify(join(ROOT, "src/sockets/systemd.ts"))}); sdNotify("STATUS=warming"); sdNotify("READY=1"); await Bun.sleep(5000)`], { NOTIFY_SOCKET: sock.path });
      const r = await waitReady({ config: cfg({ type: "notify" }), exited: c.exited, notify: sock });
      expectOk(r);
      expect(r.ms).toBeGreaterThanOrEqual(100);
    } finally {
      sock.close();
    }
  });

  test("notify: python sender (socket module, 4 lines)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hr-ready-"));
    dirs.push(dir);
    const sock = openNotifySocket(join(dir, "n.sock"));
    try {
      const py = `import os, socket, time\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])\ntime.sleep(5)`;
      const c = spawn(["python3", "-c", py], { NOTIFY_SOCKET: sock.path });
      expectOk(await waitReady({ config: cfg({ type: "notify" }), exited: c.exited, notify: sock }));
    } finally {
      sock.close();
    }
  });

  test("ipc: process.send('ready') from a Bun child and from a Node child", async () => {
    for (const argv of [[BUN, "-e", `setTimeout(() => process.send("ready"), 100); setTimeout(() => {}, 5000)`], ["node", "-e", `setTimeout(() => process.send("ready"), 100); setTimeout(() => {}, 5000)`]]) {
      const subs = new Set<(m: unknown) => void>();
      const c = spawn(argv, {}, { ipc: (m) => subs.forEach((cb) => cb(m)) });
      const r = await waitReady({
        config: cfg({ type: "ipc" }),
        exited: c.exited,
        onIpc: (cb) => {
          subs.add(cb);
          return () => subs.delete(cb);
        },
      });
      expectOk(r);
    }
    expect(isReadyMessage("ready")).toBe(true);
    expect(isReadyMessage({ type: "ready" })).toBe(true);
    expect(isReadyMessage("online")).toBe(false);
  });

  test("http: GET ready.path on the health port answers 2xx (503 first does not count)", async () => {
    const port = await freePort();
    const c = spawn([BUN, "-e", `let n = 0; Bun.serve({ port: ${port}, hostname: "127.0.0.1", fetch: (req) => new URL(req.url).pathname === "/health" ? new Response("x", { status: ++n < 3 ? 503 : 200 }) : new Response("no", { status: 404 }) }); setTimeout(() => {}, 5000)`]);
    const r = await waitReady({ config: cfg({ type: "http" }), exited: c.exited, port, host: "127.0.0.1" });
    expectOk(r);
    expect(r.ms).toBeGreaterThanOrEqual(80); // two 503s, 50 ms apart
  });

  test("tcp: connect to the health port", async () => {
    const port = await freePort();
    const c = spawn([BUN, "-e", `await Bun.sleep(200); Bun.listen({ hostname: "127.0.0.1", port: ${port}, socket: { data() {} } }); setTimeout(() => {}, 5000)`]);
    const r = await waitReady({ config: cfg({ type: "tcp" }), exited: c.exited, port, host: "127.0.0.1" });
    expectOk(r);
    expect(r.ms).toBeGreaterThanOrEqual(150);
  });

  test("log: a line matching ready.pattern (stderr counts too)", async () => {
    const c = spawn(["sh", "-c", "echo starting; sleep 0.2; echo 'server listening on :8080' >&2; sleep 5"]);
    const r = await waitReady({ config: cfg({ type: "log", pattern: "listening on :\\d+" }), exited: c.exited, onLine: lineFeed(c) });
    expectOk(r);
    expect(r.ms).toBeGreaterThanOrEqual(150);
  });

  test("delay: ready after ready.delay if still running", async () => {
    const c = spawn(["sleep", "5"]);
    const r = await waitReady({ config: cfg({ type: "delay", delay: 200 }), exited: c.exited });
    expectOk(r);
    expect(r.ms).toBeGreaterThanOrEqual(190);
  });

  test("failure: exit before ready is never success (delay, log, ipc)", async () => {
    for (const type of ["delay", "log", "ipc"] as const) {
      const c = spawn(["sh", "-c", "echo dying; exit 4"]);
      const r = await waitReady({ config: cfg({ type, delay: 1000, pattern: "never" }), exited: c.exited, onLine: lineFeed(c), onIpc: () => () => {} });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.kind).toBe("exited");
        expect(r.reason).toBe("exited with code 4 before it was ready");
      }
    }
  });

  test("failure: not ready within ready.timeout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hr-ready-"));
    dirs.push(dir);
    const sock = openNotifySocket(join(dir, "n.sock"));
    try {
      const c = spawn(["sleep", "5"], { NOTIFY_SOCKET: sock.path });
      const r = await waitReady({ config: cfg({ type: "notify", timeout: 300 }), exited: c.exited, notify: sock });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.kind).toBe("timeout");
        expect(r.reason).toStartWith('not ready after 300 ms (ready.type = "notify"): the app never sent READY=1');
        // A stock app (no sd_notify code) is told what runs it instead.
        expect(r.reason).toContain("run.capture = true");
        expect(r.reason).toContain('serve.ready.type = "tcp"');
        expect(r.ms).toBeGreaterThanOrEqual(290);
      }
      // The http probe gives up too (nothing listens).
      const port = await freePort();
      const h = await waitReady({ config: cfg({ type: "http", timeout: 300 }), exited: c.exited, port });
      expect(h.ok).toBe(false);
    } finally {
      sock.close();
    }
  });

  test("cancel: an aborted wait reports kind 'aborted'", async () => {
    const c = spawn(["sleep", "5"]);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const r = await waitReady({ config: cfg({ type: "delay", delay: 3000 }), exited: c.exited, signal: ac.signal });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.kind).toBe("aborted");
  });
});
