import { afterEach, describe as group, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { CommandError, describe, toArgv } from "../../src/process/command.ts";
import { lines, spawnChild, SpawnError, type Child, type SpawnOptions } from "../../src/process/child.ts";
import { parseSignal, SignalError } from "../../src/process/signals.ts";

const FIX = resolve(import.meta.dir, "../fixtures/process");
const BUN = process.execPath;

// Everything a test starts is registered here and killed in afterEach, even on failure.
const children: Child[] = [];
const rawPids: number[] = [];
const tmpDirs: string[] = [];

afterEach(async () => {
  await Promise.all(children.splice(0).map((c) => c.kill()));
  for (const pid of rawPids.splice(0)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {}
  }
  for (const d of tmpDirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function spawn(opts: Partial<SpawnOptions> & { argv: string[] }): Child {
  const c = spawnChild({ cwd: FIX, env: process.env, ...opts });
  children.push(c);
  return c;
}

function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "hr-proc-"));
  tmpDirs.push(d);
  return d;
}

/** Test-side /proc/<pid>/stat reader, independent of child.ts. */
function readStat(pid: number): { state: string; ppid: number; pgid: number; sid: number; pid: number } | null {
  let s: string;
  try {
    s = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return null;
  }
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return { pid, state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]) };
}

/** Alive = /proc entry exists and is not a zombie. */
function alive(pid: number): boolean {
  const e = readStat(pid);
  return e !== null && e.state !== "Z" && e.state !== "X";
}

/** Pids of all processes whose ppid chain leads to root (test-side, independent of child.ts). */
function treePids(root: number): number[] {
  const { readdirSync } = require("node:fs") as typeof import("node:fs");
  const all = readdirSync("/proc")
    .filter((n) => /^\d+$/.test(n))
    .map((n) => readStat(Number(n)))
    .filter((e) => e !== null);
  const out: number[] = [];
  const q = [root];
  while (q.length) {
    const p = q.pop()!;
    for (const e of all) if (e.ppid === p) (out.push(e.pid), q.push(e.pid));
  }
  return out;
}

async function waitFor(cond: () => boolean, ms = 3000, what = "condition"): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** Collects stdout lines; resolves `seen(text)` when a line equals text. */
function collect(c: Child) {
  const got: string[] = [];
  const done = lines(c.stdout!, (l) => got.push(l));
  return {
    got,
    done,
    seen: (text: string) => waitFor(() => got.includes(text), 3000, JSON.stringify(text)),
  };
}

group("command", () => {
  test("string runs through sh -c, array as is", () => {
    expect(toArgv("echo $HOME && ls")).toEqual(["sh", "-c", "echo $HOME && ls"]);
    expect(toArgv(["printf", "%s|", "a b"])).toEqual(["printf", "%s|", "a b"]);
  });
  test("empty commands throw clear errors", () => {
    expect(() => toArgv("")).toThrow(CommandError);
    expect(() => toArgv("   ")).toThrow(/empty/);
    expect(() => toArgv([])).toThrow(/at least the program/);
    expect(() => toArgv([""])).toThrow(/argv\[0\]/);
  });
  test("describe quotes array elements for logs", () => {
    expect(describe("go run .")).toBe("go run .");
    expect(describe(["node", "server.js", "a b", "it's"])).toBe(`node server.js 'a b' 'it'\\''s'`);
  });
});

group("signals", () => {
  test("accepts TERM, sigterm, SIGTERM, numbers", () => {
    expect(parseSignal("TERM")).toBe("SIGTERM");
    expect(parseSignal("sigterm")).toBe("SIGTERM");
    expect(parseSignal(" SIGINT ")).toBe("SIGINT");
    expect(parseSignal("usr2")).toBe("SIGUSR2");
    expect(parseSignal("9")).toBe("SIGKILL");
  });
  test("rejects unknown names with the accepted list", () => {
    expect(() => parseSignal("SIGFOO")).toThrow(SignalError);
    expect(() => parseSignal("")).toThrow(/TERM, INT, HUP/);
    expect(() => parseSignal("SIGSEGV")).toThrow(/unknown signal/);
  });
});

