/** What every command gets: parsed flags, global settings, a logger, and a way to load the config. */
import type { ParseArgsConfig } from "node:util";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { Logger, colorWanted, type LogFormat } from "../log/logger.ts";
import { loadConfig, type LoadedConfig } from "../config/load.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;
export type Values = Record<string, string | boolean | string[] | boolean[] | undefined>;

export interface Global {
  cwd: string;
  configFile?: string;
  logFormat?: LogFormat;
  color: boolean;
  quiet: boolean;
  verbose: boolean;
}

export interface Context {
  values: Values;
  positionals: string[];
  global: Global;
  log: Logger;
  env: Record<string, string | undefined>;
  /** Loads hr.toml with env and the given flag overrides; throws ConfigError. */
  loadConfig(flags?: Record<string, unknown>): LoadedConfig;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  /** Extra help text: flags and examples. */
  help: string;
  options: Options;
  allowPositionals?: boolean;
  run(ctx: Context): Promise<number>;
}

export const GLOBAL_OPTIONS = {
  config: { type: "string", short: "c" },
  cwd: { type: "string" },
  "log-format": { type: "string" },
  "no-color": { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
  verbose: { type: "boolean", short: "v" },
  help: { type: "boolean", short: "h" },
} as const satisfies Options;

export const GLOBAL_HELP = `Global options:
  -c, --config FILE      config file (default ./hr.toml)
      --cwd DIR          run as if started in DIR
      --log-format FMT   text | json (default: [log].format, else text)
      --no-color         no colours (NO_COLOR is honoured too)
  -q, --quiet            only warnings and errors
  -v, --verbose          debug output
  -h, --help             help for hr or a command`;

export class UsageError extends Error {}

/** A failure the user can act on (exit 1, printed as "hr: message", no stack trace). */
export class CliError extends Error {}

/** Writes a command's output file (`-o FILE`); a failure is a CliError naming the file and the reason. */
export function writeOutputFile(file: string, text: string): void {
  try {
    writeFileSync(file, text);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why =
      e.code === "EISDIR" ? "it is a directory" :
      e.code === "ENOENT" ? "its directory does not exist" :
      e.code === "EACCES" || e.code === "EPERM" ? "permission denied" :
      e.code === "ENOTDIR" ? "a part of the path is not a directory" :
      e.code === "EROFS" ? "read-only file system" :
      e.code === "ENOSPC" ? "no space left on the device" :
      e.message;
    throw new CliError(`cannot write ${file}: ${why}`);
  }
}

export function makeContext(values: Values, positionals: string[], env: Record<string, string | undefined>, command?: string): Context {
  const logFormat = values["log-format"] as string | undefined;
  if (logFormat !== undefined && logFormat !== "text" && logFormat !== "json")
    throw new UsageError(`--log-format must be "text" or "json", got ${JSON.stringify(logFormat)}`);
  const global: Global = {
    cwd: resolve(String(values.cwd ?? process.cwd())),
    configFile: values.config as string | undefined,
    logFormat: logFormat as LogFormat | undefined,
    color: colorWanted(process.stderr, Boolean(values["no-color"]), env),
    quiet: Boolean(values.quiet),
    verbose: Boolean(values.verbose),
  };
  const level = global.verbose ? "debug" : global.quiet ? "warn" : "info";
  const ctx: Context = {
    values,
    positionals,
    global,
    env,
    log: new Logger({ format: global.logFormat ?? "text", color: global.color, level }),
    loadConfig(flags = {}) {
      const loaded = loadConfig({
        cwd: global.cwd,
        file: global.configFile,
        requireFile: global.configFile !== undefined,
        env,
        flags: global.logFormat ? { ...flags, log: { format: global.logFormat } } : flags,
      });
      // The file may choose json logs; flags and env have already won inside loadConfig.
      const lc = loaded.config.log;
      const file = lc.file ? { path: resolve(loaded.root, lc.file), maxBytes: lc.max_size, keep: lc.keep } : undefined;
      // Only the long-running commands log to the file; `hr status`, `hr check`… talk to the terminal.
      const toFile = file && (command === "serve" || command === "dev") ? file : undefined;
      ctx.log = new Logger({ format: lc.format, color: global.color && !toFile, level, timestamps: lc.timestamps, file: toFile });
      return loaded;
    },
  };
  return ctx;
}
