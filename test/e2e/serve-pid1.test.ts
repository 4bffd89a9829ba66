/**
 * The process tree is hr's (issue 13, src/process/reaper.ts): a worker's
 * double-forked daemon is reparented to hr (child subreaper), named in a warning
 * and stopped with its generation, so it neither serves old code after a reload
 * nor holds the port after shutdown. As PID 1 (`unshare --pid --fork
 * --mount-proc`), hr reaps every orphan, while its workers' exit statuses stay
 * right (a SIGKILLed worker is reported as killed by SIGKILL).
 */
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { get } from "../helpers/http.ts";
import { cleanupServes, startServe, taggedPids } from "../helpers/serve.ts";
import { childrenOf, readStat } from "../../src/platform/proc.ts";

setDefaultTimeout(60_000);
beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

/**
 * Serves "gen=N" on fd 3. DAEMON=1: first double-forks a daemon (setsid + fork,
 * its parent exits) that serves "daemon gen=N" on the same socket and writes its
 * pid to daemon.pid. ORPHANS=1: keeps making short-lived orphans (~100/s).
 */
const APP = `import os, socket, subprocess, sys, threading, time
from http.server import HTTPServer, BaseHTTPRequestHandler
gen = os.environ.get("HR_GENERATION")
def serve(who):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"{who} gen={gen}\\n".encode()
            self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    srv = HTTPServer(("127.0.0.1", 0), H, bind_and_activate=False)
    srv.socket = socket.socket(fileno=3)
    srv.serve_forever()
if os.environ.get("DAEMON") and gen == "1":
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open("daemon.pid", "w") as f: f.write(str(os.getpid()))
            serve("daemon")
        os._exit(0)
if os.environ.get("ORPHANS"):
    def orphans():
        while True:
            subprocess.Popen(["sh", "-c", "sleep 0.05 & exit 0"]).wait()
            time.sleep(0.01)
    threading.Thread(target=orphans, daemon=True).start()
serve("app")
`;

const TOML = `[run]
cmd = ["python3", "app.py"]
[[listen]]
name = "http"
address = "127.0.0.1:0"
[serve]
drain_timeout = "2s"
restart_backoff = "100ms"
ready = { type = "delay", delay = "200ms" }
`;

const alive = (pid: number) => {
  const s = readStat(pid)?.state;
  return s !== undefined && s !== "Z" && s !== "X";
};

test("a worker's double-forked daemon stays in hr's tree: named in a warning and stopped with its generation; the port is free after shutdown", async () => {
  const h = await startServe({ toml: TOML, files: { "app.py": APP }, env: { DAEMON: "1" } });
  const until = Date.now() + 5000;
  let daemon = 0;
  while (!daemon && Date.now() < until) {
    daemon = Number(readFileSync(join(h.dir, "daemon.pid"), { encoding: "utf8", flag: "a+" }) || 0);
    await Bun.sleep(50);
  }
  expect(daemon).toBeGreaterThan(0);
  // Reparented to hr (subreaper), not to PID 1, once its parent has exited.
  const adopted = Date.now() + 5000;
  while (readStat(daemon)?.ppid !== h.pid && Date.now() < adopted) await Bun.sleep(20);
  expect(readStat(daemon)!.ppid).toBe(h.pid);
  const worker = (await h.status()).generations[0]!.workers[0]!.pid!;
  // No link left to the worker: another session and group (the setsid'd parent is gone).
  expect(readStat(daemon)!.sid).not.toBe(worker);
  expect(readStat(daemon)!.pgid).not.toBe(worker);
  const r = await h.reload();
  expect(r.code).toBe(0);
  await h.waitForLog(new RegExp(`gen1/w1: 1 process had left its process tree \\(double-forked daemon\\): pid ${daemon} \\(\\S*python3 app\\.py\\)`), 5000);
  const gone = Date.now() + 5000;
  while (alive(daemon) && Date.now() < gone) await Bun.sleep(50);
  expect(alive(daemon)).toBe(false);
  // Every answer now comes from gen2's app: the daemon no longer serves old code on the port.
  for (let i = 0; i < 10; i++) expect((await get(`http://127.0.0.1:${h.port}/`)).body).toBe("app gen=2\n");
  expect(await h.stop()).toBe(0);
  expect(taggedPids(h.tag)).toEqual([]);
  // The port is free again: a new listener can take it.
  const srv = Bun.listen({ hostname: "127.0.0.1", port: h.port, socket: { data() {} } });
  srv.stop(true);
});

test("as PID 1 (unshare --pid): every orphan is reaped, workers' exit statuses stay right, SIGTERM stops everything", async () => {
  const probe = Bun.spawnSync(["unshare", "--pid", "--fork", "--mount-proc", "true"]);
  if (probe.exitCode !== 0) {
    console.log("unshare --pid not permitted here (needs root or user namespaces): skipped");
    return;
  }
  const h = await startServe({ toml: TOML, files: { "app.py": APP }, env: { ORPHANS: "1" }, wrap: ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"] });
  const hr = childrenOf(h.pid)?.[0];
  expect(hr).toBeGreaterThan(0);
  const st = await h.status();
  expect(st.pid).toBe(1);
  expect(h.logs()).toContain("running as PID 1");
  const zombiesOf = (pid: number) => (childrenOf(pid) ?? []).filter((c) => readStat(c)?.state === "Z").length;
  // ~100 orphans a second for 3 s; before, all of them stayed zombies (98 after 10 s in the drill).
  let most = 0;
  for (let i = 0; i < 30; i++) {
    await Bun.sleep(100);
    most = Math.max(most, zombiesOf(hr!));
  }
  const orphansSeen = (childrenOf(hr!) ?? []).length;
  console.log(`PID 1: at most ${most} zombies under hr at any 100 ms sample over 3 s; ${orphansSeen} children now`);
  expect(most).toBeLessThan(20);
  // Its own bookkeeping is intact: a SIGKILLed worker is reported as such and replaced.
  const w = (await h.status()).generations[0]!.workers[0]!;
  const hostPid = (childrenOf(hr!) ?? []).find((c) => readFileSync(`/proc/${c}/cmdline`, "latin1").includes("app.py") && readStat(c)?.state !== "Z");
  expect(hostPid).toBeGreaterThan(0);
  process.kill(hostPid!, "SIGKILL");
  const replaced = Date.now() + 10_000;
  let after = w;
  while (Date.now() < replaced) {
    after = (await h.status()).generations[0]!.workers[0]!;
    if (after.pid !== w.pid && after.state === "ready") break;
    await Bun.sleep(100);
  }
  expect(after.lastExit ?? "").toBe("killed by SIGKILL");
  expect(after.restarts).toBe(1);
  expect((await h.reload()).code).toBe(0);
  process.kill(hr!, "SIGTERM");
  expect(await h.stop("SIGTERM", 15_000)).toBe(0);
  expect(taggedPids(h.tag)).toEqual([]);
});
