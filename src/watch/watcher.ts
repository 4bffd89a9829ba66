// File watcher for `hr dev`.
//
// Native mode walks the tree itself and registers ONE non-recursive fs.watch
// per included directory, so excluded, gitignored, node_modules and .git
// directories cost no inotify watch (a recursive fs.watch on the root would
// register every subdirectory, node_modules included). Directories created
// later are walked (their existing files reported) and watched; deleted or
// renamed directories are unwatched. Because directories, not files, are
// watched, atomic saves (write temp + rename over) never lose the watch.
//
// Poll mode (pollMs) does a periodic stat walk with the same filters, for
// filesystems without events (network mounts, some Docker/WSL setups).
//
// Both modes funnel into the same trailing debounce and emit batches of
// sorted, unique, root-relative paths that passed the filter.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Trailing } from "./debounce.ts";
import { createFilter, isEditorTemp, type PathFilter } from "./filter.ts";
import { GitignoreSet } from "./gitignore.ts";
import { PollScanner } from "./poll.ts";

export interface WatchOptions {
  /** absolute project dir; globs are relative to it */
  root: string;
  /** dirs/files to watch, relative to root (default ["."]) */
  paths: string[];
  /** e.g. ["go","html"]; empty = all extensions */
  includeExt: string[];
  /** optional globs; if non-empty a path must match one (in addition to ext) */
  include: string[];
  /** globs (Bun.Glob) relative to root, e.g. "tmp/**", "**\/*_test.go"; "dir/" or "dir/**" prunes the dir */
  exclude: string[];
  /** honour .gitignore files (root and nested) */
  gitignore: boolean;
  /** extra always-ignored globs from the caller (e.g. build output) */
  ignore?: string[];
  /** trailing debounce (quiet window; capped at max(1 s, 20 windows) after the first event); 10 default */
  debounceMs: number;
  /** if set: polling mode (stat walk every pollMs) for filesystems without events */
  pollMs?: number;
  /**
   * Errors after startup (e.g. watch limit hit while adding a new directory,
   * or an exception thrown by onBatch). Default: printed to stderr.
   */
  onError?: (err: Error) => void;
  /** Things worth saying that are not errors (a watched directory deleted, re-created). */
  onNotice?: (message: string) => void;
}

export interface ChangeBatch {
  /** relative to root, sorted, unique */
  paths: string[];
}

/** When a batch's events happened (performance.now()), for latency tracing. */
export interface BatchTrace {
  /** The first raw event behind this batch. */
  firstEventAt?: number;
  /** The debounce fired. */
  debouncedAt?: number;
}

export interface Watcher {
  close(): void;
  /** native: fs.watch registrations (= inotify watches); poll: directories walked per pass */
  readonly watchedDirs: number;
  readonly mode: "native" | "poll";
}

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

