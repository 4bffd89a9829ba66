// Native watch mode: ONE non-recursive fs.watch per included directory (see
// watcher.ts). Raw events are debounced as typed FsEvents, then resolved
// (stat) into accepted paths for the Emitter.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import { Emitter, eventKey, joinRel, type FsEvent, type Watcher } from "./batch.ts";
import { Trailing } from "./debounce.ts";
import { isEditorTemp, type PathFilter } from "./filter.ts";
import type { GitignoreSet } from "./gitignore.ts";
import { LIMIT_CODES, watchLimitError } from "./limits.ts";

interface DirEntry {
  abs: string;
  key: string; // dev:ino
  watcher: fs.FSWatcher;
  /** names of non-directory entries (to report deletions and removed trees) */
  files: Set<string>;
  /** restricted watch for file targets: only these names matter; null = full */
  only: Set<string> | null;
}

export class NativeWatcher implements Watcher {
  readonly mode = "native" as const;
  private dirs = new Map<string, DirEntry>();
  private visited = new Map<string, string>(); // dev:ino -> rel
  private trailing: Trailing<FsEvent>;
  private queue: Promise<void> = Promise.resolve();
  private closed = false;
  /** Known files found missing once, re-checked after deleteGraceMs before reporting a deletion. */
  private readonly regrace = new Set<string>(); // eventKey()
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
    this.trailing = new Trailing<FsEvent>(
      debounceMs,
      (items) => {
        this.emitter.firedAt ??= performance.now();
        this.queue = this.queue.then(() => this.resolve(items)).catch((e) => this.onError(e));
      },
      undefined,
      eventKey,
    );
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
      this.trailing.poke({ dir: dirRel, name: null }); // unknown name: rescan dir
      return;
    }
    const name = filename.toString();
    if (entry.only && !entry.only.has(name)) return;
    if (isEditorTemp(name)) return;
    const rel = joinRel(dirRel, name);
    // Drop early what can be neither a watched dir nor an accepted file.
    const ev: FsEvent = { dir: dirRel, name };
    if (!(this.gi && name === ".gitignore") && !this.accepts(rel)) {
      if (this.filter.ignoresDir(rel)) return;
      // A known file we don't care about (e.g. the app's own log): re-check it
      // eventually (it may be replaced by a directory) but don't extend the
      // quiet period, or a chatty file would postpone real batches forever.
      if (entry.files.has(name) && !this.dirs.has(rel)) {
        this.trailing.add(ev);
        return;
      }
    }
    this.emitter.firstAt ??= performance.now();
    this.trailing.poke(ev);
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
    const entry = this.watchNameInParent(rel);
    const name = path.posix.basename(rel);
    if (entry && fs.existsSync(path.join(entry.abs, name))) entry.files.add(name);
  }

  /**
   * Watches a directory target's parent, restricted to its name: a watch on the
   * directory itself dies with it, so without this a deleted and re-created
   * watch root would never be seen again.
   */
  addRootGuard(rel: string): void {
    this.dirRoots.add(rel);
    this.watchNameInParent(rel);
  }

  /**
   * The watch on rel's parent, made to report rel's name: the existing one (told about the
   * name if it is restricted), or a new one restricted to that name. Undefined when the
   * parent is missing too.
   */
  private watchNameInParent(rel: string) {
    const parent = path.posix.dirname(rel) === "." ? "" : path.posix.dirname(rel);
    const name = path.posix.basename(rel);
    const existing = this.dirs.get(parent);
    if (existing) {
      existing.only?.add(name);
      return existing;
    }
    const abs = this.abs(parent);
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch {
      return undefined; // parent missing too: nothing to watch
    }
    return this.register(parent, abs, `${st.dev}:${st.ino}`, new Set([name]));
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
  private async resolve(items: Set<FsEvent>): Promise<void> {
    if (this.closed) return;
    let gitignoreChanged = false;
    const deferred: FsEvent[] = [];
    for (const item of items) {
      const { dir: dirRel, name } = item;
      const key = eventKey(item);
      const entry = this.dirs.get(dirRel);
      if (!entry) continue; // its tree was removed earlier in this pass
      if (name === null) {
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
        this.regrace.delete(key);
        if (sub) this.removeTree(rel, true);
        entry.files.add(name);
        if (this.accepts(rel)) this.emitter.changes.add(rel);
      } else {
        if (sub) {
          this.removeTree(rel, true);
          if (this.dirRoots.has(rel)) this.onNotice(`${rel} was deleted: it is watched again as soon as it is re-created`);
        } else if (entry.files.has(name) && this.accepts(rel) && !this.regrace.has(key)) {
          // A known file is missing: editors that save by moving the old file away
          // and writing a new one leave this gap. Look again shortly before
          // reporting a deletion (and restarting an app whose source is missing).
          this.regrace.add(key);
          deferred.push(item);
          continue;
        }
        this.regrace.delete(key);
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
    const items = new Set<FsEvent>();
    for (const n of new Set([...names, ...entry.files])) {
      if (entry.only && !entry.only.has(n)) continue;
      items.add({ dir: dirRel, name: n });
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

