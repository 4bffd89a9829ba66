/**
 * install.sh against the release (test/helpers/release.ts) served by an HTTP server on 127.0.0.1
 * in GitHub's layout (BASE/download/vVERSION/ASSET, BASE/latest/download/ASSET), run by dash (POSIX
 * sh). Refusals are provoked with real conditions where this machine allows (a tampered archive, a
 * PATH without curl and wget, an unreleased version) and with a stub `uname`/`getconf`/`ldd` first on
 * PATH where it cannot (macOS, Windows, riscv64, musl).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "../helpers/hr.ts";
import { releaseDir } from "../helpers/release.ts";

setDefaultTimeout(60_000);

const INSTALL_SH = join(ROOT, "install.sh");
const version = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
let dir = "";
let work = "";
let server: ReturnType<typeof Bun.serve> | undefined;
let requests: string[] = [];
let base = "";

beforeAll(() => {
  dir = releaseDir();
  work = mkdtempSync(join(tmpdir(), "hr-install-"));
  server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch(req) {
      const path = new URL(req.url).pathname;
      requests.push(path);
      // /tampered/…: the x64 archive's bytes are replaced by another archive's.
      const m = path.match(/^\/(ok|tampered)\/(?:download\/v([^/]+)|latest\/download)\/([^/]+)$/);
      if (!m || (m[2] !== undefined && m[2] !== version)) return new Response("Not Found", { status: 404 });
      let file = m[3]!;
      if (m[1] === "tampered" && file.endsWith("-linux-x64.tar.gz")) file = file.replace("-linux-x64.", "-linux-arm64.");
      const path2 = join(dir, file);
      if (file.includes("/") || !existsSync(path2)) return new Response("Not Found", { status: 404 });
      return new Response(Bun.file(path2));
    },
  });
  base = `http://127.0.0.1:${server.port}`;
}, 600_000);

afterAll(() => {
  server?.stop(true);
  if (work) rmSync(work, { recursive: true, force: true });
});

let seq = 0;
/** A fresh install dir and HOME per case. */
function sandbox() {
  const d = join(work, `case-${seq++}`);
  mkdirSync(join(d, "home"), { recursive: true });
  return { home: join(d, "home"), bin: join(d, "bin"), stubs: join(d, "stubs") };
}

/** Executables that print or exit as told, first on PATH. */
function stub(stubs: string, name: string, script: string) {
  mkdirSync(stubs, { recursive: true });
  writeFileSync(join(stubs, name), `#!/bin/sh\n${script}\n`);
  chmodSync(join(stubs, name), 0o755);
}

