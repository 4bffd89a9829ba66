// Path filter shared by native and poll mode. Pure: no filesystem access; the
// watcher feeds .gitignore contents into the GitignoreSet it passes in.
import { GitignoreSet } from "./gitignore.ts";

/** Directory names never watched, at any depth. */
export const ALWAYS_IGNORED_DIRS: readonly string[] = [".git", "node_modules"];

/**
 * Basename patterns of editor temp/backup files, always ignored:
 * vim swap (*.swp, *.swo, *.swn, *.swx), vim backup (*~) and its write probe
 * (4913), emacs locks (.#*), atomic-save temp (*.tmp), macOS .DS_Store,
 * JetBrains safe-write (*___jb_tmp___, *___jb_old___), gedit (.goutputstream-*).
 */
export const ALWAYS_IGNORED_FILES: readonly string[] = [
  "*.swp",
  "*.swo",
  "*.swn",
  "*.swx",
  "*~",
  ".#*",
  "4913",
  "*.tmp",
  ".DS_Store",
  "*___jb_tmp___",
  "*___jb_old___",
  ".goutputstream-*",
];

export interface FilterOptions {
  includeExt: string[];
  include: string[];
  exclude: string[];
  ignore?: string[];
  /** .gitignore rules; omit (or pass an empty set) to not honour .gitignore */
  gitignore?: GitignoreSet;
}

export interface PathFilter {
  /** true: do not descend into (nor watch) this directory (path relative to root) */
  ignoresDir(rel: string): boolean;
  /** true: a change to this file (path relative to root) belongs in a batch */
  accepts(relFile: string): boolean;
}

const TEMP_RE = new RegExp(
  "^(?:" +
    ALWAYS_IGNORED_FILES.map((g) => g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")).join("|") +
    ")$",
);

/** Is this basename an editor temp/backup file? */
export function isEditorTemp(name: string): boolean {
  return TEMP_RE.test(name);
}

/** Normalise a user glob: strip "./", collapse "//", Windows separators. */
function normGlob(g: string): string {
  let s = g.trim().replace(/\\/g, "/").replace(/\/{2,}/g, "/");
  while (s.startsWith("./")) s = s.slice(2);
  return s;
}

interface CompiledGlob {
  glob: Bun.Glob;
  /** for "x/**" and "x/": the glob of x itself, so the whole dir is pruned */
  dirGlob: Bun.Glob | null;
}

function compileGlobs(globs: string[]): CompiledGlob[] {
  const out: CompiledGlob[] = [];
  for (const raw of globs) {
    let g = normGlob(raw);
    if (g === "") continue;
    let dirOnly = false;
    if (g.endsWith("/")) {
      g = g.replace(/\/+$/, "");
      dirOnly = true;
    }
    if (dirOnly) {
      out.push({ glob: new Bun.Glob(`${g}/**`), dirGlob: new Bun.Glob(g) });
    } else if (g.endsWith("/**")) {
      out.push({ glob: new Bun.Glob(g), dirGlob: new Bun.Glob(g.slice(0, -3)) });
    } else {
      out.push({ glob: new Bun.Glob(g), dirGlob: null });
    }
  }
  return out;
}

export function normalizeExt(exts: string[]): Set<string> {
  const s = new Set<string>();
  for (const e of exts) {
    const x = e.trim().replace(/^\*?\./, "").toLowerCase();
    if (x) s.add(x);
  }
  return s;
}

/** Extension without the dot, lowercased; ".env" -> "env"; "Makefile" -> "". */
function extOf(name: string): string {
  const i = name.lastIndexOf(".");
  return i < 0 ? "" : name.slice(i + 1).toLowerCase();
}

export function createFilter(opts: FilterOptions): PathFilter {
  const exts = normalizeExt(opts.includeExt);
  const include = compileGlobs(opts.include).map((c) => c.glob);
  const excluded = compileGlobs([...opts.exclude, ...(opts.ignore ?? [])]);
  const gi = opts.gitignore;
  const dirCache = new Map<string, boolean>();

  const matchesExcluded = (rel: string, isDir: boolean): boolean => {
    for (const c of excluded) {
      if (c.glob.match(rel)) return true;
      if (isDir && c.dirGlob?.match(rel)) return true;
    }
    return false;
  };

  // Is this one directory (not its ancestors) ignored?
  const dirSelfIgnored = (rel: string, name: string): boolean => {
    if (ALWAYS_IGNORED_DIRS.includes(name)) return true;
    if (matchesExcluded(rel, true)) return true;
    if (gi && gi.ignores(rel, true)) return true;
    return false;
  };

  const ignoresDir = (rel: string): boolean => {
    rel = normRel(rel);
    if (rel === "" || rel === ".") return false;
    // Only cache when there are no gitignore rules that may change later.
    const cacheable = !gi || gi.size === 0;
    if (cacheable) {
      const hit = dirCache.get(rel);
      if (hit !== undefined) return hit;
    }
    const slash = rel.lastIndexOf("/");
    const parent = slash < 0 ? "" : rel.slice(0, slash);
    const name = slash < 0 ? rel : rel.slice(slash + 1);
    const res = (parent !== "" && parent !== ".." && !parent.endsWith("/..") && ignoresDir(parent)) || dirSelfIgnored(rel, name);
    if (cacheable) {
      if (dirCache.size > 50_000) dirCache.clear();
      dirCache.set(rel, res);
    }
    return res;
  };

  const accepts = (relFile: string): boolean => {
    const rel = normRel(relFile);
    if (rel === "" || rel === ".") return false;
    const slash = rel.lastIndexOf("/");
    const name = slash < 0 ? rel : rel.slice(slash + 1);
    if (isEditorTemp(name)) return false;
    if (ALWAYS_IGNORED_DIRS.includes(name)) return false;
    if (exts.size > 0 && !exts.has(extOf(name))) return false;
    if (slash >= 0 && ignoresDir(rel.slice(0, slash))) return false;
    if (matchesExcluded(rel, false)) return false;
    if (gi && gi.ignores(rel, false)) return false;
    if (include.length > 0 && !include.some((g) => g.match(rel))) return false;
    return true;
  };

  return { ignoresDir, accepts };
}

function normRel(rel: string): string {
  let s = rel.replace(/\\/g, "/");
  while (s.startsWith("./")) s = s.slice(2);
  return s.replace(/\/+$/, "");
}
