/**
 * `npm run release` (scripts/release.ts): every target's archive, SHA256SUMS, the binaries' ELF
 * identity, the x64 binaries running here, and the npm channel installed from a registry on
 * 127.0.0.1 that serves only the packed tarballs (npm picks the per-target package by os/cpu/libc).
 * The release is built once per source tree (test/helpers/release.ts) and shared with
 * install.test.ts and arm64.test.ts.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, ROOT } from "../helpers/hr.ts";
import { elfInfo, releaseBinary, releaseDir, RELEASE_TARGETS } from "../helpers/release.ts";

setDefaultTimeout(60_000);

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string; license: string };
const asset = (target: string) => `hr-${pkg.version}-${target}.tar.gz`;
let dir = "";

beforeAll(() => {
  dir = releaseDir();
}, 600_000);

describe("npm run release", () => {
  test("one tar.gz per target holding hr, LICENSE and README.md, and a SHA256SUMS that sha256sum -c accepts", () => {
    const files = readdirSync(dir).filter((f) => !f.startsWith(".") && f !== "bin" && f !== "npm").sort();
    expect(files).toEqual([...RELEASE_TARGETS.map(asset), "SHA256SUMS"].sort());
    for (const target of RELEASE_TARGETS) {
      const list = spawnSync("tar", ["-tvzf", join(dir, asset(target))], { encoding: "utf8" });
      expect(list.status).toBe(0);
      const entries = list.stdout.trim().split("\n").map((l) => l.split(/\s+/));
      expect(entries.map((e) => e.at(-1)).sort()).toEqual(["LICENSE", "README.md", "hr"]);
      const hr = entries.find((e) => e.at(-1) === "hr")!;
      expect(hr[0]).toBe("-rwxr-xr-x");
      expect(hr[1]).toBe("0/0"); // reproducible: numeric owner 0
    }
    const sums = readFileSync(join(dir, "SHA256SUMS"), "utf8");
    expect(sums.trim().split("\n")).toHaveLength(RELEASE_TARGETS.length);
    const check = spawnSync("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir, encoding: "utf8" });
    expect(check.stdout).toContain(`${asset("linux-arm64")}: OK`);
    expect(check.status).toBe(0);
  });

  test("each binary is built for its target: machine and program interpreter (glibc or musl)", () => {
    const want: Record<string, { machine: string; interp: string }> = {
      "linux-x64": { machine: "x86-64", interp: "/lib64/ld-linux-x86-64.so.2" },
      "linux-x64-baseline": { machine: "x86-64", interp: "/lib64/ld-linux-x86-64.so.2" },
      "linux-arm64": { machine: "aarch64", interp: "/lib/ld-linux-aarch64.so.1" },
      "linux-x64-musl": { machine: "x86-64", interp: "/lib/ld-musl-x86_64.so.1" },
      "linux-arm64-musl": { machine: "aarch64", interp: "/lib/ld-musl-aarch64.so.1" },
    };
    for (const target of RELEASE_TARGETS) {
      const bytes = readFileSync(releaseBinary(target));
      expect({ target, ...elfInfo(bytes) }).toEqual({ target, ...want[target]! });
    }
  });

  test("the x64 binaries run here and report the same version and commit as dist/hr", () => {
    const expected = spawnSync(ensureBinary(), ["--version"], { encoding: "utf8" }).stdout.trim();
    expect(expected).toMatch(new RegExp(`^hr ${pkg.version.replaceAll(".", "\\.")} \\(`));
    for (const target of ["linux-x64", "linux-x64-baseline"]) {
      const r = spawnSync(releaseBinary(target), ["--version"], { encoding: "utf8", timeout: 20_000 });
      expect({ target, out: r.stdout.trim(), code: r.status }).toEqual({ target, out: expected, code: 0 });
    }
  });

  test("release binaries are built like dist/hr: a project's bunfig.toml preload does not run inside hr", () => {
    const project = mkdtempSync(join(tmpdir(), "hr-release-autoload-"));
    try {
      writeFileSync(join(project, "bunfig.toml"), 'preload = ["./evil.ts"]\n');
      writeFileSync(join(project, "evil.ts"), `require("node:fs").writeFileSync(${JSON.stringify(join(project, "ran"))}, "x");\n`);
      writeFileSync(join(project, "hr.toml"), '[run]\ncmd = "true"\n');
      const r = spawnSync(releaseBinary("linux-x64"), ["check"], { cwd: project, encoding: "utf8", timeout: 20_000 });
      expect(r.status).toBe(0);
      expect(existsSync(join(project, "ran"))).toBe(false);
    } finally {
      rmSync(project, { recursive: true, force: true });
    }
  });

  test("linux-x64-musl reaches the musl dynamic loader (runs fully where musl's libstdc++ exists)", () => {
    const loader = "/lib/ld-musl-x86_64.so.1";
    if (!existsSync(loader)) {
      console.warn(`skipped: no ${loader} (Debian package musl)`);
      return;
    }
    const r = spawnSync(releaseBinary("linux-x64-musl"), ["--version"], { encoding: "utf8", timeout: 20_000 });
    if (r.status === 0) {
      expect(r.stdout).toMatch(/^hr \S+ \(.*linux-x64\)/);
      return;
    }
    // Debian's musl package has no musl-built libstdc++ (Alpine: apk add libstdc++): the loader
    // starts the binary and stops at exactly that library.
    expect(r.stderr).toContain("Error loading shared library libstdc++.so.6");
    console.warn("linux-x64-musl: loader OK; --version not run (no musl libstdc++.so.6 on this machine)");
  });
});

describe("npm channel", () => {
  let registry: ReturnType<typeof Bun.serve> | undefined;
  let work = "";
  const fetched: string[] = [];

  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), "hr-npm-"));
    const npmDir = join(dir, "npm");
    // A registry that knows only the packed tarballs: packuments built from their package.json.
    const packuments = new Map<string, unknown>();
    const tarballs = new Map<string, string>();
    for (const file of readdirSync(npmDir).filter((f) => f.endsWith(".tgz"))) {
      const path = join(npmDir, file);
      const manifest = JSON.parse(spawnSync("tar", ["-xzOf", path, "package/package.json"], { encoding: "utf8", maxBuffer: 1 << 20 }).stdout);
      const integrity = `sha512-${new Bun.CryptoHasher("sha512").update(readFileSync(path)).digest("base64")}`;
      tarballs.set(`/-/${file}`, path);
      packuments.set(manifest.name, {
        name: manifest.name,
        "dist-tags": { latest: manifest.version },
        versions: { [manifest.version]: { ...manifest, dist: { tarball: `__BASE__/-/${file}`, integrity } } },
      });
    }
    registry = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        const url = new URL(req.url);
        const base = `http://127.0.0.1:${url.port}`;
        const name = decodeURIComponent(url.pathname.slice(1));
        const tarball = tarballs.get(url.pathname);
        if (tarball) {
          fetched.push(url.pathname.slice(3));
          return new Response(Bun.file(tarball));
        }
        const doc = packuments.get(name);
        if (doc) return Response.json(JSON.parse(JSON.stringify(doc).replaceAll("__BASE__", base)));
        return new Response("not found", { status: 404 });
      },
    });
  }, 60_000);

  afterAll(() => {
    registry?.stop(true);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("npm run release packs the main package and one package per target with os/cpu/libc", () => {
    const files = readdirSync(join(dir, "npm")).sort();
    expect(files).toEqual([`hr-reloader-${pkg.version}.tgz`, ...RELEASE_TARGETS.map((t) => `hr-reloader-${t}-${pkg.version}.tgz`)].sort());
    const manifest = (file: string) => JSON.parse(spawnSync("tar", ["-xzOf", join(dir, "npm", file), "package/package.json"], { encoding: "utf8" }).stdout);
    const main = manifest(`hr-reloader-${pkg.version}.tgz`);
    expect(main.bin).toEqual({ hr: "bin/hr.cjs" });
    expect(main.license).toBe(pkg.license);
    expect(Object.keys(main.optionalDependencies).sort()).toEqual(RELEASE_TARGETS.map((t) => `@hr-reloader/${t}`).sort());
    const musl = manifest(`hr-reloader-linux-arm64-musl-${pkg.version}.tgz`);
    expect({ os: musl.os, cpu: musl.cpu, libc: musl.libc }).toEqual({ os: ["linux"], cpu: ["arm64"], libc: ["musl"] });
    const glibc = manifest(`hr-reloader-linux-x64-${pkg.version}.tgz`);
    expect({ os: glibc.os, cpu: glibc.cpu, libc: glibc.libc }).toEqual({ os: ["linux"], cpu: ["x64"], libc: ["glibc"] });
  });

  test("npm install -g from the packed tarballs into a temp prefix: hr --version runs, only this platform's package is fetched", async () => {
    const prefix = join(work, "prefix");
    mkdirSync(prefix);
    const env = {
      ...process.env,
      npm_config_registry: `http://127.0.0.1:${registry!.port}/`,
      npm_config_cache: join(work, "cache"),
      npm_config_userconfig: join(work, "npmrc"),
      npm_config_update_notifier: "false",
      npm_config_audit: "false",
      npm_config_fund: "false",
      npm_config_prefix: prefix,
    };
    // Async: the registry answers from this process's event loop.
    const proc = Bun.spawn(["npm", "install", "-g", `hr-reloader@${pkg.version}`], { env, stdout: "pipe", stderr: "pipe", timeout: 180_000 });
    const [out, err, status] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    expect(err + out).not.toContain("ERR!");
    expect(status).toBe(0);
    const hr = join(prefix, "bin", "hr");
    const version = spawnSync(hr, ["--version"], { encoding: "utf8", timeout: 20_000 });
    expect(version.status).toBe(0);
    expect(version.stdout).toMatch(new RegExp(`^hr ${pkg.version.replaceAll(".", "\\.")} \\(.*linux-x64\\)`));
    // The launcher passes the exit status and stderr through.
    const bad = spawnSync(hr, ["no-such-command"], { encoding: "utf8", timeout: 20_000 });
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain("no-such-command");
    // npm chose by os/cpu/libc: x64 glibc packages only (baseline rides along; the launcher picks by AVX2).
    expect(fetched.filter((f) => f.includes("arm64") || f.includes("musl"))).toEqual([]);
    expect(fetched).toContain(`hr-reloader-linux-x64-${pkg.version}.tgz`);
    const scope = join(prefix, "lib", "node_modules", "hr-reloader", "node_modules", "@hr-reloader");
    expect(readdirSync(scope).sort()).toEqual(["linux-x64", "linux-x64-baseline"]);
    expect(statSync(join(scope, "linux-x64", "bin", "hr")).mode & 0o111).toBeGreaterThan(0);
  }, 240_000);
});
