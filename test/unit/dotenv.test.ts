import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EnvFileError, parseDotenv, readEnvFiles } from "../../src/config/dotenv.ts";
import { ConfigError, formatProblem } from "../../src/config/errors.ts";
import { loadConfig } from "../../src/config/load.ts";

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "hr-dotenv-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

function error(text: string): string {
  try {
    parseDotenv(text, ".env");
  } catch (e) {
    expect(e).toBeInstanceOf(EnvFileError);
    return (e as Error).message;
  }
  throw new Error("expected a parse error");
}

describe("dotenv syntax", () => {
  test("comments, blank lines, export, spaces around =, inline comments, empty values", () => {
    const text = ["# a comment", "", "A=1", "export B=two words  ", "  C = spaced", "D=value # comment", "E=#not-a-comment", "F=", "G=a=b", "H.i-j=dotted"].join("\n");
    expect(parseDotenv(text, ".env")).toEqual({ A: "1", B: "two words", C: "spaced", D: "value", E: "#not-a-comment", F: "", G: "a=b", "H.i-j": "dotted" });
  });

  test("quotes: single is literal, double has escapes, both may span lines; CRLF files", () => {
    const text = [
      "S='it is $HOME \\n literal'",
      'D="tab\\there \\"q\\" back\\\\slash \\$HOME"',
      'N="line1\\nline2"',
      "M='multi",
      "line'",
      'C="joined \\',
      'here" # trailing comment',
      'B=`back $(tick)`',
      "AFTER=ok",
    ].join("\r\n");
    expect(parseDotenv(text, ".env")).toEqual({
      S: "it is $HOME \\n literal",
      D: 'tab\there "q" back\\slash $HOME',
      N: "line1\nline2",
      M: "multi\nline",
      C: "joined here",
      B: "back $(tick)",
      AFTER: "ok",
    });
  });

  test("nothing is executed or expanded", () => {
    const marker = join(dir, "ran");
    const vars = parseDotenv(`X=$(touch ${marker})\nY=\`touch ${marker}\`\nZ="\${HOME}"\n`, ".env");
    expect(vars).toEqual({ X: `$(touch ${marker})`, Y: `touch ${marker}`, Z: "${HOME}" });
    expect(existsSync(marker)).toBe(false);
  });

  test("later assignments win; a BOM is ignored", () => {
    expect(parseDotenv("\uFEFFA=1\nA=2\n", ".env")).toEqual({ A: "2" });
  });

  test("errors name the file and line, say what is wrong", () => {
    expect(error("A=1\n\nnot a line\n")).toBe('.env:3: expected KEY=value, got "not a line"');
    expect(error("A=1\n1BAD=x\n")).toBe('.env:2: "1BAD" is not a variable name (letters, digits and _, not starting with a digit)');
    expect(error('A=1\nB="open\nC=2\n')).toBe(".env:2: unterminated double-quoted value for B (add the closing \")");
    expect(error("A='x' y\n")).toBe('.env:1: unexpected "y" after the closing quote of A');
    expect(error('A="multi\nline" junk\n')).toBe('.env:2: unexpected "junk" after the closing quote of A');
  });
});

describe("[run] env_file", () => {
  const load = () => loadConfig({ cwd: dir, env: {} });
  const problems = () => {
    try {
      load();
    } catch (e) {
      if (e instanceof ConfigError) return e.problems.map(formatProblem);
      throw e;
    }
    throw new Error("expected the config to be rejected");
  };

  test("a string or a list, kept in order; files read in order, later wins", () => {
    writeFileSync(join(dir, "hr.toml"), '[run]\ncmd = "true"\nenv_file = [".env", ".env.local"]\n');
    writeFileSync(join(dir, ".env"), "A=1\nB=1\n");
    writeFileSync(join(dir, ".env.local"), "B=2\n");
    expect(load().config.run.env_file).toEqual([".env", ".env.local"]);
    expect(readEnvFiles([".env", ".env.local"], dir)).toEqual({ A: "1", B: "2" });
    writeFileSync(join(dir, "hr.toml"), '[run]\ncmd = "true"\nenv_file = ".env"\n');
    expect(load().config.run.env_file).toEqual([".env"]);
  });

  test("loading the config reports a bad or missing env file with file:line; HR_* in it never configures hr", () => {
    writeFileSync(join(dir, "hr.toml"), '[run]\ncmd = "true"\nenv_file = ".env"\n');
    writeFileSync(join(dir, ".env"), "HR_SERVE_WORKERS=7\nOK=1\nB='open\n");
    expect(problems()).toEqual([".env:3: unterminated single-quoted value for B (add the closing ') (run.env_file)"]);
    writeFileSync(join(dir, ".env"), "HR_SERVE_WORKERS=7\n");
    expect(load().config.serve.workers).toBe(1);
    rmSync(join(dir, ".env"));
    expect(problems()).toEqual([".env: no such file (create it, or remove it from [run] env_file) (run.env_file)"]);
    writeFileSync(join(dir, "hr.toml"), '[run]\ncmd = "true"\nenv_file = 3\n');
    expect(problems()[0]).toContain('run.env_file: expected a dotenv file like ".env", or a list like [".env", ".env.local"], got 3');
  });
});
