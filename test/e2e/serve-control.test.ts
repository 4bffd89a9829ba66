/**
 * The control socket under abuse and the runtime files under a hostile runtime
 * directory (issue 13): idle clients are closed and bounded in number, so they
 * neither exhaust hr's fds nor lock `hr status` out; a symlink planted where the
 * pid file goes is replaced, never written through.
 */
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { lstatSync, mkdirSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";
import { runtimePaths } from "../../src/control/runtime.ts";
import { IDLE_TIMEOUT_S, MAX_CONNECTIONS } from "../../src/control/server.ts";

setDefaultTimeout(40_000);
beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

const APP = `import os, socket, time
s = socket.socket(fileno=3)
while True: time.sleep(60)
`;
const TOML = `[run]
cmd = ["python3", "app.py"]
[[listen]]
name = "http"
address = "127.0.0.1:0"
[serve]
drain_timeout = "2s"
ready = { type = "delay", delay = "100ms" }
`;

const fdCount = (pid: number) => readdirSync(`/proc/${pid}/fd`).length;

/** Opens N silent connections, then prints one JSON line per second: {t, closed}; exits when all are closed (or after 15 s). */
const CLIENTS = `import json, select, socket, sys, time
path, n = sys.argv[1], int(sys.argv[2])
cs = []
for _ in range(n):
    c = socket.socket(socket.AF_UNIX); c.connect(path); cs.append(c)
t0 = time.time(); closed = set(); last = -1
while time.time() - t0 < 15 and len(closed) < n:
    r, _, _ = select.select([c for c in cs if c not in closed], [], [], 0.1)
    for c in r:
        if not c.recv(256): closed.add(c)
    if int(time.time() - t0) != last:
        last = int(time.time() - t0); print(json.dumps({"t": round(time.time() - t0, 2), "closed": len(closed)}), flush=True)
print(json.dumps({"t": round(time.time() - t0, 2), "closed": len(closed), "done": True}), flush=True)
`;

test("idle control connections are closed after the idle timeout and bounded in number; hr status still gets in", async () => {
  const h = await startServe({ toml: TOML, files: { "app.py": APP, "clients.py": CLIENTS } });
  const sock = runtimePaths(join(h.dir, "hr.toml"), h.env).socket;
  const before = fdCount(h.pid);
  const n = 3 * MAX_CONNECTIONS;
  const p = Bun.spawn(["python3", join(h.dir, "clients.py"), sock, String(n)], { stdout: "pipe", stderr: "inherit", env: h.env as Record<string, string> });
  try {
    const reports: { t: number; closed: number; done?: boolean }[] = [];
    const reading = (async () => {
      let buf = "";
      for await (const chunk of p.stdout as ReadableStream<Uint8Array>) {
        buf += new TextDecoder().decode(chunk);
        for (let i; (i = buf.indexOf("\n")) >= 0; buf = buf.slice(i + 1)) reports.push(JSON.parse(buf.slice(0, i)));
      }
    })();
    // Silent clients beyond the bound are evicted (oldest first) at once; hr holds at most MAX_CONNECTIONS.
    const until = Date.now() + 10_000;
    while (!reports.some((r) => r.closed >= 2 * MAX_CONNECTIONS) && Date.now() < until) await Bun.sleep(50);
    expect(reports.at(-1)!.closed).toBeGreaterThanOrEqual(2 * MAX_CONNECTIONS);
    expect(fdCount(h.pid) - before).toBeLessThanOrEqual(MAX_CONNECTIONS + 2);
    const st = await h.status(); // gets in by evicting one more silent client
    expect(st.generation).toBe(1);
    await reading;
    const last = reports.at(-1)!;
    if (!last.done || last.closed !== n) console.log("clients' reports:", JSON.stringify(reports));
    expect(last).toMatchObject({ closed: n, done: true });
    // The last ones go after IDLE_TIMEOUT_S of silence (swept once a second), not at once and not never.
    expect(last.t).toBeGreaterThanOrEqual(IDLE_TIMEOUT_S - 1);
    expect(last.t).toBeLessThan(IDLE_TIMEOUT_S + 5);
    const settled = Date.now() + 3000; // hr may still be closing the last ones
    while (fdCount(h.pid) > before + 1 && Date.now() < settled) await Bun.sleep(50);
    expect(fdCount(h.pid)).toBeLessThanOrEqual(before + 1);
  } finally {
    p.kill("SIGKILL");
  }
  expect(await h.stop()).toBe(0);
});

test("a symlink planted where the pid file goes is replaced, not followed", async () => {
  let victim = "";
  let pidFile = "";
  const h = await startServe({
    toml: TOML,
    files: { "app.py": APP },
    before(dir, env) {
      const rt = runtimePaths(join(dir, "hr.toml"), env);
      mkdirSync(rt.dir, { recursive: true, mode: 0o777 });
      victim = join(dir, "victim.txt");
      writeFileSync(victim, "precious\n");
      pidFile = rt.pidFile;
      symlinkSync(victim, pidFile);
    },
  });
  expect(readFileSync(victim, "utf8")).toBe("precious\n");
  expect(lstatSync(pidFile).isSymbolicLink()).toBe(false);
  expect(lstatSync(pidFile).mode & 0o777).toBe(0o600);
  expect(readFileSync(pidFile, "utf8")).toBe(`${h.pid}\n`);
  expect(await h.stop()).toBe(0);
  expect(readFileSync(victim, "utf8")).toBe("precious\n");
});
