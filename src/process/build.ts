/**
 * One build attempt, shared by `hr dev` and `hr serve` (serve.build): [build].pre,
 * cmd, post run in order, each in its own process group (spawnChild). Output is
 * passed through to hr's stdout/stderr untouched (dev), or handed line by line to
 * onLine (serve prefixes it). cancel() stops the step that is running (whole tree)
 * and the remaining steps never run.
 */
import type { Command } from "./command.ts";
import { describe, toArgv } from "./command.ts";
import { lines, spawnChild, SpawnError, type Child, type ExitInfo } from "./child.ts";

export interface BuildStep {
  name: "pre" | "cmd" | "post";
  cmd: Command;
}

export type BuildResult =
  | { kind: "ok"; ms: number }
  | { kind: "failed"; step: BuildStep; exit: ExitInfo; ms: number }
  /** The step could not be started at all (program missing, …). */
  | { kind: "error"; step: BuildStep; message: string; ms: number }
  | { kind: "cancelled"; ms: number };

export interface BuildOptions {
  steps: BuildStep[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** SIGKILL the step if hr dies (setpriv --pdeathsig). */
  dieWithParent?: boolean;
  /** Receive output line by line instead of passing it through to hr's own stdout/stderr. */
  onLine?: (stream: "stdout" | "stderr", line: string) => void;
}

/** The steps present in a [build] section, in run order. */
export function buildSteps(build: { pre?: Command; cmd?: Command; post?: Command }): BuildStep[] {
  const out: BuildStep[] = [];
  if (build.pre !== undefined) out.push({ name: "pre", cmd: build.pre });
  if (build.cmd !== undefined) out.push({ name: "cmd", cmd: build.cmd });
  if (build.post !== undefined) out.push({ name: "post", cmd: build.post });
  return out;
}

export function describeStep(step: BuildStep): string {
  return `${step.name === "cmd" ? "build" : `build.${step.name}`} \`${describe(step.cmd)}\``;
}

export class BuildRun {
  readonly result: Promise<BuildResult>;
  private child: Child | null = null;
  private cancelled = false;
  private readonly started = performance.now();

  constructor(private readonly opts: BuildOptions) {
    this.result = this.run();
  }

  get isCancelled(): boolean {
    return this.cancelled;
  }

  private elapsed(): number {
    return performance.now() - this.started;
  }

  private async run(): Promise<BuildResult> {
    for (const step of this.opts.steps) {
      if (this.cancelled) return { kind: "cancelled", ms: this.elapsed() };
      let child: Child;
      try {
        child = spawnChild({
          argv: toArgv(step.cmd),
          cwd: this.opts.cwd,
          env: this.opts.env,
          stdin: "ignore",
          stdout: this.opts.onLine ? "pipe" : "inherit",
          stderr: this.opts.onLine ? "pipe" : "inherit",
          dieWithParent: this.opts.dieWithParent ?? true,
        });
      } catch (error) {
        const message = error instanceof SpawnError ? error.message : String((error as Error).message ?? error);
        return { kind: "error", step, message, ms: this.elapsed() };
      }
      this.child = child;
      const onLine = this.opts.onLine;
      const output = onLine
        ? Promise.all(([["stdout", child.stdout], ["stderr", child.stderr]] as const).map(([name, stream]) => (stream ? lines(stream, (l) => onLine(name, l)).catch(() => {}) : undefined)))
        : undefined;
      const exit = await child.exited;
      await output;
      // Sweep anything the step left in its group (a backgrounded watcher, …).
      await child.stop({ signal: "SIGKILL", timeoutMs: 0 });
      this.child = null;
      if (this.cancelled) return { kind: "cancelled", ms: this.elapsed() };
      if (exit.code !== 0) return { kind: "failed", step, exit, ms: this.elapsed() };
    }
    return { kind: "ok", ms: this.elapsed() };
  }

  /** Stops the running step's whole tree; resolves once it is gone. */
  async cancel(opts: { graceMs?: number } = {}): Promise<void> {
    this.cancelled = true;
    const child = this.child;
    if (child) await child.stop({ signal: "SIGTERM", timeoutMs: opts.graceMs ?? 500 });
    await this.result;
  }

  /** SIGKILL now (second Ctrl-C). */
  async kill(): Promise<void> {
    this.cancelled = true;
    await this.child?.kill();
  }
}
