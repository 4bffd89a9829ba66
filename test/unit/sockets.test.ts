import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { libc } from "../../src/platform/libc.ts";
import { cmdline, descendants, listeningSocketsOf, processAlive } from "../../src/platform/proc.ts";
import { formatListenAddress, ListenAddressError, parseListenAddress } from "../../src/sockets/address.ts";
import { bindListener, describeListener, ListenError, listenerFromFd, type Listener } from "../../src/sockets/listen.ts";
import { adoptSystemdListeners, listenEnv, withListenPid } from "../../src/sockets/systemd.ts";

const FIX = resolve(import.meta.dir, "../fixtures/sockets");
const BUN = process.execPath;

/* ------------------------------------------------------------ cleanup */

const procs: Subprocess[] = [];
const extraPids: number[] = [];
const listeners: Listener[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const l of listeners.splice(0)) l.close();
  for (const pid of extraPids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  for (const p of procs.splice(0)) {
    for (const d of descendants(p.pid)) {
      try {
        process.kill(d, "SIGKILL");
      } catch {}
    }
    p.kill("SIGKILL");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "hr-sock-"));
  dirs.push(d);
  return d;
}

function bind(spec: Parameters<typeof bindListener>[0]): Listener {
  const l = bindListener(spec);
  listeners.push(l);
  return l;
}

function spawn(cmd: string[], opts: Parameters<typeof Bun.spawn>[1] = {}): Subprocess<"ignore", "pipe", "inherit"> {
  const p = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "inherit", ...opts }) as Subprocess<"ignore", "pipe", "inherit">;
  procs.push(p);
  return p;
}

/** Read stdout until a line matching `re` appears (or timeout / EOF). */
async function waitLine(p: Subprocess<"ignore", "pipe", "inherit">, re: RegExp, ms = 5000): Promise<RegExpMatchArray> {
  const reader = p.stdout.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + ms;
  try {
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for ${re}; got ${JSON.stringify(buf)}`);
      const r = await Promise.race([reader.read(), Bun.sleep(left).then(() => "timeout" as const)]);
      if (r === "timeout") continue;
      if (r.done) throw new Error(`EOF waiting for ${re}; got ${JSON.stringify(buf)}`);
      buf += dec.decode(r.value, { stream: true });
      const m = buf.match(re);
      if (m) return m;
    }
  } finally {
    reader.releaseLock();
  }
}

function tcpConnect(port: number, host = "127.0.0.1"): Promise<void> {
  return new Promise((res, rej) => {
    const s = net.connect({ port, host }, () => {
      s.destroy();
      res();
    });
    s.on("error", rej);
  });
}

async function httpGet(port: number): Promise<string> {
  const r = await fetch(`http://127.0.0.1:${port}/`, { headers: { connection: "close" } });
  return r.text();
}

async function until<T>(fn: () => T | undefined | false, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > end) throw new Error("condition not met in time");
    await Bun.sleep(10);
  }
}

/* ------------------------------------------------------------ address */

describe("parseListenAddress", () => {
  test("accepted forms", () => {
    expect(parseListenAddress("127.0.0.1:8080")).toMatchObject({ kind: "tcp", family: 4, host: "127.0.0.1", port: 8080 });
    expect(parseListenAddress(":8080")).toMatchObject({ kind: "tcp", family: 4, host: "0.0.0.0", port: 8080 });
    expect(parseListenAddress("*:0")).toMatchObject({ family: 4, host: "0.0.0.0", port: 0 });
    expect(parseListenAddress("localhost:3000")).toMatchObject({ family: 4, host: "127.0.0.1", port: 3000 });
    expect(parseListenAddress("[::1]:8080")).toMatchObject({ kind: "tcp", family: 6, host: "::1", port: 8080 });
    expect(parseListenAddress("[::]:80")).toMatchObject({ family: 6, host: "::", port: 80 });
    expect(parseListenAddress("[2001:DB8:0:0:0:0:0:1]:1")).toMatchObject({ host: "2001:db8::1" });
    expect(parseListenAddress("[::ffff:10.0.0.1]:1")).toMatchObject({ host: "::ffff:10.0.0.1" });
    expect(parseListenAddress("unix:./app.sock", { baseDir: "/srv/app" })).toEqual({ kind: "unix", path: "/srv/app/app.sock" });
    expect(parseListenAddress("unix:/run/x.sock")).toEqual({ kind: "unix", path: "/run/x.sock" });
    expect(parseListenAddress("unix:@hr-test")).toEqual({ kind: "unix", path: "@hr-test" });
  });

  test("format round-trips", () => {
    for (const s of ["127.0.0.1:8080", "0.0.0.0:0", "[::1]:8080", "[::]:9", "unix:/a/b.sock"]) {
      expect(formatListenAddress(parseListenAddress(s))).toBe(s);
    }
    expect(formatListenAddress(parseListenAddress("127.0.0.1:0"), 4321)).toBe("127.0.0.1:4321");
  });

  test("errors name the field and say what is expected", () => {
    expect(() => parseListenAddress("foo", { field: "listen[0].address" })).toThrow(
      'listen[0].address: "foo" is not an address; expected "host:port", "[v6]:port" or "unix:/path"',
    );
    const bad = ["8080", "1.2.3.4:99999", "1.2.3.256:80", "::1:80", "[::1]", "[::1]:x", "example.com:80", "unix:", ":", "[fe80::1%eth0]:1"];
    for (const s of bad) {
      expect(() => parseListenAddress(s)).toThrow(ListenAddressError);
    }
    expect(() => parseListenAddress("8080")).toThrow('did you mean ":8080"');
    expect(() => parseListenAddress("::1:80")).toThrow('"[::1]:80"');
  });
});

