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
//
// Files: watcher.ts (options, watch()), batch.ts (batches, raw events, Emitter),
// native.ts (fs.watch mode), poll.ts (poll mode), limits.ts (kernel watch
// limits), mounts.ts (filesystems without events), filter.ts, gitignore.ts, debounce.ts.
import fsp from "node:fs/promises";
import path from "node:path";
import { Emitter, type BatchTrace, type ChangeBatch, type Watcher } from "./batch.ts";
import { createFilter, isEditorTemp } from "./filter.ts";
import { GitignoreSet } from "./gitignore.ts";
import { NativeWatcher } from "./native.ts";
import { PollScanner, PollWatcher } from "./poll.ts";

export type { BatchTrace, ChangeBatch, Watcher } from "./batch.ts";
export { noEventFilesystem } from "./mounts.ts";

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