async function install(env: Record<string, string | undefined>, path = process.env.PATH ?? "/usr/bin:/bin") {
  requests = [];
  const proc = Bun.spawn(["/bin/sh", INSTALL_SH], {
    env: { PATH: path, ...env },
    stdout: "pipe",
    stderr: "pipe",
    timeout: 120_000,
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { stdout, stderr, code };
}

describe("install.sh", () => {
  test("is POSIX sh and clean under shellcheck", () => {
    const shellcheck = Bun.which("shellcheck");
    if (!shellcheck) throw new Error("shellcheck is not installed (scripts/ci-deps.sh installs it)");
    const r = Bun.spawnSync([shellcheck, "-s", "sh", INSTALL_SH], { stdout: "pipe", stderr: "pipe" });
    expect(r.stdout.toString()).toBe("");
    expect(r.exitCode).toBe(0);
    // The default base URL is the repository in package.json.
    const repo = (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { repository: { url: string } }).repository.url;
    const url = repo.replace(/^git\+/, "").replace(/\.git$/, "");
    expect(readFileSync(INSTALL_SH, "utf8")).toContain(`HR_INSTALL_BASE_URL:-${url}/releases}`);
  });

  test("pinned version with curl: verifies, installs to HR_INSTALL_DIR, says it is not on PATH, and the binary runs", async () => {
    const s = sandbox();
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_VERSION: `v${version}`, HR_INSTALL_DIR: s.bin });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`downloading ${base}/ok/download/v${version}/hr-${version}-linux-x64.tar.gz`);
    expect(r.stdout).toMatch(/verified sha256 [0-9a-f]{64}/);
    expect(r.stdout).toContain(`installed hr ${version} (`);
    expect(r.stdout).toContain(`(linux-x64) to ${s.bin}/hr`);
    expect(r.stdout).toContain(`${s.bin} is not on your PATH`);
    const v = Bun.spawnSync([join(s.bin, "hr"), "--version"]);
    expect(v.exitCode).toBe(0);
    expect(v.stdout.toString()).toStartWith(`hr ${version} (`);
    expect(readdirSync(s.bin)).toEqual(["hr"]);
  });

  test("latest with wget into ~/.local/bin already on PATH", async () => {
    const s = sandbox();
    const wgetOnly = join(s.stubs, "..", "nocurl");
    mkdirSync(wgetOnly, { recursive: true });
    // PATH without curl: link every tool of /usr/bin and /bin except curl.
    for (const d of ["/usr/bin", "/bin"]) {
      for (const name of readdirSync(d)) {
        if (name === "curl" || existsSync(join(wgetOnly, name))) continue;
        try {
          symlinkSync(join(d, name), join(wgetOnly, name));
        } catch {}
      }
    }
    const bin = join(s.home, ".local", "bin");
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok/` }, `${bin}:${wgetOnly}`);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(requests).toEqual(["/ok/latest/download/SHA256SUMS", `/ok/latest/download/hr-${version}-linux-x64.tar.gz`]);
    expect(r.stdout).toContain(`to ${bin}/hr`);
    expect(r.stdout).toContain(`${bin} is on your PATH`);
    expect(Bun.spawnSync([join(bin, "hr"), "--version"]).exitCode).toBe(0);
  });

  test("refuses a checksum mismatch and installs nothing", async () => {
    const s = sandbox();
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/tampered`, HR_VERSION: version, HR_INSTALL_DIR: s.bin });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`checksum mismatch for hr-${version}-linux-x64.tar.gz`);
    expect(r.stderr).toContain("Nothing was installed");
    expect(existsSync(s.bin)).toBe(false);
  });

  test("refuses an unreleased version", async () => {
    const s = sandbox();
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_VERSION: "9.9.9", HR_INSTALL_DIR: s.bin });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("could not download");
    expect(r.stderr).toContain("is 9.9.9 a released version?");
    expect(existsSync(s.bin)).toBe(false);
  });

  test("refuses without curl or wget", async () => {
    const s = sandbox();
    const tools = join(s.stubs, "..", "tools");
    mkdirSync(tools, { recursive: true });
    for (const name of ["uname", "getconf", "grep", "ls", "head", "cut", "tar", "gzip", "sha256sum", "mktemp", "rm", "mkdir", "cp", "mv", "chmod"]) {
      const found = ["/usr/bin", "/bin"].map((d) => join(d, name)).find((p) => existsSync(p));
      if (found) symlinkSync(found, join(tools, name));
    }
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_INSTALL_DIR: s.bin }, tools);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("neither curl nor wget is installed");
    expect(requests).toEqual([]);
    expect(existsSync(s.bin)).toBe(false);
  });

  test("refuses macOS and Windows (hr is Linux-only) and an unknown CPU, before downloading anything", async () => {
    const cases: [string, string, RegExp][] = [
      ["Darwin", "arm64", /Linux-only today; there is no macOS build/],
      ["MINGW64_NT-10.0", "x86_64", /Linux-only today; there is no Windows build\. On Windows, use WSL 2/],
      ["Linux", "riscv64", /no hr build for the riscv64 CPU architecture/],
    ];
    for (const [os, arch, message] of cases) {
      const s = sandbox();
      stub(s.stubs, "uname", `case "$1" in -s) echo ${os} ;; -m) echo ${arch} ;; *) exec /bin/uname "$@" ;; esac`);
      const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_INSTALL_DIR: s.bin }, `${s.stubs}:${process.env.PATH}`);
      expect({ os, code: r.code === 0 ? 0 : "non-zero", stderr: r.stderr }).toEqual({ os, code: "non-zero", stderr: expect.stringMatching(message) });
      expect(requests).toEqual([]);
      expect(existsSync(s.bin)).toBe(false);
    }
  });

  test("detects musl (no glibc, ldd says musl) and installs the musl build", async () => {
    const s = sandbox();
    stub(s.stubs, "getconf", "exit 1");
    stub(s.stubs, "ldd", 'echo "musl libc (x86_64)"; echo "Version 1.2.4"; exit 1');
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_VERSION: version, HR_INSTALL_DIR: s.bin }, `${s.stubs}:${process.env.PATH}`);
    expect(r.code).toBe(0);
    expect(requests).toContain(`/ok/download/v${version}/hr-${version}-linux-x64-musl.tar.gz`);
    expect(r.stdout).toContain("(linux-x64-musl) to");
    expect(r.stdout).toContain("apk add libstdc++");
    expect(existsSync(join(s.bin, "hr"))).toBe(true);
  });

  test("HR_INSTALL_TARGET picks a build; an unknown one is refused", async () => {
    const s = sandbox();
    const bad = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_INSTALL_TARGET: "linux-mips" });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain("HR_INSTALL_TARGET=linux-mips is not a target");
    const r = await install({ HOME: s.home, HR_INSTALL_BASE_URL: `${base}/ok`, HR_INSTALL_TARGET: "linux-x64-baseline", HR_INSTALL_DIR: s.bin });
    expect(r.code).toBe(0);
    expect(requests).toContain(`/ok/latest/download/hr-${version}-linux-x64-baseline.tar.gz`);
    expect(Bun.spawnSync([join(s.bin, "hr"), "--version"]).exitCode).toBe(0);
  });
});
