/**
 * hr dev's keyboard: `r`+Enter rebuilds and restarts, `q`+Enter quits.
 * stdin is read only when it is a terminal or an open pipe/socket (never /dev/null
 * or a file); the app itself gets stdin "ignore". EOF just stops reading.
 */
import { fstatSync } from "node:fs";
import { isatty } from "node:tty";
import { createInterface, type Interface } from "node:readline";
import { inForeground } from "../platform/libc.ts";
import { spinner } from "@clack/prompts";
import { out } from "../log/output.ts";

export type KeyCommand = "restart" | "quit";

export function stdinReadable(): boolean {
  try {
    if (isatty(0)) return true;
    const st = fstatSync(0);
    return st.isFIFO() || st.isSocket();
  } catch {
    return false;
  }
}

export function parseKeyLine(line: string): KeyCommand | null {
  const t = line.trim().toLowerCase();
  if (t === "r" || t === "rs" || t === "restart") return "restart";
  if (t === "q" || t === "quit" || t === "exit") return "quit";
  return null;
}

export interface Keys {
  close(): void;
}

/**
 * False when stdin is a terminal whose foreground process group is not ours: hr was
 * started in the background of a job-control shell (`hr dev &`), where reading the
 * terminal would stop hr with SIGTTIN (or steal the shell's input).
 */
export function stdinInForeground(): boolean {
  if (!isatty(0)) return true;
  try {
    return inForeground(0);
  } catch {
    return true; // no libc FFI (not Linux): behave as before
  }
}

export function readKeys(onCommand: (cmd: KeyCommand) => void, opts: { onDeferred?: () => void } = {}): Keys | null {
  if (!stdinReadable()) return null;
  let rl: Interface | null = null;
  let closed = false;
  let poll: ReturnType<typeof setInterval> | null = null;
  const startReading = () => {
    rl = createInterface({ input: process.stdin, terminal: false });
    rl.on("line", (line) => {
      const cmd = parseKeyLine(line);
      if (cmd) onCommand(cmd);
    });
    rl.on("close", () => {
      rl = null;
    });
  };
  if (stdinInForeground()) startReading();
  else {
    // In the background: never touch the terminal; start reading once `fg` brings hr forward.
    opts.onDeferred?.();
    poll = setInterval(() => {
      if (closed || !stdinInForeground()) return;
      clearInterval(poll!);
      poll = null;
      startReading();
    }, 1000);
    poll.unref?.();
  }
  return {
    close() {
      closed = true;
      if (poll) clearInterval(poll);
      poll = null;
      if (rl) {
        (rl as Interface).close();
        rl = null;
        process.stdin.pause();
        process.stdin.unref?.();
      }
    },
  };
}

/** Clears the screen and scrollback (only when stdout is a terminal). */
export function clearScreen(): void {
  if (process.stdout.isTTY) out.stdout().write("\x1b[2J\x1b[3J\x1b[H");
}

/** "3 files changed (src/a.go, src/b.go, src/c.go, …)" */
export function describeChanges(paths: readonly string[], max = 3): string {
  if (paths.length === 0) return "no files changed";
  const shown = paths.slice(0, max).join(", ");
  const more = paths.length > max ? `, … +${paths.length - max}` : "";
  return `${paths.length} file${paths.length === 1 ? "" : "s"} changed (${shown}${more})`;
}

/**
 * A clack spinner while a build is silent, on a terminal only. The build's output
 * is piped through hr (so the spinner never draws over it): the first line stops
 * the spinner, every line is passed on as is, and FORCE_COLOR / CLICOLOR_FORCE
 * keep the build tool's colours although its output is a pipe.
 */
export class BuildProgress {
  private spin: ReturnType<typeof spinner> | null = null;

  private constructor(private readonly label: string) {}

  /** null when hr's stderr is not a terminal, logs are JSON, or output is quieted: plain pass-through then. */
  static forTerminal(label: string, opts: { format: "text" | "json"; level: string; env: Record<string, string | undefined> }): BuildProgress | null {
    if (!process.stderr.isTTY || opts.format !== "text" || opts.level === "warn" || opts.level === "error" || opts.env.CI) return null;
    return new BuildProgress(label);
  }

  /** Environment additions for the build, so tools still colour their output. */
  static colorEnv(env: Record<string, string | undefined>): Record<string, string> {
    return env.NO_COLOR !== undefined ? {} : { FORCE_COLOR: env.FORCE_COLOR ?? "1", CLICOLOR_FORCE: env.CLICOLOR_FORCE ?? "1" };
  }

  start(): void {
    this.spin = spinner({ output: process.stderr, indicator: "timer" });
    this.spin.start(this.label);
  }

  line(stream: "stdout" | "stderr", text: string): void {
    if (this.spin) {
      this.spin.stop(this.label);
      this.spin = null;
    }
    out[stream]().write(`${text}\n`);
  }

  /** Removes the spinner (hr's own summary or error line follows). */
  done(): void {
    this.spin?.clear();
    this.spin = null;
  }
}
