/**
 * Renders a commented hr.toml from a config input. Comments come from the zod
 * schema's `.describe()` texts (walked here, never copied), keys left at their
 * defaults are shown commented out, and the result is parsed and validated
 * before it is returned: an invalid file is never produced.
 */
import { ConfigSchema, type ConfigInput } from "../config/schema.ts";
import { validate } from "../config/load.ts";
import type { Detection, Language } from "./detect.ts";

interface ZodLike {
  description?: string;
  _zod: { def: { type: string; innerType?: ZodLike; in?: ZodLike; shape?: Record<string, ZodLike>; element?: ZodLike; defaultValue?: unknown } };
}

const WRAPPERS = new Set(["default", "prefault", "optional", "nullable", "readonly"]);

function inner(s: ZodLike): ZodLike | undefined {
  const def = s._zod.def;
  if (WRAPPERS.has(def.type)) return def.innerType;
  if (def.type === "pipe") return def.in;
  return undefined;
}

/** The schema under its wrappers (default, optional, pipe, …). */
function unwrap(s: ZodLike): ZodLike {
  for (let next = inner(s); next; next = inner(s)) s = next;
  return s;
}

/** The nearest description, outermost first. */
function describe(s: ZodLike): string | undefined {
  for (let cur: ZodLike | undefined = s; cur; cur = inner(cur)) if (cur.description) return cur.description;
  return undefined;
}

/** The default as written in a file (prefault values are input-shaped). */
function defaultOf(s: ZodLike): { value: unknown } | undefined {
  for (let cur: ZodLike | undefined = s; cur; cur = inner(cur)) {
    if (cur._zod.def.type === "default" || cur._zod.def.type === "prefault") return { value: cur._zod.def.defaultValue };
  }
  return undefined;
}

/** Example values for optional keys that have no default, shown commented out. */
const EXAMPLES: Record<string, unknown> = {
  "build.cmd": "make",
  "build.pre": "make generate",
  "build.post": "echo built",
  "build.env": { CGO_ENABLED: "0" },
  "run.env": { APP_ENV: "development" },
  "run.env_file": ".env",
  "watch.poll": "500ms",
  "listen.mode": "0660",
  "serve.ready.port": 9090,
  "serve.ready.pattern": "listening on",
};

const WIDTH = 100;

function comment(text: string, indent = ""): string[] {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line && indent.length + 2 + line.length + 1 + word.length > WIDTH) {
      out.push(`${indent}# ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(`${indent}# ${line}`);
  return out;
}

const BARE_KEY = /^[A-Za-z0-9_-]+$/;
const key = (k: string) => (BARE_KEY.test(k) ? k : JSON.stringify(k));

/** One `key = value` line; tables become inline tables. */
export function tomlLine(name: string, value: unknown): string {
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>).map(([k, v]) => tomlLine(k, v));
    return `${key(name)} = ${entries.length ? `{ ${entries.join(", ")} }` : "{}"}`;
  }
  return Bun.TOML.stringify({ [name]: value }).trim();
}

type Table = Record<string, unknown>;

function renderKeys(shape: Record<string, ZodLike>, values: Table, path: string, lines: string[]) {
  for (const [name, schema] of Object.entries(shape)) {
    const kind = unwrap(schema)._zod.def.type;
    if (kind === "object") continue; // sub-tables come after the keys
    const description = describe(schema);
    if (description) lines.push(...comment(description));
    const value = values[name];
    const isEmptyTable = kind === "record" && value !== null && typeof value === "object" && Object.keys(value).length === 0;
    if (value !== undefined && !isEmptyTable) {
      lines.push(tomlLine(name, value));
      continue;
    }
    const example = `${path}.${name}` in EXAMPLES ? { value: EXAMPLES[`${path}.${name}`] } : defaultOf(schema);
    if (example && example.value !== undefined) lines.push(`# ${tomlLine(name, example.value)}`);
  }
}

function renderTable(header: string, schema: ZodLike, values: Table, lines: string[]) {
  const obj = unwrap(schema);
  const shape = obj._zod.def.shape ?? {};
  const description = describe(schema);
  lines.push("");
  if (description) lines.push(...comment(description));
  lines.push(`[${header}]`);
  renderKeys(shape, values, header, lines);
  for (const [name, sub] of Object.entries(shape)) {
    if (unwrap(sub)._zod.def.type !== "object") continue;
    renderTable(`${header}.${name}`, sub, (values[name] as Table | undefined) ?? {}, lines);
  }
}

