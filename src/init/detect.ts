/**
 * Project detection for `hr init`: read a directory's files and propose a config
 * that runs the app as it is, with one line of reasons per choice.
 *
 * The socket rule (issue 11): an app whose code adopts an inherited socket
 * (LISTEN_FDS, `os.NewFile(3`, `listen({ fd`, `socket(fileno=3`, listenfd, gunicorn,
 * `uvicorn --fd`) gets strategy "fd" for dev and serve; every other app runs with bind
 * capture (run.capture: hr hands the app's own bind() of the port its socket) — dev
 * strategy "fd" (the held socket, zero overhead) and serve strategy "proxy" (a private
 * socket per worker that hr forwards to; stock shutdowns then lose nothing).
 *
 * Pure file reading plus PATH lookups (which commands exist); nothing is executed.
 * Not covered: apps whose port is computed at run time from something other than a
 * literal, PORT or a framework default (the default 8080 is proposed, and said so).
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Command, ConfigInput } from "../config/schema.ts";
import { captureUnavailable } from "../capture/index.ts";

export type ProjectKind = "go-gin" | "go" | "bun" | "node" | "python" | "rust" | "make" | "generic";
/** Which "adopt the socket" snippet fits the app. */
export type Language = "go" | "node" | "bun" | "python" | "rust" | "generic";
import type { DevStrategyName as DevStrategy, ServeStrategyName as ServeStrategy, ReadyType } from "../config/schema.ts";

/** What the project is and how to build, run and watch it. */
interface ProjectBasics {
  kind: ProjectKind;
  language: Language;
  /** Human name, e.g. "Go (Gin)". */
  label: string;
  build?: Command;
  run: Command;
  includeExt: string[];
  exclude: string[];
}

export interface Detection extends ProjectBasics {
  /** Address of the [[listen]] socket; null when the app has no socket. */
  listen: string | null;
  /** True when the app's code takes an inherited socket (then strategy "fd", no capture). */
  adopts: boolean;
  /** run.capture: hr hands the app's bind() of the [[listen]] port its own socket. */
  capture: boolean;
  devStrategy: DevStrategy;
  serveStrategy: ServeStrategy;
  readyType: ReadyType;
  /** For readyType "log": the line that means ready. */
  readyPattern?: string;
  /** One line per choice and why, e.g. "port 8080: main.go calls r.Run() (Gin's default)". */
  reasons: string[];
  /** Commands the config names that are not on PATH (hr init says how to get them). */
  missing: string[];
  /** Dotenv files in the project, for [run] env_file (later ones win). */
  envFiles: string[];
  /** Things hr init must say beyond the reasons (e.g. bind capture cannot work on this machine). */
  warnings: string[];
}

export interface DetectOptions {
  /** Finds a command on PATH (default: Bun.which with this process's PATH). */
  which?: (cmd: string) => string | null;
  /** Environment for GOPATH, GOMODCACHE and HOME (default process.env). */
  env?: Record<string, string | undefined>;
  /** Where the distribution's Go libraries live (Debian: /usr/share/gocode). */
  systemGopath?: string;
  /** Why bind capture cannot work on this machine, or null (default: the real check). */
  captureUnavailable?: () => string | null;
}

export const DEFAULT_PORT = 8080;
const COMMON_EXCLUDE = ["tmp/**"];
/** Dotenv files proposed for [run] env_file, in precedence order (later wins), as dotenv tools layer them. */
const ENV_FILES = [".env", ".env.development", ".env.local"];

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

// ---------------------------------------------------------------- what each language proposes

/** What a language detector found; the socket, port and readiness are decided after it. */
interface Proposal extends ProjectBasics {
  /** Source files to read for the port, socket adoption and ready signals. */
  sourceExts: string[];
  /** The framework's own port when the code names none (Gin 8080, Flask 5000, uvicorn 8000, Bun 3000). */
  frameworkPort?: { port: number; why: string };
  /** For a framework CLI that binds frameworkPort unless told: the run command binding `port` instead. */
  runOnPort?: (port: number) => Command;
  /** The run command itself adopts an inherited socket (gunicorn, uvicorn --fd). */
  adoptsByCommand?: string;
  /** A log line that means ready, for servers that print one. */
  readyLog?: { pattern: string; why: string };
  /** No socket at all (a worker, a CLI). */
  noSocket?: boolean;
}

interface Ctx {
  dir: string;
  reasons: string[];
  missing: string[];
  which: (cmd: string) => string | null;
  env: Record<string, string | undefined>;
  systemGopath: string;
  captureUnavailable: () => string | null;
}

export function detectProject(dir: string, options: DetectOptions = {}): Detection {
  const env = options.env ?? process.env;
  const which = options.which ?? ((cmd: string) => Bun.which(cmd, { PATH: env.PATH ?? "" }));
  const ctx: Ctx = {
    dir,
    reasons: [],
    missing: [],
    which,
    env,
    systemGopath: options.systemGopath ?? "/usr/share/gocode",
    captureUnavailable: options.captureUnavailable ?? captureUnavailable,
  };
  const p = detectGo(ctx) ?? detectJs(ctx) ?? detectPython(ctx) ?? detectRust(ctx) ?? detectMake(ctx) ?? generic(ctx);
  return decide(ctx, p);
}

