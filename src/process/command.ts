/**
 * How a user-supplied command becomes an argv.
 *
 * - A string is a shell command line: it runs as `sh -c <string>`, so pipes,
 *   `&&`, globs and `$VARS` work exactly as typed in a terminal.
 * - An array is an argv: it is exec'd directly, no shell, no word splitting
 *   (an element containing spaces stays one argument).
 */
export type Command = string | string[];

/** Error for a command that cannot be run (empty string/array, empty program). */
export class CommandError extends Error {
  override name = "CommandError";
}

/** Converts a {@link Command} to the argv handed to spawn. Throws {@link CommandError} when empty. */
export function toArgv(cmd: Command): string[] {
  if (typeof cmd === "string") {
    if (cmd.trim() === "") throw new CommandError("command is empty: give a shell command line or an argv array");
    return ["sh", "-c", cmd];
  }
  if (!Array.isArray(cmd) || cmd.length === 0) {
    throw new CommandError("command is empty: an argv array needs at least the program name");
  }
  for (const [i, a] of cmd.entries()) {
    if (typeof a !== "string") throw new CommandError(`command argv[${i}] is not a string: ${JSON.stringify(a)}`);
  }
  if (cmd[0]!.trim() === "") throw new CommandError("command argv[0] (the program) is empty");
  return [...cmd];
}

/** Human-readable form for logs: the string as is, an array shell-quoted where needed. */
export function describe(cmd: Command): string {
  if (typeof cmd === "string") return cmd;
  return cmd.map(quote).join(" ");
}

function quote(arg: string): string {
  if (arg !== "" && /^[\w@%+=:,./-]+$/.test(arg)) return arg;
  return `'${arg.replaceAll("'", `'\\''`)}'`;
}
