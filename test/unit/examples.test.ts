// The example apps, run directly (no hr): each adopts a socket passed at fd 3
// by systemd-socket-activate (bun-serve: listens on PORT), answers, announces
// READY=1 over NOTIFY_SOCKET, and drains on SIGTERM under load without a single
// failed request: Connection: close grace, stop accepting, finish in-flight, exit 0.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync, type Subprocess } from "bun";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { get, waitForHttp } from "../helpers/http.ts";
import { startLoad } from "../../scripts/harness/load.ts";
import { freePort } from "../../src/sockets/free-port.ts";

const ROOT = path.resolve(import.meta.dir, "../..");
const EX = path.join(ROOT, "examples");
const BUN = process.execPath;
const NODE = Bun.which("node");
const PYTHON = Bun.which("python3");
const GO = Bun.which("go");
const SSA = Bun.which("systemd-socket-activate") ?? (existsSync("/usr/bin/systemd-socket-activate") ? "/usr/bin/systemd-socket-activate" : null);
const GIN = existsSync("/usr/share/gocode/src/github.com/gin-gonic/gin");
const GRACE_MS = 1000; // the apps' default HR_GRACE_MS
const SLOW_MS = 1500; // outlasts the grace: proves in-flight requests are awaited

const tmp = mkdtempSync(path.join(os.tmpdir(), "hr-examples-"));
let goBinary: string | null = null;

const procs: Subprocess[] = [];
const loads: Array<{ stop(): Promise<unknown> }> = [];
const strayPids: number[] = [];

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

afterEach(async () => {
  await Promise.all(loads.splice(0).map((l) => l.stop()));
  for (const p of procs.splice(0)) if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  for (const pid of strayPids.splice(0)) if (alive(pid)) process.kill(pid, "SIGKILL");
});

afterAll(() => rmSync(tmp, { recursive: true, force: true }));

beforeAll(() => {
  if (!GO || !GIN) return;
  const out = path.join(tmp, "go-gin-app");
  const r = spawnSync({
    cmd: [GO, "build", "-o", out, "."],
    cwd: path.join(EX, "go-gin"),
    env: { ...process.env, GO111MODULE: "off", GOPATH: `${path.join(tmp, "gopath")}:/usr/share/gocode` },
    stderr: "pipe",
  });
  if (r.exitCode !== 0) throw new Error(`go build failed: ${r.stderr.toString()}`);
  goBinary = out;
}, 120_000);


/** A python3 AF_UNIX/SOCK_DGRAM receiver standing in for hr's NOTIFY_SOCKET. */
async function notifyReceiver(addr: string) {
  const script =
    "import socket,sys\n" +
    "p=sys.argv[1]\n" +
    "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\n" +
    "s.bind('\\0'+p[1:] if p.startswith('@') else p)\n" +
    "print('bound',flush=True)\n" +
    "while True:\n" +
    "  print('msg',repr(s.recv(4096).decode()),flush=True)\n";
  const proc = Bun.spawn({ cmd: [PYTHON!, "-c", script, addr], stdout: "pipe", stderr: "inherit" });
  procs.push(proc);
  let text = "";
  const waiters: Array<() => void> = [];
  (async () => {
    const dec = new TextDecoder();
    for await (const chunk of proc.stdout as ReadableStream<Uint8Array>) {
      text += dec.decode(chunk);
      waiters.splice(0).forEach((w) => w());
    }
  })();
  const until = async (re: RegExp, ms: number) => {
    const deadline = Date.now() + ms;
    while (!re.test(text) && Date.now() < deadline)
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    return re.test(text);
  };
  if (!(await until(/bound/, 5000))) throw new Error("notify receiver did not start");
  return { until, text: () => text };
}

/**
 * A minimal fd-handoff master standing in for `hr serve`: binds the socket once,
 * runs generation 0, and on each "handoff" line starts the next generation with
 * the socket at fd 3, waits for its READY=1, SIGTERMs the old one and waits for
 * it to exit. The socket stays open in the master throughout, so any failure the
 * load client sees is the apps' drain's fault.
 */