/** The socket rule, the port, readiness: the same for every language. */
function decide(ctx: Ctx, p: Proposal): Detection {
  const { dir, reasons } = ctx;
  // The files the run command names are read first (their port wins over a config file's).
  const named = new Set((typeof p.run === "string" ? p.run.split(/\s+/) : p.run).map((a) => a.replace(/^\.\//, "")));
  const listed = listSources(dir, p.sourceExts, 60);
  // A run file without a source extension (Express's generated bin/www) is read too.
  for (const f of named) if (!listed.includes(f) && /^\w[\w./-]*$/.test(f) && !f.includes("..") && has(dir, f) && !isDir(join(dir, f))) listed.push(f);
  const sources = listed
    .sort((a, b) => Number(named.has(b)) - Number(named.has(a)))
    .map((file) => ({ file, text: stripComments(read(dir, file) ?? "", file) }));
  const base: ProjectBasics & Pick<Detection, "reasons" | "missing" | "warnings" | "envFiles"> = {
    kind: p.kind,
    language: p.language,
    label: p.label,
    build: p.build,
    run: p.run,
    includeExt: p.includeExt,
    exclude: p.exclude,
    reasons,
    missing: ctx.missing,
    warnings: [],
    envFiles: ENV_FILES.filter((f) => isFile(join(dir, f))),
  };
  if (base.envFiles.length) {
    reasons.push(`env: run.env_file = ${JSON.stringify(base.envFiles)}: the app gets ${base.envFiles.length === 1 ? "its" : "their"} variables (hr dev restarts it when one changes; hr's own settings never read them; PORT and LISTEN_* stay hr's)`);
  }
  if (p.build !== undefined) reasons.push("serve: build = true: `hr serve` builds before its first generation and `hr reload` before each new one (set false if you deploy built binaries)");
  if (p.noSocket) {
    return { ...base, listen: null, adopts: false, capture: false, devStrategy: "none", serveStrategy: "fd", readyType: "delay" };
  }

  const port = portFromDotEnv(dir) ?? portFromSource(sources, p.kind) ?? p.frameworkPort;
  const listen = `127.0.0.1:${port?.port ?? DEFAULT_PORT}`;
  reasons.push(port ? `port ${port.port}: ${port.why}` : `port ${DEFAULT_PORT}: no port found in the code; edit [[listen]] if the app uses another`);
  if (port && p.runOnPort && p.frameworkPort && port.port !== p.frameworkPort.port) {
    base.run = p.runOnPort(port.port);
    reasons.push(`run: ${showArgv(base.run)} (told the port, which is not the framework's default ${p.frameworkPort.port})`);
  }

  const adopt = p.adoptsByCommand ?? adoptionIn(sources, scriptsText(dir));
  const signal = readySignalIn(sources);
  if (adopt) {
    reasons.push(`socket: ${adopt} → strategy "fd" for dev and serve: hr holds ${listen} and passes it at fd 3 (LISTEN_FDS=1); no capture needed`);
    const ready: Pick<Detection, "readyType" | "readyPattern"> = signal
      ? { readyType: signal.type }
      : p.readyLog
        ? { readyType: "log", readyPattern: p.readyLog.pattern }
        : { readyType: "delay" };
    reasons.push(
      signal
        ? `ready: ${signal.why} → serve.ready.type = "${signal.type}"`
        : p.readyLog
          ? `ready: ${p.readyLog.why} → serve.ready.type = "log"`
          : 'ready: the code sends no ready signal (sd_notify READY=1 or process.send("ready")) → serve.ready.type = "delay" (1s)',
    );
    return { ...base, listen, adopts: true, capture: false, devStrategy: "fd", serveStrategy: "fd", ...ready };
  }
  const binder = sources.find((s) => BIND_CALL.test(s.text))?.file;
  reasons.push(
    `socket: ${binder ? `${binder} binds the port itself` : "the app binds its port itself"} (no LISTEN_FDS / fd 3 code) → run.capture = true: hr hands that bind() its own socket; the code stays as it is`,
  );
  reasons.push(`dev: strategy "fd" with capture: hr holds ${listen} across restarts, so requests wait instead of being refused`);
  reasons.push('serve: strategy "proxy" with capture: each worker\'s bind() gets a private socket hr forwards to; ready when the app calls listen()');
  const unavailable = ctx.captureUnavailable();
  if (unavailable) {
    // Written as the rule says (hr dev/serve will say the same, and stop); the way out is named here.
    const readsPort = Boolean(port?.why.includes("$PORT"));
    base.warnings.push(
      `${unavailable}: hr dev and hr serve will refuse run.capture here. ${
        readsPort
          ? 'The app reads $PORT, so it runs without capture behind hr\'s proxy: set run.capture = false and dev.strategy = "proxy", and remove serve.ready.type (or HR_RUN_CAPTURE=false HR_DEV_STRATEGY=proxy HR_SERVE_READY_TYPE=tcp)'
          : "Without capture the app must read $PORT (proxy) or adopt hr's socket at fd 3 (fd)"
      }`,
    );
  }
  return { ...base, listen, adopts: false, capture: true, devStrategy: "fd", serveStrategy: "proxy", readyType: "listen" };
}

const showArgv = (cmd: Command) => (typeof cmd === "string" ? cmd : cmd.join(" "));

// ---------------------------------------------------------------- Go

function detectGo(ctx: Ctx): Proposal | undefined {
  const { dir, reasons } = ctx;
  const mod = read(dir, "go.mod");
  const rootGo = goFiles(dir);
  let pkg = ".";
  const rootHasMain = rootGo.some((f) => /^package\s+main\b/m.test(read(dir, f) ?? ""));
  if (mod === undefined && !rootHasMain) return undefined;
  const sources = rootGo.map((f) => read(dir, f) ?? "").join("\n");
  const gin = /github\.com\/gin-gonic\/gin\b/.test(mod ?? sources);
  const label = gin ? "Go (Gin)" : "Go";
  if (!rootHasMain && has(dir, "cmd")) {
    const sub = safeList(join(dir, "cmd")).find((n) => isDir(join(dir, "cmd", n)));
    if (sub) pkg = `./cmd/${sub}`;
  }
  const go = ctx.which("go");
  if (!go) ctx.missing.push("go");
  let build: Command = ["go", "build", "-o", "./tmp/app", pkg];
  const module = mod?.match(/^module\s+(\S+)/m)?.[1];
  const gopaths = (ctx.env.GOPATH ?? join(ctx.env.HOME ?? homedir(), "go")).split(":").filter(Boolean);
  // Non-standard-library imports of the main package (the module's own packages excluded).
  const imports = [...new Set([...sources.matchAll(/"([a-z0-9.-]+\.[a-z]{2,}\/[^"\s]+)"/g)].map((m) => m[1]!))].filter(
    (i) => !module || (i !== module && !i.startsWith(`${module}/`)),
  );
  const sys = ctx.systemGopath;
  const inGopath = (p: string) => [...gopaths, sys].find((g) => existsSync(join(g, "src", p)));
  const system = imports.length > 0 && imports.every((i) => inGopath(i)) && imports.some((i) => inGopath(i) === sys);
  const gopathBuild = `GO111MODULE=off ${system ? `GOPATH=$HOME/go:${sys} ` : ""}go build -o ./tmp/app .`;
  const systemWhy = system ? `; imports found in ${sys} (the distribution's packaged Go libraries), added to GOPATH` : "";
  if (mod !== undefined) {
    reasons.push(`${label}: go.mod${module ? ` (module ${module})` : ""}${gin ? " requires github.com/gin-gonic/gin" : ""}`);
    // Offline with Debian's packaged libraries: module mode would try to download what GOPATH mode finds.
    const modCache = ctx.env.GOMODCACHE ?? join(gopaths[0] ?? join(ctx.env.HOME ?? homedir(), "go"), "pkg", "mod");
    const cached = (i: string) => {
      const parent = join(modCache, dirname(i));
      return safeList(parent).some((n) => n.startsWith(`${basename(i)}@`));
    };
    const required = [...(mod.matchAll(/^\s*(?:require\s+)?([a-z0-9.-]+\.[a-z]{2,}\/\S+)\s+v\d/gm) ?? [])].map((m) => m[1]!);
    if (pkg === "." && system && !has(dir, "vendor") && required.length > 0 && !required.some(cached)) {
      build = gopathBuild;
      reasons.push("go.mod's requirements are neither vendored nor in the module cache, but Debian's packaged copies are → GOPATH mode (GO111MODULE=off)");
    }
  } else {
    // GOPATH mode: Go ≥ 1.16 wants a go.mod unless GO111MODULE=off.
    build = gopathBuild;
    reasons.push(`${label}: ${rootGo.length} .go file${rootGo.length === 1 ? "" : "s"} with package main and no go.mod → GOPATH mode (GO111MODULE=off)${systemWhy}`);
  }
  reasons.push(`build: ${typeof build === "string" ? build : build.join(" ")}${pkg !== "." ? ` (main package in ${pkg.slice(2)})` : ""}; run ./tmp/app`);
  return {
    kind: gin ? "go-gin" : "go",
    language: "go",
    label,
    build,
    run: ["./tmp/app"],
    includeExt: ["go", "tmpl", "html"],
    exclude: [...COMMON_EXCLUDE, "vendor/**", "**/*_test.go"],
    sourceExts: ["go"],
    frameworkPort: gin ? { port: 8080, why: "Gin's r.Run() default (:8080, or $PORT)" } : undefined,
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
/** Packages that mean the app runs on Bun even when npm installed it. */
const BUN_PACKAGES = ["elysia", "@types/bun", "bun-types", "bun"];

function detectJs(ctx: Ctx): Proposal | undefined {
  const { dir, reasons } = ctx;
  const text = read(dir, "package.json");
  // No package.json: a lone server.js / index.ts is still a Node or Bun app.
  if (text === undefined && !JS_ENTRIES.some((f) => has(dir, f))) return undefined;
  let pkg: PackageJson = {};
  try {
    if (text !== undefined) pkg = JSON.parse(text) as PackageJson;
  } catch {
    reasons.push("package.json is not valid JSON; using defaults");
  }
  const deps = { ...pkg.dependencies, ...pkg.devDependencies };
  const scripts = pkg.scripts ?? {};
  const bunLock = ["bun.lock", "bun.lockb"].find((f) => has(dir, f));
  const pm = bunLock ? "bun" : has(dir, "pnpm-lock.yaml") ? "pnpm" : has(dir, "yarn.lock") ? "yarn" : "npm";
  const lock = bunLock ?? (pm === "pnpm" ? "pnpm-lock.yaml" : pm === "yarn" ? "yarn.lock" : has(dir, "package-lock.json") ? "package-lock.json" : undefined);
  const ts = has(dir, "tsconfig.json");
  const hasBuild = Boolean(scripts.build) && !bunLock;

  // The entry file: main/module, else the usual names; .ts entries need a TypeScript runtime.
  const entry = entryFile(dir, pkg);
  const bunPackage = BUN_PACKAGES.find((p) => p in deps);
  const scriptsSayBun = Object.values(scripts).some((s) => /(^|[\s;&|])bun\s/.test(s));
  const tsEntry = entry !== undefined && /\.(ts|tsx|mts)$/.test(entry.file);
  let why: string;
  let isBun: boolean;
  if (bunLock) [isBun, why] = [true, `${bunLock} → Bun`];
  else if (bunPackage) [isBun, why] = [true, `package.json depends on ${bunPackage}${lock ? ` (installed with ${pm})` : ""} → Bun`];
  else if (scriptsSayBun) [isBun, why] = [true, `package.json scripts run bun${lock ? ` (installed with ${pm})` : ""} → Bun`];
  else if (tsEntry && !hasBuild) [isBun, why] = [true, `${entry!.file} is TypeScript with no build script → Bun runs it directly`];
  else [isBun, why] = [false, `package.json${lock ? ` with ${lock}` : ""} → Node (${pm})`];
  const framework = ["elysia", "hono", "fastify", "express", "koa"].find((f) => f in deps);
  const label = `${isBun ? "Bun" : "Node"}${framework ? ` (${framework[0]!.toUpperCase()}${framework.slice(1)})` : ts ? " (TypeScript)" : ""}`;
  reasons.push(`${label}: ${text === undefined ? why.replace(/^package\.json/, `${entry?.file ?? "a .js file"}, no package.json`) : why}`);

  let build: Command | undefined;
  let run: Command | undefined;
  const runtime = isBun ? runtimeCommand(ctx, "bun") : runtimeCommand(ctx, "node");
  if (!isBun && (ts || tsEntry)) {
    build = scripts.build ? [pm, "run", "build"] : ["npx", "tsc"];
    reasons.push(`build: ${build.join(" ")} (TypeScript, compiled before running)`);
  }
  // The dev script, unless it is a watcher of its own (hr is the watcher now), then start, then the entry.
  for (const name of ["dev", "start"]) {
    const script = scripts[name];
    if (!script || run) continue;
    if (WATCHERS.test(script)) {
      reasons.push(`scripts.${name} runs its own watcher ("${script}"); not used: hr is the watcher`);
      continue;
    }
    const cmd = simpleCommand(script);
    if (Array.isArray(cmd) && (cmd[0] === "node" || cmd[0] === "bun")) {
      run = [cmd[0] === "bun" ? runtimeCommand(ctx, "bun") : runtime, ...cmd.slice(1)];
    } else run = [pm, "run", name];
    reasons.push(`run: scripts.${name} = "${script}"`);
  }
  const compiled = !isBun && build !== undefined ? compiledEntry(dir, entry) : undefined;
  if (!run && (compiled ?? entry)) {
    const e = (compiled ?? entry)!;
    run = [runtime, e.file];
    reasons.push(`run: ${runtime} ${e.file} (${e.why})`);
  }
  if (!run) {
    run = [runtime, isBun ? "index.ts" : "index.js"];
    reasons.push(`run: no entry file found; proposing ${run.join(" ")} — edit [run] cmd`);
  }
  return {
    kind: isBun ? "bun" : "node",
    language: isBun ? "bun" : "node",
    label,
    build,
    run,
    includeExt: isBun || ts || tsEntry ? ["ts", "tsx", "js", "jsx", "mjs", "json"] : ["js", "mjs", "cjs", "json"],
    exclude: [...COMMON_EXCLUDE, "dist/**", "build/**", "coverage/**"],
    sourceExts: ["ts", "tsx", "mts", "js", "mjs", "cjs", "jsx"],
    // Bun.serve and Bun's default-export server bind $PORT, else 3000.
    frameworkPort: isBun ? { port: 3000, why: "Bun's default port (3000, or $PORT)" } : undefined,
  };
}

/** A runtime on PATH, else the project's node_modules/.bin copy (npm i bun), else the bare name (noted missing). */
function runtimeCommand(ctx: Ctx, name: string): string {
  if (ctx.which(name)) return name;
  const local = `./node_modules/.bin/${name}`;
  if (has(ctx.dir, local)) {
    if (!ctx.reasons.some((r) => r.includes(local))) ctx.reasons.push(`${name} is not on PATH; using ${local} (installed from npm)`);
    return local;
  }
  if (!ctx.missing.includes(name)) ctx.missing.push(name);
  return name;
}

interface Entry {
  file: string;
  why: string;
}

const JS_ENTRIES = ["index", "server", "app", "main", "src/index", "src/server", "src/app", "src/main"].flatMap((name) =>
  ["ts", "js", "mjs", "cjs", "tsx", "mts"].map((ext) => `${name}.${ext}`),
);

function entryFile(dir: string, pkg: PackageJson): Entry | undefined {
  const main = pkg.module ?? pkg.main;
  if (main && has(dir, main)) return { file: main, why: `package.json "${pkg.module ? "module" : "main"}"` };
  const file = JS_ENTRIES.find((f) => has(dir, f));
  if (file) return { file, why: `${file} found` };
  if (main) return { file: main, why: `package.json "main"` };
  return undefined;
}

/** For a compiled TypeScript project: the output file of the entry (src/index.ts → dist/index.js). */
function compiledEntry(dir: string, entry: Entry | undefined): Entry | undefined {
  if (!entry || !/\.(ts|tsx|mts)$/.test(entry.file)) return entry;
  const outDir = read(dir, "tsconfig.json")?.match(/"outDir"\s*:\s*"(?:\.\/)?([^"]+?)\/?"/)?.[1] ?? "dist";
  const out = `${outDir}/${basename(entry.file).replace(/\.(ts|tsx|mts)$/, ".js")}`;
  return { file: out, why: `${entry.file} compiled to ${out}` };
}

// ---------------------------------------------------------------- Python

function detectPython(ctx: Ctx): Proposal | undefined {
  const { dir, reasons } = ctx;
  const pyproject = read(dir, "pyproject.toml");
  const requirements = read(dir, "requirements.txt");
  const pyFiles = safeList(dir).filter((f) => f.endsWith(".py"));
  if (pyproject === undefined && requirements === undefined && pyFiles.length === 0) return undefined;
  const found = [pyproject !== undefined && "pyproject.toml", requirements !== undefined && "requirements.txt"].filter(Boolean).join(" and ");
  const deps = `${pyproject ?? ""}\n${requirements ?? ""}`.toLowerCase();
  const code = pyFiles.map((f) => read(dir, f) ?? "").join("\n");
  const named = (name: string) =>
    new RegExp(`(^|["'\\s,\\[])${name}\\b`, "m").test(deps) || new RegExp(`^\\s*(from|import)\\s+${name}\\b`, "m").test(code);
  const venv = has(dir, ".venv/bin/python") ? ".venv" : has(dir, "venv/bin/python") ? "venv" : undefined;
  const py = venv ? `${venv}/bin/python` : "python3";
  if (!venv && !ctx.which("python3")) ctx.missing.push("python3");
  /** A console script on PATH (or in the venv), else `python3 -m module`. */
  const tool = (name: string, module = name): string[] => {
    if (venv && has(dir, `${venv}/bin/${name}`)) return [`${venv}/bin/${name}`];
    if (!venv && ctx.which(name)) return [name];
    reasons.push(`${name}: no \`${name}\` command${venv ? ` in ${venv}` : " on PATH"} → ${py} -m ${module}`);
    return [py, "-m", module];
  };
  const base = {
    kind: "python" as const,
    language: "python" as const,
    build: undefined,
    includeExt: ["py", "html", "jinja", "jinja2", "toml"],
    exclude: [...COMMON_EXCLUDE, "__pycache__/**", "**/__pycache__/**", ".venv/**", "venv/**", ".pytest_cache/**", ".mypy_cache/**", "*.egg-info/**"],
    sourceExts: ["py"],
  };
  const framework = named("fastapi") ? "FastAPI" : named("flask") ? "Flask" : named("django") || has(dir, "manage.py") ? "Django" : named("starlette") ? "Starlette" : undefined;
  const label = `Python${framework ? ` (${framework})` : ""}`;
  reasons.push(`${label}: ${found ? `${found}${venv ? `, ${venv}` : ""}` : `${pyFiles.length} .py file${pyFiles.length === 1 ? "" : "s"}`}`);
  // The module:variable of the app object, for gunicorn and uvicorn.
  const appRef = pythonAppRef(dir, pyFiles);
  const script = ["main.py", "app.py", "server.py", "wsgi.py", "asgi.py"].find((f) => has(dir, f)) ?? pyFiles[0];
  const mainGuard = (file: string | undefined) => file !== undefined && /if\s+__name__\s*==\s*["']__main__["']/.test(read(dir, file) ?? "");

  const scripts = scriptsText(dir);
  if (named("gunicorn") || /\bgunicorn\b/.test(scripts)) {
    const ref = appRef?.ref ?? `${(script ?? "app.py").replace(/\.py$/, "")}:app`;
    reasons.push(`run: gunicorn ${ref}${appRef ? ` (${appRef.why})` : ""}`);
    return {
      ...base,
      label: `${label.replace(/\)$/, "")}${framework ? ", gunicorn)" : " (gunicorn)"}`,
      run: [...tool("gunicorn"), ref],
      frameworkPort: { port: 8000, why: "gunicorn's default bind (127.0.0.1:8000)" },
      adoptsByCommand: "gunicorn adopts LISTEN_FDS itself",
      readyLog: { pattern: "Booting worker", why: 'gunicorn logs "Booting worker" when a worker starts' },
    };
  }
  if (framework === "FastAPI" || framework === "Starlette" || named("uvicorn")) {
    const ref = appRef?.ref ?? "main:app";
    const fd = /uvicorn\b[^\n]*--fd\b/.test(scripts);
    const runs = !fd ? pyFiles.find((f) => /\buvicorn\.run\(/.test(read(dir, f) ?? "") && mainGuard(f)) : undefined;
    if (runs) {
      reasons.push(`run: ${py} ${runs} (it calls uvicorn.run() itself)`);
      return { ...base, label, run: [py, runs], frameworkPort: { port: 8000, why: "uvicorn.run()'s default (8000)" } };
    }
    reasons.push(`run: uvicorn ${ref}${appRef ? ` (${appRef.why})` : ""}${fd ? " --fd 3 (as the project's scripts run it)" : ""}`);
    const uvicorn = [...tool("uvicorn"), ...(fd ? ["--fd", "3"] : []), ref];
    return {
      ...base,
      label: framework ? label : "Python (uvicorn)",
      run: uvicorn,
      frameworkPort: { port: 8000, why: "uvicorn's default (127.0.0.1:8000)" },
      runOnPort: fd ? undefined : (n) => [...uvicorn, "--port", String(n)],
      adoptsByCommand: fd ? "the project runs uvicorn --fd, which adopts the inherited socket" : undefined,
      readyLog: { pattern: "Application startup complete", why: 'uvicorn logs "Application startup complete"' },
    };
  }
  if (framework === "Django") {
    reasons.push("run: manage.py runserver --noreload 127.0.0.1:8000 (hr is the reloader)");
    const runserver = (n: number) => [py, "manage.py", "runserver", "--noreload", `127.0.0.1:${n}`];
    return { ...base, label, run: runserver(8000), frameworkPort: { port: 8000, why: "runserver's default (127.0.0.1:8000)" }, runOnPort: runserver };
  }
  if (framework === "Flask") {
    const entry = pyFiles.find((f) => /\.run\s*\(/.test(read(dir, f) ?? "") && mainGuard(f));
    if (entry) {
      reasons.push(`run: ${py} ${entry} (it calls app.run())`);
      return { ...base, label, run: [py, entry], frameworkPort: { port: 5000, why: "Flask's app.run() default (5000)" } };
    }
    const app = appRef?.ref.split(":")[0] ?? "app";
    reasons.push(`run: flask --app ${app} run (no file calls app.run())`);
    const flask = [...tool("flask"), "--app", app, "run"];
    return { ...base, label, run: flask, frameworkPort: { port: 5000, why: "flask run's default (127.0.0.1:5000)" }, runOnPort: (n) => [...flask, "--port", String(n)] };
  }
  const entry = script ?? "main.py";
  reasons.push(script ? `run: ${py} ${script}` : "run: no main.py/app.py found; edit [run] cmd");
  return { ...base, label, run: [py, entry] };
}

/** `app = FastAPI()` in main.py → "main:app". */
function pythonAppRef(dir: string, files: string[], packages = true): { ref: string; why: string } | undefined {
  const ordered = [...["main.py", "app.py", "server.py", "wsgi.py", "asgi.py"].filter((f) => files.includes(f)), ...files];
  for (const file of ordered) {
    const m = (read(dir, file) ?? "").match(/^(\w+)\s*=\s*(FastAPI|Flask|Starlette|Quart|Sanic|falcon\.App|falcon\.asgi\.App)\s*\(/m);
    if (m) return { ref: `${file.replace(/\.py$/, "")}:${m[1]}`, why: `${file} defines ${m[1]} = ${m[2]}()` };
  }
  // A package one level down (FastAPI's "bigger applications": app/__init__.py + app/main.py) → "app.main:app".
  if (!packages) return undefined;
  for (const pkg of safeList(dir).filter((d) => /^\w+$/.test(d) && !["venv", "tests", "test"].includes(d) && has(dir, `${d}/__init__.py`)).sort()) {
    const inner = safeList(join(dir, pkg)).filter((f) => /^\w+\.py$/.test(f) && f !== "__init__.py");
    const ref = pythonAppRef(join(dir, pkg), [...["main.py", "app.py", "server.py", "asgi.py", "wsgi.py"].filter((f) => inner.includes(f)), ...inner].filter((f, i, a) => a.indexOf(f) === i), false);
    if (ref) return { ref: `${pkg}.${ref.ref}`, why: `${pkg}/${ref.why}` };
  }
  return undefined;
}

// ---------------------------------------------------------------- Rust

function detectRust(ctx: Ctx): Proposal | undefined {
  const { dir, reasons } = ctx;
  const text = read(dir, "Cargo.toml");
  if (text === undefined) return undefined;
  let name = basename(dir);
  try {
    const cargo = Bun.TOML.parse(text) as { package?: { name?: string }; bin?: { name?: string }[] };
    name = cargo.bin?.[0]?.name ?? cargo.package?.name ?? name;
  } catch {
    reasons.push("Cargo.toml does not parse; using the directory name");
  }
  reasons.push(`Rust: Cargo.toml (binary ${name}); build: cargo build`);
  if (!ctx.which("cargo")) ctx.missing.push("cargo");
  const listenfd = /^\s*listenfd\b/m.test(text);
  return {
    kind: "rust",
    language: "rust",
    label: "Rust",
    build: ["cargo", "build"],
    run: [`./target/debug/${name}`],
    includeExt: ["rs", "toml"],
    exclude: [...COMMON_EXCLUDE, "target/**"],
    sourceExts: ["rs"],
    adoptsByCommand: listenfd ? "Cargo.toml depends on listenfd" : undefined,
  };
}

// ---------------------------------------------------------------- Makefile / generic

function detectMake(ctx: Ctx): Proposal | undefined {
  const { dir, reasons } = ctx;
  const text = read(dir, "Makefile") ?? read(dir, "makefile") ?? read(dir, "GNUmakefile");
  if (text === undefined) return undefined;
  const targets = new Set([...text.matchAll(/^([A-Za-z0-9_.-]+)\s*:(?!=)/gm)].map((m) => m[1]!));
  reasons.push(`Makefile (targets: ${[...targets].slice(0, 6).join(", ") || "none"})`);
  return {
    kind: "make",
    language: "generic",
    label: "Makefile",
    build: targets.has("build") ? ["make", "build"] : ["make"],
    run: targets.has("run") ? ["make", "run"] : ["./app"],
    includeExt: [],
    exclude: [...COMMON_EXCLUDE, "build/**", "bin/**", "dist/**", "*.o"],
    sourceExts: ["c", "cc", "cpp", "go", "rs", "py", "js", "ts", "sh"],
  };
}

function generic(ctx: Ctx): Proposal {
  ctx.reasons.push("no go.mod, *.go, package.json, Python files, Cargo.toml or Makefile → generic; edit [run] cmd");
  return {
    kind: "generic",
    language: "generic",
    label: "generic",
    build: undefined,
    run: ["./app"],
    includeExt: [],
    exclude: [...COMMON_EXCLUDE, "build/**", "dist/**"],
    sourceExts: ["sh", "py", "js", "ts", "rb", "pl"],
  };
}

// ---------------------------------------------------------------- reading the code

interface Source {
  file: string;
  text: string;
}

/** Line comments out, so a commented-out `// r.Run(":9000")` proposes nothing. */
function stripComments(text: string, file: string): string {
  if (/\.(py|sh|rb|pl)$/.test(file) || file === "Makefile") return text.replace(/^\s*#.*$/gm, "");
  return text.replace(/^\s*\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
}

/** Scripts that may run the app: package.json scripts, Procfile, Makefile, Dockerfile, *.sh. */
function scriptsText(dir: string): string {
  const names = ["package.json", "Procfile", "Makefile", "Dockerfile", "docker-compose.yml", "compose.yaml", "start.sh", "run.sh", "pyproject.toml"];
  return names.map((n) => read(dir, n) ?? "").join("\n");
}

/** Code that takes an inherited listening socket; the first match says where. */
const ADOPTION: { re: RegExp; what: string }[] = [
  { re: /\bLISTEN_FDS\b/, what: "reads LISTEN_FDS" },
  { re: /os\.NewFile\(\s*3\b/, what: "calls os.NewFile(3, …)" },
  { re: /activation\.(Listeners|Files|ListenersWithNames)\(/, what: "uses go-systemd activation" },
  { re: /\blisten\(\s*\{\s*fd\s*:/, what: "calls listen({ fd })" },
  { re: /socket\.(socket\([^)]*fileno\s*=\s*3|fromfd\(\s*3\b)/, what: "opens socket(fileno=3)" },
  { re: /\bsd_listen_fds\b|\bsystemd\.daemon\.listen_fds\b/, what: "calls sd_listen_fds" },
  { re: /\bListenFd::from_env\b|\blistenfd\b/, what: "uses listenfd" },
  { re: /from_raw_fd\(\s*3\s*\)/, what: "takes fd 3 (from_raw_fd(3))" },
];

function adoptionIn(sources: Source[], scripts: string): string | undefined {
  for (const { re, what } of ADOPTION) {
    const hit = sources.find((s) => re.test(s.text));
    if (hit) return `${hit.file} ${what}`;
  }
  if (/uvicorn\b[^\n]*--fd\b/.test(scripts)) return "the project runs uvicorn --fd";
  if (/\bgunicorn\b/.test(scripts)) return "the project runs gunicorn, which adopts LISTEN_FDS";
  return undefined;
}

function readySignalIn(sources: Source[]): { type: "notify" | "ipc"; why: string } | undefined {
  for (const s of sources) {
    if (/\bNOTIFY_SOCKET\b|\bsd_notify\b|\bSdNotify\b|READY=1/.test(s.text)) return { type: "notify", why: `${s.file} sends sd_notify READY=1` };
    if (/process\.send\??\.?\(\s*["']ready["']/.test(s.text)) return { type: "ipc", why: `${s.file} calls process.send("ready")` };
  }
  return undefined;
}

/** A call that binds a port (the app binds it itself; capture hands it hr's socket). */
const BIND_CALL = /\.listen\(|\.Run\(|ListenAndServe|net\.Listen\(|Bun\.serve\(|export\s+default\b[^;]*\bfetch\b|\.run\(|HTTPServer\(|TCPServer\(|uvicorn\.run\(|bind\(/;

function portFromDotEnv(dir: string): { port: number; why: string } | undefined {
  for (const file of [".env", ".env.local", ".env.development"]) {
    const m = read(dir, file)?.match(/^\s*(?:export\s+)?PORT\s*=\s*["']?(\d{1,5})["']?\s*$/m);
    if (m && validPort(Number(m[1]))) return { port: Number(m[1]), why: `${file} sets PORT=${m[1]}` };
  }
  return undefined;
}

const P = "(\\d{2,5})";
/** Literal ports, per language; each pattern's first group is the port. */
const GO_PORTS = [
  new RegExp(`(?:ListenAndServe(?:TLS)?|\\.Run|\\.Start|\\.Listen|RunListener)\\(\\s*"[^":]*:${P}"`),
  new RegExp(`Addr\\s*:\\s*"[^":]*:${P}"`),
  new RegExp(`net\\.Listen\\(\\s*"tcp[46]?"\\s*,\\s*"[^":]*:${P}"`),
];
const JS_PORTS = [/\.listen\(\s*(\d{2,5})\b/, /\.listen\(\s*\{[^}]*\bport\s*:\s*(\d{2,5})\b/, /\bport\s*:\s*(\d{2,5})\b/];
const PY_PORTS = [/\bport\s*=\s*(\d{2,5})\b/i, /(?:HTTPServer|TCPServer)\(\s*\(\s*["'][^"']*["']\s*,\s*(\d{2,5})\s*\)/, /--port[= ](\d{2,5})\b/, /bind\s*=\s*["'][^"':]*:(\d{2,5})["']/];
/** PORT read from the environment with a fallback: the fallback is the port. */
const ENV_DEFAULT_PORTS = [
  /\bPORT\b["'\])]*\s*(?:\|\||\?\?|or)\s*["']?(\d{2,5})\b/, // process.env.PORT || 3000, env.PORT ?? 3000, os.environ.get("PORT") or 8000
  /["']PORT["']\s*,\s*["']?(\d{2,5})["']?\s*\)/, // os.environ.get("PORT", 5000), envInt("PORT", 8080)
  /Getenv\(\s*"PORT"\s*\)[\s\S]{0,120}?=\s*"(\d{2,5})"/, // port := os.Getenv("PORT"); if port == "" { port = "8080" }
];

/** The port the app's code binds: a literal, a PORT fallback, or a constant passed to listen(). */
function portFromSource(sources: Source[], kind: ProjectKind): { port: number; why: string } | undefined {
  const literal = kind.startsWith("go") ? GO_PORTS : kind === "python" ? PY_PORTS : kind === "node" || kind === "bun" ? JS_PORTS : [...GO_PORTS, ...JS_PORTS, ...PY_PORTS];
  for (const { file, text } of sources) {
    for (const re of ENV_DEFAULT_PORTS) {
      const m = text.match(re);
      if (m && validPort(Number(m[1]))) return { port: Number(m[1]), why: `${file} reads $PORT, default ${m[1]}` };
    }
    // app.listen(port) with `const port = 3000` (or Number(process.env.PORT) || 3000, handled above).
    const ident = (
      text.match(/\.(?:listen|Run|serve)\(\s*(?:\{\s*port\s*:\s*)?([A-Za-z_$][\w$]*)\s*[,)}]/) ??
      text.match(/(?:HTTPServer|TCPServer)\(\s*\(\s*["'][^"']*["']\s*,\s*([A-Za-z_]\w*)\s*\)/) ??
      text.match(/\bport\s*=\s*([A-Za-z_]\w*)\s*[,)]/)
    )?.[1];
    const value = ident ? text.match(new RegExp(`^\\s*(?:(?:export\\s+)?(?:const|let|var)\\s+)?${ident.replace(/\$/g, "\\$")}\\s*(?::\\s*\\w+\\s*)?=\\s*(\\d{2,5})\\b`, "m"))?.[1] : undefined;
    if (value && validPort(Number(value))) return { port: Number(value), why: `${file} listens on ${ident} = ${value}` };
    for (const re of literal) {
      const m = text.match(re);
      if (m && validPort(Number(m[1]))) return { port: Number(m[1]), why: `${file} binds port ${m[1]}` };
    }
  }
  return undefined;
}

const validPort = (n: number) => Number.isInteger(n) && n > 0 && n < 65536;

const SKIP_DIRS = new Set(["node_modules", ".git", "dist", "build", "target", "tmp", "vendor", ".venv", "venv", "__pycache__", "coverage", "gopath"]);

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
      } else if (exts.some((e) => name.endsWith(`.${e}`)) && !name.endsWith(".d.ts") && !/_test\.go$|\.test\.[jt]s$|^test_.*\.py$/.test(name)) {
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

function isFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
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
  capture: boolean;
  /** [run] env_file (empty: none). */
  envFiles: string[];
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
    capture: d.capture,
    envFiles: d.envFiles,
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
  const capture = Boolean(a.listen) && a.capture;
  const readyType = a.readyType === "listen" && !capture ? (a.serveStrategy === "proxy" ? "tcp" : "delay") : a.readyType;
  return {
    ...(a.build !== undefined ? { build: { cmd: a.build } } : {}),
    run: {
      cmd: a.run,
      ...(a.envFiles.length ? { env_file: a.envFiles.length === 1 ? a.envFiles[0]! : a.envFiles } : {}),
      ...(capture ? { capture: true } : {}),
    },
    watch: { include_ext: a.includeExt, exclude: a.exclude },
    listen: a.listen ? [{ name: "http", address: a.listen }] : [],
    dev: { strategy: devStrategy },
    serve: {
      strategy: a.serveStrategy,
      workers: a.workers,
      // A reload rebuilds first, so `hr reload` after an edit serves the new code (the first start builds a missing binary anyway).
      ...(a.build !== undefined ? { build: true } : {}),
      ready: readyType === "log" ? { type: "log", pattern: a.readyPattern ?? "listening" } : { type: readyType },
    },
  };
}

/** What the app's code must change to run under these answers; empty when nothing. */
export function requiredChanges(a: Answers, d: Pick<Detection, "adopts" | "readyType">): string[] {
  if (!a.listen) return [];
  const out: string[] = [];
  if (!a.capture && !d.adopts) {
    const adopt = "adopt the socket at fd 3 (LISTEN_FDS=1) instead of binding the port";
    if (a.devStrategy === "fd") out.push(`hr dev (strategy fd): ${adopt}`);
    if (a.devStrategy === "proxy") out.push("hr dev (strategy proxy): bind 127.0.0.1:$PORT (a private port hr forwards to)");
    if (a.serveStrategy === "fd") out.push(`hr serve (strategy fd): ${adopt}`);
    if (a.serveStrategy === "proxy") out.push("hr serve (strategy proxy): bind 127.0.0.1:$PORT (a private port per worker)");
    if (a.serveStrategy === "reuseport") out.push("hr serve (strategy reuseport): bind $PORT with SO_REUSEPORT");
  }
  if (a.readyType !== d.readyType) {
    if (a.readyType === "notify") out.push('hr serve (ready "notify"): send READY=1 to $NOTIFY_SOCKET once serving');
    if (a.readyType === "ipc") out.push('hr serve (ready "ipc"): call process.send("ready") once listening');
    if (a.readyType === "http") out.push('hr serve (ready "http"): answer GET /health with 2xx on $HR_HEALTH_PORT');
  }
  return out;
}