group("spawnChild", () => {
  test("string command runs through sh", async () => {
    const c = spawn({ argv: toArgv("echo $((40 + 2)) | tr 4 X"), stdout: "pipe" });
    const out = collect(c);
    await out.done;
    expect(out.got).toEqual(["X2"]);
    expect((await c.exited).code).toBe(0);
  });

  test("array command is exec'd directly, spaces preserved", async () => {
    const c = spawn({ argv: toArgv(["printf", "[%s]\\n", "a b", "$HOME", "*"]), stdout: "pipe" });
    const out = collect(c);
    await out.done;
    expect(out.got).toEqual(["[a b]", "[$HOME]", "[*]"]);
  });

  test("missing program throws SpawnError", () => {
    expect(() => spawn({ argv: ["definitely-not-a-program-hr"] })).toThrow(SpawnError);
    expect(() => spawn({ argv: ["definitely-not-a-program-hr"], dieWithParent: true })).toThrow(/not found in PATH/);
  });

  test("relative program path resolves against cwd, with and without dieWithParent", async () => {
    for (const dieWithParent of [false, true]) {
      const c = spawn({ argv: ["./trap_term.sh"], stdout: "pipe", dieWithParent });
      await collect(c).seen("ready");
      expect((await c.stop({ signal: "SIGTERM", timeoutMs: 2000 })).code).toBe(0);
    }
    expect(() => spawn({ argv: ["./nope.sh"] })).toThrow(/no such file or not executable/);
  });

  test("runs in its own session and process group", async () => {
    const c = spawn({ argv: ["sleep", "1000"] });
    const e = readStat(c.pid)!;
    expect(e.pgid).toBe(c.pid);
    expect(e.sid).toBe(c.pid);
    expect(readStat(process.pid)!.pgid).not.toBe(c.pid);
  });

  test("exit code and signal are reported", async () => {
    const a = spawn({ argv: toArgv("exit 3") });
    const ea = await a.exited;
    expect([ea.code, ea.signal, ea.describe()]).toEqual([3, null, "exited with code 3"]);
    const b = spawn({ argv: toArgv("kill -SEGV $$") });
    const eb = await b.exited;
    expect([eb.code, eb.signal, eb.describe()]).toEqual([null, "SIGSEGV", "killed by SIGSEGV"]);
    expect(b.exitInfo).toBe(eb);
  });

  test("stdout piped: lines split, CRLF stripped, final partial line kept", async () => {
    const c = spawn({ argv: ["printf", "one\ntwo\r\n\nthr"], stdout: "pipe", stderr: "pipe" });
    const out = collect(c);
    await out.done;
    expect(out.got).toEqual(["one", "two", "", "thr"]);
  });

  test("lines() joins chunks split mid-line and mid-UTF-8", async () => {
    const bytes = new TextEncoder().encode("héllo\nwörld");
    const stream = new ReadableStream<Uint8Array>({
      start(ctl) {
        for (const b of bytes) ctl.enqueue(new Uint8Array([b]));
        ctl.close();
      },
    });
    const got: string[] = [];
    await lines(stream, (l) => got.push(l));
    expect(got).toEqual(["héllo", "wörld"]);
  });

  test("extra fd is passed as fd 3", async () => {
    const d = tmp();
    writeFileSync(join(d, "in.txt"), "through-fd-3\n");
    const fd = openSync(join(d, "in.txt"), "r");
    try {
      const c = spawn({ argv: toArgv("cat <&3"), extraFds: [fd], stdout: "pipe" });
      const out = collect(c);
      await out.done;
      expect(out.got).toEqual(["through-fd-3"]);
    } finally {
      closeSync(fd);
    }
  });

  test("ipc message received from a Bun child", async () => {
    const msgs: unknown[] = [];
    const c = spawn({ argv: [BUN, join(FIX, "ipc_send.js")], ipc: (m) => msgs.push(m) });
    await c.exited;
    await waitFor(() => msgs.length > 0, 2000, "ipc message");
    expect(msgs[0]).toEqual({ hello: "world", n: 1 });
  });

  test.skipIf(!Bun.which("node"))("ipc message received from a Node child", async () => {
    const msgs: unknown[] = [];
    const c = spawn({ argv: ["node", join(FIX, "ipc_send.js")], ipc: (m) => msgs.push(m) });
    await c.exited;
    await waitFor(() => msgs.length > 0, 2000, "ipc message");
    expect(msgs[0]).toEqual({ hello: "world", n: 1 });
  });

  test("ipc works together with extra fds and dieWithParent", async () => {
    const d = tmp();
    writeFileSync(join(d, "x"), "");
    const fd = openSync(join(d, "x"), "r");
    try {
      const msgs: unknown[] = [];
      const c = spawn({
        argv: [BUN, join(FIX, "ipc_send.js")],
        extraFds: [fd],
        dieWithParent: true,
        ipc: (m) => msgs.push(m),
      });
      await c.exited;
      await waitFor(() => msgs.length > 0, 2000, "ipc message");
      expect(msgs[0]).toEqual({ hello: "world", n: 1 });
    } finally {
      closeSync(fd);
    }
  });
});

