/**
 * hr dev and the file system under it (issue 13): hr's own output redirected into
 * the watched tree never triggers a restart; a renamed project directory is a
 * clear message and exit 1 (not a spawn error naming /usr/bin/setpriv); a watched
 * directory that is deleted and created again is watched again, and hr says so.
 */
import { afterEach, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { BIN_DIR, taggedPids } from "../helpers/dev.ts";

setDefaultTimeout(30_000);
beforeAll(() => void ensureBinary());

const runs: { tag: string; dirs: string[] }[] = [];
afterEach(async () => {
  const left: number[] = [];
  for (const r of runs.splice(0)) {
    for (let i = 0; i < 50 && taggedPids(r.tag).length; i++) {
      for (const p of taggedPids(r.tag)) {
        try {
          process.kill(p, "SIGKILL");
        } catch {}
      }
      await Bun.sleep(20);
    }
    left.push(...taggedPids(r.tag));
    for (const d of r.dirs) rmSync(d, { recursive: true, force: true });
  }
  expect(left).toEqual([]);
});

/** Starts `hr dev` in `dir` with stdout+stderr going to `logFile` (opened here, like a shell's `>`). */
function devTo(dir: string, logFile: string, extraDirs: string[] = []) {
  const tag = `dfs-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  runs.push({ tag, dirs: [dir, ...extraDirs] });
  const fd = openSync(logFile, "w");
  const proc = Bun.spawn([ensureBinary(), "dev"], {
    cwd: dir,
    env: { ...process.env, PATH: `${BIN_DIR}:${process.env.PATH}`, NO_COLOR: "1", HR_TEST_TAG: tag },
    stdio: ["ignore", fd, fd],
  });
  closeSync(fd);
  const log = () => readFileSync(logFile, "utf8");
  const count = (re: RegExp) => log().split("\n").filter((l) => re.test(l)).length;
  const waitFor = async (re: RegExp, timeoutMs = 10_000) => {
    const until = Date.now() + timeoutMs;
    while (!re.test(log())) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${re}; log:\n${log()}`);
      await Bun.sleep(25);
    }
  };
  return { proc, log, count, waitFor };
}

const RESTARTED = /^hr .*restarted in/;

test("`hr dev > dev.log` inside a tree watched without filters does not restart on its own log", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hr-devfs-"));
  // The app talks a lot; its output goes to hr's stdout, i.e. into dev.log in the watched tree.
  writeFileSync(join(dir, "app.sh"), `i=0; while :; do echo "app v1 line $i"; i=$((i+1)); sleep 0.05; done\n`);
  writeFileSync(join(dir, "hr.toml"), `[run]\ncmd = ["sh", "app.sh"]\n[watch]\npaths = ["."]\ndebounce = "20ms"\n`);
  const hr = devTo(dir, join(dir, "dev.log"));
  await hr.waitFor(/app v1 line 5/);
  await Bun.sleep(1000);
  expect(hr.count(RESTARTED)).toBe(0); // before: a restart for every batch of its own output
  writeFileSync(join(dir, "app.sh"), `i=0; while :; do echo "app v2 line $i"; i=$((i+1)); sleep 0.05; done\n`);
  await hr.waitFor(/app v2 line 5/);
  await Bun.sleep(1000);
  expect(hr.count(RESTARTED)).toBe(1);
  hr.proc.kill("SIGTERM");
  expect(await hr.proc.exited).toBe(0);
});

test("a renamed project directory: a clear message and exit 1, no spawn error naming setpriv", async () => {
  const parent = mkdtempSync(join(tmpdir(), "hr-devfs-"));
  const dir = join(parent, "project");
  mkdirSync(join(dir, "src"), { recursive: true });
  writeFileSync(join(dir, "src", "app.sh"), `echo app v1; sleep 60\n`);
  writeFileSync(join(dir, "hr.toml"), `[build]\ncmd = "cp src/app.sh app.built"\n[run]\ncmd = ["sh", "app.built"]\n[watch]\npaths = ["src"]\n`);
  const hr = devTo(dir, join(parent, "dev.log"), [parent]);
  await hr.waitFor(/app v1/);
  renameSync(dir, join(parent, "moved"));
  writeFileSync(join(parent, "moved", "src", "app.sh"), `echo app v2; sleep 60\n`);
  const code = await Promise.race([hr.proc.exited, Bun.sleep(10_000).then(() => "still running")]);
  expect(hr.log()).toContain(`the project directory ${dir} no longer exists (renamed or deleted): hr dev cannot build or run the app`);
  expect(hr.log()).not.toContain("setpriv");
  expect(code).toBe(1);
});

test("a watched directory deleted and created again is watched again, and hr says so", async () => {
  const dir = mkdtempSync(join(tmpdir(), "hr-devfs-"));
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "app.sh"), `echo app v1; sleep 60\n`);
  writeFileSync(join(dir, "hr.toml"), `[run]\ncmd = ["sh", "src/app.sh"]\n[watch]\npaths = ["src"]\n`);
  const logFile = join(tmpdir(), `hr-devfs-${process.pid}-${Date.now()}.log`);
  const hr = devTo(dir, logFile, [logFile]);
  await hr.waitFor(/app v1/);
  rmSync(join(dir, "src"), { recursive: true });
  await hr.waitFor(/watch: src was deleted: it is watched again as soon as it is re-created/);
  mkdirSync(join(dir, "src"));
  writeFileSync(join(dir, "src", "app.sh"), `echo app v2; sleep 60\n`);
  await hr.waitFor(/watch: src is back: watching it again/);
  await hr.waitFor(/app v2/);
  // Still watched after that: a later edit restarts the app again (before: never seen again).
  writeFileSync(join(dir, "src", "app.sh"), `echo app v3; sleep 60\n`);
  await hr.waitFor(/app v3/);
  hr.proc.kill("SIGTERM");
  expect(await hr.proc.exited).toBe(0);
});
