import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { Subprocess } from "bun";
import { openNotifySocket, parseNotifyMessage, type NotifySocket } from "../../src/sockets/notify.ts";
import { sdNotify } from "../../src/sockets/systemd.ts";

const FIX = resolve(import.meta.dir, "../fixtures/sockets");
const procs: Subprocess[] = [];
const socks: NotifySocket[] = [];
const dirs: string[] = [];

afterEach(async () => {
  for (const s of socks.splice(0)) s.close();
  for (const p of procs.splice(0)) {
    p.kill("SIGKILL");
    await p.exited;
  }
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function open(name = "notify.sock"): NotifySocket {
  const d = mkdtempSync(join(tmpdir(), "hr-notify-"));
  dirs.push(d);
  const s = openNotifySocket(join(d, name));
  socks.push(s);
  return s;
}

function spawn(cmd: string[], env: Record<string, string>): Subprocess {
  const p = Bun.spawn(cmd, { stdio: ["ignore", "inherit", "inherit"], env: { ...process.env, ...env } });
  procs.push(p);
  return p;
}

function withTimeout<T>(p: Promise<T>, ms = 5000): Promise<T> {
  return Promise.race([p, Bun.sleep(ms).then(() => Promise.reject(new Error(`timed out after ${ms} ms`)))]);
}

const hasPython = Bun.which("python3") !== null;

describe("sd_notify receiver", () => {
  test("parseNotifyMessage", () => {
    expect(parseNotifyMessage("READY=1\nSTATUS=a=b c\n\nbogus\nMAINPID=42")).toEqual({ READY: "1", STATUS: "a=b c", MAINPID: "42" });
  });

  test("socket file is 0600 and removed on close", () => {
    const s = open();
    expect(statSync(s.path).isSocket()).toBe(true);
    expect(statSync(s.path).mode & 0o777).toBe(0o600);
    s.close();
    expect(() => statSync(s.path)).toThrow();
  });

  test("bun child sends READY=1 via sdNotify -> waitFor resolves with the message", async () => {
    const s = open();
    const ready = s.waitFor("READY");
    const child = spawn([process.execPath, join(FIX, "notify-send.ts"), "READY=1\\nSTATUS=serving on 8080\\nMAINPID=123", "50"], {
      NOTIFY_SOCKET: s.path,
    });
    const msg = await withTimeout(ready);
    expect(msg).toEqual({ READY: "1", STATUS: "serving on 8080", MAINPID: "123" });
    expect(await child.exited).toBe(0);
    expect(s.state.STATUS).toBe("serving on 8080");
  });

  test.skipIf(!hasPython)("python3 child (AF_UNIX SOCK_DGRAM) sends READY=1", async () => {
    const s = open();
    const py = [
      "import os, socket, time",
      "time.sleep(0.05)",
      "s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)",
      "s.sendto(b'STATUS=starting', os.environ['NOTIFY_SOCKET'])",
      "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET'])",
    ].join("\n");
    const seen: Record<string, string>[] = [];
    const off = s.onMessage((m) => seen.push(m));
    const child = spawn(["python3", "-c", py], { NOTIFY_SOCKET: s.path });
    expect(await withTimeout(s.waitFor("READY"))).toEqual({ READY: "1" });
    off();
    expect(await child.exited).toBe(0);
    // datagram boundaries preserved: two messages, not "STATUS=startingREADY=1"
    expect(seen).toEqual([{ STATUS: "starting" }, { READY: "1" }]);
  });

  test("waitFor resolves at once for state already received; fresh waits for a new one", async () => {
    const s = open();
    sdNotify("READY=1", { NOTIFY_SOCKET: s.path });
    expect(await withTimeout(s.waitFor("READY"))).toMatchObject({ READY: "1" });
    const again = s.waitFor("READY", { fresh: true });
    let settled = false;
    void again.then(() => (settled = true));
    await Bun.sleep(30);
    expect(settled).toBe(false);
    sdNotify("RELOADING=1", { NOTIFY_SOCKET: s.path });
    sdNotify("READY=1\nSTATUS=reloaded", { NOTIFY_SOCKET: s.path });
    expect(await withTimeout(again)).toEqual({ READY: "1", STATUS: "reloaded" });
    expect(s.state.RELOADING).toBe("1");
  });

  test("READY=0 does not count as ready", async () => {
    const s = open();
    const w = s.waitFor("READY");
    sdNotify("READY=0", { NOTIFY_SOCKET: s.path });
    sdNotify("READY=1", { NOTIFY_SOCKET: s.path });
    expect(await withTimeout(w)).toEqual({ READY: "1" });
  });

  test("abstract socket (@name)", async () => {
    const name = `@hr-test-${process.pid}-${Date.now()}`;
    const s = openNotifySocket(name);
    socks.push(s);
    const w = s.waitFor("READY");
    expect(sdNotify("READY=1", { NOTIFY_SOCKET: name })).toBe(true);
    expect(await withTimeout(w)).toEqual({ READY: "1" });
  });

  test("waitFor rejects on abort and on close", async () => {
    const s = open();
    const ac = new AbortController();
    const w = s.waitFor("READY", { signal: ac.signal });
    ac.abort(new Error("worker exited"));
    await expect(w).rejects.toThrow("worker exited");
    const w2 = s.waitFor("READY");
    s.close();
    await expect(w2).rejects.toThrow(/closed while waiting for READY/);
  });

  test("onMessage delivers each datagram in order until close", async () => {
    const s = open();
    const got: Record<string, string>[] = [];
    s.onMessage((m) => got.push(m));
    sdNotify("STATUS=1", { NOTIFY_SOCKET: s.path });
    sdNotify("STATUS=2", { NOTIFY_SOCKET: s.path });
    await withTimeout((async () => {
      while (got.length < 2) await Bun.sleep(5);
    })());
    s.close();
    expect(got).toEqual([{ STATUS: "1" }, { STATUS: "2" }]);
    expect(s.onMessage(() => {})).toBeInstanceOf(Function); // after close: a no-op subscription
  });

  test("sdNotify without NOTIFY_SOCKET is a no-op", () => {
    expect(sdNotify("READY=1", {})).toBe(false);
    expect(() => sdNotify("READY=1", { NOTIFY_SOCKET: "relative" })).toThrow(/absolute path/);
  });
});
