/** [build] for `hr serve` reloads (serve.build = true): the shared build runner, output prefixed "build". */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { BuildRun, buildSteps, describeStep } from "../process/build.ts";

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
