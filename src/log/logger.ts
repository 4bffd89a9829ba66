/**
 * hr's own output. Text for people (prefixed, coloured when the stream is a
 * TTY and NO_COLOR is unset, optionally timestamped), JSON for machines (one
 * object per line, always with "time"). App output is passed through untouched
 * in dev; in serve it is prefixed. Lines go to stderr through output.ts (bounded,
 * never blocking).
 */
import { out, setDropNotice, formatBytes, type OutputStream } from "./output.ts";

export type LogFormat = "text" | "json";
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LoggerOptions {
  format: LogFormat;
  color: boolean;
  /** Lowest level printed: quiet → "warn", verbose → "debug". */
  level: Level;
  /** Where lines go; default stderr (stdout belongs to the app). */
  write?: (line: string) => void;
  /** Text format: prefix every line with an ISO 8601 time ([log].timestamps). */
  timestamps?: boolean;
  /** [log] file: lines go to this rotated file instead of stderr. */
  file?: { path: string; maxBytes: number; keep: number };
}

type Fields = Record<string, unknown>;

const paint = (code: number) => (s: string) => `\x1b[${code}m${s}\x1b[0m`;
const COLORS = { dim: paint(2), red: paint(31), green: paint(32), yellow: paint(33), blue: paint(34), magenta: paint(35), cyan: paint(36) };
const PLAIN = Object.fromEntries(Object.keys(COLORS).map((k) => [k, (s: string) => s])) as typeof COLORS;
const LEVEL_TAG: Record<Level, keyof typeof COLORS> = { debug: "dim", info: "cyan", warn: "yellow", error: "red" };

export class Logger {
  readonly colors: typeof COLORS;
  private readonly write: (line: string) => void;

  constructor(readonly options: LoggerOptions, private readonly scope = "hr") {
    this.colors = options.color && options.format === "text" ? COLORS : PLAIN;
    if (options.write) this.write = options.write;
    else {
      const file = options.file;
      let sink: OutputStream | undefined = file ? undefined : out.stderr();
      // Opened at the first line, not when the logger is made: the file appears only when hr logs.
      this.write = (line) => (sink ??= out.file(file!.path, file!.maxBytes, file!.keep)).write(`${line}\n`);
      if (options.format === "json") {
        setDropNotice((stream, bytes, lines, gone) =>
          `${JSON.stringify({ time: new Date().toISOString(), level: "warn", scope: "hr", msg: `${gone ? `${stream} had no reader` : `the reader of hr's ${stream} was too slow`}: ${formatBytes(bytes)} dropped`, event: "output_dropped", stream, bytes, lines })}\n`,
        );
      }
    }
  }

  private stamp(): string {
    return this.options.timestamps ? `${this.colors.dim(new Date().toISOString())} ` : "";
  }

  /** A logger whose lines carry another prefix, e.g. "hr:gen2". */
  child(scope: string): Logger {
    return new Logger(this.options, scope);
  }

  debug(msg: string, fields?: Fields) { this.log("debug", msg, fields); }
  info(msg: string, fields?: Fields) { this.log("info", msg, fields); }
  warn(msg: string, fields?: Fields) { this.log("warn", msg, fields); }
  error(msg: string, fields?: Fields) { this.log("error", msg, fields); }

  log(level: Level, msg: string, fields: Fields = {}) {
    if (RANK[level] < RANK[this.options.level]) return;
    if (this.options.format === "json") {
      this.write(JSON.stringify({ time: new Date().toISOString(), level, scope: this.scope, msg, ...fields }));
      return;
    }
    const tag = this.colors[LEVEL_TAG[level]](`${this.scope}${level === "info" ? "" : ` ${level}`}`);
    this.write(`${this.stamp()}${tag} ${msg}`);
  }

  /** A line of a worker's output (serve): prefixed in text, wrapped in json. */
  appLine(source: string, stream: "stdout" | "stderr", line: string) {
    if (this.options.format === "json") {
      this.write(JSON.stringify({ time: new Date().toISOString(), level: "info", scope: source, stream, msg: line }));
    } else {
      this.write(`${this.stamp()}${this.colors.dim(`${source} |`)} ${line}`);
    }
  }
}

export function colorWanted(stream: { isTTY?: boolean }, noColorFlag: boolean, env: Record<string, string | undefined> = process.env): boolean {
  if (noColorFlag || (env.NO_COLOR !== undefined && env.NO_COLOR !== "")) return false;
  if (env.FORCE_COLOR && env.FORCE_COLOR !== "0") return true;
  return Boolean(stream.isTTY);
}