const HANDOFF_MASTER = String.raw`
import os, socket, subprocess, sys
cmd = sys.argv[1:]
s = socket.socket()
s.bind(("127.0.0.1", 0)); s.listen(1024)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
os.set_inheritable(3, True)
ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
ns.bind("\0hr-examples-handoff-%d" % os.getpid())
print("port", s.getsockname()[1], flush=True)
def start(gen):
    env = dict(os.environ, LISTEN_FDS="1", LISTEN_FDNAMES="http", HR_GENERATION=str(gen),
               NOTIFY_SOCKET="@hr-examples-handoff-%d" % os.getpid())
    p = subprocess.Popen(cmd, env=env, pass_fds=(3,), stdout=subprocess.DEVNULL)
    print("pid", p.pid, flush=True)
    ns.settimeout(20)
    msg = ns.recv(256)
    assert msg == b"READY=1", msg
    print("ready", gen, flush=True)
    return p
gen = 0
cur = start(gen)
for line in sys.stdin:
    if line.strip() == "handoff":
        gen += 1
        nxt = start(gen)
        cur.terminate()
        code = cur.wait(timeout=30)
        print("handed", gen, code, flush=True)
        cur = nxt
    else:
        break
cur.terminate()
print("stopped", cur.wait(timeout=30), flush=True)
`;

async function lineReader(stream: ReadableStream<Uint8Array>) {
  let text = "";
  const waiters: Array<() => void> = [];
  (async () => {
    const dec = new TextDecoder();
    for await (const chunk of stream) {
      text += dec.decode(chunk);
      waiters.splice(0).forEach((w) => w());
    }
    waiters.splice(0).forEach((w) => w());
  })();
  /** Resolves with the match once the output matches re (from offset `from`), or throws after ms. */
  const next = async (re: RegExp, ms: number, from = 0): Promise<RegExpMatchArray> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const m = text.slice(from).match(re);
      if (m) return m;
      await new Promise<void>((r) => {
        waiters.push(r);
        setTimeout(r, 50);
      });
    }
    throw new Error(`no ${re} within ${ms} ms; output:\n${text}`);
  };
  return { next, text: () => text };
}

interface AppCase {
  name: string;
  mode: "fd" | "port";
  cmd: () => string[];
  enabled: () => boolean;
  notify: "path" | "abstract";
}

const apps: AppCase[] = [
  { name: "bun-net", mode: "fd", cmd: () => [BUN, "server.ts"], enabled: () => !!SSA && !!PYTHON, notify: "abstract" },
  { name: "bun-serve", mode: "port", cmd: () => [BUN, "server.ts"], enabled: () => !!PYTHON, notify: "path" },
  { name: "node-http", mode: "fd", cmd: () => [NODE!, "server.mjs"], enabled: () => !!SSA && !!NODE && !!PYTHON, notify: "path" },
  { name: "python", mode: "fd", cmd: () => [PYTHON!, "server.py"], enabled: () => !!SSA && !!PYTHON, notify: "abstract" },
  { name: "go-gin", mode: "fd", cmd: () => [goBinary!], enabled: () => !!SSA && !!PYTHON && !!GO && GIN, notify: "path" },
];

