/**
 * The Bun.serve preload shim (src/shims/bun-serve-shim.js) against real Bun
 * processes: an unmodified Bun.serve app given a listening socket at fd 3 serves
 * it (HTTP, keep-alive, a large body, WebSocket); server.stop() closes fd 3 at
 * once and lets an in-flight request finish; without LISTEN_FDS (or for another
 * pid) Bun.serve is untouched; under reuseport it gets reusePort: true.
 * Plus the pure helpers of shims/bun-shim.ts and strategy/reuseport.ts.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { get } from "../helpers/http.ts";
import { socketInodesOf } from "../../src/platform/proc.ts";
import { migrateReqWarning, readTcpMigrateReq } from "../../src/strategy/reuseport.ts";
import { bunShimMode, bunShimSource, withPreload } from "../../src/shims/bun-shim.ts";
import { parseListenAddress } from "../../src/sockets/address.ts";
import { bindListener, type Listener } from "../../src/sockets/listen.ts";

const BUN = process.execPath;
const SHIM = join(import.meta.dir, "..", "..", "src", "shims", "bun-serve-shim.js");

/** An unmodified app: Bun.serve on PORT (default 3000), /slow?ms=, /big, WebSocket echo; SIGTERM → await server.stop(), exit 0. */
const APP = `
const server = Bun.serve({
  port: Number(process.env.PORT ?? 3000),
  hostname: "127.0.0.1",
  async fetch(req, server) {
    const url = new URL(req.url);
    if (url.pathname === "/ws" && server.upgrade(req)) return;
    if (url.pathname === "/slow") { await Bun.sleep(Number(url.searchParams.get("ms"))); return new Response("slow done"); }
    if (url.pathname === "/big") return new Response("x".repeat(4 * 1024 * 1024));
    if (req.method === "POST") return new Response(String((await req.arrayBuffer()).byteLength));
    return new Response("hello pid=" + process.pid);
  },
  websocket: { message(ws, m) { ws.send("echo:" + m); } },
});
console.log("PORT=" + server.port + " URL=" + server.url + " REUSE=" + JSON.stringify(globalThis.__reuse ?? null));
process.on("SIGTERM", async () => { console.log("stopping"); await server.stop(); console.log("stopped"); process.exit(0); });
`;

let dir: string;
const procs: ReturnType<typeof Bun.spawn>[] = [];
const listeners: Listener[] = [];

