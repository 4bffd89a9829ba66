/**
 * The release build under test: `npm run release -- --fast` (scripts/release.ts: the same files,
 * gzip -1 instead of -6 to save ~1 min of CPU) run once per source tree and shared by every test file that needs it (release, install.sh, npm channel, arm64 under qemu).
 * Cached in $TMPDIR/hr-release-<key>, the key hashing the tracked files' contents as they are now
 * (so an edit rebuilds, a second test run on the same tree does not); built into a temp dir and
 * renamed, so a half-built release is never used. A cache is touched when used; caches of other
 * trees unused for 2 hours are removed (each is ~1 GB with its extracted binaries).
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./hr.ts";

/** What the release is built from; a test edit does not rebuild it. */
const INPUTS = ["src", "scripts/build.ts", "scripts/release.ts", "npm", "package.json", "package-lock.json", "LICENSE", "README.md"];

function treeKey(): string {
  const git = (args: string[]) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8", maxBuffer: 64 << 20 }).stdout ?? "";
  const hasher = new Bun.CryptoHasher("sha256");
  hasher.update(git(["rev-parse", "HEAD"])); // the commit is baked into the binaries
  hasher.update(git(["status", "--porcelain", "--untracked-files=no"]) ? "dirty" : "clean");
  hasher.update(git(["diff", "HEAD", "--binary", "--", ...INPUTS]));
  // Untracked, not ignored files (new sources not yet added) count too.
  for (const file of git(["ls-files", "--others", "--exclude-standard", "--", ...INPUTS]).split("\n").filter(Boolean)) {
    hasher.update(file);
    try {
      hasher.update(readFileSync(join(ROOT, file)));
    } catch {}
  }
  return hasher.digest("hex").slice(0, 16);
}

let cached: string | undefined;

/** dist/release for the current tree: built now (about a minute) unless a cached copy exists. */
export function releaseDir(): string {
  if (cached) return cached;
  const key = treeKey();
  const dir = join(tmpdir(), `hr-release-${key}`);
  if (!existsSync(join(dir, "SHA256SUMS"))) {
    const building = mkdtempSync(join(tmpdir(), `hr-release-building-${key}-`));
    const started = performance.now();
    const r = spawnSync(process.execPath, [join(ROOT, "scripts", "release.ts"), "--fast", "--out", building], { cwd: ROOT, encoding: "utf8", timeout: 600_000 });
    if (r.status !== 0) {
      rmSync(building, { recursive: true, force: true });
      throw new Error(`scripts/release.ts failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
    }
    process.stderr.write(`[release] built in ${((performance.now() - started) / 1000).toFixed(1)} s\n${r.stdout}`);
    try {
      renameSync(building, dir);
    } catch {
      rmSync(building, { recursive: true, force: true }); // another run finished first: use its copy
    }
    // Keep the disk small: drop other trees' releases unused for 2 hours (another run may be using a newer one).
    for (const name of readdirSync(tmpdir())) {
      if (!name.startsWith("hr-release-") || name === `hr-release-${key}`) continue;
      const path = join(tmpdir(), name);
      try {
        if (Date.now() - statSync(path).mtimeMs > 2 * 3600_000) rmSync(path, { recursive: true, force: true });
      } catch {}
    }
  } else {
    const now = new Date();
    utimesSync(dir, now, now);
  }
  cached = dir;
  return dir;
}

/** The `hr` binary of one target's archive, extracted once next to the cached release. */
export function releaseBinary(target: string): string {
  const dir = releaseDir();
  const out = join(dir, "bin", target);
  if (!existsSync(join(out, "hr"))) {
    const asset = readdirSync(dir).find((f) => f.endsWith(`-${target}.tar.gz`));
    if (!asset) throw new Error(`no ${target} archive in ${dir}`);
    const tmp = mkdtempSync(join(dir, ".x-"));
    const r = spawnSync("tar", ["-xzf", join(dir, asset), "-C", tmp, "hr"], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`tar -xzf ${asset}: ${r.stderr}`);
    mkdirSync(join(dir, "bin"), { recursive: true });
    renameSync(tmp, out);
  }
  return join(out, "hr");
}

export const RELEASE_TARGETS = ["linux-x64", "linux-x64-baseline", "linux-arm64", "linux-x64-musl", "linux-arm64-musl"] as const;

/** The ELF facts that decide where a binary runs: machine and program interpreter. */
export function elfInfo(bytes: Uint8Array): { machine: "x86-64" | "aarch64" | string; interp: string | null } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0) !== 0x7f454c46) throw new Error("not an ELF file");
  const e_machine = view.getUint16(18, true);
  const phoff = Number(view.getBigUint64(32, true));
  const phentsize = view.getUint16(54, true);
  const phnum = view.getUint16(56, true);
  let interp: string | null = null;
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (view.getUint32(at, true) !== 3) continue; // PT_INTERP
    const offset = Number(view.getBigUint64(at + 8, true));
    const size = Number(view.getBigUint64(at + 32, true));
    interp = new TextDecoder().decode(bytes.subarray(offset, offset + size)).replace(/\0+$/, "");
  }
  return { machine: e_machine === 62 ? "x86-64" : e_machine === 183 ? "aarch64" : `machine ${e_machine}`, interp };
}
