/**
 * Project detection for `hr init`: look at a directory's files and propose a
 * config (build, run, watch, listen, strategies) plus the human reasons for it.
 * Pure file reading; nothing is executed.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { basename, join } from "node:path";
import type { Command, ConfigInput } from "../config/schema.ts";

export type ProjectKind = "go-gin" | "go" | "bun" | "node" | "python" | "rust" | "make" | "generic";
/** Which "adopt the socket" snippet fits the app. */
export type Language = "go" | "node" | "bun" | "bun-serve" | "python" | "rust" | "generic";
export type DevStrategy = "fd" | "proxy" | "none";
export type ServeStrategy = "fd" | "reuseport" | "proxy";
export type ReadyType = "notify" | "ipc" | "http" | "tcp" | "log" | "delay";

export interface Detection {
  kind: ProjectKind;
  language: Language;
  /** Human name, e.g. "Go (Gin)". */
  label: string;
  build?: Command;
  run: Command;
  includeExt: string[];
  exclude: string[];
  /** Address of the [[listen]] socket; null when the app has no socket. */
  listen: string | null;
  devStrategy: DevStrategy;
  serveStrategy: ServeStrategy;
  readyType: ReadyType;
  /** For readyType "log": the line that means ready. */
  readyPattern?: string;
  /** Why: one line per finding, e.g. "go.mod requires github.com/gin-gonic/gin". */
  reasons: string[];
}

export const DEFAULT_LISTEN = "127.0.0.1:8080";
const COMMON_EXCLUDE = ["tmp/**"];

function read(dir: string, name: string): string | undefined {
  try {
    return readFileSync(join(dir, name), "utf8");
  } catch {
    return undefined;
  }
}

const has = (dir: string, name: string) => existsSync(join(dir, name));

/** A command line without shell syntax becomes an argv array; anything else stays a `sh -c` string. */
export function simpleCommand(line: string): Command {
  const trimmed = line.trim();
  if (/^[A-Za-z0-9_./:=@%+,-]+( +[A-Za-z0-9_./:=@%+,-]+)*$/.test(trimmed)) return trimmed.split(/ +/);
  return trimmed;
}

export function detectProject(dir: string): Detection {
  const reasons: string[] = [];
  const d =
    detectGo(dir, reasons) ??
    detectJs(dir, reasons) ??
    detectPython(dir, reasons) ??
    detectRust(dir, reasons) ??
    detectMake(dir, reasons) ??
    generic(dir, reasons);
  if (d.listen) {
    const found = portFromDotEnv(dir) ?? portFromSource(dir, d.kind);
    if (found) {
      d.listen = `127.0.0.1:${found.port}`;
      reasons.push(found.why);
    }
  }
  if (!d.listen) d.devStrategy = "none";
  return { ...d, reasons };
}

type Proposal = Omit<Detection, "reasons">;

// ---------------------------------------------------------------- Go

function detectGo(dir: string, reasons: string[]): Proposal | undefined {
  const mod = read(dir, "go.mod");
  if (mod === undefined) return undefined;
  const module = mod.match(/^module\s+(\S+)/m)?.[1];
  reasons.push(`go.mod found${module ? ` (module ${module})` : ""}`);
  const gin = /github\.com\/gin-gonic\/gin\b/.test(mod);
  if (gin) reasons.push("go.mod requires github.com/gin-gonic/gin");
  // A main package at the root, else the first cmd/<name>.
  let pkg = ".";
  const rootHasMain = goFiles(dir).some((f) => /^package\s+main\b/m.test(read(dir, f) ?? ""));
  if (!rootHasMain && has(dir, "cmd")) {
    const sub = safeList(join(dir, "cmd")).find((n) => isDir(join(dir, "cmd", n)));
    if (sub) {
      pkg = `./cmd/${sub}`;
      reasons.push(`main package in cmd/${sub}`);
    }
  }
  return {
    kind: gin ? "go-gin" : "go",
    language: "go",
    label: gin ? "Go (Gin)" : "Go",
    build: ["go", "build", "-o", "./tmp/app", pkg],
    run: ["./tmp/app"],
    includeExt: ["go", "tmpl", "html"],
    exclude: [...COMMON_EXCLUDE, "vendor/**", "**/*_test.go"],
    listen: DEFAULT_LISTEN,
    devStrategy: "fd",
    serveStrategy: "fd",
    readyType: "notify",
  };
}

