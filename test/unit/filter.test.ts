import { describe, expect, test } from "bun:test";
import { createFilter, isEditorTemp, type FilterOptions } from "../../src/watch/filter.ts";
import { compileGitignoreLine, GitignoreSet } from "../../src/watch/gitignore.ts";

const base: FilterOptions = { includeExt: [], include: [], exclude: [] };

function gi(files: Record<string, string>): GitignoreSet {
  const s = new GitignoreSet();
  for (const [dir, content] of Object.entries(files)) s.set(dir, content);
  return s;
}

/** Match one pattern (root .gitignore) against a path. */
function m(pattern: string, rel: string, isDir = false): boolean {
  return gi({ "": pattern }).ignores(rel, isDir);
}

describe("gitignore patterns", () => {
  test("comments, blanks, escapes, trailing spaces", () => {
    expect(compileGitignoreLine("")).toBeNull();
    expect(compileGitignoreLine("# comment")).toBeNull();
    expect(compileGitignoreLine("   ")).toBeNull();
    expect(m("\\#file", "#file")).toBe(true);
    expect(m("\\!important", "!important")).toBe(true);
    expect(m("foo   ", "foo")).toBe(true);
    expect(m("foo\\ ", "foo ")).toBe(true);
    expect(m("foo\r", "foo")).toBe(true); // CRLF files
  });

  test("unanchored names match at any depth", () => {
    expect(m("*.log", "a.log")).toBe(true);
    expect(m("*.log", "deep/er/a.log")).toBe(true);
    expect(m("*.log", "a.log.txt")).toBe(false);
    expect(m("build", "x/build", true)).toBe(true);
    expect(m("build", "x/build")).toBe(true);
    expect(m("build", "x/building")).toBe(false);
  });

  test("anchored patterns (leading or middle slash)", () => {
    expect(m("/build", "build", true)).toBe(true);
    expect(m("/build", "x/build", true)).toBe(false);
    expect(m("doc/frotz", "doc/frotz")).toBe(true);
    expect(m("doc/frotz", "a/doc/frotz")).toBe(false);
    expect(m("doc/*.txt", "doc/a.txt")).toBe(true);
    expect(m("doc/*.txt", "doc/sub/a.txt")).toBe(false);
  });

  test("dir-only patterns", () => {
    expect(m("out/", "out", true)).toBe(true);
    expect(m("out/", "out", false)).toBe(false);
    expect(m("out/", "a/out", true)).toBe(true);
    expect(m("/out/", "a/out", true)).toBe(false);
  });

  test("** forms", () => {
    expect(m("**/foo", "foo")).toBe(true);
    expect(m("**/foo", "a/b/foo")).toBe(true);
    expect(m("**/foo/bar", "x/foo/bar")).toBe(true);
    expect(m("abc/**", "abc/x")).toBe(true);
    expect(m("abc/**", "abc/x/y")).toBe(true);
    expect(m("abc/**", "abc", true)).toBe(false);
    expect(m("a/**/b", "a/b")).toBe(true);
    expect(m("a/**/b", "a/x/b")).toBe(true);
    expect(m("a/**/b", "a/x/y/b")).toBe(true);
    expect(m("a/**/b", "b")).toBe(false);
    expect(m("foo**bar", "fooXbar")).toBe(true); // not "**": a plain star
    expect(m("foo**bar", "foo/bar")).toBe(false);
  });

  test("* and ? do not cross '/'", () => {
    expect(m("a/*", "a/b")).toBe(true);
    expect(m("a/*", "a/b/c")).toBe(false);
    expect(m("a?c", "abc")).toBe(true);
    expect(m("a?c", "a/c")).toBe(false);
  });

  test("character classes", () => {
    expect(m("*.[oa]", "x.o")).toBe(true);
    expect(m("*.[oa]", "x.a")).toBe(true);
    expect(m("*.[oa]", "x.c")).toBe(false);
    expect(m("file[0-9].txt", "file7.txt")).toBe(true);
    expect(m("file[0-9].txt", "fileA.txt")).toBe(false);
    expect(m("file[!0-9].txt", "fileA.txt")).toBe(true);
    expect(m("file[^0-9].txt", "file1.txt")).toBe(false);
    expect(m("a[!x]b", "a/b")).toBe(false);
    expect(m("x[[:digit:]]", "x5")).toBe(true);
    expect(m("x[]]", "x]")).toBe(true);
    expect(m("x[abc", "x[abc")).toBe(true); // unterminated: literal
    expect(m("a.b", "axb")).toBe(false); // regex metachar escaped
  });

  test("negation: last match wins", () => {
    const s = gi({ "": "*.log\n!keep.log\n" });
    expect(s.ignores("a.log", false)).toBe(true);
    expect(s.ignores("keep.log", false)).toBe(false);
    expect(s.ignores("sub/keep.log", false)).toBe(false);
    const s2 = gi({ "": "!keep.log\n*.log\n" });
    expect(s2.ignores("keep.log", false)).toBe(true);
  });

  test("nested .gitignore is scoped to its directory and overrides the parent", () => {
    const s = gi({ "": "*.gen.go\n", "pkg": "/local\n!special.gen.go\n", "pkg/sub": "*.txt\n" });
    expect(s.ignores("a.gen.go", false)).toBe(true);
    expect(s.ignores("pkg/special.gen.go", false)).toBe(false);
    expect(s.ignores("special.gen.go", false)).toBe(true); // negation only applies under pkg/
    expect(s.ignores("pkg/local", true)).toBe(true);
    expect(s.ignores("local", true)).toBe(false);
    expect(s.ignores("pkg/x/local", true)).toBe(false); // anchored to pkg/
    expect(s.ignores("pkg/sub/a.txt", false)).toBe(true);
    expect(s.ignores("pkg/a.txt", false)).toBe(false);
    s.delete("pkg/sub");
    expect(s.ignores("pkg/sub/a.txt", false)).toBe(false);
  });
});

