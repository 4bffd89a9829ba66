/**
 * The hr.toml schema: the single source of truth for config types, defaults,
 * descriptions, `hr check`, `hr schema` (JSON Schema) and what `hr init` writes.
 *
 * Every leaf carries its own error text so a problem reads
 * `serve.drain_timeout: expected a duration like "30s", got 30`.
 */
import { SIGNALS } from "../process/signals.ts";
import { z } from "zod";
import { DURATION_PATTERN, parseDuration } from "./duration.ts";
import { parseListenAddress } from "../sockets/address.ts";

/** Short rendering of a value found in the config, for error messages. */
export function show(value: unknown): string {
  if (value === undefined) return "nothing";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `an array (${JSON.stringify(value).slice(0, 60)})`;
  if (value !== null && typeof value === "object") return "a table";
  return String(value);
}

function regExpError(source: string): string | undefined {
  try {
    new RegExp(source);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}
const isRegExp = (source: string) => regExpError(source) === undefined;

const expected = (what: string) => (issue: { input?: unknown }) => `expected ${what}, got ${show(issue.input)}`;

/** Upper bounds where a value could exhaust the machine or overflow a timer (checked by `hr check`). */
export const LIMITS = { durationMs: 24 * 3_600_000, workers: 1024, backlog: 65535, proxyThreads: 64, logBytes: 10 * 1024 ** 3 } as const;

const SIZE_PATTERN = /^\s*(\d{1,12})\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$/i;
/** "512KB", "10MB", "1GB" (powers of 1024, like logrotate's `size`) → bytes. */
function parseSize(text: string): number {
  const m = SIZE_PATTERN.exec(text)!;
  const unit = (m[2] ?? "B").toUpperCase().replace("I", "");
  return Number(m[1]) * ({ B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 } as Record<string, number>)[unit]!;
}

const boundedDuration = (what: string) =>
  z
    .string({ error: expected(what) })
    .max(64, { error: expected('a duration like "250ms", "5s" or "2m"') })
    .regex(new RegExp(DURATION_PATTERN), { error: expected('a duration like "250ms", "5s" or "2m"') })
    .refine((text) => parseDuration(text)! <= LIMITS.durationMs, { error: (issue) => `expected a duration of at most 24h, got ${show(issue.input)}` })
    .transform((text) => parseDuration(text)!);

const duration = (fallback: string) => boundedDuration('a duration like "30s"').prefault(fallback);

const optionalDuration = () => boundedDuration('a duration like "500ms"').optional();

const oneOf = <const T extends readonly [string, ...string[]]>(values: T) =>
  z.enum(values, { error: expected(`one of ${values.map((v) => JSON.stringify(v)).join(", ")}`) });

const bool = (fallback: boolean) => z.boolean({ error: expected("true or false") }).default(fallback);
const str = (what = "a string") => z.string({ error: expected(what) });
const strings = (fallback: string[]) => z.array(str(), { error: expected("an array of strings") }).default(fallback);

/** A command: a string runs through `sh -c`; an array is exec'd directly. */
export const Command = z.union([z.string().min(1), z.array(z.string()).min(1)], {
  error: expected('a command: a string for `sh -c`, or an array like ["./tmp/app", "--flag"]'),
});
export type Command = z.infer<typeof Command>;

const Signal = z
  .string({ error: expected(`a signal name like "SIGTERM"`) })
  .transform((name) => (name.toUpperCase().startsWith("SIG") ? name.toUpperCase() : `SIG${name.toUpperCase()}`))
  .pipe(oneOf(SIGNALS));

/** Environment tables: a key with "=" or NUL would be cut by execve (KEY=A=B sets KEY, and "PATH=x" as a key replaces PATH). */
const Env = z
  .record(z.string(), str("a string value (quote numbers)"), { error: expected('a table like { KEY = "value" }') })
  .superRefine((env, ctx) => {
    for (const [key, value] of Object.entries(env)) {
      if (key === "" || key.includes("=") || key.includes("\0"))
        ctx.addIssue({ code: "custom", path: [key], message: `${JSON.stringify(key)} is not a usable environment variable name: it must be non-empty, without "=" or NUL (e.g. DATABASE_URL)` });
      else if (typeof value === "string" && value.includes("\0"))
        ctx.addIssue({ code: "custom", path: [key], message: "the value contains a NUL character, which an environment variable cannot hold" });
    }
  });

const positiveInt = (fallback: number, what: string, max: number) =>
  z.number({ error: expected(what) }).int({ error: expected(what) }).min(1, { error: expected(what) }).max(max, { error: expected(what) }).default(fallback);

export const BuildSection = z
  .strictObject({
    cmd: Command.optional().describe("Build command. A string runs through `sh -c`; an array is exec'd directly."),
    pre: Command.optional().describe("Runs before the build command (e.g. code generation)."),
    post: Command.optional().describe("Runs after a successful build."),
    env: Env.default({}).describe("Extra environment for the build."),
  })
  .describe("How to build the app. Omit when there is nothing to build.");

export const RunSection = z
  .strictObject({
    cmd: Command.describe("The app's command. A string runs through `sh -c`; an array is exec'd directly."),
    env: Env.default({}).describe("Extra environment for the app."),
    env_file: z
      .union([str().min(1), z.array(str().min(1)).min(1)], { error: expected('a dotenv file like ".env", or a list like [".env", ".env.local"]') })
      .transform((v) => (typeof v === "string" ? [v] : v))
      .optional()
      .describe(
        "Dotenv file(s) whose variables the app gets (only the app: hr's own settings never read them), relative to the project; later files win. Precedence: hr's environment < env files < [run].env. hr dev restarts the app when one changes; hr serve applies a change at the next reload. Syntax: KEY=value, export, '…' and \"…\" quotes (\\n escapes), # comments; nothing is executed or expanded.",
      ),
    stop_signal: Signal.prefault("SIGTERM").describe("Signal sent to the app's whole process group to stop it."),
    stop_timeout: duration("5s").describe("How long to wait after stop_signal before SIGKILL."),
    capture: bool(false).describe(
      "Capture the app's bind() of a [[listen]] port (any host: \":8080\", \"0.0.0.0\", \"[::]\") and hand it hr's socket instead: the app runs unmodified, with its hard-coded port (Linux ≥ 5.9, seccomp user notification). Other binds proceed untouched.",
    ),
  }, { error: expected('a [run] table with cmd = "…"') })
  .describe("How to run the app.");

export const WatchSection = z
  .strictObject({
    paths: strings(["."]).describe("Directories or files to watch, relative to the project."),
    include_ext: strings([]).describe("File extensions that trigger a rebuild (empty: all)."),
    include: strings([]).describe("Optional globs a changed path must match."),
    exclude: strings([]).describe("Globs to ignore (Bun.Glob syntax). .git, node_modules and editor temp files are always ignored."),
    gitignore: bool(true).describe("Honour .gitignore files."),
    debounce: duration("10ms").describe("Quiet time after the last change before a rebuild (trailing debounce, capped at 1 s after the first change)."),
    poll: optionalDuration().describe('Poll at this interval instead of native events (network mounts, some Docker volumes), e.g. "500ms".'),
  })
  .describe("Which file changes trigger a rebuild.");

export const ListenEntry = z
  .strictObject({
    name: str().regex(/^[A-Za-z0-9_.-]+$/, { error: expected("a name of letters, digits, '_', '.', '-'") }).describe("Socket name (LISTEN_FDNAMES)."),
    address: str('an address like "127.0.0.1:8080"').describe('"127.0.0.1:8080", ":8080", "[::1]:8080" or "unix:./app.sock".'),
    backlog: positiveInt(4096, `a whole number from 1 to ${LIMITS.backlog}`, LIMITS.backlog).describe("listen(2) backlog; large so connections queue during a restart (the kernel caps it at net.core.somaxconn)."),
    mode: str('an octal file mode like "0660"')
      .regex(/^0?[0-7]{3}$/, { error: expected('an octal file mode like "0660"') })
      .optional()
      .describe("File mode of a unix socket."),
    protocol: oneOf(["http", "tcp"]).default("http").describe('proxy strategies: "http" — hr parses HTTP/1.1 (keep-alive, drain before stop, X-Forwarded-*); "tcp" — raw bytes for other protocols.'),
    trust_forwarded: bool(false).describe("proxy, http: keep X-Forwarded-For/-Proto/-Host and Forwarded sent by the client (hr is behind a proxy you trust) and append hr's hop; false drops them and sets hr's own."),
  })
  .describe("A listening socket that hr binds once and passes to the app at fd 3, 4, …");

export const ReadyCheck = z
  .strictObject({
    type: oneOf(["listen", "notify", "ipc", "http", "tcp", "log", "delay"]).optional().describe(
      "listen: the app calls listen() on the socket hr handed it (needs run.capture; no code needed); notify: sd_notify READY=1 on NOTIFY_SOCKET; ipc: process.send('ready'); http: GET path on the worker's private address; tcp: connect (the worker's private PORT under proxy); log: a line matching pattern; delay: wait. Default: \"listen\" with run.capture, else \"tcp\" with serve.strategy = \"proxy\" (the app only has to bind PORT), else \"notify\".",
    ),
    timeout: duration("30s").describe("Not ready in time is a failure: the new generation is stopped and the old one keeps serving."),
    path: str().default("/health").describe("http: the path to GET."),
    port: z.number({ error: expected("a port number") }).int().min(1).max(65535).optional().describe("http/tcp: a health port, when not the private proxy port."),
    pattern: str("a regular expression")
      .refine(isRegExp, { error: (issue) => `expected a regular expression, got ${show(issue.input)} (${regExpError(String(issue.input))})` })
      .optional()
      .describe("log: regex matched against the worker's output."),
    delay: duration("1s").describe("delay: how long to wait."),
  })
  .describe("How hr knows a new worker is ready.");

export const DevSection = z
  .strictObject({
    strategy: oneOf(["fd", "proxy", "none"]).optional().describe('fd: hr holds the socket across restarts; proxy: hr forwards to the app on PORT; none. Default: "fd" when [[listen]] is set, else "none".'),
    restart_on_crash: bool(false).describe("Restart a crashed app with backoff instead of waiting for the next change."),
    clear_screen: bool(false).describe("Clear the terminal before each rebuild."),
    live_reload: bool(false).describe("proxy: inject a reload script into HTML responses and reload browser tabs after each restart."),
    overlap: z
      .boolean({ error: expected("true or false") })
      .optional()
      .describe(
        "Start the new app while the old one still serves, and stop the old one once the new one listens on hr's socket (a restart costs only the new app's start; nothing is refused). Default: true with run.capture (strategy fd or proxy), where hr sees that listen(); without capture hr has no such signal and restarts stop the old app first. An app that exits before listening while the old one runs (a lock, a port only one instance can hold) is restarted sequentially, and an app seen listening on a fixed port of its own always is; set false for apps holding exclusive resources.",
      ),
  })
  .describe("hr dev: watch, build, restart.");

export const ServeSection = z
  .strictObject({
    strategy: oneOf(["fd", "reuseport", "proxy"]).default("fd").describe("fd: workers inherit the sockets; reuseport: workers bind with SO_REUSEPORT; proxy: hr forwards to each worker's PORT."),
    workers: positiveInt(1, `a whole number from 1 to ${LIMITS.workers}`, LIMITS.workers).describe("Processes per generation."),
    ready: ReadyCheck.prefault({}),
    drain_timeout: duration("30s").describe("How long the old generation may drain after stop_signal before SIGKILL."),
    build: bool(false).describe("Run [build] before each new generation: the first one at start and every reload's (a failed build at start starts nothing; on reload it keeps the old generation)."),
    watch: strings([]).describe("Paths (e.g. the deployed binary) whose change triggers a reload."),
    proxy_threads: z.number({ error: expected(`a whole number from 0 to ${LIMITS.proxyThreads}`) }).int({ error: expected(`a whole number from 0 to ${LIMITS.proxyThreads}`) }).min(0, { error: expected(`a whole number from 0 to ${LIMITS.proxyThreads}`) }).max(LIMITS.proxyThreads, { error: expected(`a whole number from 0 to ${LIMITS.proxyThreads}`) }).default(1).describe("strategy proxy: threads accepting and forwarding on the same sockets; 0 = one per core (up to 4). Each thread balances its own connections (least in flight per thread); see docs/benchmarks.md for when more than 1 pays."),
    restart_backoff: duration("500ms").describe("First delay before replacing a crashed worker; doubles up to 30s."),
    bun_shim: z
      .union([z.boolean(), z.literal("auto")], { error: expected('"auto", true or false') })
      .default("auto")
      .describe('Preload hr\'s Bun.serve shim into Bun workers (fd: serve the inherited socket; reuseport: reusePort: true). "auto": when run.cmd\'s program is `bun`; true: also via BUN_OPTIONS for any command.'),
  })
  .describe("hr serve: zero-downtime master.");

export const LogSection = z
  .strictObject({
    format: oneOf(["text", "json"]).default("text").describe("text for people, json for one object per line."),
    timestamps: bool(false).describe("text: start every line (hr's and the workers') with an ISO 8601 time. Off by default: journald and Docker add their own; json lines always carry \"time\"."),
    file: str("a file path").min(1, { error: expected("a file path") }).optional().describe("Write hr's log (its own lines and the workers' output) to this file instead of stderr, relative to the project; rotated by size. Default: stderr (journald, Docker and PM2-less setups collect it)."),
    max_size: z
      .string({ error: expected('a size like "10MB"') })
      .regex(SIZE_PATTERN, { error: expected('a size like "512KB", "10MB" or "1GB"') })
      .transform((text) => parseSize(text))
      .refine((n) => n >= 1024 && n <= LIMITS.logBytes, { error: "expected a size from 1KB to 10GB" })
      .prefault("10MB")
      .describe("log.file: rotate when the file would grow past this size (hr.log → hr.log.1 → … → hr.log.<keep>)."),
    keep: positiveInt(5, "a whole number from 1 to 100", 100).describe("log.file: how many rotated files to keep."),
  })
  .describe("hr's own output.");

export const ConfigSchema = z
  .strictObject({
    build: BuildSection.prefault({}),
    run: RunSection,
    watch: WatchSection.prefault({}),
    listen: z.array(ListenEntry, { error: expected("an array of tables: [[listen]]") }).default([]),
    dev: DevSection.prefault({}),
    serve: ServeSection.prefault({}),
    log: LogSection.prefault({}),
  })
  .superRefine((config, ctx) => {
    const seen = new Set<string>();
    config.listen.forEach((entry, i) => {
      if (seen.has(entry.name)) ctx.addIssue({ code: "custom", path: ["listen", i, "name"], message: `duplicate listen name ${JSON.stringify(entry.name)}; names must be unique` });
      seen.add(entry.name);
      try {
        parseListenAddress(entry.address, { field: "address" });
      } catch (error) {
        ctx.addIssue({ code: "custom", path: ["listen", i, "address"], message: (error as Error).message.replace(/^address: /, "") });
      }
    });
    if (config.serve.ready.type === "log" && !config.serve.ready.pattern)
      ctx.addIssue({ code: "custom", path: ["serve", "ready", "pattern"], message: 'ready.type = "log" needs a pattern, e.g. pattern = "listening on"' });
    if (config.dev.live_reload && config.dev.strategy !== "proxy")
      ctx.addIssue({ code: "custom", path: ["dev", "live_reload"], message: `dev.live_reload needs dev.strategy = "proxy" (hr must see the HTTP responses to inject the reload script); strategy is ${JSON.stringify(config.dev.strategy ?? defaultDevStrategy(config.listen.length))}` });
    if (config.serve.ready.type === "listen" && !config.run.capture)
      ctx.addIssue({ code: "custom", path: ["serve", "ready", "type"], message: 'ready.type = "listen" needs run.capture = true (hr sees the app\'s listen() only on a socket it handed over)' });
    if (config.dev.strategy === "fd" && config.listen.length === 0)
      ctx.addIssue({ code: "custom", path: ["dev", "strategy"], message: 'dev.strategy = "fd" needs at least one [[listen]] socket' });
  })
  // The readiness default follows the strategy: a captured app's listen() is the signal; under proxy an unmodified app only binds PORT.
  .transform((config) => ({
    ...config,
    dev: { ...config.dev, strategy: config.dev.strategy ?? defaultDevStrategy(config.listen.length) },
    serve: { ...config.serve, ready: { ...config.serve.ready, type: config.serve.ready.type ?? defaultReadyType(config.run.capture, config.serve.strategy) } },
  }))
  .describe("hr.toml: configuration for hr dev and hr serve.");

/** dev.strategy when unset: "fd" when [[listen]] is set (hr can hold the socket), else "none". */
export function defaultDevStrategy(listenCount: number): DevStrategyName {
  return listenCount > 0 ? "fd" : "none";
}

/** serve.ready.type when unset: "listen" under capture, "tcp" under the proxy, else "notify". */
export function defaultReadyType(capture: boolean, strategy: ServeStrategyName): "listen" | "tcp" | "notify" {
  return capture ? "listen" : strategy === "proxy" ? "tcp" : "notify";
}

export type Config = z.output<typeof ConfigSchema>;
export type ConfigInput = z.input<typeof ConfigSchema>;
export type ListenConfig = Config["listen"][number];
export type ReadyConfig = Config["serve"]["ready"];
export type ReadyType = ReadyConfig["type"];
export type DevStrategyName = NonNullable<z.output<typeof DevSection>["strategy"]>;
export type ServeStrategyName = z.output<typeof ServeSection>["strategy"];

/** JSON Schema for editors (taplo, Even Better TOML): describes the file as written. */
export function jsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(ConfigSchema, { io: "input", unrepresentable: "any" }),
    $id: "https://hr.invalid/hr.schema.json",
    title: "hr.toml",
  };
}
