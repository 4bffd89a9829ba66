/**
 * TOML parsing (smol-toml: linear in the file size, and its errors carry line and
 * column; Bun.TOML.parse is quadratic in the number of keys of a table — 100k keys
 * took 15 s), and mapping key paths back to the lines that set them.
 */
import { parse, TomlError } from "smol-toml";
import type { Problem } from "./errors.ts";

export type TomlResult = { ok: true; data: Record<string, unknown> } | { ok: false; problem: Problem };

export function parseToml(text: string, file?: string): TomlResult {
  try {
    return { ok: true, data: parse(text) as Record<string, unknown> };
  } catch (error) {
    const raw = String((error as Error)?.message ?? error);
    // smol-toml: "Invalid TOML document: <what>\n\n<its own code frame>"; keep <what>, draw our frame.
    const message = raw.replace(/^Invalid TOML document:\s*/, "").split("\n")[0]!.trim() || "invalid TOML";
    const located = error instanceof TomlError;
    const line = located ? (error as TomlError).line : 1;
    const column = located ? (error as TomlError).column : 1;
    const source = lineAt(text, line);
    const frame = `\n  ${line} | ${source}\n  ${" ".repeat(String(line).length)} | ${" ".repeat(Math.max(0, column - 1))}^`;
    return { ok: false, problem: { path: "", file, line, column, message: `TOML syntax error: ${message}${frame}` } };
  }
}

/** Line `n` (1-based) of `text`, found without splitting the whole file. */
function lineAt(text: string, n: number): string {
  let start = 0;
  for (let i = 1; i < n; i++) {
    const nl = text.indexOf("\n", start);
    if (nl < 0) return "";
    start = nl + 1;
  }
  const end = text.indexOf("\n", start);
  return (end < 0 ? text.slice(start) : text.slice(start, end)).replace(/\r$/, "").slice(0, 200);
}

/**
 * An index of the lines that set keys: `lineOf(path)` is the line of the key a
 * schema path points at ("serve.ready.type", "listen.1.address"), or of the
 * deepest table or key on the way there. One pass over the text, then O(depth)
 * per lookup (a file with 40k bad keys is still answered in linear time).
 */
export function keyLines(text: string): (path: readonly (string | number)[]) => number | undefined {
  const first = new Map<string, number>();
  const note = (keyPath: string[], line: number) => {
    const k = keyPath.join("\u0000");
    if (!first.has(k)) first.set(k, line);
  };
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  const lines = text.split("\n");
  lines.forEach((raw, i) => {
    const source = raw.replace(/#.*$/, "").trim();
    const arrayHeader = source.match(/^\[\[\s*([^\]]+?)\s*\]\]$/);
    const header = source.match(/^\[\s*([^\]]+?)\s*\]$/);
    if (arrayHeader) {
      const name = arrayHeader[1]!;
      const index = arrayCounts.get(name) ?? 0;
      arrayCounts.set(name, index + 1);
      table = [...name.split("."), String(index)];
      note(table, i + 1);
    } else if (header) {
      table = header[1]!.split(".").map((part) => part.trim().replace(/^"|"$/g, ""));
      note(table, i + 1);
    } else {
      const key = source.match(/^([A-Za-z0-9_.\-"]+)\s*=/);
      if (!key) return;
      const keyPath = [...table, ...key[1]!.split(".").map((part) => part.replace(/^"|"$/g, ""))];
      note(keyPath, i + 1);
      // Inline tables: `ready = { type = "x" }` sets serve.ready.type on this line.
      for (const inner of source.matchAll(/[{,]\s*([A-Za-z0-9_\-]+)\s*=/g)) note([...keyPath, inner[1]!], i + 1);
    }
  });
  return (path) => {
    const want = path.map(String);
    for (let depth = want.length; depth > 0; depth--) {
      const line = first.get(want.slice(0, depth).join("\u0000"));
      if (line !== undefined) return line;
    }
    return undefined;
  };
}
