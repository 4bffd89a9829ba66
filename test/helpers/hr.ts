/** The built binary under test, and a way to run it to completion. */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";

export const ROOT = join(import.meta.dir, "..", "..");
export const HR = join(ROOT, "dist", "hr");

/** Builds dist/hr once if a test run starts without it (npm test builds it first). */
export function ensureBinary(): string {
  if (!existsSync(HR)) {
    const build = spawnSync(process.execPath, [join(ROOT, "scripts", "build.ts")], { stdio: "inherit" });
    if (build.status !== 0) throw new Error("building dist/hr failed");
  }
  return HR;
}

export interface RunResult { code: number | null; stdout: string; stderr: string }

/** Runs `hr args…` to completion (bounded by timeoutMs) and returns its output. */
export function runHr(args: string[], options: { cwd?: string; env?: Record<string, string | undefined>; timeoutMs?: number; input?: string } = {}): RunResult {
  const result = spawnSync(ensureBinary(), args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, NO_COLOR: "1", ...options.env },
    encoding: "utf8",
    timeout: options.timeoutMs ?? 20_000,
    input: options.input ?? "",
  });
  return { code: result.status, stdout: result.stdout ?? "", stderr: result.stderr ?? "" };
}
