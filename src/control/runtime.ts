/**
 * Where a running `hr serve` can be found: one private runtime directory per
 * user ($XDG_RUNTIME_DIR/hr, else /tmp/hr-<uid>, mode 0700, must be ours), and
 * inside it one control socket + pid file per project, named after a hash of the
 * config file's absolute path (so `hr reload` in the same project finds it).
 */
import { createHash } from "node:crypto";
import { chmodSync, closeSync, lstatSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync, constants as C } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";

export interface RuntimePaths {
  /** Per-user directory (0700). */
  dir: string;
  /** Control socket (0600). */
  socket: string;
  /** The master's pid. */
  pidFile: string;
  /** Per-master private directory for worker NOTIFY_SOCKETs (0700). */
  workDir: string;
  /** The project key: the config file (or project directory) the paths derive from. */
  project: string;
}

type Env = Record<string, string | undefined>;

export function runtimeBase(env: Env = process.env): string {
  const xdg = env.XDG_RUNTIME_DIR;
  if (xdg && xdg.startsWith("/")) return join(xdg, "hr");
  return join("/tmp", `hr-${process.getuid?.() ?? "user"}`);
}

/** Paths for the project whose config file is `configFile` (absolute or relative to cwd). */
export function runtimePaths(configFile: string, env: Env = process.env): RuntimePaths {
  const project = resolve(configFile);
  const dir = runtimeBase(env);
  const slug = basename(dirname(project)).replace(/[^A-Za-z0-9_.-]/g, "_").slice(0, 24) || "root";
  const id = `${slug}-${createHash("sha256").update(project).digest("hex").slice(0, 12)}`;
  return { dir, project, socket: join(dir, `${id}.sock`), pidFile: join(dir, `${id}.pid`), workDir: join(dir, `${id}.d`), };
}

/** Creates `dir` with mode 0700, or checks an existing one is a directory we own; fixes its mode. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory()) throw new Error(`${dir} exists and is not a directory`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid) throw new Error(`${dir} belongs to uid ${st.uid}, not to you (uid ${uid}); set XDG_RUNTIME_DIR to a private directory`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
}

/**
 * Writes a runtime file without following links: the text goes to a fresh private
 * name (O_CREAT|O_EXCL|O_NOFOLLOW, so a planted file or symlink there is never
 * written through), then rename(2) puts it at `path` atomically — replacing a
 * symlink planted at `path` instead of writing to its target, and never leaving
 * a half-written file for a reader.
 */
export function writeRuntimeFile(path: string, text: string, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    unlinkSync(tmp); // a leftover of a crashed hr with a recycled pid (unlink never follows links)
  } catch {
    /* not there */
  }
  const fd = openSync(tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, mode);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readPid(pidFile: string): number | undefined {
  try {
    const fd = openSync(pidFile, C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
    let text: string;
    try {
      text = readFileSync(fd, "utf8");
    } finally {
      closeSync(fd);
    }
    const n = Number(text.trim());
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}