/** How an app takes over the socket hr holds (and says it is ready), per language. */
export const ADOPT_SNIPPETS: Record<Language, string[]> = {
  go: [
    "Go: hr passes the socket at fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=http).",
    '  ln, _ := net.FileListener(os.NewFile(3, "http"))',
    "  router.RunListener(ln)   // gin; net/http: http.Serve(ln, handler)",
    "Ready (notify): send READY=1 to $NOTIFY_SOCKET, e.g. daemon.SdNotify(false, daemon.SdNotifyReady)",
    "from github.com/coreos/go-systemd/v22/daemon, once the server is serving.",
  ],
  node: [
    "Node: hr passes the socket at fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=http).",
    "  const fd = process.env.LISTEN_FDS ? 3 : undefined;",
    "  server.listen(fd !== undefined ? { fd } : { port: 8080 }, () => process.send?.(\"ready\"));",
    'Ready (ipc): process.send?.("ready") once listening.',
  ],
  bun: [
    "Bun: hr passes the socket at fd 3 (LISTEN_FDS=1). node:net adopts it; Bun's node:http and",
    "Bun.serve ignore fd, so accept with net and hand sockets to http:",
    "  net.createServer((s) => httpServer.emit(\"connection\", s)).listen({ fd: 3 }, () => process.send?.(\"ready\"));",
    'Ready (ipc): process.send?.("ready") once listening.',
  ],
  python: [
    "Python: hr passes the socket at fd 3 (LISTEN_FDS=1, LISTEN_FDNAMES=http).",
    "  sock = socket.socket(fileno=3)        # uvicorn: --fd 3; gunicorn adopts LISTEN_FDS itself",
    "Ready (notify): send READY=1 to $NOTIFY_SOCKET once serving:",
    "  addr = os.environ[\"NOTIFY_SOCKET\"]; addr = \"\\0\" + addr[1:] if addr[0] == \"@\" else addr",
    "  socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b\"READY=1\", addr)",
  ],
  rust: [
    "Rust: with strategy \"fd\" take fd 3, e.g. listenfd: ListenFd::from_env().take_tcp_listener(0)",
    "or unsafe { std::net::TcpListener::from_raw_fd(3) }. With \"proxy\" bind 127.0.0.1:$PORT instead.",
  ],
  generic: [
    "With strategy \"proxy\" the app binds 127.0.0.1:$PORT (hr sets PORT) and hr forwards [[listen]] to it.",
    "With \"fd\" the app adopts the listening socket at fd 3 (systemd's LISTEN_FDS convention).",
  ],
};

/** The comment block on what the app must change (or that it need not), with the adopt snippet when it must adopt fd 3. */
function appChanges(input: ConfigInput, detection: RenderDetection): string[] {
  const changes = detection.changes;
  if (changes === undefined) return ["# Adopting the socket:", ...ADOPT_SNIPPETS[detection.language].map((l) => `#   ${l}`)];
  if (changes.length === 0) {
    const why = input.run.capture
      ? "when it binds the [[listen]] port, hr hands it its own socket (run.capture)"
      : "it already takes the socket hr passes at fd 3";
    return [`# The app needs no code change: ${why}.`];
  }
  const out = ["# The app must change for this config:", ...changes.map((c) => `#   - ${c}`)];
  if (changes.some((c) => c.includes("fd 3"))) out.push("# Adopting the socket:", ...ADOPT_SNIPPETS[detection.language].map((l) => `#   ${l}`));
  return out;
}

type RenderDetection = Pick<Detection, "label" | "language" | "reasons"> & {
  /** What the app must change (requiredChanges); undefined: show the generic adopt snippet. */
  changes?: string[];
};

export interface RenderOptions {
  /** Name used in validation errors; default "hr.toml". */
  file?: string;
}

/** A commented hr.toml for `input`; throws if the text would not parse back to the same valid config. */
export function renderConfig(input: ConfigInput, detection: RenderDetection, options: RenderOptions = {}): string {
  const root = ConfigSchema as unknown as ZodLike;
  const shape = unwrap(root)._zod.def.shape!;
  const data = input as unknown as Table;
  const lines: string[] = [
    `# ${describe(root) ?? "hr.toml"}`,
    `# Generated by \`hr init\` for a ${detection.label} project.`,
    "# Validate with `hr check`; `hr schema` prints the JSON Schema (every key, default and description).",
    "# Keys left at their defaults are commented out.",
  ];
  if (detection.reasons.length) {
    lines.push("#", "# Detected:");
    for (const reason of detection.reasons) lines.push(...comment(`- ${reason}`).map((l) => l.replace(/^# /, "#   ")));
  }
  for (const [section, schema] of Object.entries(shape)) {
    const kind = unwrap(schema)._zod.def.type;
    if (kind === "object") {
      renderTable(section, schema, (data[section] as Table | undefined) ?? {}, lines);
      continue;
    }
    if (kind !== "array") continue;
    const element = unwrap(schema)._zod.def.element!;
    const entries = (data[section] as Table[] | undefined) ?? [];
    lines.push("");
    lines.push(...comment(describe(element) ?? section));
    if (entries.length === 0) {
      lines.push("# No socket. To add one:", `# [[${section}]]`, '# name = "http"', '# address = "127.0.0.1:8080"');
    }
    entries.forEach((entry, i) => {
      if (i > 0) lines.push("");
      lines.push(`[[${section}]]`);
      renderKeys(unwrap(element)._zod.def.shape ?? {}, entry, section, lines);
    });
    if (entries.length) lines.push("#", ...appChanges(input, detection));
  }
  const text = `${lines.join("\n")}\n`;
  assertRoundTrip(input, text, options.file ?? "hr.toml");
  return text;
}

/** Parses `text` and checks it validates to exactly what `input` validates to. */
export function assertRoundTrip(input: ConfigInput, text: string, file = "hr.toml"): void {
  let parsed: unknown;
  try {
    parsed = Bun.TOML.parse(text);
  } catch (error) {
    throw new Error(`hr init produced TOML that does not parse (${(error as Error).message}); nothing written`);
  }
  const fromText = validate(parsed, text, file);
  if (!fromText.ok) {
    throw new Error(`the config is not valid; nothing written:\n${fromText.problems.map((p) => `  ${p.path ? `${p.path}: ` : ""}${p.message}`).join("\n")}`);
  }
  const fromInput = validate(input);
  if (!fromInput.ok || !Bun.deepEquals(fromInput.config, fromText.config)) {
    throw new Error("hr init produced a file that does not read back as the intended config; nothing written");
  }
}
