/**
 * Loading hr.toml: defaults < hr.toml < HR_* environment < command-line flags.
 * Every problem found is reported at once, with file, line and key path.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import type { z } from "zod";
import { ConfigSchema, show, type Config } from "./schema.ts";
import { ConfigError, didYouMean, type Problem } from "./errors.ts";
import { EnvFileError, readEnvFiles } from "./dotenv.ts";
import { keyLines, parseToml } from "./toml.ts";

export const DEFAULT_CONFIG_FILE = "hr.toml";

export interface LoadOptions {
  /** Directory relative paths are resolved from (the --cwd flag). */
  cwd: string;
  /** Path of the config file (the -c flag); default ./hr.toml. */
  file?: string;
  /** Environment to read HR_* overrides from. */
  env?: Record<string, string | undefined>;
  /** Overrides from flags, shaped like hr.toml. */
  flags?: Record<string, unknown>;
  /** A file that must exist (true for -c given explicitly). */
  requireFile?: boolean;
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the file read, or null when hr ran on defaults + env + flags. */
  file: string | null;
  /** The project directory: the config file's directory. */
  root: string;
}

/** Loads and validates; throws ConfigError listing every problem. */
export function loadConfig(options: LoadOptions): LoadedConfig {
  const file = resolve(options.cwd, options.file ?? DEFAULT_CONFIG_FILE);
  const shown = displayPath(file, options.cwd);
  let fromFile: Record<string, unknown> = {};
  let text = "";
  if (existsSync(file)) {
    text = readConfigText(file, shown);
    const parsed = parseToml(text, shown);
    if (!parsed.ok) throw new ConfigError([parsed.problem]);
    fromFile = parsed.data;
  }
  const fromEnv = envOverrides(options.env ?? {});
  // No file: fine when the command line (`hr dev -- CMD`) or HR_RUN_CMD says what to run.
  const runGiven = Boolean((options.flags?.run as { cmd?: unknown } | undefined)?.cmd ?? (fromEnv.ok && (fromEnv.values.run as { cmd?: unknown } | undefined)?.cmd));
  if (!existsSync(file) && (options.requireFile || !runGiven)) {
    throw new ConfigError([
      { path: "", file: shown, message: `no such file; run \`hr init\` to create one${options.file ? "" : ", pass -c FILE, or give the command: hr dev [--listen :8080] -- CMD…"}` },
    ]);
  }
  const merged = deepMerge(deepMerge(fromFile, fromEnv.ok ? fromEnv.values : {}), options.flags ?? {});
  const result = validate(merged, text, shown);
  const problems = [...(fromEnv.ok ? [] : fromEnv.problems), ...(result.ok ? [] : result.problems)];
  if (!result.ok || problems.length) throw new ConfigError(problems);
  const root = existsSync(file) ? dirname(file) : resolve(options.cwd);
  // [run] env_file: read now so `hr check`, startup and every serve reload report a bad file
  // (file:line); the values go to the app only, read again where it starts (dotenv.ts).
  try {
    readEnvFiles(result.config.run.env_file, root);
  } catch (error) {
    if (!(error instanceof EnvFileError)) throw error;
    throw new ConfigError([{ path: "", file: error.file, line: error.line, message: `${error.reason} (run.env_file)` }]);
  }
  return { config: result.config, file: existsSync(file) ? file : null, root };
}

/** More than this many problems are summarised in one line (a generated file with 40k bad keys). */
const MAX_PROBLEMS = 50;

/** The file's text, or a ConfigError saying why it cannot be read and what to do. */
function readConfigText(file: string, shown: string): string {
  try {
    const st = statSync(file);
    if (st.isDirectory()) throw Object.assign(new Error("is a directory"), { code: "EISDIR" });
    // A FIFO or device would block the read (or never end): only regular files are config.
    if (!st.isFile()) {
      const kind = st.isFIFO() ? "a FIFO" : st.isSocket() ? "a socket" : "a device";
      throw Object.assign(new Error(`is not a regular file (${kind}); point -c at the hr.toml file itself`), { code: "ENOTREG" });
    }
    return readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const message =
      code === "EISDIR"
        ? "is a directory, not a file; pass the file with -c DIR/hr.toml, or --cwd DIR"
        : code === "EACCES" || code === "EPERM"
          ? `cannot be read: permission denied; make it readable (chmod u+r ${shown}) or run hr as its owner`
          : code === "ENOTREG"
            ? (error as Error).message
            : `cannot be read: ${(error as Error).message}`;
    throw new ConfigError([{ path: "", file: shown, message }]);
  }
}

export type Validation = { ok: true; config: Config } | { ok: false; problems: Problem[] };

