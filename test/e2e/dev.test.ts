/**
 * hr dev end to end: dist/hr against real example apps (copied to temp dirs), real
 * files, real sockets on 127.0.0.1. afterEach SIGKILLs hr's process group and every
 * process carrying the test's HR_TEST_TAG, and checks /proc that nothing survived.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { body, copyExample, DevHarness, edit, freePort, tempProject, waitForBody } from "../helpers/dev.ts";

const h = new DevHarness();
beforeAll(() => ensureBinary());
afterEach(() => h.cleanup());

const RESTARTED = /^hr .*restarted in/;
const STARTED = /^hr .*started in/;

function bunNet(opts: { build?: string; extra?: string; env?: string; debounce?: string } = {}) {
  const port = freePort();
  const dir = h.dir(copyExample("bun-net"));
  writeFileSync(
    join(dir, "hr.toml"),
    `${opts.build ? `[build]\ncmd = ${JSON.stringify(opts.build)}\n` : ""}
[run]
cmd = ["bun", "server.ts"]
env = { HR_GRACE_MS = "100"${opts.env ? `, ${opts.env}` : ""} }
stop_timeout = "3s"
[watch]
include_ext = ["ts"]
exclude = ["generated/**"]
${opts.debounce ? `debounce = "${opts.debounce}"` : ""}
[[listen]]
name = "http"
address = "127.0.0.1:${port}"
${opts.extra ?? ""}`,
  );
  return { dir, port, url: `http://127.0.0.1:${port}/`, src: join(dir, "server.ts") };
}

describe("hr dev (bun-net, fd strategy)", () => {
  test("edit VERSION v1→v2: the next response comes from the new code", async () => {
    const app = bunNet();
    const hr = h.start(app.dir);
    expect(await waitForBody(app.url, /v1 gen=1 /)).toContain("hello from bun-net v1");
    edit(app.src, 'const VERSION = "v1"', 'const VERSION = "v2"');
    await hr.waitCount(RESTARTED, 1);
    // hr logs "restarted" right after spawning: the very next request must reach v2.
    expect(await body(app.url)).toMatch(/hello from bun-net v2 gen=2 /);
    expect(hr.output).toMatch(/1 file changed \(server\.ts\) · restarted in/);
  }, 20_000);

  test("failed build keeps the last good app answering; fixing it restarts", async () => {
    const app = bunNet({ build: "test ! -f FAIL && echo build-ok" });
    const hr = h.start(app.dir);
    await waitForBody(app.url, /v1 gen=1 /);
    writeFileSync(join(app.dir, "FAIL"), "");
    edit(app.src, 'const VERSION = "v1"', 'const VERSION = "v2"');
    await hr.waitFor(/build `test ! -f FAIL && echo build-ok` failed \(exited with code 1\)/);
    expect(hr.output).toMatch(/gen 1 \(pid \d+\) keeps running; waiting for changes/);
    for (let i = 0; i < 5; i++) expect(await body(app.url)).toMatch(/v1 gen=1 /);
    expect(hr.count(RESTARTED)).toBe(0);
    Bun.spawnSync(["rm", join(app.dir, "FAIL")]);
    writeFileSync(app.src, `${await Bun.file(app.src).text()}\n`); // any save after the fix
    await hr.waitCount(RESTARTED, 1);
    expect(await body(app.url)).toMatch(/v2 gen=2 /);
  }, 20_000);

  test("a burst of 2,000 file writes → exactly one rebuild (default debounce)", async () => {
    const app = bunNet();
    mkdirSync(join(app.dir, "burst"));
    const hr = h.start(app.dir);
    await waitForBody(app.url, /gen=1 /);
    for (let i = 0; i < 2000; i++) writeFileSync(join(app.dir, "burst", `f${i % 200}.ts`), `export const n = ${i};\n`);
    await hr.waitCount(RESTARTED, 1);
    await Bun.sleep(800);
    expect(hr.count(RESTARTED)).toBe(1);
    expect(hr.output).toMatch(/200 files changed/);
    expect(await body(app.url)).toMatch(/gen=2 /);
  }, 20_000);

  test("atomic-rename save → exactly one restart (default debounce)", async () => {
    const app = bunNet();
    const hr = h.start(app.dir);
    await waitForBody(app.url, /gen=1 /);
    const text = (await Bun.file(app.src).text()).replace('const VERSION = "v1"', 'const VERSION = "v2"');
    writeFileSync(join(app.dir, ".server.ts.swp"), "x"); // editor temp file: ignored
    writeFileSync(join(app.dir, "server.ts.tmp123"), text);
    renameSync(join(app.dir, "server.ts.tmp123"), app.src);
    await hr.waitCount(RESTARTED, 1);
    await Bun.sleep(600);
    expect(hr.count(RESTARTED)).toBe(1);
    expect(await body(app.url)).toMatch(/v2 gen=2 /);
  }, 20_000);

  test("ignored paths (node_modules, excluded glob, other extensions) trigger nothing", async () => {
    const app = bunNet();
    mkdirSync(join(app.dir, "node_modules", "dep"), { recursive: true });
    mkdirSync(join(app.dir, "generated"));
    const hr = h.start(app.dir);
    await waitForBody(app.url, /gen=1 /);
    writeFileSync(join(app.dir, "node_modules", "dep", "index.ts"), "x");
    writeFileSync(join(app.dir, "generated", "out.ts"), "x");
    writeFileSync(join(app.dir, "notes.md"), "x");
    await Bun.sleep(700);
    expect(hr.count(RESTARTED)).toBe(0);
    expect(await body(app.url)).toMatch(/gen=1 /);
  }, 20_000);

  test("a change during a build cancels it (its process tree is stopped) and builds again", async () => {
    const app = bunNet({ build: "echo start >> builds.log; sleep 1.5; echo done >> builds.log" });
    const hr = h.start(app.dir);
    await hr.waitCount(STARTED, 1);
    await waitForBody(app.url, /gen=1 /);
    edit(app.src, 'const VERSION = "v1"', 'const VERSION = "v2"');
    await hr.waitFor(() => (Bun.spawnSync(["cat", join(app.dir, "builds.log")]).stdout.toString().match(/start/g) ?? []).length === 2);
    await Bun.sleep(300);
    writeFileSync(join(app.dir, "extra.ts"), "export {};\n");
    await hr.waitFor(/a file changed during the build: cancelling it/);
    await hr.waitCount(RESTARTED, 1);
    await Bun.sleep(300);
    const log = await Bun.file(join(app.dir, "builds.log")).text();
    expect(log.match(/start/g)?.length).toBe(3); // first build, cancelled build, rebuild
    expect(log.match(/done/g)?.length).toBe(2); // the cancelled one never finished
    expect(hr.count(RESTARTED)).toBe(1);
    expect(hr.output).toMatch(/2 files changed \(extra\.ts, server\.ts\)/);
    // the old app served during both builds and the new one has both changes
    expect(await body(app.url)).toMatch(/v2 gen=2 /);
  }, 20_000);

  test("grandchildren: none of the old tree survives a restart, nothing survives Ctrl-C; exit 0", async () => {
    const app = bunNet({ env: 'SPAWN_GRANDCHILD = "1"' });
    const hr = h.start(app.dir);
    await waitForBody(app.url, /gen=1 /);
    const sleepers = () => hr.survivors().filter((pid) => Bun.file(`/proc/${pid}/cmdline`).size >= 0 && readCmd(pid).startsWith("sleep"));
    await hr.waitFor(() => sleepers().length === 1, 5000, "the grandchild");
    const first = sleepers()[0];
    edit(app.src, 'const VERSION = "v1"', 'const VERSION = "v2"');
    await hr.waitCount(RESTARTED, 1);
    await waitForBody(app.url, /v2 gen=2 /);
    await hr.waitFor(() => sleepers().length === 1 && sleepers()[0] !== first, 5000, "the new grandchild");
    expect(sleepers()).not.toContain(first!);
    hr.signal("SIGINT");
    expect(await hr.exited(6000)).toBe(0);
    expect(hr.survivors()).toEqual([]);
    expect(hr.output).toMatch(/^hr stopped$/m);
  }, 20_000);
});

function readCmd(pid: number): string {
  try {
    return require("node:fs").readFileSync(`/proc/${pid}/cmdline`, "latin1").replaceAll("\0", " ");
  } catch {
    return "";
  }
}

describe("hr dev (shell app, strategy none)", () => {
  const script = `echo "app gen=$HR_GENERATION changed=[$(printf %s "$HR_CHANGED_PATHS" | tr '\\n' ',')]"; exec sleep 600`;

  test("HR_GENERATION and HR_CHANGED_PATHS (relative, newline-separated); r+Enter restarts, q+Enter quits", async () => {
    const dir = h.dir(tempProject({ "a.txt": "1", "hr.toml": `[run]\ncmd = ${JSON.stringify(script)}\n[watch]\ndebounce = "100ms"\n` }));
    mkdirSync(join(dir, "sub"));
    const hr = h.start(dir);
    await hr.waitFor(/app gen=1 changed=\[\]/);
    writeFileSync(join(dir, "a.txt"), "2");
    writeFileSync(join(dir, "sub", "b.txt"), "2");
    await hr.waitFor(/app gen=2 changed=\[a\.txt,sub\/b\.txt\]/);
    hr.type("r");
    await hr.waitFor(/app gen=3 changed=\[\]/);
    expect(hr.output).toMatch(/manual restart · restarted in/);
    hr.type("q");
    expect(await hr.exited(5000)).toBe(0);
    expect(hr.survivors()).toEqual([]);
  }, 20_000);

  test("a crash is reported with its exit code and restarted on the next change", async () => {
    const dir = h.dir(tempProject({ "a.txt": "1", "hr.toml": `[run]\ncmd = "echo up gen=$HR_GENERATION; exit 3"\n` }));
    const hr = h.start(dir);
    await hr.waitFor(/app exited with code 3 \(gen 1, pid \d+, after .*\); restarting on the next change/);
    writeFileSync(join(dir, "a.txt"), "2");
    await hr.waitFor(/up gen=2/);
  }, 20_000);

  test("restart_on_crash restarts with backoff", async () => {
    const dir = h.dir(tempProject({ "hr.toml": `[run]\ncmd = "echo up gen=$HR_GENERATION; exit 1"\n[dev]\nrestart_on_crash = true\n` }));
    const hr = h.start(dir);
    await hr.waitFor(/up gen=3/, 8000);
    expect(hr.output).toMatch(/restarting in 500 ms/);
    expect(hr.output).toMatch(/restarting in 1s/);
  }, 20_000);

  test("SIGTERM stops the app with run.stop_signal, SIGKILL after stop_timeout; hr exits 0 in time", async () => {
    const dir = h.dir(
      tempProject({ "hr.toml": `[run]\ncmd = "trap 'echo got-TERM' TERM; echo ready; while :; do sleep 0.1; done"\nstop_timeout = "1s"\n` }),
    );
    const hr = h.start(dir);
    await hr.waitFor(/ready/);
    hr.signal("SIGTERM");
    expect(await hr.exited(10_000)).toBe(0);
    expect(hr.output).toMatch(/got-TERM/);
    expect(hr.survivors()).toEqual([]);
  }, 20_000);

  test("a second Ctrl-C kills at once", async () => {
    const dir = h.dir(tempProject({ "hr.toml": `[run]\ncmd = "trap '' TERM INT; echo ready; while :; do sleep 0.1; done"\nstop_timeout = "30s"\n` }));
    const hr = h.start(dir);
    await hr.waitFor(/ready/);
    hr.signal("SIGINT");
    await hr.waitFor(/Ctrl-C/);
    await Bun.sleep(200);
    hr.signal("SIGINT");
    expect(await hr.exited(10_000)).toBe(0); // stop_timeout is 30 s: only the second Ctrl-C ends it this soon
    expect(hr.survivors()).toEqual([]);
  }, 20_000);
});
