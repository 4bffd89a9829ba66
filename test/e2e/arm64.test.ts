/**
 * The linux-arm64 release binary, run under qemu-user (Debian qemu-user-static): the binary's ELF
 * interpreter is /lib/ld-linux-aarch64.so.1, which qemu finds under -L /usr/aarch64-linux-gnu
 * (libc6-arm64-cross); its libc FFI (sockets, prctl) runs through qemu's syscall translation.
 * hr itself is emulated; the apps it starts (/bin/sh, node) are x86-64 and run natively (qemu's
 * execve hands a foreign binary back to the kernel when no binfmt handler is registered).
 * Covered: --version, check, init --yes, one hr dev restart, one hr serve reload with the fd strategy.
 * Not covered: the arm64-musl build (no aarch64 musl loader on Debian; its ELF identity is checked in
 * release.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/hr.ts";
import { get } from "../helpers/http.ts";
import { DevHarness, tempProject } from "../helpers/dev.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";
import { releaseBinary } from "../helpers/release.ts";

setDefaultTimeout(180_000); // emulation is ~5-10x slower, more on a loaded machine

const QEMU = Bun.which("qemu-aarch64-static") ?? Bun.which("qemu-aarch64");
const SYSROOT = "/usr/aarch64-linux-gnu";
const missing = !QEMU ? "qemu-aarch64-static (Debian qemu-user-static)" : !existsSync(join(SYSROOT, "lib", "ld-linux-aarch64.so.1")) ? `${SYSROOT}/lib/ld-linux-aarch64.so.1 (Debian libc6-arm64-cross)` : "";
if (missing) console.warn(`arm64 tests skipped: no ${missing}; scripts/ci-deps.sh installs it`);
const suite = missing ? describe.skip : describe;

let hr: string[] = [];
const figures: string[] = [];
const dev = new DevHarness();

beforeAll(() => {
  if (!missing) hr = [QEMU!, "-L", SYSROOT, releaseBinary("linux-arm64")];
}, 600_000);
afterEach(async () => {
  await dev.cleanup();
  expect(await cleanupServes()).toEqual([]);
});
afterAll(() => {
  if (figures.length) console.log(`arm64 under qemu: ${figures.join("; ")}`);
});

async function run(args: string[], cwd = ROOT) {
  const t0 = performance.now();
  const p = Bun.spawn([...hr, ...args], { cwd, env: { ...process.env, NO_COLOR: "1" }, stdout: "pipe", stderr: "pipe", stdin: "ignore", timeout: 60_000 });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code, ms: Math.round(performance.now() - t0) };
}

suite("linux-arm64 release binary under qemu-user", () => {
  test("--version, check and init --yes", async () => {
    const v = await run(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout).toMatch(/^hr \S+ \(.*linux-arm64\)/);
    figures.push(`--version ${v.ms} ms`);

    const project = tempProject({ "server.mjs": 'import http from "node:http";\nhttp.createServer((q, s) => s.end("ok")).listen(process.env.PORT ?? 8080);\n', "package.json": '{ "name": "app", "scripts": { "start": "node server.mjs" } }\n' });
    try {
      const init = await run(["init", "--yes"], project);
      expect(init.code).toBe(0);
      expect(readFileSync(join(project, "hr.toml"), "utf8")).toContain("server.mjs");
      figures.push(`init --yes ${init.ms} ms`);
      const check = await run(["check"], project);
      expect(check.stdout + check.stderr).toContain("ok");
      expect(check.code).toBe(0);
      writeFileSync(join(project, "hr.toml"), '[run]\ncmd = "true"\n[serve]\nworkers = "two"\n');
      const bad = await run(["check"], project);
      expect(bad.code).toBe(1);
      expect(bad.stdout + bad.stderr).toContain("serve.workers");
      figures.push(`check ${check.ms} ms`);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  test("hr dev restarts the app after a change", async () => {
    const dir = dev.dir(tempProject({
      "hr.toml": '[run]\ncmd = "echo app-started $(cat version.txt); exec sleep 600"\n[watch]\npaths = ["."]\ninclude_ext = ["txt"]\n',
      "version.txt": "v1\n",
    }));
    const t0 = performance.now();
    const run = dev.start(dir, [], {}, hr);
    await run.waitFor(/app-started v1/, 60_000);
    figures.push(`dev start→app ${Math.round(performance.now() - t0)} ms`);
    const t1 = performance.now();
    writeFileSync(join(dir, "version.txt"), "v2\n");
    await run.waitFor(/app-started v2/, 60_000);
    figures.push(`dev change→restarted ${Math.round(performance.now() - t1)} ms`);
    run.signal("SIGTERM");
    expect(await run.exited(20_000)).toBe(0);
  });

  test("hr serve reloads with the fd strategy: a new worker on the same socket", async () => {
    const t0 = performance.now();
    const h = await startServe({
      binary: hr.at(-1)!,
      wrap: hr.slice(0, -1),
      toml: `[run]\ncmd = ["node", "${join(ROOT, "test", "fixtures", "sockets", "serve.cjs")}", "fd"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:0"\n[serve]\nstrategy = "fd"\nready = { type = "log", pattern = "listening" }\ndrain_timeout = "5s"\n`,
      waitReady: false, // emulated start-up is slow on a loaded machine: wait longer than startServe would
    });
    await h.waitForLog(/serving gen1/, 80_000);
    h.port = Number((await h.status()).sockets.match(/:(\d+)(,|$)/)?.[1]);
    figures.push(`serve start→ready ${Math.round(performance.now() - t0)} ms`);
    const before = await get(`http://127.0.0.1:${h.port}/`);
    expect(before.status).toBe(200);
    const reload = await h.reload();
    expect(reload.code).toBe(0);
    figures.push(`serve reload ${reload.ms} ms`);
    const after = await get(`http://127.0.0.1:${h.port}/`);
    expect(after.status).toBe(200);
    expect(after.body).not.toBe(before.body); // another worker pid answers on the same port
    const st = await h.status();
    expect(st.generation).toBe(2);
    expect(await h.stop("SIGTERM")).toBe(0);
  });
});
