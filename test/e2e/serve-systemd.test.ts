/**
 * hr serve under systemd, without systemd: `systemd-socket-activate` (Debian's
 * systemd package) binds the socket and execs hr with LISTEN_FDS; a fake
 * NOTIFY_SOCKET receiver (src/sockets/notify.ts) plays the service manager.
 *
 *  - hr adopts the socket and passes the SAME socket on to its workers at fd 3,
 *    with LISTEN_PID rewritten to each worker's own pid;
 *  - hr says READY=1 (MAINPID, STATUS) once gen1 is ready; around a reload
 *    RELOADING=1 + MONOTONIC_USEC (CLOCK_MONOTONIC) then READY=1; after a
 *    rolled-back reload READY=1 too, with a STATUS saying so; STOPPING=1 on SIGTERM;
 *  - workers never see hr's NOTIFY_SOCKET.
 * Every process is cleaned up (HR_TEST_TAG scan), even on failure.
 */
import { afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { monotonicUsec } from "../../src/platform/libc.ts";
import { inodesAtFds } from "../../src/strategy/socket-audit.ts";
import { listeningInode } from "../helpers/procs.ts";
import { ensureBinary } from "../helpers/hr.ts";
import { fakeManager as createFakeManager } from "../helpers/systemd.ts";
import { freePort } from "../../src/sockets/free-port.ts";
import { get, waitForHttp } from "../helpers/http.ts";
import { cleanupServes, EXAMPLES, startServe } from "../helpers/serve.ts";

setDefaultTimeout(45_000);
beforeAll(() => void ensureBinary());

const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) c();
  const left = await cleanupServes();
  expect(left).toEqual([]);
});

const BUN_NET = join(EXAMPLES, "bun-net", "server.ts");

/** Prints what the worker was given, then runs the example app; `broken` marker → exit 3 at start. */
const APP_SH = `#!/bin/sh
if [ -f broken ]; then echo "boom: bad config" >&2; exit 3; fi
echo "env: notify=\${NOTIFY_SOCKET:-none} listen_pid=\${LISTEN_PID:-none} self=$$ fds=\${LISTEN_FDS:-none} names=\${LISTEN_FDNAMES:-none}"
exec bun ${BUN_NET}
`;

const TOML = `[run]
cmd = ["./app.sh"]

[[listen]]
name = "http"
address = "127.0.0.1:1"   # ignored: systemd passes "http"

[serve]
workers = 2
drain_timeout = "5s"
`;


function fakeManager() {
  const manager = createFakeManager();
  cleanups.push(() => manager.close());
  return manager;
}