/** Validates already-parsed data; `text` (the TOML source) lets problems name their line. */
export function validate(data: unknown, text = "", file?: string): Validation {
  const result = ConfigSchema.safeParse(data);
  if (result.success) return { ok: true, config: result.data };
  const all = result.error.issues.flatMap((issue) => issueToProblems(issue, data));
  const lineOf = text ? keyLines(text) : () => undefined;
  const problems: Problem[] = all.slice(0, MAX_PROBLEMS).map(({ keyPath, ...p }) => ({ ...p, file, line: lineOf(keyPath) }));
  if (all.length > MAX_PROBLEMS) problems.push({ path: "", file, message: `… and ${all.length - MAX_PROBLEMS} more problems (the first ${MAX_PROBLEMS} are shown)` });
  return { ok: false, problems };
}

type Located = Problem & { keyPath: (string | number)[] };

function issueToProblems(issue: z.core.$ZodIssue, data: unknown): Located[] {
  const keyPath = issue.path.map((k) => (typeof k === "symbol" ? String(k) : k));
  if (issue.code === "unrecognized_keys") {
    const known = knownKeys(keyPath);
    return issue.keys.map((key) => {
      const suggestion = didYouMean(key, known);
      const where = keyPath.length ? `in [${dotted(keyPath)}]` : "at the top level";
      return {
        path: dotted([...keyPath, key]),
        keyPath: [...keyPath, key],
        message: `unknown key ${where}${suggestion ? `; did you mean "${suggestion}"?` : `; known keys: ${known.join(", ")}`}`,
      };
    });
  }
  const found = valueAt(data, keyPath);
  const message =
    found === undefined && issue.code === "invalid_type"
      ? `missing; ${issue.message.replace(/, got nothing$/, "")}`
      : issue.message;
  return [{ path: dotted(keyPath), keyPath, message }];
}

/** "listen.0.address" → "listen[0].address" */
function dotted(path: readonly (string | number)[]): string {
  return path.reduce<string>((out, key) => (typeof key === "number" ? `${out}[${key}]` : out ? `${out}.${key}` : key), "");
}

function valueAt(data: unknown, path: readonly (string | number)[]): unknown {
  let value = data;
  for (const key of path) value = value && typeof value === "object" ? (value as Record<string | number, unknown>)[key] : undefined;
  return value;
}

/** Keys the schema allows at a path, for did-you-mean. */
export function knownKeys(path: readonly (string | number)[]): string[] {
  let schema: unknown = ConfigSchema;
  for (const key of [...path, null]) {
    schema = unwrap(schema);
    const def = (schema as { _zod: { def: Record<string, unknown> } })._zod.def;
    if (key === null) return def.type === "object" ? Object.keys(def.shape as object) : [];
    if (def.type === "object") schema = (def.shape as Record<string, unknown>)[key];
    else if (def.type === "array") schema = def.element;
    else return [];
    if (!schema) return [];
  }
  return [];
}

function unwrap(schema: unknown): unknown {
  let s = schema as { _zod: { def: Record<string, unknown> } };
  for (;;) {
    const def = s._zod.def;
    if (["default", "prefault", "optional", "nullable", "readonly"].includes(def.type as string)) s = def.innerType as typeof s;
    else if (def.type === "pipe") s = def.in as typeof s;
    else return s;
  }
}

/**
 * HR_SERVE_WORKERS=4, HR_SERVE_DRAIN_TIMEOUT=10s, HR_RUN_CMD="./app", HR_WATCH_INCLUDE_EXT=go,html,
 * nested tables too: HR_SERVE_READY_TYPE=tcp, HR_SERVE_READY_TIMEOUT=5s. HR_LISTEN=":8080" (or
 * "http=:8080,admin=unix:./a.sock") sets [[listen]] like `--listen`.
 * Variables hr sets for apps (HR_GENERATION, HR_WORKER, HR_CHANGED_PATHS, …) belong to no section and are ignored.
 */
export function envOverrides(env: Record<string, string | undefined>): { ok: true; values: Record<string, unknown> } | { ok: false; problems: Problem[] } {
  const values: Record<string, unknown> = {};
  const problems: Problem[] = [];
  const sections = knownKeys([]).filter((s) => s !== "listen");
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith("HR_") || raw === undefined) continue;
    if (name === "HR_LISTEN") {
      if (raw.trim()) values.listen = listenEntries(raw.split(","));
      continue;
    }
    const rest = name.slice(3).toLowerCase();
    const section = sections.find((s) => rest.startsWith(`${s}_`));
    if (!section) continue;
    const found = envKeyPath([section], rest.slice(section.length + 1));
    if ("problem" in found) {
      const suggestion = found.suggestion;
      problems.push({
        path: found.problem,
        message: `environment variable ${name} sets no known key${suggestion ? `; did you mean HR_${suggestion.toUpperCase().replace(/\./g, "_")}?` : ""}`,
      });
      continue;
    }
    let table = values;
    for (const key of found.path.slice(0, -1)) table = (table[key] ??= {}) as Record<string, unknown>;
    table[found.path.at(-1)!] = coerceEnvValue(raw, found.path);
  }
  return problems.length ? { ok: false, problems } : { ok: true, values };
}

