/**
 * The hr binary must not load what a project directory offers to a Bun executable:
 * `bun build --compile` binaries autoload the cwd's bunfig.toml (whose `preload` runs
 * code inside hr) and .env (whose variables enter hr's own environment, so its secrets
 * reach every app and its HR_* lines change hr's configuration), unless built without.
 *
 * Every command runs the already-built dist/hr in a directory holding a hostile
 * bunfig.toml (a preload that leaves a marker file), .env (a secret and
 * HR_SERVE_WORKERS=9), tsconfig.json and package.json, with an app that writes its
 * environment to a file outside the project. Asserted: no marker, no secret in the app's
 * environment, one worker (not nine).
 */
import { afterEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runHr } from "../helpers/hr.ts";
import { DevHarness } from "../helpers/dev.ts";
import { cleanupServes, startServe, testEnv } from "../helpers/serve.ts";

const MARKER = "PRELOAD_RAN";
const SECRET = "hunter2-from-dotenv";

/** The hostile files; the preload writes MARKER into the cwd of whatever loads it. */
const HOSTILE: Record<string, string> = {
  "bunfig.toml": 'preload = ["./preload.ts"]\n[run]\nbun = true\n',
  "preload.ts": `require("node:fs").writeFileSync(process.cwd() + "/${MARKER}", String(process.pid));\nconsole.log("hostile preload ran");\n`,
  ".env": `LEAKED_SECRET=${SECRET}\nHR_SERVE_WORKERS=9\nHR_LOG_FORMAT=json\n`,
  "tsconfig.json": JSON.stringify({ compilerOptions: { paths: { "*": ["./preload.ts"] } } }),
  "package.json": JSON.stringify({ name: "hostile", type: "commonjs", main: "preload.ts", imports: { "#x": "./preload.ts" } }),
};

const scratch: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  scratch.push(dir);
  return dir;
}
function hostileProject(extra: Record<string, string> = {}): string {
  const dir = tempDir("hr-hostile-");
  for (const [name, text] of Object.entries({ ...HOSTILE, ...extra })) writeFileSync(join(dir, name), text);
  return dir;
}

/** hr.toml whose app (not a Bun process: Bun itself would rightly read the project's bunfig) dumps its environment. */
function appToml(envOut: string): string {
  return `[run]\ncmd = "env > '${envOut}'; exec sleep 60"\n[serve]\nready = { type = "delay", delay = "100ms" }\n`;
}

async function waitForFile(path: string, timeoutMs = 15_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (existsSync(path)) {
      const text = readFileSync(path, "utf8");
      if (text.includes("PATH=")) return text;
    }
    await Bun.sleep(20);
  }
  throw new Error(`${path} was not written within ${timeoutMs} ms`);
}

const harness = new DevHarness();
afterEach(async () => {
  await harness.cleanup();
  expect(await cleanupServes()).toEqual([]);
  for (const dir of scratch.splice(0)) rmSync(dir, { recursive: true, force: true });
});

describe("the hr binary ignores a project's bunfig.toml, .env, tsconfig.json and package.json", () => {
  test("--version, check, schema, status, init --yes", () => {
    const outside = tempDir("hr-hostile-out-");
    const dir = hostileProject({ "hr.toml": appToml(join(outside, "env")) });
    const env = testEnv({ XDG_RUNTIME_DIR: join(outside, "run") });

    const version = runHr(["--version"], { cwd: dir, env });
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^hr \d/);

    const check = runHr(["check"], { cwd: dir, env });
    expect(check.code).toBe(0);
    expect(check.stdout).toMatch(/^ok/);

    const schema = runHr(["schema"], { cwd: dir, env });
    expect(schema.code).toBe(0);
    expect(() => JSON.parse(schema.stdout)).not.toThrow();

    const status = runHr(["status"], { cwd: dir, env });
    expect(status.code).not.toBe(0); // no master runs here; what matters is what did not run
    expect(status.stderr).not.toContain("hostile preload ran");

    for (const r of [version, check, schema, status]) expect(r.stdout + r.stderr).not.toContain("hostile preload ran");
    expect(existsSync(join(dir, MARKER))).toBe(false);

    const fresh = hostileProject();
    const init = runHr(["init", "--yes"], { cwd: fresh, env });
    expect(init.stdout + init.stderr).not.toContain("hostile preload ran");
    expect(existsSync(join(fresh, MARKER))).toBe(false);
    if (existsSync(join(fresh, "hr.toml"))) {
      const written = readFileSync(join(fresh, "hr.toml"), "utf8");
      expect(written).not.toContain(SECRET);
      expect(written).not.toMatch(/workers\s*=\s*9/);
    }
  });

  test("hr dev: the app's environment has no .env secret, and no preload ran", async () => {
    const outside = tempDir("hr-hostile-out-");
    const envOut = join(outside, "env");
    const dir = hostileProject({ "hr.toml": appToml(envOut) });
    const run = harness.start(dir, [], { XDG_RUNTIME_DIR: join(outside, "run") });
    const appEnv = await waitForFile(envOut);
    expect(appEnv).not.toContain(SECRET);
    expect(appEnv).not.toContain("HR_SERVE_WORKERS=9");
    expect(run.output).not.toContain("hostile preload ran");
    expect(run.output).not.toMatch(/^\{/m); // HR_LOG_FORMAT=json from .env did not switch hr's log format
    expect(existsSync(join(dir, MARKER))).toBe(false);
  });

  test("hr serve: one worker (HR_SERVE_WORKERS=9 in .env is not read), no secret, no preload", async () => {
    const outside = tempDir("hr-hostile-out-");
    const envOut = join(outside, "env");
    const h = await startServe({ toml: appToml(envOut), files: HOSTILE });
    const appEnv = await waitForFile(envOut);
    expect(appEnv).not.toContain(SECRET);
    const st = await h.status();
    const live = st.generations.find((g) => g.generation === st.generation);
    expect(live?.workers.length).toBe(1);
    expect(h.logs()).not.toContain("hostile preload ran");
    expect(h.logs()).not.toMatch(/^\{/m);
    expect(existsSync(join(h.dir, MARKER))).toBe(false);
    expect(await h.stop()).toBe(0);
  });
});