function readNum(file: string): number | null {
  try {
    const n = Number.parseInt(fs.readFileSync(file, "utf8").trim(), 10);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

function openFilesLimit(): string {
  try {
    const m = /^Max open files\s+(\S+)/m.exec(fs.readFileSync("/proc/self/limits", "utf8"));
    if (m) return m[1]!;
  } catch {}
  return "?";
}

const fmt = (n: number) => n.toLocaleString("en-US");
const ALTERNATIVES = 'or exclude large directories in [watch].exclude, or set watch.poll = "500ms"';

/** Build the WatchLimitError for an fs.watch failure `code` after `dirs` directories. */
export function watchLimitError(code: string, dirs: number, cause?: unknown): WatchLimitError {
  const where = `while watching ${fmt(dirs)} ${dirs === 1 ? "directory" : "directories"}`;
  let msg: string;
  if (code === "ENOSPC") {
    const lim = readNum("/proc/sys/fs/inotify/max_user_watches");
    msg =
      `inotify watch limit reached (fs.inotify.max_user_watches=${lim ?? "?"}) ${where}: ` +
      "raise it with `sudo sysctl fs.inotify.max_user_watches=524288` (persist in /etc/sysctl.d/), " +
      ALTERNATIVES;
  } else if (code === "EMFILE") {
    const inst = readNum("/proc/sys/fs/inotify/max_user_instances");
    msg =
      `too many open files / inotify instances (EMFILE; fs.inotify.max_user_instances=${inst ?? "?"}, ulimit -n=${openFilesLimit()}) ${where}: ` +
      "raise them with `sudo sysctl fs.inotify.max_user_instances=1024` (persist in /etc/sysctl.d/) and `ulimit -n 65536`, " +
      ALTERNATIVES;
  } else {
    const max = readNum("/proc/sys/fs/file-max");
    msg =
      `system-wide open file limit reached (ENFILE; fs.file-max=${max ?? "?"}) ${where}: ` +
      "raise it with `sudo sysctl fs.file-max=2097152` (persist in /etc/sysctl.d/), " +
      ALTERNATIVES;
  }
  return new WatchLimitError(msg, code, dirs, cause);
}

const LIMIT_CODES = new Set(["ENOSPC", "EMFILE", "ENFILE"]);

export function joinRel(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

function toRel(root: string, abs: string): string {
  const r = path.relative(root, abs).split(path.sep).join("/");
  return r === "." ? "" : r;
}

export async function watch(opts: WatchOptions, onBatch: (b: ChangeBatch, trace: BatchTrace) => void): Promise<Watcher> {
  const root = path.resolve(opts.root);
  const gi = opts.gitignore ? new GitignoreSet() : undefined;
  const filter = createFilter({
    includeExt: opts.includeExt,
    include: opts.include,
    exclude: opts.exclude,
    ignore: opts.ignore,
    gitignore: gi,
  });
  const onError = opts.onError ?? ((e: Error) => console.error(`hr: watch: ${e.message}`));
  const debounceMs = opts.debounceMs >= 0 ? opts.debounceMs : 10;

  // Split targets: directories are walked, files (and missing paths, e.g. a
  // .env not created yet) are watched through a restricted watch on the parent.
  const dirTargets: string[] = [];
  const fileTargets = new Set<string>();
  for (const p of opts.paths.length ? opts.paths : ["."]) {
    const abs = path.resolve(root, p);
    const rel = toRel(root, abs);
    let isDir = false;
    try {
      isDir = (await fsp.stat(abs)).isDirectory();
    } catch {}
    if (isDir) dirTargets.push(rel);
    else fileTargets.add(rel);
  }
  const accepts = (rel: string) =>
    fileTargets.has(rel) ? !isEditorTemp(path.posix.basename(rel)) : filter.accepts(rel);

  const emitter = new Emitter(onBatch, onError);

  if (opts.pollMs !== undefined && opts.pollMs > 0) {
    const scanner = new PollScanner({ root, dirTargets, fileTargets, filter, gitignore: gi, accepts });
    await scanner.scan(); // baseline
    return new PollWatcher(scanner, opts.pollMs, debounceMs, emitter);
  }
  const w = new NativeWatcher(root, filter, gi, fileTargets, accepts, debounceMs, emitter, onError, opts.onNotice ?? (() => {}));
  try {
    for (const d of dirTargets) await w.addDir(d, false);
    for (const f of fileTargets) w.addFileTarget(f);
    for (const d of dirTargets) if (d !== "" && !d.startsWith("..")) w.addRootGuard(d);
  } catch (e) {
    w.close();
    throw e;
  }
  return w;
}

/** Accumulates accepted paths and hands out sorted batches. */
class Emitter {
  changes = new Set<string>();
  closed = false;
  /** First raw event / debounce fire since the last batch (latency tracing). */
  firstAt: number | null = null;
  firedAt: number | null = null;
  constructor(
    private readonly onBatch: (b: ChangeBatch, trace: BatchTrace) => void,
    private readonly onError: (e: Error) => void,
  ) {}
  emit(): void {
    if (this.closed) return;
    if (this.changes.size === 0) {
      this.firstAt = this.firedAt = null;
      return;
    }
    const paths = [...this.changes].sort();
    this.changes.clear();
    const firstEventAt = this.firstAt ?? undefined;
    const debouncedAt = this.firedAt ?? undefined;
    this.firstAt = this.firedAt = null;
    try {
      this.onBatch({ paths }, { firstEventAt, debouncedAt });
    } catch (e) {
      this.onError(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

interface DirEntry {
  abs: string;
  key: string; // dev:ino
  watcher: fs.FSWatcher;
  /** names of non-directory entries (to report deletions and removed trees) */
  files: Set<string>;
  /** restricted watch for file targets: only these names matter; null = full */
  only: Set<string> | null;
}

class NativeWatcher implements Watcher {
  readonly mode = "native" as const;
  private dirs = new Map<string, DirEntry>();
  private visited = new Map<string, string>(); // dev:ino -> rel
  private trailing: Trailing<string>;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Known files found missing once, re-checked after deleteGraceMs before reporting a deletion. */
  private readonly regrace = new Set<string>();
  private readonly graceTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Deletion re-checks in flight: the batch waits for them. */
  private holding = 0;
  /** Directory targets (watch.paths) whose parent is watched for their name only: deleted and re-created, they are watched again. */
  private readonly dirRoots = new Set<string>();
  private readonly deleteGraceMs: number;

  constructor(
    private readonly root: string,
    private readonly filter: PathFilter,
    private readonly gi: GitignoreSet | undefined,
    private readonly fileTargets: Set<string>,
    private readonly accepts: (rel: string) => boolean,
    debounceMs: number,
    private readonly emitter: Emitter,
    private readonly onError: (e: Error) => void,
    private readonly onNotice: (message: string) => void,
  ) {
    this.deleteGraceMs = Math.max(50, debounceMs);
    this.trailing = new Trailing<string>(debounceMs, (items) => {
      this.emitter.firedAt ??= performance.now();
      this.queue = this.queue.then(() => this.resolve(items)).catch((e) => this.onError(e));
    });
  }

  get watchedDirs(): number {
    return this.dirs.size;
  }

  close(): void {
    this.closed = true;
    this.emitter.closed = true;
    this.trailing.cancel();
    for (const t of this.graceTimers) clearTimeout(t);
    this.graceTimers.clear();
    for (const d of this.dirs.values()) d.watcher.close();
    this.dirs.clear();
    this.visited.clear();
  }

  private abs(rel: string): string {
    return rel === "" ? this.root : path.join(this.root, rel);
  }

  private register(rel: string, abs: string, key: string, only: Set<string> | null): DirEntry | null {
    let watcher: fs.FSWatcher;
    try {
      watcher = fs.watch(abs, { persistent: true }, (_ev, filename) => this.onRaw(rel, filename));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? "";
      if (LIMIT_CODES.has(code)) throw watchLimitError(code, this.dirs.size + 1, e);
      return null; // vanished (ENOENT) or unreadable (EACCES): skip
    }
    watcher.on("error", () => {
      // The directory went away; the parent's event removes the entry.
    });
    const entry: DirEntry = { abs, key, watcher, files: new Set(), only };
    this.dirs.set(rel, entry);
    this.visited.set(key, rel);
    return entry;
  }

  private onRaw(dirRel: string, filename: string | Buffer | null): void {
    if (this.closed) return;
    const entry = this.dirs.get(dirRel);
    if (!entry) return;
    if (filename === null || filename === undefined) {
      this.emitter.firstAt ??= performance.now();
      this.trailing.poke(`${dirRel}\0`); // unknown name: rescan dir
      return;
    }
    const name = filename.toString();
    if (entry.only && !entry.only.has(name)) return;
    if (isEditorTemp(name)) return;
    const rel = joinRel(dirRel, name);
    // Drop early what can be neither a watched dir nor an accepted file.
    const key = `${dirRel}\0${name}`;
    if (!(this.gi && name === ".gitignore") && !this.accepts(rel)) {
      if (this.filter.ignoresDir(rel)) return;
      // A known file we don't care about (e.g. the app's own log): re-check it
      // eventually (it may be replaced by a directory) but don't extend the
      // quiet period, or a chatty file would postpone real batches forever.
      if (entry.files.has(name) && !this.dirs.has(rel)) {
        this.trailing.add(key);
        return;
      }
    }
    this.emitter.firstAt ??= performance.now();
    this.trailing.poke(key);
  }

  /** Walk and watch `rel` and its included subdirectories; report files if `report`. */
  async addDir(rel: string, report: boolean): Promise<void> {
    if (this.closed) return;
    if (rel !== "" && this.filter.ignoresDir(rel)) return;
    const abs = this.abs(rel);
    let st: fs.Stats;
    try {
      st = await fsp.stat(abs);
    } catch {
      return;
    }
    if (!st.isDirectory() || this.closed) return;
    const key = `${st.dev}:${st.ino}`;
    const existing = this.dirs.get(rel);
    if (existing) {
      if (existing.only === null) return;
      // upgrade a restricted (file-target) watch to a full one
      existing.watcher.close();
      this.dirs.delete(rel);
      this.visited.delete(existing.key);
    }
    if (this.visited.has(key)) return; // symlink loop or second path to the same dir
    // Watch first, then list: anything created after the watch lands produces
    // an event, anything created before it is in the listing.
    const entry = this.register(rel, abs, key, null);
    if (!entry) return;
    if (this.gi) await this.loadGitignore(rel);
    let list: fs.Dirent[];
    try {
      list = await fsp.readdir(abs, { withFileTypes: true });
    } catch {
      return;
    }
    const subdirs: string[] = [];
    for (const d of list) {
      const name = String(d.name);
      const childRel = joinRel(rel, name);
      let isDir = d.isDirectory();
      if (d.isSymbolicLink()) {
        try {
          isDir = (await fsp.stat(path.join(abs, name))).isDirectory();
        } catch {
          isDir = false; // dangling link
        }
      }
      if (isDir) {
        if (!this.filter.ignoresDir(childRel)) subdirs.push(childRel);
      } else {
        entry.files.add(name);
        if (report && this.accepts(childRel)) this.emitter.changes.add(childRel);
      }
    }
    await Promise.all(subdirs.map((s) => this.addDir(s, report)));
  }

  /** Watch the parent of a file target (restricted to that name) unless already fully watched. */
  addFileTarget(rel: string): void {
    const parent = path.posix.dirname(rel) === "." ? "" : path.posix.dirname(rel);
    const name = path.posix.basename(rel);
    const existing = this.dirs.get(parent);
    if (existing) {
      existing.only?.add(name);
      if (fs.existsSync(path.join(existing.abs, name))) existing.files.add(name);
      return;
    }
    const abs = this.abs(parent);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      return; // parent missing too: nothing to watch
    }
    const key = `${st.dev}:${st.ino}`;
    const e = this.register(parent, abs, key, new Set([name]));
    if (e && fs.existsSync(path.join(abs, name))) e.files.add(name);
  }

  /**
   * Watches a directory target's parent, restricted to its name: a watch on the
   * directory itself dies with it, so without this a deleted and re-created
   * watch root would never be seen again.
   */
  addRootGuard(rel: string): void {
    this.dirRoots.add(rel);
    const parent = path.posix.dirname(rel) === "." ? "" : path.posix.dirname(rel);
    const name = path.posix.basename(rel);
    const existing = this.dirs.get(parent);
    if (existing) {
      existing.only?.add(name);
      return;
    }
    const abs = this.abs(parent);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      return;
    }
    this.register(parent, abs, `${st.dev}:${st.ino}`, new Set([name]));
  }

  private async loadGitignore(rel: string): Promise<boolean> {
    if (!this.gi) return false;
    let content: string | null = null;
    try {
      content = await fsp.readFile(path.join(this.abs(rel), ".gitignore"), "utf8");
    } catch {}
    if (content === null) this.gi.delete(rel);
    else this.gi.set(rel, content);
    return true;
  }

  /** Unwatch `rel` and everything below it; report its known files. */
  private removeTree(rel: string, report: boolean): void {
    const prefix = `${rel}/`;
    for (const [d, e] of [...this.dirs]) {
      if (!(d === rel || (rel === "" ? true : d.startsWith(prefix)))) continue;
      e.watcher.close();
      this.dirs.delete(d);
      if (this.visited.get(e.key) === d) this.visited.delete(e.key);
      if (report) for (const f of e.files) {
        const fr = joinRel(d, f);
        if (this.accepts(fr)) this.emitter.changes.add(fr);
      }
      if (this.gi && d !== "") this.gi.delete(d);
    }
  }

  /** Process a debounced set of raw events (serialised through this.queue). */
  private async resolve(items: Set<string>): Promise<void> {
    if (this.closed) return;
    let gitignoreChanged = false;
    const deferred: string[] = [];
    for (const item of items) {
      const sep = item.indexOf("\0");
      const dirRel = item.slice(0, sep);
      const name = item.slice(sep + 1);
      const entry = this.dirs.get(dirRel);
      if (!entry) continue; // its tree was removed earlier in this pass
      if (name === "") {
        await this.rescan(dirRel, entry);
        continue;
      }
      const rel = joinRel(dirRel, name);
      const abs = path.join(entry.abs, name);
      let st: fs.Stats | null = null;
      try {
        st = await fsp.stat(abs);
      } catch {}
      if (this.closed) return;
      if (this.gi && name === ".gitignore" && entry.only === null) {
        await this.loadGitignore(dirRel);
        gitignoreChanged = true;
      }
      const sub = this.dirs.get(rel);
      if (st?.isDirectory()) {
        if (entry.files.delete(name) && this.accepts(rel)) this.emitter.changes.add(rel);
        const root = this.dirRoots.has(rel);
        if (entry.only && !root) continue;
        if (sub) {
          if (sub.key === `${st.dev}:${st.ino}`) continue; // just a dir mtime change
          this.removeTree(rel, true); // replaced by another directory
        }
        await this.addDir(rel, true);
        if (root && this.dirs.has(rel)) this.onNotice(`${rel} is back: watching it again`);
      } else if (st) {
        this.regrace.delete(item);
        if (sub) this.removeTree(rel, true);
        entry.files.add(name);
        if (this.accepts(rel)) this.emitter.changes.add(rel);
      } else {
        if (sub) {
          this.removeTree(rel, true);
          if (this.dirRoots.has(rel)) this.onNotice(`${rel} was deleted: it is watched again as soon as it is re-created`);
        } else if (entry.files.has(name) && this.accepts(rel) && !this.regrace.has(item)) {
          // A known file is missing: editors that save by moving the old file away
          // and writing a new one leave this gap. Look again shortly before
          // reporting a deletion (and restarting an app whose source is missing).
          this.regrace.add(item);
          deferred.push(item);
          continue;
        }
        this.regrace.delete(item);
        // Only report deletions of files we knew: filters out the self-events a
        // deleted/moved directory emits about its own name.
        if (entry.files.delete(name) && this.accepts(rel)) this.emitter.changes.add(rel);
      }
    }
    if (deferred.length) {
      this.holding++;
      const t = setTimeout(() => {
        this.graceTimers.delete(t);
        this.holding--;
        this.trailing.poke(...deferred);
      }, this.deleteGraceMs);
      this.graceTimers.add(t);
    }
    if (gitignoreChanged) await this.reconcile();
    if (this.closed) return;
    // Real events arrived while resolving (or a deletion is being re-checked):
    // their quiet period decides the batch.
    if (!this.trailing.hot && this.holding === 0) this.emitter.emit();
  }

  /** Re-list a directory when the kernel did not name the entry (overflow). */
  private async rescan(dirRel: string, entry: DirEntry): Promise<void> {
    let names: string[];
    try {
      names = (await fsp.readdir(entry.abs)).map(String);
    } catch {
      return;
    }
    const items = new Set<string>();
    for (const n of new Set([...names, ...entry.files])) {
      if (entry.only && !entry.only.has(n)) continue;
      items.add(`${dirRel}\0${n}`);
    }
    await this.resolve(items);
  }

  /** After a .gitignore edit: drop newly ignored dirs, watch newly included ones. */
  private async reconcile(): Promise<void> {
    for (const [d, e] of [...this.dirs]) {
      if (d !== "" && e.only === null && this.dirs.has(d) && this.filter.ignoresDir(d)) this.removeTree(d, false);
    }
    const full = [...this.dirs].filter(([, e]) => e.only === null).map(([d]) => d);
    for (const d of full) {
      const e = this.dirs.get(d);
      if (!e) continue;
      let list: fs.Dirent[];
      try {
        list = await fsp.readdir(e.abs, { withFileTypes: true });
      } catch {
        continue;
      }
      for (const ent of list) {
        const childRel = joinRel(d, String(ent.name));
        if (ent.isDirectory() && !this.dirs.has(childRel) && !this.filter.ignoresDir(childRel)) {
          await this.addDir(childRel, false);
        }
      }
    }
  }
}

class PollWatcher implements Watcher {
  readonly mode = "poll" as const;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private trailing: Trailing<string>;

  constructor(
    private readonly scanner: PollScanner,
    private readonly pollMs: number,
    debounceMs: number,
    private readonly emitter: Emitter,
  ) {
    this.trailing = new Trailing<string>(debounceMs, () => {
      this.emitter.firedAt ??= performance.now();
      this.emitter.emit();
    });
    this.schedule();
  }

  get watchedDirs(): number {
    return this.scanner.dirCount;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(async () => {
      this.timer = null;
      let changed: string[] = [];
      try {
        changed = await this.scanner.scan();
      } catch {}
      if (this.closed) return;
      if (changed.length) {
        for (const c of changed) this.emitter.changes.add(c);
        this.emitter.firstAt ??= performance.now();
        this.trailing.poke();
      }
      this.schedule();
    }, this.pollMs);
  }

  close(): void {
    this.closed = true;
    this.emitter.closed = true;
    this.trailing.cancel();
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

/** Filesystem types on which inotify sees no (or only local) changes: use poll mode there. */
const NO_EVENT_FS = new Set(["nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "fuse.sshfs", "sshfs", "vboxsf", "fuse.vmhgfs-fuse", "vmhgfs", "drvfs", "fuse.rclone", "afs", "ceph", "glusterfs", "fuse.glusterfs"]);

/** Parse /proc/self/mountinfo text: filesystem type of the mount holding `abs`. */
export function fsTypeFromMountinfo(mountinfo: string, abs: string): string | null {
  let best: { mp: string; type: string } | null = null;
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(" ");
    const mp = (left[4] ?? "").replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    const type = line.slice(sep + 3).split(" ")[0] ?? "";
    const inside = mp === "/" || abs === mp || abs.startsWith(`${mp}/`);
    if (inside && (!best || mp.length >= best.mp.length)) best = { mp, type };
  }
  return best?.type ?? null;
}

/**
 * If `root` lives on a filesystem where native events don't arrive (NFS, SMB,
 * 9p/WSL drvfs, vboxsf, sshfs...), return its type so the caller can switch to
 * poll mode or print a hint; null otherwise (or when unknown, e.g. not Linux).
 */
export function noEventFilesystem(root: string): string | null {
  let info: string;
  try {
    info = fs.readFileSync("/proc/self/mountinfo", "utf8");
  } catch {
    return null;
  }
  const type = fsTypeFromMountinfo(info, path.resolve(root));
  return type && NO_EVENT_FS.has(type) ? type : null;
}