describe.skipIf(!Bun.which("systemd-socket-activate"))("hr serve under systemd (systemd-socket-activate + a fake NOTIFY_SOCKET)", () => {
  test("socket activation → workers at fd 3 with their own LISTEN_PID; READY=1, RELOADING=1/MONOTONIC_USEC + READY=1 around reloads (also a rollback), STOPPING=1; workers never see hr's NOTIFY_SOCKET", async () => {
    const port = await freePort();
    const mgr = fakeManager();
    const h = await startServe({
      toml: TOML,
      files: { "app.sh": APP_SH },
      // systemd-socket-activate passes on only -E variables (plus LISTEN_*).
      wrap: [
        "systemd-socket-activate",
        "-l",
        `127.0.0.1:${port}`,
        "--fdname=http",
        ...["PATH", "XDG_RUNTIME_DIR", "HR_TEST_TAG", "NO_COLOR"].map((v) => `-E${v}`),
        `-ENOTIFY_SOCKET=${mgr.sock.path}`,
      ],
      waitReady: false,
    });
    h.port = port;
    for (let i = 0; i < 500 && listeningInode(port) === undefined; i++) await Bun.sleep(10); // it has bound the socket
    // systemd-socket-activate (v252 has no --now) execs hr on the first connection;
    // that request waits in the socket's queue until gen1 accepts it.
    const first = await get(`http://127.0.0.1:${port}/`);
    expect(first.status).toBe(200);
    expect(first.body).toMatch(/^hello from bun-net v1 gen=1 /);
    expect(h.logs()).toContain(`adopted http=127.0.0.1:${port}`);

    // READY=1 with MAINPID (hr itself: systemd-socket-activate exec'd it, same pid) and a STATUS.
    const ready = await mgr.waitFor((m) => m.READY === "1", "READY=1");
    expect(mgr.msgs[ready]).toMatchObject({ READY: "1", MAINPID: String(h.pid) });
    expect(mgr.msgs[ready]!.STATUS).toBe("serving gen1");

    // Workers: the systemd socket itself at fd 3, LISTEN_PID = their own pid, and NOT hr's NOTIFY_SOCKET.
    const st = await h.status();
    const inode = listeningInode(port);
    expect(inode).toBeGreaterThan(0);
    const envLines = [...h.logs().matchAll(/gen1\/w\d \| env: notify=(\S+) listen_pid=(\S+) self=(\d+) fds=(\S+) names=(\S+)/g)];
    expect(envLines).toHaveLength(2);
    for (const [, notify, listenPid, self, fds, names] of envLines) {
      expect(notify).not.toBe(mgr.sock.path);
      expect(notify!.startsWith(join(h.dir, "run"))).toBe(true); // its own per-worker socket (ready.type = notify)
      expect(listenPid).toBe(self!);
      expect(fds).toBe("1");
      expect(names).toBe("http");
    }
    for (const w of st.generations[0]!.workers) {
      expect([...inodesAtFds(w.pid!, [3])]).toEqual([inode!]);
      const environ = require("node:fs").readFileSync(`/proc/${w.pid}/environ`, "latin1") as string;
      expect(environ).not.toContain(mgr.sock.path);
    }

    // Reload (systemd's ExecReload / Type=notify-reload send SIGHUP): RELOADING=1 + MONOTONIC_USEC, then READY=1.
    const before = mgr.msgs.length;
    process.kill(h.pid, "SIGHUP");
    const rl = await mgr.waitFor((m, i) => i >= before && m.RELOADING === "1", "RELOADING=1");
    const usec = BigInt(mgr.msgs[rl]!.MONOTONIC_USEC ?? "0");
    const now = monotonicUsec();
    // Same clock as ours (CLOCK_MONOTONIC, µs), taken before now: not realtime, not ms.
    expect(usec).toBeGreaterThan(0n);
    expect(usec).toBeLessThanOrEqual(now);
    expect(now - usec).toBeLessThan(120_000_000n);
    const back = await mgr.waitFor((m, i) => i > rl && m.READY === "1", "READY=1 after the reload");
    expect(mgr.msgs[back]!.STATUS).toBe("serving gen2");
    // gen1 answers during its drain grace; a fresh connection soon lands on gen2.
    await waitForHttp(`http://127.0.0.1:${port}/`, { match: /gen=2 /, timeoutMs: 10_000 });

    // A rolled-back reload ends with READY=1 too (the service is still up), and STATUS says why.
    writeFileSync(join(h.dir, "broken"), "");
    const before2 = mgr.msgs.length;
    process.kill(h.pid, "SIGHUP");
    const rl2 = await mgr.waitFor((m, i) => i >= before2 && m.RELOADING === "1", "RELOADING=1 (2)");
    const back2 = await mgr.waitFor((m, i) => i > rl2 && m.READY === "1", "READY=1 after the rollback");
    expect(mgr.msgs[back2]!.STATUS).toMatch(/^reload #2 failed, rolled back: gen3\/w\d: exited with code 3 before it was ready; serving gen2$/);
    expect((await get(`http://127.0.0.1:${port}/`)).status).toBe(200);
    expect((await h.status()).generation).toBe(2);

    // SIGTERM: STOPPING=1, then a clean exit.
    const before3 = mgr.msgs.length;
    expect(await h.stop("SIGTERM")).toBe(0);
    await mgr.waitFor((m, i) => i >= before3 && m.STOPPING === "1", "STOPPING=1");
    // Nothing but hr itself ever talked to the manager (workers use their own sockets).
    expect(mgr.msgs.filter((m) => m.READY === "1")).toHaveLength(3);
  });
});
