// Polling scanner: a stat walk of the included tree, compared with the previous
// walk by mtime/size/inode. Used when pollMs is set (network mounts, Docker
// bind mounts on some hosts, WSL /mnt/*), where fs.watch gets no events.
import fs from "node:fs";
import fsp from "node:fs/promises";
import path from "node:path";
import type { PathFilter } from "./filter.ts";
import type { GitignoreSet } from "./gitignore.ts";
import type { Emitter, Watcher } from "./batch.ts";
import { Trailing } from "./debounce.ts";

export interface PollScannerOptions {
  root: string;
  dirTargets: string[];
  fileTargets: Set<string>;
  filter: PathFilter;
  gitignore?: GitignoreSet;
  accepts: (rel: string) => boolean;
}

const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);
const sig = (st: fs.Stats) => `${st.mtimeMs}:${st.size}:${st.ino}:${st.ctimeMs}`;

export class PollScanner {
  /** accepted files -> signature, from the last scan */
  private files = new Map<string, string>();
  private gitignores = new Map<string, string>(); // dir -> signature of its .gitignore
  private first = true;
  dirCount = 0;

  constructor(private readonly o: PollScannerOptions) {}

  /** Walk once; returns the accepted paths that changed since the last walk (none on the first). */
  async scan(): Promise<string[]> {
    const next = new Map<string, string>();
    const visited = new Set<string>();
    const seenGitignores = new Set<string>();
    let dirs = 0;

    const walk = async (rel: string): Promise<void> => {
      if (rel !== "" && this.o.filter.ignoresDir(rel)) return;
      const abs = rel === "" ? this.o.root : path.join(this.o.root, rel);
      let st: fs.Stats;
      try {
        st = await fsp.stat(abs);
      } catch {
        return;
      }
      const key = `${st.dev}:${st.ino}`;
      if (!st.isDirectory() || visited.has(key)) return;
      visited.add(key);
      dirs++;
      if (this.o.gitignore) await this.loadGitignore(rel, abs, seenGitignores);
      let list: fs.Dirent[];
      try {
        list = await fsp.readdir(abs, { withFileTypes: true });
      } catch {
        return;
      }
      const subdirs: string[] = [];
      const stats: Promise<void>[] = [];
      for (const d of list) {
        const name = String(d.name);
        const childRel = join(rel, name);
        if (d.isDirectory()) {
          subdirs.push(childRel);
          continue;
        }
        const symlink = d.isSymbolicLink();
        if (!symlink && !this.o.accepts(childRel)) continue;
        stats.push(
          fsp.stat(path.join(abs, name)).then(
            (cst) => {
              if (cst.isDirectory()) subdirs.push(childRel);
              else if (!symlink || this.o.accepts(childRel)) next.set(childRel, sig(cst));
            },
            () => {},
          ),
        );
      }
      await Promise.all(stats);
      await Promise.all(subdirs.map(walk));
    };

    for (const d of this.o.dirTargets) await walk(d);
    for (const f of this.o.fileTargets) {
      try {
        const st = await fsp.stat(path.join(this.o.root, f));
        if (!st.isDirectory()) next.set(f, sig(st));
      } catch {}
    }
    if (this.o.gitignore) {
      for (const d of [...this.gitignores.keys()]) {
        if (!seenGitignores.has(d)) {
          this.gitignores.delete(d);
          this.o.gitignore.delete(d);
        }
      }
    }

    const changed: string[] = [];
    if (!this.first) {
      for (const [p, s] of next) if (this.files.get(p) !== s) changed.push(p);
      for (const p of this.files.keys()) if (!next.has(p)) changed.push(p);
    }
    this.first = false;
    this.files = next;
    this.dirCount = dirs;
    return changed.sort();
  }

  private async loadGitignore(rel: string, abs: string, seen: Set<string>): Promise<void> {
    const gi = this.o.gitignore!;
    const file = path.join(abs, ".gitignore");
    let st: fs.Stats;
    try {
      st = await fsp.stat(file);
    } catch {
      return;
    }
    seen.add(rel);
    const s = sig(st);
    if (this.gitignores.get(rel) === s) return;
    try {
      gi.set(rel, await fsp.readFile(file, "utf8"));
      this.gitignores.set(rel, s);
    } catch {}
  }
}

/** Poll watch mode: a PollScanner pass every pollMs; changes go through the same debounce and Emitter. */
export class PollWatcher implements Watcher {
  readonly mode = "poll" as const;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private closed = false;
  private trailing: Trailing<never>;

  constructor(
    private readonly scanner: PollScanner,
    private readonly pollMs: number,
    debounceMs: number,
    private readonly emitter: Emitter,
  ) {
    this.trailing = new Trailing<never>(debounceMs, () => {
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