group("stop", () => {
  test("child that traps SIGTERM exits gracefully", async () => {
    const c = spawn({ argv: ["sh", join(FIX, "trap_term.sh")], stdout: "pipe" });
    const out = collect(c);
    await out.seen("ready");
    const t0 = Date.now();
    const info = await c.stop({ signal: "SIGTERM", timeoutMs: 5000 });
    expect(info.code).toBe(0);
    expect(Date.now() - t0).toBeLessThan(2000);
    await out.done;
    expect(out.got).toContain("got-term");
  });

  test("child that ignores SIGTERM is SIGKILLed after the timeout", async () => {
    const c = spawn({ argv: ["sh", join(FIX, "ignore_term.sh")], stdout: "pipe" });
    await collect(c).seen("ready");
    const kids = treePids(c.pid);
    const t0 = Date.now();
    const info = await c.stop({ signal: "SIGTERM", timeoutMs: 300 });
    const took = Date.now() - t0;
    expect(info.signal).toBe("SIGKILL");
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2000);
    expect(alive(c.pid)).toBe(false);
    for (const p of kids) expect(alive(p)).toBe(false);
  });

  test("grandchildren in the group are gone after stop()", async () => {
    const c = spawn({ argv: toArgv("sleep 1000 & sleep 1000") });
    await waitFor(() => treePids(c.pid).length >= 1, 2000, "grandchild");
    const kids = treePids(c.pid);
    const info = await c.stop({ signal: "SIGTERM", timeoutMs: 2000 });
    expect(info.signal).toBe("SIGTERM");
    expect(alive(c.pid)).toBe(false);
    for (const p of kids) expect(alive(p)).toBe(false);
    // Reaped: no zombie of ours left (/proc entry of the leader is gone entirely).
    expect(readStat(c.pid)).toBeNull();
    expect(treePids(process.pid).map(readStat).filter((e) => e?.state === "Z")).toEqual([]);
  });

  test("setsid'd grandchild (other session) is gone after stop()", async () => {
    const d = tmp();
    const pidFile = join(d, "gc.pid");
    const c = spawn({ argv: ["sh", join(FIX, "setsid_grandchild.sh"), pidFile] });
    await waitFor(() => readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim() !== "", 2000, "pid file");
    const gc = Number(readFileSync(pidFile, "utf8").trim());
    rawPids.push(gc);
    expect(readStat(gc)!.sid).toBe(gc); // really escaped group and session
    expect(readStat(gc)!.pgid).not.toBe(c.pid);
    await c.stop({ signal: "SIGTERM", timeoutMs: 2000 });
    expect(alive(c.pid)).toBe(false);
    expect(alive(gc)).toBe(false);
  });

  test("setsid'd grandchild that ignores SIGTERM is SIGKILLed after the leader exits", async () => {
    const d = tmp();
    const pidFile = join(d, "gc.pid");
    // Leader exits on TERM at once; the escaped grandchild ignores TERM.
    const script = `setsid sh -c 'trap "" TERM; echo $$ > "$0"; while :; do sleep 0.05; done' "${pidFile}" & wait`;
    const c = spawn({ argv: toArgv(script) });
    await waitFor(() => readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim() !== "", 2000, "pid file");
    const gc = Number(readFileSync(pidFile, "utf8").trim());
    rawPids.push(gc);
    const t0 = Date.now();
    await c.stop({ signal: "SIGTERM", timeoutMs: 400 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(alive(gc)).toBe(false);
  });

  test("stop() on an exited child resolves immediately; concurrent stops share a promise", async () => {
    const a = spawn({ argv: ["true"] });
    const ea = await a.exited;
    const t0 = Date.now();
    expect(await a.stop({ signal: "SIGTERM", timeoutMs: 5000 })).toBe(ea);
    expect(Date.now() - t0).toBeLessThan(100);

    const b = spawn({ argv: ["sh", join(FIX, "trap_term.sh")], stdout: "pipe" });
    await collect(b).seen("ready");
    const p1 = b.stop({ signal: "SIGTERM", timeoutMs: 5000 });
    const p2 = b.stop({ signal: "SIGINT", timeoutMs: 1 });
    expect(p2).toBe(p1);
    expect((await p1).code).toBe(0);
  });

  test("stop() on an exited leader sweeps orphans left in its group", async () => {
    const c = spawn({ argv: toArgv("sleep 1000 >/dev/null & echo $!"), stdout: "pipe" });
    const out = collect(c);
    await out.done;
    await c.exited;
    const orphan = Number(out.got[0]);
    rawPids.push(orphan);
    expect(alive(orphan)).toBe(true);
    await c.stop({ signal: "SIGTERM", timeoutMs: 5000 });
    expect(alive(orphan)).toBe(false);
  });

  test("a finished stop() does not keep hr alive (grace timer cleared)", async () => {
    const src = join(import.meta.dir, "../../src/process/child.ts");
    const code = `import { spawnChild } from ${JSON.stringify(src)};
      const c = spawnChild({ argv: ["sleep", "100"], cwd: "/", env: process.env });
      await c.stop({ signal: "SIGTERM", timeoutMs: 20000 });`;
    const t0 = Date.now();
    const p = Bun.spawn({ cmd: [BUN, "-e", code], cwd: FIX });
    rawPids.push(p.pid);
    expect(await p.exited).toBe(0);
    expect(Date.now() - t0).toBeLessThan(5000);
  });

  test("kill() escalates a stop() in progress", async () => {
    const c = spawn({ argv: ["sh", join(FIX, "ignore_term.sh")], stdout: "pipe" });
    await collect(c).seen("ready");
    const t0 = Date.now();
    const p = c.stop({ signal: "SIGTERM", timeoutMs: 10_000 });
    await Bun.sleep(50);
    const info = await c.kill();
    expect(await p).toBe(info);
    expect(info.signal).toBe("SIGKILL");
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  test("signal() reaches the group and escaped descendants", async () => {
    const d = tmp();
    const pidFile = join(d, "gc.pid");
    const c = spawn({ argv: ["sh", join(FIX, "setsid_grandchild.sh"), pidFile] });
    await waitFor(() => readFileSync(pidFile, { encoding: "utf8", flag: "a+" }).trim() !== "", 2000, "pid file");
    const gc = Number(readFileSync(pidFile, "utf8").trim());
    rawPids.push(gc);
    c.signal("SIGUSR1"); // default action: terminate
    expect((await c.exited).signal).toBe("SIGUSR1");
    await waitFor(() => !alive(gc), 2000, "escaped grandchild to die");
  });
});

group("dieWithParent", () => {
  async function intermediate(mode: "die" | "live") {
    const mid = Bun.spawn({ cmd: [BUN, join(FIX, "spawn_die.ts"), mode], cwd: FIX, stdout: "pipe" });
    rawPids.push(mid.pid);
    const reader = mid.stdout.getReader();
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const info = JSON.parse(text.split("\n")[0]!) as { pid: number; diesWithParent: boolean };
    rawPids.push(info.pid);
    return { mid, ...info };
  }

  test.skipIf(!Bun.which("setpriv"))("child dies within 2 s when hr is SIGKILLed", async () => {
    const { mid, pid, diesWithParent } = await intermediate("die");
    expect(diesWithParent).toBe(true);
    expect(alive(pid)).toBe(true);
    // setpriv sets the death signal, then execs the program: kill the parent only once that
    // has happened (under heavy load the test could otherwise SIGKILL it before setpriv ran).
    await waitFor(() => readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "sleep", 2000, "setpriv to exec sleep");
    mid.kill("SIGKILL");
    await mid.exited;
    await waitFor(() => !alive(pid), 2000, "child to die with its parent");
  });

  test("control: without dieWithParent the child outlives a SIGKILLed parent", async () => {
    const { mid, pid, diesWithParent } = await intermediate("live");
    expect(diesWithParent).toBe(false);
    mid.kill("SIGKILL");
    await mid.exited;
    await Bun.sleep(300);
    expect(alive(pid)).toBe(true); // killed in afterEach
  });

  test.skipIf(!Bun.which("setpriv"))("pdeathsig does not fire while hr lives (spawned from the main thread)", async () => {
    const c = spawn({ argv: ["sleep", "1000"], dieWithParent: true });
    expect(c.diesWithParent).toBe(true);
    // If Bun forked from a short-lived helper thread, pdeathsig would fire when it exits.
    await Bun.sleep(1500);
    expect(alive(c.pid)).toBe(true);
    expect(readStat(c.pid)!.ppid).toBe(process.pid);
  });
});

group.skipIf(!Bun.which("script"))("tty", () => {
  test("child's stdout is a TTY when hr's is (colours survive setsid)", async () => {
    const p = Bun.spawn({
      cmd: ["script", "-qec", `${BUN} ${join(FIX, "tty_check.ts")}`, "/dev/null"],
      cwd: FIX,
      stdout: "pipe",
      stdin: "ignore",
    });
    rawPids.push(p.pid);
    const text = await new Response(p.stdout).text();
    await p.exited;
    expect(text).toContain("parent-stdout-tty=yes");
    expect(text).toContain("child-stdout-tty=yes");
  });
});
