// A small, dependency-free .gitignore matcher.
//
// Semantics follow gitignore(5):
//   - blank lines and "#" comments are skipped; "\#" and "\!" escape; trailing
//     unescaped spaces are trimmed
//   - "!" negates (re-includes); the last matching pattern wins, deeper
//     .gitignore files take precedence over shallower ones
//   - a trailing "/" matches directories only
//   - a "/" at the start or in the middle anchors the pattern to the directory
//     of its .gitignore; otherwise it matches a name at any depth below it
//   - "*" and "?" never match "/", "[...]" character classes (with "!"/"^"
//     negation and ranges), "**/" leading, "/**/" middle, "/**" trailing
//   - a file cannot be re-included if a parent directory is excluded: callers
//     (filter.ts) check ancestors with the directory flag first.

export interface GitignoreRule {
  negate: boolean;
  dirOnly: boolean;
  re: RegExp;
  source: string;
}

/** Compile one gitignore line; null for blanks/comments/invalid lines. */
export function compileGitignoreLine(line: string): GitignoreRule | null {
  let p = line.replace(/\r$/, "");
  if (p === "" || p.startsWith("#")) return null;
  // Trim trailing spaces unless escaped with a backslash.
  p = p.replace(/(?<!\\)[ \t]+$/, "");
  if (p === "") return null;
  let negate = false;
  if (p.startsWith("!")) {
    negate = true;
    p = p.slice(1);
  } else if (p.startsWith("\\!") || p.startsWith("\\#")) {
    p = p.slice(1);
  }
  let dirOnly = false;
  if (p.endsWith("/") && !p.endsWith("\\/")) {
    dirOnly = true;
    p = p.replace(/\/+$/, "");
  }
  if (p === "") return null;
  const anchored = p.includes("/");
  if (p.startsWith("/")) p = p.slice(1);
  if (p === "") return null;
  const body = globToRegexSource(p);
  const re = new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`);
  return { negate, dirOnly, re, source: line };
}

/** Translate a gitignore glob (no leading "/", no trailing "/") to a RegExp body. */
export function globToRegexSource(p: string): string {
  const segs = p.split("/");
  let out = "";
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const last = i === segs.length - 1;
    if (seg === "**") {
      if (segs.length === 1) {
        out += ".*"; // "**" alone: everything
      } else if (i === 0) {
        out += "(?:.*/)?"; // "**/x": x at any depth
      } else if (last) {
        out += ".+"; // "x/**": everything inside x (preceding "/" already emitted)
      } else {
        out += "(?:.*/)?"; // "a/**/b": zero or more directories
      }
      continue;
    }
    out += segmentToRegex(seg);
    if (!last) out += "/";
  }
  return out;
}

function segmentToRegex(seg: string): string {
  let out = "";
  for (let i = 0; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === "\\") {
      const n = seg[i + 1];
      if (n !== undefined) {
        out += escapeRe(n);
        i++;
      }
      continue;
    }
    if (c === "*") {
      while (seg[i + 1] === "*") i++; // "a**b" behaves like "a*b"
      out += "[^/]*";
      continue;
    }
    if (c === "?") {
      out += "[^/]";
      continue;
    }
    if (c === "[") {
      const cls = parseClass(seg, i);
      if (cls) {
        out += cls.re;
        i = cls.end;
        continue;
      }
      out += "\\[";
      continue;
    }
    out += escapeRe(c);
  }
  return out;
}

/** Parse "[...]" starting at seg[start] === "["; returns regex and index of "]". */
function parseClass(seg: string, start: number): { re: string; end: number } | null {
  let i = start + 1;
  let negate = false;
  if (seg[i] === "!" || seg[i] === "^") {
    negate = true;
    i++;
  }
  let body = "";
  let first = true;
  for (; i < seg.length; i++) {
    const c = seg[i]!;
    if (c === "]" && !first) {
      if (body === "") return null;
      // Classes never match "/" (wildmatch with WM_PATHNAME).
      return { re: negate ? `[^/${body}]` : `(?!/)[${body}]`, end: i };
    }
    first = false;
    if (c === "\\" && i + 1 < seg.length) {
      body += escapeClass(seg[i + 1]!);
      i++;
      continue;
    }
    if (c === "[" && seg[i + 1] === ":") {
      const close = seg.indexOf(":]", i + 2);
      if (close > 0) {
        const name = seg.slice(i + 2, close);
        const posix = POSIX_CLASSES[name];
        if (posix) {
          body += posix;
          i = close + 1;
          continue;
        }
      }
    }
    if (c === "-" && body !== "" && seg[i + 1] !== undefined && seg[i + 1] !== "]") {
      body += "-";
      continue;
    }
    body += escapeClass(c);
  }
  return null; // unterminated: treat "[" literally
}

const POSIX_CLASSES: Record<string, string> = {
  alnum: "a-zA-Z0-9",
  alpha: "a-zA-Z",
  digit: "0-9",
  lower: "a-z",
  upper: "A-Z",
  space: " \\t\\n\\r\\f\\v",
  xdigit: "0-9a-fA-F",
  punct: "!-\\/:-@\\[-`{-~",
  blank: " \\t",
};

function escapeRe(c: string): string {
  return /[\\^$.*+?()[\]{}|\/-]/.test(c) ? `\\${c}` : c;
}
function escapeClass(c: string): string {
  return /[\\\]\[^-]/.test(c) ? `\\${c}` : c;
}

/** The rules of one .gitignore file, scoped to the directory holding it. */
export interface GitignoreFile {
  /** directory of the .gitignore, relative to the project root ("" = root) */
  dir: string;
  rules: GitignoreRule[];
}

export function parseGitignore(dir: string, content: string): GitignoreFile {
  const rules: GitignoreRule[] = [];
  for (const line of content.split("\n")) {
    const r = compileGitignoreLine(line);
    if (r) rules.push(r);
  }
  return { dir: normDir(dir), rules };
}

function normDir(d: string): string {
  let s = d.replace(/\\/g, "/").replace(/^\.\/?/, "").replace(/\/+$/, "");
  if (s === ".") s = "";
  return s;
}

/**
 * A set of .gitignore files keyed by directory. Mutable (the watcher adds and
 * reloads files as it discovers them) but matching is pure.
 */
export class GitignoreSet {
  private files = new Map<string, GitignoreFile>();

  /** Add or replace the .gitignore of `dir` (relative to root). */
  set(dir: string, content: string): void {
    const f = parseGitignore(dir, content);
    if (f.rules.length === 0) this.files.delete(f.dir);
    else this.files.set(f.dir, f);
  }
  delete(dir: string): void {
    this.files.delete(normDir(dir));
  }
  get size(): number {
    return this.files.size;
  }

  /**
   * Is `rel` (relative to root) ignored by the patterns themselves? This does
   * NOT check ancestors; filter.ts does that (a path under an ignored dir is
   * ignored whatever later patterns say).
   */
  ignores(rel: string, isDir: boolean): boolean {
    if (this.files.size === 0) return false;
    let result = false;
    // Shallow to deep: deeper files override; within a file, last match wins.
    const parts = rel.split("/");
    let dir = "";
    for (let depth = 0; depth < parts.length; depth++) {
      const f = this.files.get(dir);
      if (f) {
        const sub = dir === "" ? rel : rel.slice(dir.length + 1);
        for (const r of f.rules) {
          if (r.dirOnly && !isDir) continue;
          if (r.re.test(sub)) result = !r.negate;
        }
      }
      dir = dir === "" ? parts[depth]! : `${dir}/${parts[depth]}`;
    }
    return result;
  }
}