describe("example apps", () => {
  test("every app has server source with VERSION v1, a README and an hr.toml on its own port", () => {
    const ports = new Set<string>();
    for (const a of apps) {
      const dir = path.join(EX, a.name);
      expect(existsSync(path.join(dir, "README.md"))).toBe(true);
      const toml = readFileSync(path.join(dir, "hr.toml"), "utf8");
      const port = toml.match(/address\s*=\s*"127\.0\.0\.1:(\d+)"/)?.[1];
      expect(port).toBeDefined();
      ports.add(port!);
      expect(toml).toMatch(/strategy\s*=\s*"(fd|proxy)"/);
      const src = ["server.ts", "server.mjs", "server.py", "main.go"].map((f) => path.join(dir, f)).find(existsSync);
      expect(src).toBeDefined();
      expect(readFileSync(src!, "utf8")).toMatch(/VERSION\s*=\s*"v1"/);
    }
    expect(ports.size).toBe(apps.length);
  });

  for (const app of apps.filter((a) => a.mode === "fd")) {
    test.skipIf(!app.enabled())(
      `${app.name}: 3 fd handoffs (new generation ready, old one SIGTERMed) under load: 0 failed requests`,
      async () => {
        const script = path.join(tmp, "handoff-master.py");
        await Bun.write(script, HANDOFF_MASTER);
        const master = Bun.spawn({
          cmd: [PYTHON!, script, ...app.cmd()],
          cwd: path.join(EX, app.name),
          // A short grace keeps the test quick; the load loops send every few ms,
          // so each gets its Connection: close well within it.
          env: { ...process.env, HR_GRACE_MS: "300", GIN_MODE: "release" },
          stdin: "pipe",
          stdout: "pipe",
          stderr: "inherit",
        });
        procs.push(master);
        const out = await lineReader(master.stdout as ReadableStream<Uint8Array>);
        const port = Number((await out.next(/port (\d+)/, 10_000))[1]);
        await out.next(/ready 0/, 15_000);
        const base = `http://127.0.0.1:${port}`;
        await waitForHttp(`${base}/`, { match: new RegExp(`^hello from ${app.name} v1 gen=0 `) });

        const load = startLoad({ url: `${base}/`, concurrency: 50, keepAliveShare: 0.5, durationMs: 20_000 });
        loads.push(load);
        const HANDOFFS = 3;
        for (let g = 1; g <= HANDOFFS; g++) {
          await Bun.sleep(300);
          master.stdin.write("handoff\n");
          master.stdin.flush();
          const m = await out.next(new RegExp(`handed ${g} (-?\\d+)`), 20_000);
          expect(Number(m[1]), `old generation ${g - 1} exit code`).toBe(0);
        }
        await Bun.sleep(300);
        const result = await load.stop();
        master.stdin.write("stop\n");
        master.stdin.flush();
        await out.next(/stopped 0/, 10_000);
        for (const m of out.text().matchAll(/pid (\d+)/g)) strayPids.push(Number(m[1]));

        const summary = { ok: result.ok, failed: result.failed, errors: result.errors, failures: result.failures.slice(0, 5) };
        expect(result.failed, `${app.name} handoffs: ${JSON.stringify(summary)}`).toBe(0);
        const gens = [...result.bodies.keys()].sort();
        expect(gens).toEqual(Array.from({ length: HANDOFFS + 1 }, (_, g) => `hello from ${app.name} v1 gen=${g}`));
        console.log(`${app.name}: ${HANDOFFS} handoffs, ${result.ok} ok / ${result.failed} failed, bodies ${JSON.stringify([...result.bodies])}`);
      },
      40_000,
    );
  }

  for (const app of apps) {
    test.skipIf(!app.enabled())(
      `${app.name}: serves on ${app.mode === "fd" ? "fd 3" : "PORT"}, notifies READY=1, drains SIGTERM under load with 0 failures`,
      async () => {
        const port = await freePort();
        const base = `http://127.0.0.1:${port}`;
        const notifyAddr =
          app.notify === "abstract" ? `@hr-examples-${process.pid}-${app.name}` : path.join(tmp, `${app.name}.notify`);
        const recv = await notifyReceiver(notifyAddr);

        const env: Record<string, string> = {
          NOTIFY_SOCKET: notifyAddr,
          HR_GENERATION: "7",
          SPAWN_GRANDCHILD: "1",
          GIN_MODE: "release",
        };
        // systemd-socket-activate passes only -E variables (and LISTEN_*), not our
        // environment; forward the drain knobs so they can be varied by hand.
        for (const k of ["HR_GRACE_MS", "HR_DRAIN_TIMEOUT_MS"]) if (process.env[k]) env[k] = process.env[k]!;
        let cmd = app.cmd();
        if (app.mode === "fd") {
          // Binds the socket, waits for the first connection, then execs the app
          // (same pid) with LISTEN_FDS=1 and LISTEN_PID=<pid>; fd 3 = the socket.
          cmd = [SSA!, "-l", `127.0.0.1:${port}`, ...Object.entries(env).map(([k, v]) => `-E${k}=${v}`), ...cmd];
        } else {
          env.PORT = String(port);
        }
        const proc = Bun.spawn({
          cmd,
          cwd: path.join(EX, app.name),
          env: { ...process.env, ...env },
          stdout: "pipe",
          stderr: "pipe",
        });
        procs.push(proc);
        let output = "";
        const dec = new TextDecoder();
        for (const s of [proc.stdout, proc.stderr] as ReadableStream<Uint8Array>[])
          (async () => {
            for await (const c of s) output += dec.decode(c);
          })();

        const first = await waitForHttp(`${base}/`, {
          timeoutMs: 15_000,
          match: new RegExp(`^hello from ${app.name} v1 gen=7 pid=${proc.pid}\\b`),
        });
        expect(first.status).toBe(200);
        expect((await get(`${base}/health`)).body).toBe("ok");
        expect(await recv.until(/msg 'READY=1'/, 5000)).toBe(true);

        // SPAWN_GRANDCHILD=1 starts a `sleep 600` child (hr's tests check none survives).
        await Bun.sleep(100);
        const kids = spawnSync({ cmd: ["ps", "-o", "pid=,args=", "--ppid", String(proc.pid)] }).stdout.toString();
        const sleeper = kids.split("\n").find((l) => /sleep 600/.test(l));
        expect(sleeper, `children of ${app.name}: ${kids}`).toBeDefined();
        strayPids.push(Number(sleeper!.trim().split(/\s+/)[0]));

        const load = startLoad({ url: `${base}/`, concurrency: 50, keepAliveShare: 0.5, durationMs: 10_000 });
        loads.push(load);
        await Bun.sleep(700);
        const slow = get(`${base}/slow?ms=${SLOW_MS}`, { timeoutMs: 10_000 });
        slow.catch(() => {}); // awaited below; never an unhandled rejection if we fail first
        await Bun.sleep(100);
        const exited = proc.exited.then((code) => ({ code, at: performance.now() }));
        const termAt = performance.now();
        proc.kill("SIGTERM");

        // During the grace the app keeps accepting and answers with Connection: close.
        await Bun.sleep(GRACE_MS / 2);
        const graceReply = await get(`${base}/`, { timeoutMs: 2000 });
        expect(graceReply.status).toBe(200);
        expect(String(graceReply.headers.connection).toLowerCase()).toBe("close");
        const result = await load.stop();
        const summary = { ok: result.ok, failed: result.failed, errors: result.errors, failures: result.failures.slice(0, 5) };
        expect(result.failed, `${app.name} load: ${JSON.stringify(summary)}\n${output}`).toBe(0);
        expect(result.ok).toBeGreaterThan(50);
        expect([...result.bodies.keys()]).toEqual([`hello from ${app.name} v1 gen=7`]);

        // After the grace it stops accepting while the slow request is still in flight.
        await Bun.sleep(GRACE_MS / 2 + 200);
        if (performance.now() - termAt < SLOW_MS - 100) {
          const late = await get(`${base}/`, { timeoutMs: 2000 }).then(
            (r) => `status ${r.status}`,
            (e: NodeJS.ErrnoException) => e.code ?? String(e),
          );
          expect(late).toMatch(/ECONNREFUSED|ECONNRESET/);
        }

        const slowReply = await slow;
        expect(slowReply.status).toBe(200);
        expect(slowReply.body).toContain(`slow ${SLOW_MS}ms pid=${proc.pid}`);

        const { code, at } = await exited;
        expect(code, output).toBe(0);
        const drainMs = at - termAt;
        expect(drainMs).toBeGreaterThanOrEqual(SLOW_MS - 150);
        expect(drainMs).toBeLessThan(SLOW_MS + 3000);
        console.log(
          `${app.name}: ${result.ok} ok / ${result.failed} failed under load; exit 0 ${Math.round(drainMs)} ms after SIGTERM`,
        );
      },
      30_000,
    );
  }
});
