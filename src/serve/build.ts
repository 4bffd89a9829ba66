/** [build] for `hr serve` reloads (serve.build = true): pre, cmd, post in order; output prefixed "build". */
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { lines, spawnChild } from "../process/child.ts";
import { describe, toArgv } from "../process/command.ts";

export interface BuildResult {
  ok: boolean;
  ms: number;
  error?: string;
  output: string[];
}

export async function runBuild(config: Config, root: string, env: Record<string, string | undefined>, log: Logger, signal?: AbortSignal): Promise<BuildResult> {
  const t0 = performance.now();
  const output: string[] = [];
  const steps = (["pre", "cmd", "post"] as const).flatMap((k) => (config.build[k] ? [{ step: k, cmd: config.build[k]! }] : []));
  for (const { step, cmd } of steps) {
    log.info(`build: ${describe(cmd)}`, { event: "build", step });
    let child;
    try {
      child = spawnChild({ argv: toArgv(cmd), cwd: root, env: { ...env, ...config.build.env }, stdout: "pipe", stderr: "pipe" });
    } catch (e) {
      return { ok: false, ms: Math.round(performance.now() - t0), error: `build ${step}: ${(e as Error).message}`, output };
    }
    const onAbort = () => void child.stop({ signal: "SIGTERM", timeoutMs: 2000 });
    signal?.addEventListener("abort", onAbort, { once: true });
    const pump = (s: ReadableStream<Uint8Array> | undefined, name: "stdout" | "stderr") =>
      s
        ? lines(s, (l) => {
            output.push(l);
            if (output.length > 20) output.shift();
            log.appLine("build", name, l);
          }).catch(() => {})
        : Promise.resolve();
    const [info] = await Promise.all([child.exited, pump(child.stdout, "stdout"), pump(child.stderr, "stderr")]);
    signal?.removeEventListener("abort", onAbort);
    if (info.code !== 0) {
      return { ok: false, ms: Math.round(performance.now() - t0), error: `build ${step === "cmd" ? "" : `${step} `}failed: ${describe(cmd)} ${info.describe()}`, output };
    }
  }
  return { ok: true, ms: Math.round(performance.now() - t0), output };
}