/* ------------------------------------------------------------ listen */

function hasIPv6Loopback(): boolean {
  try {
    bindListener({ name: "probe", address: parseListenAddress("[::1]:0") }).close();
    return true;
  } catch {
    return false;
  }
}

describe("bindListener", () => {
  test("v4 port 0: reports the real port; connections complete without accept", async () => {
    const l = bind({ name: "http", address: parseListenAddress("127.0.0.1:0") });
    expect(l.port).toBeGreaterThan(0);
    expect(describeListener(l.fd)).toBe(`127.0.0.1:${l.port}`);
    await tcpConnect(l.port!); // completes from the kernel backlog; master never accepts
    const self = listeningSocketsOf(process.pid).map((s) => s.address);
    expect(self).toContain(`127.0.0.1:${l.port}`);
    const wrapped = listenerFromFd(l.fd, "again");
    expect(wrapped.address).toMatchObject({ kind: "tcp", family: 4, host: "127.0.0.1", port: l.port });
  });

  test(":0 binds 0.0.0.0", () => {
    const l = bind({ name: "any", address: parseListenAddress(":0") });
    expect(describeListener(l.fd)).toBe(`0.0.0.0:${l.port}`);
  });

  test.skipIf(!hasIPv6Loopback())("[::1] port 0", async () => {
    const l = bind({ name: "v6", address: parseListenAddress("[::1]:0") });
    expect(describeListener(l.fd)).toBe(`[::1]:${l.port}`);
    await tcpConnect(l.port!, "::1");
    expect(listeningSocketsOf(process.pid).map((s) => s.address)).toContain(`[::1]:${l.port}`);
  });

  test("unix socket: mode 0600, stale file replaced, live socket refused, file removed on close", async () => {
    const dir = tmp();
    const address = parseListenAddress("unix:./run/app.sock", { baseDir: dir });
    const path = join(dir, "run/app.sock");
    const l = bind({ name: "app", address, mode: 0o600 });
    const st = statSync(path);
    expect(st.isSocket()).toBe(true);
    expect(st.mode & 0o777).toBe(0o600);
    expect(describeListener(l.fd)).toBe(`unix:${path}`);
    await new Promise<void>((res, rej) => net.connect(path, res).on("error", rej));

    // live: refuse, naming ourselves
    expect(() => bindListener({ name: "app2", address })).toThrow(/already in use by this hr process/);
    expect(statSync(path).ino).toBe(st.ino);

    // crash simulation: fd closed, file left behind -> stale, gets replaced
    libc.close(l.fd);
    listeners.splice(listeners.indexOf(l), 1); // its close() would hit a reused fd number
    const l2 = bind({ name: "app", address, mode: 0o660 });
    expect(statSync(path).mode & 0o777).toBe(0o660);
    l2.close();
    expect(() => statSync(path)).toThrow();
  });

  test("unix: a regular file in the way is an error", () => {
    const dir = tmp();
    writeFileSync(join(dir, "x.sock"), "not a socket");
    expect(() => bindListener({ name: "x", address: parseListenAddress(`unix:${dir}/x.sock`) })).toThrow(/exists and is not a socket/);
  });

  test("port in use: the error names the holder pid and command", async () => {
    const holder = spawn([BUN, join(FIX, "serve.cjs")]);
    const port = Number((await waitLine(holder, /listening (\d+)/))[1]);
    let err: unknown;
    try {
      bind({ name: "http", address: parseListenAddress(`127.0.0.1:${port}`) });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ListenError);
    const le = err as ListenError;
    expect(le.code).toBe("EADDRINUSE");
    expect(le.holderPid).toBe(holder.pid);
    expect(le.message).toMatch(
      new RegExp(`^listen "http": 127\\.0\\.0\\.1:${port} is already in use by pid ${holder.pid} \\(bun(\\.exe)? \\S*serve\\.cjs\\); stop it or choose another address$`),
    );
    // wildcard bind on the same port conflicts with the 127.0.0.1 holder too
    expect(() => bind({ name: "any", address: parseListenAddress(`:${port}`) })).toThrow(`by pid ${holder.pid}`);
  });

  test("child adopts fd 3, serves HTTP, and keeps serving after the parent closes its copy", async () => {
    const l = bind({ name: "http", address: parseListenAddress("127.0.0.1:0") });
    const child = spawn([BUN, join(FIX, "serve.cjs"), "fd"], { stdio: ["ignore", "pipe", "inherit", l.fd] });
    expect(Number((await waitLine(child, /listening (\d+)/))[1])).toBe(l.port!);
    expect(await httpGet(l.port!)).toBe(String(child.pid));

    // the worker's listening sockets include the inherited one (same inode as ours)
    const mine = listeningSocketsOf(process.pid).find((s) => s.address === `127.0.0.1:${l.port}`);
    const theirs = listeningSocketsOf(child.pid).find((s) => s.address === `127.0.0.1:${l.port}`);
    expect(theirs?.inode).toBe(mine!.inode);

    l.close();
    expect(listeningSocketsOf(process.pid).some((s) => s.address === `127.0.0.1:${l.port}`)).toBe(false);
    for (let i = 0; i < 3; i++) expect(await httpGet(l.port!)).toBe(String(child.pid));
  });

  test("handoff: a second child on the same fd serves while the first exits", async () => {
    const l = bind({ name: "http", address: parseListenAddress("127.0.0.1:0") });
    const a = spawn([BUN, join(FIX, "serve.cjs"), "fd"], { stdio: ["ignore", "pipe", "inherit", l.fd] });
    await waitLine(a, /listening/);
    const b = spawn([BUN, join(FIX, "serve.cjs"), "fd"], { stdio: ["ignore", "pipe", "inherit", l.fd] });
    await waitLine(b, /listening/);
    a.kill("SIGTERM");
    await a.exited;
    expect(await httpGet(l.port!)).toBe(String(b.pid));
  });
});

