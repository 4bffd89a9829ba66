/** Parses global flags and the command, then hands over to a command module. */
import { parseArgs } from "node:util";
import { COMMANDS, findCommand } from "./commands/index.ts";
import { CliError, GLOBAL_HELP, GLOBAL_OPTIONS, UsageError, makeContext, type CommandSpec } from "./context.ts";
import { VERSION_LINE, isVersionRequest } from "./version.ts";
import { ConfigError } from "../config/errors.ts";

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `hr — reload server processes in any language, without dropping a request

Usage: hr <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

${GLOBAL_HELP}
      --version          print the version

Run \`hr <command> --help\` for a command's options.`;
}

export function commandUsage(spec: CommandSpec): string {
  return `Usage: ${spec.usage}\n\n${spec.summary}\n\n${spec.help}\n\n${GLOBAL_HELP}`;
}

function fail(message: string, usage: string): number {
  process.stderr.write(`hr: ${message}\n\n${usage}\n`);
  return 2;
}

export async function main(argv: string[], env = process.env): Promise<number> {
  const first = argv.findIndex((a) => !a.startsWith("-"));
  if (isVersionRequest(argv)) {
    process.stdout.write(`${VERSION_LINE}\n`);
    return 0;
  }
  if (first === -1 || argv[first] === "help") {
    const topic = first === -1 ? undefined : argv[first + 1];
    const spec = topic ? findCommand(topic) : undefined;
    if (topic && !spec) return fail(`unknown command "${topic}"`, mainUsage());
    if (first === -1 && argv.length && !argv.every((a) => a === "-h" || a === "--help"))
      return fail(`expected a command before ${argv[0]}`, mainUsage());
    process.stdout.write(`${spec ? commandUsage(spec) : mainUsage()}\n`);
    return 0;
  }
  const name = argv[first]!;
  const spec = findCommand(name);
  if (!spec) return fail(`unknown command "${name}"`, mainUsage());
  const rest = [...argv.slice(0, first), ...argv.slice(first + 1)];
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options: { ...GLOBAL_OPTIONS, ...spec.options }, allowPositionals: spec.allowPositionals ?? false, strict: true });
  } catch (error) {
    return fail(`${(error as Error).message.replace(/\. To specify a positional.*$/s, "")} (hr ${spec.name})`, `Usage: ${spec.usage}\nRun \`hr ${spec.name} --help\` for its options.`);
  }
  if (parsed.values.help) {
    process.stdout.write(`${commandUsage(spec)}\n`);
    return 0;
  }
  try {
    const ctx = makeContext(parsed.values, parsed.positionals, env, spec.name);
    return await spec.run(ctx);
  } catch (error) {
    if (error instanceof UsageError) return fail(error.message, `Usage: ${spec.usage}\nRun \`hr ${spec.name} --help\` for its options.`);
    if (error instanceof ConfigError) {
      process.stderr.write(`hr: invalid configuration:\n${error.problems.length > 1 ? error.message.replace(/^/gm, "  ") : `  ${error.message}`}\n`);
      return 1;
    }
    if (error instanceof CliError) {
      process.stderr.write(`hr: ${error.message}\n`);
      return 1;
    }
    return unexpected(error, env);
  }
}

/** File-system failures say what and where, whichever command hit them. */
const FS_REASONS: Record<string, string> = {
  EROFS: "read-only file system",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
  ENOENT: "no such file or directory",
  EEXIST: "it already exists",
  EMFILE: "too many open files (ulimit -n)",
  ENFILE: "too many open files on the system",
  EIO: "input/output error",
  ELOOP: "too many symbolic links (or a symlink where none is allowed)",
};

/** Last line of defence: a message, never a stack trace (HR_DEBUG=1 shows it). */
export function unexpected(error: unknown, env: Record<string, string | undefined> = process.env): number {
  const fsError = error as NodeJS.ErrnoException;
  if (fsError?.code && FS_REASONS[fsError.code] && fsError.path) {
    const verb = /write|open|rename|mkdir|rm|unlink|copy/.test(fsError.syscall ?? "") ? "write" : "read";
    process.stderr.write(`hr: cannot ${verb} ${fsError.path}: ${FS_REASONS[fsError.code]}\n`);
    return 1;
  }
  const e = error as Error;
  const text = e instanceof Error ? `${e.message}${(e as NodeJS.ErrnoException).code ? ` (${(e as NodeJS.ErrnoException).code})` : ""}` : String(error);
  process.stderr.write(`hr: ${text}\n${env.HR_DEBUG ? `${e?.stack ?? ""}\n` : "(this is a bug in hr if the message does not say what to fix; HR_DEBUG=1 shows where it happened)\n"}`);
  return 1;
}
