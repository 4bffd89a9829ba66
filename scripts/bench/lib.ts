/** Shared by the benchmark scripts: peer tools fetched on demand, never project dependencies. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** A peer's CLI from npm, installed once into a temp dir (`npm i --no-save`) unless it is on PATH. */
export function npmPeerBin(pkg: string, bin = pkg): string {
  const found = Bun.which(bin);
  if (found) return found;
  const dir = join(tmpdir(), `hr-bench-${pkg}`);
  const path = join(dir, "node_modules", ".bin", bin);
  if (!existsSync(path)) {
    mkdirSync(dir, { recursive: true });
    const r = spawnSync("npm", ["i", "--no-save", "--no-audit", "--no-fund", pkg], { cwd: dir, stdio: "inherit", timeout: 300_000 });
    if (r.status !== 0) throw new Error(`npm i ${pkg} failed`);
  }
  return path;
}
