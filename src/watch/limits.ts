// The kernel's watch limits: fs.watch failing with ENOSPC, EMFILE or ENFILE is
// turned into an error that says which limit, its value and how to raise it.
import { openFilesLimit, sysctl } from "../platform/proc.ts";

/** fs.watch hit a kernel/process limit (ENOSPC, EMFILE, ENFILE). The message holds the fix. */
export class WatchLimitError extends Error {
  override readonly name = "WatchLimitError";
  constructor(
    message: string,
    readonly code: string,
    readonly dirs: number,
    override readonly cause?: unknown,
  ) {
    super(message);
  }
}

function readNum(name: string): number | null {
  const n = Number.parseInt(sysctl(name) ?? "", 10);
  return Number.isFinite(n) ? n : null;
}

function ulimitN(): string {
  const n = openFilesLimit();
  return n === undefined ? "?" : n === Infinity ? "unlimited" : String(n);
}

const fmt = (n: number) => n.toLocaleString("en-US");
const ALTERNATIVES = 'or exclude large directories in [watch].exclude, or set watch.poll = "500ms"';

/** Build the WatchLimitError for an fs.watch failure `code` after `dirs` directories. */
export function watchLimitError(code: string, dirs: number, cause?: unknown): WatchLimitError {
  const where = `while watching ${fmt(dirs)} ${dirs === 1 ? "directory" : "directories"}`;
  let msg: string;
  if (code === "ENOSPC") {
    const lim = readNum("fs.inotify.max_user_watches");
    msg =
      `inotify watch limit reached (fs.inotify.max_user_watches=${lim ?? "?"}) ${where}: ` +
      "raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (persist in /etc/sysctl.d/), " +
      ALTERNATIVES;
  } else if (code === "EMFILE") {
    const inst = readNum("fs.inotify.max_user_instances");
    msg =
      `too many open files / inotify instances (EMFILE; fs.inotify.max_user_instances=${inst ?? "?"}, ulimit -n=${ulimitN()}) ${where}: ` +
      "raise them with `sudo sysctl fs.inotify.max_user_instances=1024` (persist in /etc/sysctl.d/) and `ulimit -n 65536`, " +
      ALTERNATIVES;
  } else {
    const max = readNum("fs.file-max");
    msg =
      `system-wide open file limit reached (ENFILE; fs.file-max=${max ?? "?"}) ${where}: ` +
      "raise it with `sudo sysctl fs.file-max=2097152` (persist in /etc/sysctl.d/), " +
      ALTERNATIVES;
  }
  return new WatchLimitError(msg, code, dirs, cause);
}

export const LIMIT_CODES = new Set(["ENOSPC", "EMFILE", "ENFILE"]);