function goFiles(dir: string): string[] {
  return safeList(dir).filter((n) => n.endsWith(".go") && !n.endsWith("_test.go"));
}

// ---------------------------------------------------------------- Bun / Node

interface PackageJson {
  name?: string;
  main?: string;
  module?: string;
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const WATCHERS = /(^|\s)--(watch|hot)\b|\b(nodemon|tsx watch|ts-node-dev|node-dev|vite|next dev|concurrently)\b/;

function detectJs(dir: string, reasons: string[]): Proposal | undefined {
  const text = read(dir, "package.json");
  if (text === undefined) return undefined;
  let pkg: PackageJson = {};
  try {
    pkg = JSON.parse(text) as PackageJson;
  } catch {
    reasons.push("package.json is not valid JSON; using defaults");
  }
  const bunLock = ["bun.lock", "bun.lockb"].find((f) => has(dir, f));
  const isBun = Boolean(bunLock);
  const pm = bunLock ? "bun" : has(dir, "pnpm-lock.yaml") ? "pnpm" : has(dir, "yarn.lock") ? "yarn" : "npm";
  const lock = bunLock ?? (pm === "pnpm" ? "pnpm-lock.yaml" : pm === "yarn" ? "yarn.lock" : has(dir, "package-lock.json") ? "package-lock.json" : undefined);
  reasons.push(`package.json found${lock ? ` with ${lock}` : ""} → ${isBun ? "Bun" : `Node (${pm})`}`);
  const ts = has(dir, "tsconfig.json");
  const runtime = isBun ? "bun" : "node";
  const scripts = pkg.scripts ?? {};

  let build: Command | undefined;
  let run: Command | undefined;
  if (ts && !isBun) {
    reasons.push("tsconfig.json found → TypeScript, compiled before running");
    build = scripts.build ? [pm, "run", "build"] : ["npx", "tsc"];
  }
  // The dev script, unless it is a watcher of its own (hr is the watcher now), then start, then main.
  for (const name of ["dev", "start"]) {
    const script = scripts[name];
    if (!script || run) continue;
    if (WATCHERS.test(script)) {
      reasons.push(`scripts.${name} runs its own watcher ("${script}"); not used`);
      continue;
    }
    const cmd = simpleCommand(script);
    const direct = Array.isArray(cmd) && ["node", "bun"].includes(cmd[0]!);
    run = direct ? cmd : [pm, "run", name];
    reasons.push(`scripts.${name} = "${script}"`);
  }
  const entry = entryFile(dir, pkg, ts && !isBun);
  if (!run && entry) {
    run = [runtime, entry.file];
    reasons.push(entry.why);
  }
  run ??= [runtime, isBun ? "index.ts" : "index.js"];

  const sources = [entry?.source, ...(typeof run !== "string" && run[1] ? [run[1]] : [])].filter((f): f is string => Boolean(f));
  const bunServe = isBun && usesBunServe(dir, sources);
  if (bunServe) reasons.push(`${bunServe} calls Bun.serve → dev/serve strategy "proxy" (Bun.serve cannot adopt an inherited fd)`);
  return {
    kind: isBun ? "bun" : "node",
    language: bunServe ? "bun-serve" : isBun ? "bun" : "node",
    label: isBun ? (ts ? "Bun (TypeScript)" : "Bun") : ts ? "Node (TypeScript)" : "Node",
    build,
    run,
    includeExt: ts || isBun ? ["ts", "tsx", "js", "jsx", "mjs", "json"] : ["js", "mjs", "cjs", "json"],
    exclude: [...COMMON_EXCLUDE, "dist/**", "build/**", "coverage/**"],
    listen: DEFAULT_LISTEN,
    devStrategy: bunServe ? "proxy" : "fd",
    serveStrategy: bunServe ? "proxy" : "fd",
    readyType: "ipc",
  };
}

function entryFile(dir: string, pkg: PackageJson, compiled: boolean): { file: string; source: string; why: string } | undefined {
  const outDir = compiled ? tsOutDir(dir) : undefined;
  const main = pkg.main ?? pkg.module;
  if (main) {
    const source = compiled ? main.replace(new RegExp(`^(\\./)?${outDir ?? "dist"}/`), "src/").replace(/\.js$/, ".ts") : main;
    return { file: main, source, why: `package.json "main" is ${main}` };
  }
  for (const name of ["index", "server", "app", "main", "src/index", "src/server", "src/main", "src/app"]) {
    for (const ext of compiled ? ["ts"] : ["ts", "js", "mjs"]) {
      const file = `${name}.${ext}`;
      if (!has(dir, file)) continue;
      if (compiled) {
        const out = `${outDir ?? "dist"}/${basename(name)}.js`;
        return { file: out, source: file, why: `${file} found, compiled to ${out}` };
      }
      return { file, source: file, why: `${file} found` };
    }
  }
  return undefined;
}

function tsOutDir(dir: string): string | undefined {
  const text = read(dir, "tsconfig.json");
  return text?.match(/"outDir"\s*:\s*"(?:\.\/)?([^"]+?)\/?"/)?.[1];
}

