/**
 * hr dev's keyboard: `r`+Enter rebuilds and restarts, `q`+Enter quits.
 * stdin is read only when it is a terminal or an open pipe/socket (never /dev/null
 * or a file); the app itself gets stdin "ignore". EOF just stops reading.
 */
import { fstatSync } from "node:fs";
import { isatty } from "node:tty";
import { createInterface, type Interface } from "node:readline";

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

export function readKeys(onCommand: (cmd: KeyCommand) => void): Keys | null {
  if (!stdinReadable()) return null;
  let rl: Interface | null = createInterface({ input: process.stdin, terminal: false });
  rl.on("line", (line) => {
    const cmd = parseKeyLine(line);
    if (cmd) onCommand(cmd);
  });
  rl.on("close", () => {
    rl = null;
  });
  return {
    close() {
      rl?.close();
      rl = null;
      process.stdin.pause();
      process.stdin.unref?.();
    },
  };
}

/** Clears the screen and scrollback (only when stdout is a terminal). */
export function clearScreen(): void {
  if (process.stdout.isTTY) process.stdout.write("\x1b[2J\x1b[3J\x1b[H");
}

/** "3 files changed (src/a.go, src/b.go, src/c.go, …)" */
export function describeChanges(paths: readonly string[], max = 3): string {
  if (paths.length === 0) return "no files changed";
  const shown = paths.slice(0, max).join(", ");
  const more = paths.length > max ? `, … +${paths.length - max}` : "";
  return `${paths.length} file${paths.length === 1 ? "" : "s"} changed (${shown}${more})`;
}