/* ------------------------------------------------------------ systemd */

describe("systemd LISTEN_FDS", () => {
  test("listenEnv and withListenPid", () => {
    expect(listenEnv(["http", "admin"])).toEqual({ LISTEN_FDS: "2", LISTEN_FDNAMES: "http:admin" });
    expect(() => listenEnv(["a:b"])).toThrow();
    expect(withListenPid(["node", "server.js"])).toEqual([
      "sh",
      "-c",
      'LISTEN_PID=$$; export LISTEN_PID; exec "$@"',
      "hr-shim",
      "node",
      "server.js",
    ]);
  });

  test("no LISTEN_FDS or another process's LISTEN_PID: nothing adopted, env untouched", () => {
    expect(adoptSystemdListeners({}, 10)).toEqual([]);
    const env = { LISTEN_FDS: "1", LISTEN_PID: "11", LISTEN_FDNAMES: "http" };
    expect(adoptSystemdListeners(env, 10)).toEqual([]);
    expect(env.LISTEN_FDS).toBe("1");
    expect(() => adoptSystemdListeners({ LISTEN_FDS: "x", LISTEN_PID: "10" }, 10)).toThrow(/LISTEN_FDS/);
  });

  test("export to a child through the shim; child adopts, unsets env, sees the socket", async () => {
    const l = bind({ name: "http", address: parseListenAddress("127.0.0.1:0") });
    const child = spawn(withListenPid([BUN, join(FIX, "adopt.ts")]), {
      stdio: ["ignore", "pipe", "inherit", l.fd],
      env: { ...process.env, ...listenEnv(["http"]) },
    });
    const line = (await waitLine(child, /\{.*\}\n/))[0];
    const r = JSON.parse(line);
    expect(r.pid).toBe(child.pid); // the shim exec'd in place: $$ == final pid
    expect(r.listenPid).toBe(String(child.pid));
    expect(r.fds).toEqual([{ fd: 3, name: "http" }]);
    expect(r.described).toEqual([`127.0.0.1:${l.port}`]);
    expect(r.cloexec).toEqual([true]);
    expect(r.envAfter).toEqual({});
    await child.exited;
  });
});

/* ------------------------------------------------------------ proc */

describe("proc", () => {
  test("descendants finds a grandchild; processAlive and cmdline", async () => {
    const sh = spawn(["sh", "-c", "sleep 30 & echo $!; wait"]);
    const grand = Number((await waitLine(sh, /(\d+)\n/))[1]);
    extraPids.push(grand);
    expect(descendants(sh.pid)).toContain(grand);
    const mine = descendants(process.pid);
    expect(mine).toContain(sh.pid);
    expect(mine).toContain(grand);
    expect(processAlive(grand)).toBe(true);
    expect(cmdline(grand)).toBe("sleep 30");
    process.kill(grand, "SIGKILL");
    await until(() => !processAlive(grand)); // zombie until sh reaps it: counted as dead
    expect(processAlive(999_999_999)).toBe(false);
  });
});