function usesBunServe(dir: string, candidates: string[]): string | undefined {
  const files = [...new Set([...candidates, ...listSources(dir, ["ts", "tsx", "js", "mjs"], 40)])];
  return files.find((f) => /\bBun\.serve\s*\(/.test(read(dir, f) ?? ""));
}

// ---------------------------------------------------------------- Python

function detectPython(dir: string, reasons: string[]): Proposal | undefined {
  const pyproject = read(dir, "pyproject.toml");
  const requirements = read(dir, "requirements.txt");
  if (pyproject === undefined && requirements === undefined) return undefined;
  const source = pyproject !== undefined ? "pyproject.toml" : "requirements.txt";
  reasons.push(`${[pyproject !== undefined && "pyproject.toml", requirements !== undefined && "requirements.txt"].filter(Boolean).join(" and ")} found → Python`);
  const deps = `${pyproject ?? ""}\n${requirements ?? ""}`.toLowerCase();
  const named = (name: string) => new RegExp(`(^|["'\\s,\\[])${name}\\b`, "m").test(deps);
  const where = (name: string) => (requirements?.toLowerCase().includes(name) ? "requirements.txt" : source);
  const py = has(dir, ".venv/bin/python") ? ".venv/bin/python" : "python3";
  if (py !== "python3") reasons.push(".venv found → its python");
  const script = ["main.py", "app.py", "server.py", "wsgi.py"].find((f) => has(dir, f));
  const module = (script ?? "main.py").replace(/\.py$/, "");
  const base = {
    kind: "python" as const,
    language: "python" as const,
    build: undefined,
    includeExt: ["py", "html", "jinja", "jinja2", "toml"],
    exclude: [...COMMON_EXCLUDE, "__pycache__/**", "**/__pycache__/**", ".venv/**", "venv/**", ".pytest_cache/**", ".mypy_cache/**", "*.egg-info/**"],
    listen: DEFAULT_LISTEN,
  };
  const bin = (name: string) => (py === "python3" ? name : `.venv/bin/${name}`);
  if (named("gunicorn")) {
    reasons.push(`${where("gunicorn")} names gunicorn → gunicorn adopts the socket itself (LISTEN_FDS); ready when it boots a worker`);
    return { ...base, label: "Python (gunicorn)", run: [bin("gunicorn"), `${module}:app`], devStrategy: "fd", serveStrategy: "fd", readyType: "log", readyPattern: "Booting worker" };
  }
  if (named("uvicorn") || named("fastapi")) {
    const which = named("fastapi") ? "fastapi" : "uvicorn";
    reasons.push(`${where(which)} names ${which} → uvicorn --fd 3, ready at "Application startup complete"`);
    return {
      ...base,
      label: which === "fastapi" ? "Python (FastAPI)" : "Python (uvicorn)",
      run: [bin("uvicorn"), "--fd", "3", `${module}:app`],
      devStrategy: "fd",
      serveStrategy: "fd",
      readyType: "log",
      readyPattern: "Application startup complete",
    };
  }
  if (named("django") || has(dir, "manage.py")) {
    reasons.push(`${named("django") ? `${where("django")} names django` : "manage.py found"} → runserver on $PORT behind hr's proxy`);
    return {
      ...base,
      label: "Python (Django)",
      run: `${py} manage.py runserver --noreload 127.0.0.1:$PORT`,
      devStrategy: "proxy",
      serveStrategy: "proxy",
      readyType: "tcp",
    };
  }
  if (named("flask")) reasons.push(`${where("flask")} names flask`);
  const entry = script ?? "main.py";
  reasons.push(script ? `${script} found` : "no main.py/app.py found; edit [run] cmd");
  return { ...base, label: named("flask") ? "Python (Flask)" : "Python", run: [py, entry], devStrategy: "fd", serveStrategy: "fd", readyType: "notify" };
}

// ---------------------------------------------------------------- Rust

function detectRust(dir: string, reasons: string[]): Proposal | undefined {
  const text = read(dir, "Cargo.toml");
  if (text === undefined) return undefined;
  let name = basename(dir);
  try {
    const cargo = Bun.TOML.parse(text) as { package?: { name?: string }; bin?: { name?: string }[] };
    name = cargo.bin?.[0]?.name ?? cargo.package?.name ?? name;
  } catch {
    reasons.push("Cargo.toml does not parse; using the directory name");
  }
  reasons.push(`Cargo.toml found (binary ${name})`);
  const listenfd = /^\s*listenfd\b/m.test(text);
  if (listenfd) reasons.push("Cargo.toml depends on listenfd → the app can adopt fd 3");
  return {
    kind: "rust",
    language: "rust",
    label: "Rust",
    build: ["cargo", "build"],
    run: [`./target/debug/${name}`],
    includeExt: ["rs", "toml"],
    exclude: [...COMMON_EXCLUDE, "target/**"],
    listen: DEFAULT_LISTEN,
    devStrategy: listenfd ? "fd" : "proxy",
    serveStrategy: listenfd ? "fd" : "proxy",
    readyType: "tcp",
  };
}

// ---------------------------------------------------------------- Makefile / generic

function detectMake(dir: string, reasons: string[]): Proposal | undefined {
  const text = read(dir, "Makefile") ?? read(dir, "makefile") ?? read(dir, "GNUmakefile");
  if (text === undefined) return undefined;
  const targets = new Set([...text.matchAll(/^([A-Za-z0-9_.-]+)\s*:(?!=)/gm)].map((m) => m[1]!));
  reasons.push(`Makefile found (targets: ${[...targets].slice(0, 6).join(", ") || "none"})`);
  return {
    kind: "make",
    language: "generic",
    label: "Makefile",
    build: targets.has("build") ? ["make", "build"] : ["make"],
    run: targets.has("run") ? ["make", "run"] : ["./app"],
    includeExt: [],
    exclude: [...COMMON_EXCLUDE, "build/**", "bin/**", "dist/**", "*.o"],
    listen: DEFAULT_LISTEN,
    devStrategy: "proxy",
    serveStrategy: "proxy",
    readyType: "tcp",
  };
}

function generic(_dir: string, reasons: string[]): Proposal {
  reasons.push("no go.mod, package.json, pyproject.toml, requirements.txt, Cargo.toml or Makefile → generic; edit [run] cmd");
  return {
    kind: "generic",
    language: "generic",
    label: "generic",
    build: undefined,
    run: ["./app"],
    includeExt: [],
    exclude: [...COMMON_EXCLUDE, "build/**", "dist/**"],
    listen: DEFAULT_LISTEN,
    devStrategy: "proxy",
    serveStrategy: "proxy",
    readyType: "tcp",
  };
}

// ---------------------------------------------------------------- ports

function portFromDotEnv(dir: string): { port: number; why: string } | undefined {
  for (const file of [".env", ".env.local", ".env.development"]) {
    const m = read(dir, file)?.match(/^\s*(?:export\s+)?PORT\s*=\s*["']?(\d{1,5})["']?\s*$/m);
    if (m && validPort(Number(m[1]))) return { port: Number(m[1]), why: `${file} sets PORT=${m[1]}` };
  }
  return undefined;
}

const PORT_PATTERNS: Partial<Record<ProjectKind, RegExp[]>> = {
  go: [/(?:ListenAndServe|Listen)\(\s*"[^":]*:(\d{2,5})"/, /\.Run\(\s*"[^":]*:(\d{2,5})"/],
  node: [/\.listen\(\s*(\d{2,5})\b/, /\bport\s*:\s*(\d{2,5})\b/],
  python: [/\bport\s*=\s*(\d{2,5})\b/],
};
PORT_PATTERNS["go-gin"] = PORT_PATTERNS.go;
PORT_PATTERNS.bun = PORT_PATTERNS.node;

/** A literal port in the app's code, e.g. r.Run(":3000") or app.listen(3000). */
function portFromSource(dir: string, kind: ProjectKind): { port: number; why: string } | undefined {
  const patterns = PORT_PATTERNS[kind];
  if (!patterns) return undefined;
  const exts = kind.startsWith("go") ? ["go"] : kind === "python" ? ["py"] : ["ts", "js", "mjs", "tsx"];
  for (const file of listSources(dir, exts, 40)) {
    const text = read(dir, file) ?? "";
    for (const re of patterns) {
      const m = text.match(re);
      if (m && validPort(Number(m[1]))) return { port: Number(m[1]), why: `${file} uses port ${m[1]}` };
    }
  }
  return undefined;
}

const validPort = (n: number) => Number.isInteger(n) && n > 0 && n < 65536;

const SKIP_DIRS = new Set(["node_modules", ".git", "dist", "build", "target", "tmp", "vendor", ".venv", "venv", "__pycache__", "coverage"]);

/** Source files (relative paths) with these extensions, shallow first, at most `limit`. */
function listSources(dir: string, exts: string[], limit: number): string[] {
  const out: string[] = [];
  const queue: string[] = [""];
  while (queue.length && out.length < limit) {
    const rel = queue.shift()!;
    for (const name of safeList(join(dir, rel)).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      if (name.startsWith(".") || SKIP_DIRS.has(name)) continue;
      if (isDir(join(dir, path))) {
        if (rel.split("/").length < 3) queue.push(path);
      } else if (exts.some((e) => name.endsWith(`.${e}`)) && !name.endsWith(".d.ts")) {
        out.push(path);
        if (out.length >= limit) break;
      }
    }
  }
  return out;
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------- to config

export interface Answers {
  build?: Command;
  run: Command;
  includeExt: string[];
  exclude: string[];
  listen: string | null;
  devStrategy: DevStrategy;
  serveStrategy: ServeStrategy;
  workers: number;
  readyType: ReadyType;
  readyPattern?: string;
}

export function defaultAnswers(d: Detection): Answers {
  return {
    build: d.build,
    run: d.run,
    includeExt: d.includeExt,
    exclude: d.exclude,
    listen: d.listen,
    devStrategy: d.devStrategy,
    serveStrategy: d.serveStrategy,
    workers: 1,
    readyType: d.readyType,
    readyPattern: d.readyPattern,
  };
}

/** The config `hr init` writes: only what differs from plain defaults or matters to read. */
export function toConfigInput(a: Answers): ConfigInput {
  const devStrategy = a.listen ? a.devStrategy : "none";
  return {
    ...(a.build !== undefined ? { build: { cmd: a.build } } : {}),
    run: { cmd: a.run },
    watch: { include_ext: a.includeExt, exclude: a.exclude },
    listen: a.listen ? [{ name: "http", address: a.listen }] : [],
    dev: { strategy: devStrategy },
    serve: {
      strategy: a.serveStrategy,
      workers: a.workers,
      ready: a.readyType === "log" ? { type: "log", pattern: a.readyPattern ?? "listening" } : { type: a.readyType },
    },
  };
}