/**
 * `--listen` / HR_LISTEN values: "ADDRESS" or "NAME=ADDRESS" each. Unnamed entries are
 * "http", "http2", …; the addresses are checked by the schema like [[listen]] in a file.
 */
export function listenEntries(specs: readonly string[]): { name: string; address: string }[] {
  const used = new Set<string>();
  const named = specs.map((s) => s.trim()).filter(Boolean).map((spec) => {
    const m = spec.match(/^([A-Za-z0-9_.-]+)=(.+)$/);
    if (m) used.add(m[1]!);
    return m ? { name: m[1]!, address: m[2]! } : { name: "", address: spec };
  });
  let n = 1;
  for (const entry of named) {
    if (entry.name) continue;
    while (used.has(n === 1 ? "http" : `http${n}`)) n++;
    entry.name = n === 1 ? "http" : `http${n}`;
    used.add(entry.name);
  }
  return named;
}

/**
 * The key path an HR_ variable's rest names under `base` ("ready_type" under serve →
 * serve.ready.type). Keys contain underscores themselves (drain_timeout), so a table
 * key matches only as a whole word followed by "_"; a full leaf match wins.
 */
function envKeyPath(base: string[], rest: string): { path: string[] } | { problem: string; suggestion?: string } {
  const keys = knownKeys(base);
  if (keys.includes(rest) && !isObjectSchema(schemaAt([...base, rest]))) return { path: [...base, rest] };
  for (const key of keys) {
    if (!rest.startsWith(`${key}_`) || !isObjectSchema(schemaAt([...base, key]))) continue;
    const inner = envKeyPath([...base, key], rest.slice(key.length + 1));
    if ("path" in inner) return inner;
  }
  const leaves = leafPaths(base).map((p) => p.slice(base.length).join("_"));
  const suggestion = didYouMean(rest, leaves);
  return { problem: [...base, ...rest.split(".")].join("."), suggestion: suggestion ? [...base, suggestion].join("_") : undefined };
}

/** Every leaf under `base`, as key paths (tables are walked, arrays are leaves). */
function leafPaths(base: string[]): string[][] {
  return knownKeys(base).flatMap((key) => (isObjectSchema(schemaAt([...base, key])) ? leafPaths([...base, key]) : [[...base, key]]));
}

function isObjectSchema(schema: unknown): boolean {
  return (unwrap(schema) as { _zod: { def: { type: string } } })._zod.def.type === "object";
}

/** Environment values are strings; give them the type the schema wants. */
function coerceEnvValue(raw: string, path: string[]): unknown {
  const kind = (unwrap(schemaAt(path)) as { _zod: { def: { type: string } } })._zod.def.type;
  const trimmed = raw.trim();
  if (kind === "number") return trimmed === "" || Number.isNaN(Number(trimmed)) ? raw : Number(trimmed);
  if (kind === "boolean") return /^(1|true|yes|on)$/i.test(trimmed) ? true : /^(0|false|no|off)$/i.test(trimmed) ? false : raw;
  if (kind === "array" || kind === "union" || kind === "record" || kind === "object") {
    if (/^[[{]/.test(trimmed)) {
      try {
        return JSON.parse(trimmed);
      } catch {
        return raw;
      }
    }
    if (kind === "array") return trimmed === "" ? [] : trimmed.split(",").map((s) => s.trim());
  }
  return raw;
}

function schemaAt(path: string[]): unknown {
  let schema: unknown = ConfigSchema;
  for (const key of path) {
    const def = (unwrap(schema) as { _zod: { def: Record<string, unknown> } })._zod.def;
    schema = (def.shape as Record<string, unknown>)[key];
  }
  return schema;
}

function isTable(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** Tables merge key by key; anything else (arrays included) is replaced. */
export function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue;
    out[key] = isTable(value) && isTable(out[key]) ? deepMerge(out[key] as Record<string, unknown>, value) : value;
  }
  return out;
}

function displayPath(file: string, cwd: string): string {
  const rel = relative(cwd, file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}