afterEach(() => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  for (const l of listeners.splice(0)) l.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function listen(): Listener {
  const l = bindListener({ name: "http", address: parseListenAddress("127.0.0.1:0") });
  listeners.push(l);
  return l;
}

function spawnApp(env: Record<string, string>, fd?: number, extraPreload?: string) {
  dir = mkdtempSync(join(tmpdir(), "hr-shim-"));
  writeFileSync(join(dir, "app.ts"), APP);
  const argv = [BUN, "--preload", SHIM, ...(extraPreload ? ["--preload", extraPreload] : []), join(dir, "app.ts")];
  const p = Bun.spawn(fd !== undefined ? ["sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "x", ...argv] : argv, {
    env: { PATH: process.env.PATH ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe", ...(fd !== undefined ? [fd] : [])],
  });
  procs.push(p);
  let out = "";
  const waiters = new Set<() => void>();
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of p.stdout as ReadableStream<Uint8Array>) {
      out += dec.decode(c);
      waiters.forEach((w) => w());
    }
  })();
  const waitFor = (re: RegExp) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no ${re} in ${JSON.stringify(out)}`)), 10_000);
      const check = () => {
        const m = out.match(re);
        if (m) {
          clearTimeout(t);
          waiters.delete(check);
          resolve(m);
        }
      };
      waiters.add(check);
      check();
    });
  return { p, waitFor, out: () => out };
}

describe("bun-serve-shim (fd)", () => {
  test("an unmodified Bun.serve app serves the inherited socket: keep-alive, 4 MiB body, POST, WebSocket; server.port/url report it", async () => {
    const l = listen();
    const app = spawnApp({ LISTEN_FDS: "1", PORT: String(l.port) }, l.fd);
    const m = await app.waitFor(/PORT=(\d+) URL=(\S+)/);
    expect(Number(m[1])).toBe(l.port!);
    expect(m[2]).toBe(`http://127.0.0.1:${l.port}/`);
    const base = `http://127.0.0.1:${l.port}`;
    const http = await import("node:http");
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 5; i++) expect((await get(`${base}/`, { agent })).body).toBe(`hello pid=${app.p.pid}`);
      expect((await get(`${base}/big`)).body.length).toBe(4 * 1024 * 1024);
    } finally {
      agent.destroy();
    }
    const post = await fetch(`${base}/`, { method: "POST", body: new Uint8Array(3_000_000) });
    expect(await post.text()).toBe("3000000");
    const ws = new WebSocket(`ws://127.0.0.1:${l.port}/ws`);
    const echoed = await new Promise<string>((resolve, reject) => {
      ws.onopen = () => ws.send("hi");
      ws.onmessage = (e) => resolve(String(e.data));
      ws.onerror = () => reject(new Error("websocket error"));
    });
    ws.close();
    expect(echoed).toBe("echo:hi");
  }, 20_000);

  test("server.stop(): fd 3 is closed at once, the in-flight request still gets its answer, then the app exits 0", async () => {
    const l = listen();
    const app = spawnApp({ LISTEN_FDS: "1", PORT: String(l.port) }, l.fd);
    await app.waitFor(/PORT=/);
    const inode = [...socketInodesOf(process.pid)].find(([, fds]) => fds.includes(l.fd))![0];
    expect(socketInodesOf(app.p.pid).has(inode)).toBe(true);
    const slow = get(`http://127.0.0.1:${l.port}/slow?ms=1500`);
    await Bun.sleep(200); // the request is in flight (not a timed assertion: it only has to have started)
    app.p.kill("SIGTERM");
    await app.waitFor(/stopping/);
    // stop() closed the worker's copy of the inherited socket while the slow request runs.
    for (let i = 0; i < 200 && socketInodesOf(app.p.pid).has(inode); i++) await Bun.sleep(5);
    expect(socketInodesOf(app.p.pid).has(inode)).toBe(false);
    expect(app.out()).not.toContain("stopped");
    const r = await slow;
    expect(r.body).toBe("slow done");
    expect(await app.p.exited).toBe(0);
    expect(app.out()).toContain("stopped");
  }, 20_000);

  test("no LISTEN_FDS, or LISTEN_FDS for another pid: Bun.serve is untouched (binds PORT itself)", async () => {
    const probe = listen();
    const port = probe.port!;
    probe.close(); // a free port for the app
    listeners.length = 0;
    const app = spawnApp({ PORT: String(port) });
    const m = await app.waitFor(/PORT=(\d+)/);
    expect(Number(m[1])).toBe(port);
    expect((await get(`http://127.0.0.1:${port}/`)).body).toBe(`hello pid=${app.p.pid}`);
    app.p.kill("SIGKILL");
    await app.p.exited;
    const other = spawnApp({ PORT: "0", LISTEN_FDS: "1", LISTEN_PID: "1" });
    const m2 = await other.waitFor(/PORT=(\d+)/);
    expect(Number(m2[1])).toBeGreaterThan(0);
  }, 20_000);

  test("reuseport: Bun.serve gets reusePort: true (two processes bind the same port)", async () => {
    const probe = listen();
    const port = probe.port!;
    probe.close();
    listeners.length = 0;
    const a = spawnApp({ PORT: String(port), HR_SERVE_STRATEGY: "reuseport" });
    await a.waitFor(/PORT=(\d+)/);
    const b = spawnApp({ PORT: String(port), HR_SERVE_STRATEGY: "reuseport" });
    const m = await b.waitFor(/PORT=(\d+)/);
    expect(Number(m[1])).toBe(port);
  }, 20_000);
});

describe("strategy helpers", () => {
  test("bun_shim: auto = argv[0] is bun; true adds BUN_OPTIONS for other commands; false never", () => {
    expect(bunShimMode("auto", ["bun", "server.ts"])).toBe("argv");
    expect(bunShimMode("auto", ["/usr/local/bin/bun", "server.ts"])).toBe("argv");
    expect(bunShimMode("auto", ["node", "server.mjs"])).toBeUndefined();
    expect(bunShimMode("auto", ["./bunny"])).toBeUndefined();
    expect(bunShimMode(true, ["sh", "-c", "bun run start"])).toBe("env");
    expect(bunShimMode(false, ["bun", "server.ts"])).toBeUndefined();
    expect(withPreload(["bun", "server.ts", "--x"], "/run/hr/shim.js")).toEqual(["bun", "--preload", "/run/hr/shim.js", "server.ts", "--x"]);
  });

  test("the embedded shim is the source file", async () => {
    expect(bunShimSource()).toBe(await Bun.file(SHIM).text());
  });

  test("tcp_migrate_req: read and warned about", () => {
    const d = mkdtempSync(join(tmpdir(), "hr-sysctl-"));
    try {
      writeFileSync(join(d, "off"), "0\n");
      writeFileSync(join(d, "on"), "1\n");
      expect(readTcpMigrateReq(join(d, "off"))).toBe("off");
      expect(readTcpMigrateReq(join(d, "on"))).toBe("on");
      expect(readTcpMigrateReq(join(d, "missing"))).toBe("unsupported");
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
    expect(migrateReqWarning("on")).toBeUndefined();
    expect(migrateReqWarning("off")).toContain("sysctl -w net.ipv4.tcp_migrate_req=1");
    expect(migrateReqWarning("off")).toContain("/etc/sysctl.d/");
    expect(migrateReqWarning("unsupported")).toContain("5.14");
  });
});
