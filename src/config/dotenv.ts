/**
 * [run] env_file: dotenv files whose variables go to the app, and only to the app (hr's own
 * configuration never reads them: HR_* in a .env is just a variable the app sees).
 * Precedence, lowest first: hr's environment < env files (in the order listed) < [run].env
 * < what hr sets itself (PORT under proxy, LISTEN_FDS, HR_GENERATION, …).
 *
 * Syntax (the common dotenv subset):
 *   # a comment                      blank lines and comment lines are skipped
 *   KEY=value                        unquoted: trimmed; " #…" starts a comment
 *   export KEY=value                 `export ` is allowed (files shared with sh)
 *   KEY='single $quoted'             literal, no escapes; may span lines
 *   KEY="double\nquoted \"x\""       escapes \n \r \t \" \\ \$; may span lines
 *   KEY="line one\                   a backslash before a newline continues the
 *   line two"                        line inside double quotes (no newline kept)
 * Nothing is executed or expanded: $(cmd), `cmd` and ${VAR} stay literal text.
 * Not covered: variable expansion, multi-line unquoted values.
 */
import { readFileSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";

export class EnvFileError extends Error {
  constructor(
    readonly file: string,
    readonly line: number | undefined,
    readonly reason: string,
  ) {
    super(`${file}${line ? `:${line}` : ""}: ${reason}`);
    this.name = "EnvFileError";
  }
}

const KEY = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** Parses one dotenv text; throws EnvFileError naming `file` and the line. */
export function parseDotenv(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  const src = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  let i = 0;
  let line = 1;
  const fail = (at: number, reason: string): never => {
    throw new EnvFileError(file, at, reason);
  };
  while (i < src.length) {
    const eol = src.indexOf("\n", i) === -1 ? src.length : src.indexOf("\n", i);
    const raw = src.slice(i, eol);
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) {
      i = eol + 1;
      line++;
      continue;
    }
    const startLine = line;
    const decl = trimmed.replace(/^export\s+/, "");
    const eq = decl.indexOf("=");
    if (eq === -1) fail(startLine, `expected KEY=value, got ${JSON.stringify(trimmed.slice(0, 40))}`);
    const key = decl.slice(0, eq).trim();
    if (!KEY.test(key)) fail(startLine, `${JSON.stringify(key)} is not a variable name (letters, digits and _, not starting with a digit)`);
    // Position of the value in src.
    let p = i + raw.indexOf(decl) + eq + 1;
    while (p < eol && (src[p] === " " || src[p] === "\t")) p++;
    const quote = src[p];
    if (quote === '"' || quote === "'" || quote === "`") {
      let value = "";
      let q = p + 1;
      let closed = false;
      let lineAt = startLine;
      while (q < src.length) {
        const c = src[q]!;
        if (c === quote) {
          closed = true;
          break;
        }
        if (c === "\n") lineAt++;
        if (c === "\\" && quote === '"') {
          const n = src[q + 1];
          const map: Record<string, string> = { n: "\n", r: "\r", t: "\t", '"': '"', "\\": "\\", $: "$", "\n": "" };
          if (n !== undefined && n in map) {
            if (n === "\n") lineAt++;
            value += map[n];
            q += 2;
            continue;
          }
        }
        value += c;
        q++;
      }
      if (!closed) fail(startLine, `unterminated ${quote === '"' ? "double" : quote === "'" ? "single" : "back"}-quoted value for ${key} (add the closing ${quote})`);
      // After the closing quote: only blanks or a comment.
      const restEnd = src.indexOf("\n", q + 1) === -1 ? src.length : src.indexOf("\n", q + 1);
      const rest = src.slice(q + 1, restEnd).trim();
      if (rest !== "" && !rest.startsWith("#")) fail(lineAt, `unexpected ${JSON.stringify(rest.slice(0, 20))} after the closing quote of ${key}`);
      out[key] = value;
      line = lineAt + 1;
      i = restEnd + 1;
      continue;
    }
    // Unquoted: up to the end of the line, without a trailing " # comment".
    let value = src.slice(p, eol);
    const hash = value.search(/\s#/);
    if (hash !== -1) value = value.slice(0, hash);
    out[key] = value.trim();
    i = eol + 1;
    line++;
  }
  return out;
}

/** Reads [run] env_file (a path or a list, relative to root); later files override earlier ones. */
export function readEnvFiles(files: string | readonly string[] | undefined, root: string): Record<string, string> {
  const list = files === undefined ? [] : typeof files === "string" ? [files] : files;
  const out: Record<string, string> = {};
  for (const file of list) {
    const abs = resolve(root, file);
    const shown = displayPath(abs, root);
    let text: string;
    try {
      text = readFileSync(abs, "utf8");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      const why = code === "ENOENT" ? "no such file (create it, or remove it from [run] env_file)" : code === "EISDIR" ? "is a directory, not a dotenv file" : code === "EACCES" ? "permission denied" : (error as Error).message;
      throw new EnvFileError(shown, undefined, why);
    }
    Object.assign(out, parseDotenv(text, shown));
  }
  return out;
}

function displayPath(abs: string, root: string): string {
  const rel = relative(root, abs);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : abs;
}
