/**
 * hr dev corner cases: a crash during a build that then fails (restart_on_crash),
 * the proxy answering 502 while no app runs, and hr started in the background of
 * a job-control shell (must not read — and be stopped by — the terminal).
 * Every process started carries HR_TEST_TAG and is SIGKILLed in afterEach.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { BIN_DIR, DevHarness, freePort, taggedPids, tempProject, waitForBody } from "../helpers/dev.ts";
import { Tty } from "../helpers/tty.ts";

const h = new DevHarness();
const ttys: { tty: Tty; tag: string }[] = [];
beforeAll(() => ensureBinary());
afterEach(async () => {
  for (const { tty, tag } of ttys.splice(0)) {
    for (let i = 0; i < 50; i++) {
      const left = taggedPids(tag);
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
      await Bun.sleep(20);
    }
    tty.close();
  }
  await h.cleanup();
});

test("restart_on_crash: an app that crashes during a build that then fails is restarted (the last good app)", async () => {
  const marks = h.dir(mkdtempSync(join(tmpdir(), "hr-dev-marks-")));
  const build = `if [ -f ${marks}/FAIL ]; then touch ${marks}/building; while [ ! -f ${marks}/crashed ]; do sleep 0.05; done; sleep 0.3; echo build-fails; exit 1; fi`;
  const app = `echo up gen=$HR_GENERATION; while [ ! -f ${marks}/CRASH ]; do sleep 0.05; done; rm ${marks}/CRASH; touch ${marks}/crashed; exit 5`;
  const dir = h.dir(tempProject({ "a.txt": "1", "hr.toml": `[build]\ncmd = ${JSON.stringify(build)}\n[run]\ncmd = ${JSON.stringify(app)}\n[dev]\nrestart_on_crash = true\n` }));
  const hr = h.start(dir);
  await hr.waitFor(/up gen=1/);
  writeFileSync(join(marks, "FAIL"), "");
  writeFileSync(join(dir, "a.txt"), "2"); // starts a build that waits for the crash, then fails
  await hr.waitFor(() => existsSync(join(marks, "building")), 10_000, "the build");
  writeFileSync(join(marks, "CRASH"), ""); // the app crashes while the build runs
  await hr.waitFor(/build `.*` failed \(exited with code 1\)/);
  expect(hr.output).toMatch(/app exited with code 5 \(gen 1/);
  await hr.waitFor(/up gen=2/);
  expect(hr.output).toMatch(/crashed during the build: restarting it in/);
}, 20_000);

describe("proxy strategy with no app running", () => {
  const server = `const port = Number(process.env.PORT);
Bun.serve({ hostname: "127.0.0.1", port, fetch(req) {
  if (new URL(req.url).pathname === "/crash") setTimeout(() => process.exit(3), 10);
  return new Response("VERSION v1 gen=" + process.env.HR_GENERATION + "\\n");
} });
`;
  function project(build?: string) {
    const port = freePort();
    const dir = h.dir(
      tempProject({
        "app.ts": server,
        "hr.toml": `${build ? `[build]\ncmd = ${JSON.stringify(build)}\n` : ""}[run]\ncmd = ["bun", "app.ts"]\n[watch]\ninclude_ext = ["ts"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:${port}"\n[dev]\nstrategy = "proxy"\n`,
      }),
    );
    return { dir, url: `http://127.0.0.1:${port}/` };
  }

  test("a crashed app: new connections get 502 Bad Gateway with the exit code, then the fixed app answers", async () => {
    const p = project();
    const hr = h.start(p.dir);
    await waitForBody(p.url, /v1 gen=1/);
    await fetch(`${p.url}crash`, { headers: { Connection: "close" } }).then((r) => r.text());
    await hr.waitFor(/app exited with code 3/);
    // Bounded wait well below the 30 s hold: a held connection would abort here.
    const res = await fetch(p.url, { headers: { Connection: "close" }, signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(502);
    const text = await res.text();
    expect(text).toContain("the app exited with code 3");
    expect(text).toContain("waiting for a file change");
    writeFileSync(join(p.dir, "app.ts"), server.replace("v1", "v2"));
    await waitForBody(p.url, /v2 gen=2/);
  }, 30_000);

  test("a failed first build: 502 saying so, instead of holding the connection", async () => {
    const p = project("test -f OK");
    const hr = h.start(p.dir);
    await hr.waitFor(/build `test -f OK` failed/);
    const res = await fetch(p.url, { headers: { Connection: "close" }, signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(502);
    expect(await res.text()).toContain("the build failed");
    writeFileSync(join(p.dir, "OK"), "");
    writeFileSync(join(p.dir, "app.ts"), server.replace("v1", "v2"));
    await waitForBody(p.url, /v2 gen=1/);
  }, 30_000);
});

describe.skipIf(!Bun.which("tmux"))("hr dev in the background of a shell (real PTY via tmux)", () => {
  test("does not read the terminal (no SIGTTIN stop) and keeps restarting on changes", async () => {
    const dir = h.dir(tempProject({ "a.txt": "1", "hr.toml": `[run]\ncmd = "echo app gen=$HR_GENERATION; exec sleep 600"\n` }));
    const tag = `bg-${process.pid}-${Date.now()}`;
    const hrBin = ensureBinary();
    // `set -m`: job control, so `&` puts hr in its own (background) process group.
    const tty = Tty.start(["sh", "-c", `set -m; '${hrBin}' dev & wait`], {
      cwd: dir,
      env: { NO_COLOR: "1", HR_TEST_TAG: tag, PATH: `${BIN_DIR}:${process.env.PATH}` },
    });
    ttys.push({ tty, tag });
    await tty.waitFor(/app gen=1/, 10_000);
    const hrPid = taggedPids(tag).find((pid) => readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0")[1] === "dev");
    expect(hrPid).toBeDefined();
    const state = () => {
      const stat = readFileSync(`/proc/${hrPid}/stat`, "latin1");
      return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    };
    // A line typed into the terminal (the foreground shell is in `wait` and reads nothing):
    // a background process that reads the terminal is stopped by SIGTTIN.
    tty.type("r");
    tty.send("Enter");
    await Bun.sleep(300);
    expect(state()).not.toBe("T");
    writeFileSync(join(dir, "a.txt"), "2");
    await tty.waitFor(/app gen=2/, 10_000);
    expect(state()).not.toBe("T");
  }, 30_000);
});

describe.skipIf(!Bun.which("tmux"))("hr dev on a terminal (real PTY via tmux)", () => {
  test("a spinner shows while the build is silent; the build's output still reaches the terminal, with colours forced", async () => {
    const marks = h.dir(mkdtempSync(join(tmpdir(), "hr-dev-spin-")));
    // The build waits for the test to look at the spinner, then prints what it was given.
    const build = `while [ ! -f ${marks}/go ]; do sleep 0.05; done; echo "compiled FORCE_COLOR=$FORCE_COLOR"`;
    const dir = h.dir(tempProject({ "a.txt": "1", "hr.toml": `[build]\ncmd = ${JSON.stringify(build)}\n[run]\ncmd = "echo app gen=$HR_GENERATION; exec sleep 600"\n` }));
    const tag = `spin-${process.pid}-${Date.now()}`;
    // hr shows no spinner under CI=… (like clack); the CI run of this test must not pass it on.
    const tty = Tty.start(["env", "-u", "CI", ensureBinary(), "dev"], { cwd: dir, env: { HR_TEST_TAG: tag, PATH: `${BIN_DIR}:${process.env.PATH}` } });
    ttys.push({ tty, tag });
    await tty.waitFor(/building \(build `while/, 10_000);
    writeFileSync(join(marks, "go"), "");
    await tty.waitFor(/compiled FORCE_COLOR=1/, 10_000);
    await tty.waitFor(/app gen=1/, 10_000);
  }, 30_000);
});
