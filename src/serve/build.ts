/** [build] for `hr serve` reloads (serve.build = true): the shared build runner, output prefixed "build". */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { formatMs } from "../config/duration.ts";
import { BuildRun, buildSteps, describeStep } from "../process/build.ts";
import { describe as describeCommand } from "../process/command.ts";

export interface BuildResult {
  ok: boolean;
  ms: number;
  error?: string;
  /** The last output lines, for the failure report. */
  output: string[];
}

const OUTPUT_LINES = 20;

export async function runBuild(config: Config, root: string, env: Record<string, string | undefined>, log: Logger, signal?: AbortSignal): Promise<BuildResult> {
  const output: string[] = [];
  const steps = buildSteps(config.build);
  log.info(`build: ${steps.map(describeStep).join(" → ")}`, { event: "build", steps: steps.map((s) => s.name) });
  const run = new BuildRun({
    steps,
    cwd: root,
    env: { ...env, ...config.build.env },
    onLine(stream, line) {
      output.push(line);
      if (output.length > OUTPUT_LINES) output.shift();
      log.appLine("build", stream, line);
    },
  });
  const cancel = () => void run.cancel({ graceMs: 2000 });
  signal?.addEventListener("abort", cancel, { once: true });
  const result = await run.result;
  signal?.removeEventListener("abort", cancel);
  const ms = Math.round(result.ms);
  switch (result.kind) {
    case "ok":
      return { ok: true, ms, output };
    case "cancelled":
      return { ok: false, ms, error: "build cancelled (hr is shutting down)", output };
    case "failed":
      return { ok: false, ms, error: `build failed (${describeStep(result.step)} ${result.exit.describe()})`, output };
    case "error":
      return { ok: false, ms, error: `build failed (${describeStep(result.step)} could not start: ${result.message})`, output };
  }
}

/**
 * serve.build = true: the first generation, like every reload's, runs what the code says
 * now — a binary left by an earlier build (hr dev, a previous hr serve) is rebuilt, not
 * started stale. A failed build starts nothing (there is no older generation to keep).
 */
async function buildFirst(config: Config, root: string, env: Record<string, string | undefined>, log: Logger): Promise<boolean> {
  log.info(`serve.build = true: building before the first generation`, { event: "build", reason: "serve_build" });
  const b = await runBuild(config, root, env, log);
  if (!b.ok) {
    log.error(`${b.error ?? "build failed"}; nothing started (fix the build, or set serve.build = false to start the binary as it is)`);
    return false;
  }
  log.info(`build ok in ${formatMs(b.ms)}`, { event: "build", state: "ok", durationMs: b.ms });
  return true;
}

/**
 * Before the first generation (serve.build = true: buildFirst). Otherwise a run.cmd whose program is a path in the project
 * (["./tmp/app"]) that does not exist yet is built with [build] (whatever serve.build
 * says), or, with no [build], refused with how to fix it. False: logged, exit 1.
 * A shell-string command is not inspected (its program is not known before it runs).
 */
export async function buildIfMissing(config: Config, root: string, env: Record<string, string | undefined>, log: Logger): Promise<boolean> {
  const cmd = config.run.cmd;
  const program = Array.isArray(cmd) ? cmd[0] : undefined;
  const hasBuild = Boolean(config.build.cmd || config.build.pre || config.build.post);
  if (config.serve.build && hasBuild) return buildFirst(config, root, env, log);
  if (!program || !program.includes("/") || existsSync(resolve(root, program))) return true;
  if (!hasBuild) {
    log.error(
      `run.cmd: ${program} does not exist (in ${root}); build it first, or add [build] cmd = "…" to hr.toml and hr serve builds it before the first generation`,
    );
    return false;
  }
  log.info(`${program} does not exist yet: building it before the first generation ([build] ${describeCommand(config.build.cmd ?? config.build.pre ?? config.build.post!)})`, { event: "build", reason: "missing_binary" });
  const b = await runBuild(config, root, env, log);
  if (!b.ok) {
    log.error(`${b.error ?? "build failed"}; ${program} is still missing, nothing started`);
    return false;
  }
  if (!existsSync(resolve(root, program))) {
    log.error(`build ok in ${formatMs(b.ms)}, but ${program} still does not exist: does [build] write it there? (run.cmd = ${JSON.stringify(describeCommand(cmd))})`);
    return false;
  }
  log.info(`build ok in ${formatMs(b.ms)}`, { event: "build", state: "ok", durationMs: b.ms });
  return true;
}