describe("createFilter", () => {
  test("always-ignored dirs and editor temp files", () => {
    const f = createFilter(base);
    expect(f.ignoresDir(".git")).toBe(true);
    expect(f.ignoresDir("node_modules")).toBe(true);
    expect(f.ignoresDir("a/b/node_modules")).toBe(true);
    expect(f.ignoresDir("a/b/node_modules/x")).toBe(true);
    expect(f.ignoresDir("src")).toBe(false);
    expect(f.ignoresDir("")).toBe(false);
    for (const n of [".main.go.swp", "x.swx", "main.go~", ".#main.go", "4913", "main.go.tmp", ".DS_Store", "a.go___jb_tmp___"]) {
      expect(isEditorTemp(n)).toBe(true);
      expect(f.accepts(`src/${n}`)).toBe(false);
    }
    expect(f.accepts("src/main.go")).toBe(true);
    expect(f.accepts("node_modules/x/index.js")).toBe(false);
    expect(f.accepts(".git/HEAD")).toBe(false);
    expect(f.accepts("a49130.go")).toBe(true);
  });

  test("includeExt", () => {
    const f = createFilter({ ...base, includeExt: ["go", ".HTML", "env"] });
    expect(f.accepts("main.go")).toBe(true);
    expect(f.accepts("views/index.html")).toBe(true);
    expect(f.accepts("x/INDEX.HTML")).toBe(true);
    expect(f.accepts(".env")).toBe(true);
    expect(f.accepts("main.rs")).toBe(false);
    expect(f.accepts("Makefile")).toBe(false);
    expect(f.accepts("main.go.bak")).toBe(false);
  });

  test("exclude globs: files and whole dirs", () => {
    const f = createFilter({ ...base, exclude: ["tmp/**", "**/*_test.go", "./vendor/", "testdata"] });
    expect(f.ignoresDir("tmp")).toBe(true);
    expect(f.ignoresDir("tmp/a")).toBe(true);
    expect(f.ignoresDir("vendor")).toBe(true);
    expect(f.ignoresDir("testdata")).toBe(true);
    expect(f.ignoresDir("x/testdata")).toBe(false); // Bun.Glob is relative to root
    expect(f.ignoresDir("tmpx")).toBe(false);
    expect(f.accepts("tmp/a.go")).toBe(false);
    expect(f.accepts("vendor/a/b.go")).toBe(false);
    expect(f.accepts("a_test.go")).toBe(false);
    expect(f.accepts("pkg/a_test.go")).toBe(false);
    expect(f.accepts("pkg/a.go")).toBe(true);
  });

  test("ignore (caller) behaves like exclude", () => {
    const f = createFilter({ ...base, ignore: ["bin/**", "server"] });
    expect(f.ignoresDir("bin")).toBe(true);
    expect(f.accepts("server")).toBe(false);
    expect(f.accepts("server.go")).toBe(true);
  });

  test("include globs restrict in addition to ext", () => {
    const f = createFilter({ ...base, includeExt: ["go"], include: ["cmd/**", "internal/**"] });
    expect(f.accepts("cmd/app/main.go")).toBe(true);
    expect(f.accepts("internal/x.go")).toBe(true);
    expect(f.accepts("scripts/x.go")).toBe(false);
    expect(f.accepts("cmd/app/README.md")).toBe(false);
    expect(f.ignoresDir("scripts")).toBe(false); // include never prunes dirs
  });

  test("gitignore: ignored dir prunes everything below, even negated files", () => {
    const s = gi({ "": "build/\n!build/keep.go\n*.log\n!important.log\n", "web": "dist\n" });
    const f = createFilter({ ...base, gitignore: s });
    expect(f.ignoresDir("build")).toBe(true);
    expect(f.ignoresDir("build/sub")).toBe(true);
    expect(f.accepts("build/keep.go")).toBe(false); // parent excluded: cannot re-include
    expect(f.accepts("a.log")).toBe(false);
    expect(f.accepts("logs/important.log")).toBe(true);
    expect(f.ignoresDir("web/dist")).toBe(true);
    expect(f.accepts("web/dist/app.js")).toBe(false);
    expect(f.ignoresDir("dist")).toBe(false);
    expect(f.accepts("web/src/app.js")).toBe(true);
  });

  test("gitignore rules added later take effect (no stale cache)", () => {
    const s = new GitignoreSet();
    const f = createFilter({ ...base, gitignore: s });
    expect(f.ignoresDir("gen")).toBe(false);
    s.set("", "gen/\n");
    expect(f.ignoresDir("gen")).toBe(true);
    expect(f.ignoresDir("gen/x")).toBe(true);
    s.set("", "");
    expect(f.ignoresDir("gen/x")).toBe(false);
  });
});
