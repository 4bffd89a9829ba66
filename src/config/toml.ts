/**
 * Bun.TOML does the parsing. Its errors carry no position, so this module
 * finds the line (and, where the message allows, the column) itself, and maps
 * key paths back to the lines that set them.
 */
import type { Problem } from "./errors.ts";

export type TomlResult = { ok: true; data: Record<string, unknown> } | { ok: false; problem: Problem };

export function parseToml(text: string, file?: string): TomlResult {
  try {
    return { ok: true, data: Bun.TOML.parse(text) as Record<string, unknown> };
  } catch (error) {
    const message = String((error as Error).message ?? error).replace(/^TOML Parse error:\s*/, "");
    const { line, column } = locateSyntaxError(text, message);
    const source = text.split("\n")[line - 1] ?? "";
    const frame = `\n  ${line} | ${source}\n  ${" ".repeat(String(line).length)} | ${" ".repeat(Math.max(0, column - 1))}^`;
    return { ok: false, problem: { path: "", file, line, column, message: `TOML syntax error: ${message}${frame}` } };
  }
}

/**
 * The line after the longest prefix of the document that still parses: where
 * valid input ends. A multi-line array or string that is fine is skipped over,
 * because a later prefix parses again once it closes.
 */
function locateSyntaxError(text: string, message: string): { line: number; column: number } {
  const lines = text.split("\n");
  let line = 1;
  for (let n = lines.length - 1; n >= 1; n--) {
    try {
      Bun.TOML.parse(lines.slice(0, n).join("\n"));
      line = n + 1;
      break;
    } catch {}
  }
  // An error found at end of input belongs to the last line with content.
  while (line > 1 && !lines[line - 1]!.trim()) line--;
  const source = lines[line - 1] ?? "";
  const equals = source.indexOf("=");
  const column = /after '='|missing value/i.test(message) && equals >= 0 ? equals + 2 : source.search(/\S/) + 1 || 1;
  return { line, column };
}

/**
 * Line of the key that a schema path points at ("serve.ready.type",
 * "listen.1.address"), or of the deepest table or key on the way there.
 */
export function lineOfPath(text: string, path: readonly (string | number)[]): number | undefined {
  const lines = text.split("\n");
  const want = path.map(String);
  let table: string[] = [];
  const arrayCounts = new Map<string, number>();
  let best: { line: number; depth: number } | undefined;
  const consider = (keyPath: string[], line: number) => {
    let depth = 0;
    while (depth < keyPath.length && depth < want.length && keyPath[depth] === want[depth]) depth++;
    if (depth === keyPath.length && depth > 0 && (!best || depth > best.depth)) best = { line, depth };
  };
  lines.forEach((raw, i) => {
    const source = raw.replace(/#.*$/, "").trim();
    const arrayHeader = source.match(/^\[\[\s*([^\]]+?)\s*\]\]$/);
    const header = source.match(/^\[\s*([^\]]+?)\s*\]$/);
    if (arrayHeader) {
      const name = arrayHeader[1]!;
      const index = arrayCounts.get(name) ?? 0;
      arrayCounts.set(name, index + 1);
      table = [...name.split("."), String(index)];
      consider(table, i + 1);
    } else if (header) {
      table = header[1]!.split(".").map((part) => part.trim().replace(/^"|"$/g, ""));
      consider(table, i + 1);
    } else {
      const key = source.match(/^([A-Za-z0-9_.\-"]+)\s*=/);
      if (!key) return;
      const keyPath = [...table, ...key[1]!.split(".").map((part) => part.replace(/^"|"$/g, ""))];
      consider(keyPath, i + 1);
      // Inline tables: `ready = { type = "x" }` sets serve.ready.type on this line.
      for (const inner of source.matchAll(/[{,]\s*([A-Za-z0-9_\-]+)\s*=/g)) consider([...keyPath, inner[1]!], i + 1);
    }
  });
  return best?.line;
}
