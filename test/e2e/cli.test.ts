import { afterEach, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, runHr } from "../helpers/hr.ts";
import pkg from "../../package.json" with { type: "json" };

let dir: string;
beforeAll(() => void ensureBinary());
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), "hr-cli-"))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const good = `[build]\ncmd = "true"\n[run]\ncmd = ["./app"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:8080"\n`;

describe("hr binary", () => {
  test("--version prints version and commit", () => {
    const r = runHr(["--version"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^hr ${pkg.version.replace(/\./g, "\\.")} \\([0-9a-f]{7,}(-dirty)?, bun `));
  });

  test("--help lists every command; <command> --help shows its flags", () => {
    const r = runHr(["--help"]);
    expect(r.code).toBe(0);
    for (const name of ["init", "dev", "serve", "reload", "status", "check", "schema"]) expect(r.stdout).toContain(`  ${name} `);
    const serve = runHr(["serve", "--help"]);
    expect(serve.code).toBe(0);
    expect(serve.stdout).toContain("--drain-timeout");
    expect(serve.stdout).toContain("--config FILE");
  });

  test("an unknown flag is a one-line error plus usage, exit 2", () => {
    const r = runHr(["dev", "--bogus"]);
    expect(r.code).toBe(2);
    expect(r.stderr.split("\n")[0]).toBe("hr: Unknown option '--bogus' (hr dev)");
    expect(r.stderr).toContain("Usage: hr dev");
  });

  test("an unknown command is an error plus usage, exit 2", () => {
    const r = runHr(["deploy"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toStartWith(`hr: unknown command "deploy"`);
    expect(r.stderr).toContain("Commands:");
  });

  test("a bad flag value is a usage error", () => {
    const r = runHr(["serve", "--workers", "two", "--cwd", dir]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--workers expects a whole number, got "two"`);
    expect(runHr(["check", "--log-format", "xml"]).code).toBe(2);
  });
});

describe("hr check", () => {
  test("a good config prints ok, exit 0", () => {
    writeFileSync(join(dir, "hr.toml"), good);
    const r = runHr(["check"], { cwd: dir });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toStartWith("ok");
  });

  test("-c and --cwd choose the file", () => {
    writeFileSync(join(dir, "other.toml"), good);
    expect(runHr(["check", "--cwd", dir, "-c", "other.toml"]).code).toBe(0);
    const missing = runHr(["check", "--cwd", dir, "-c", "nope.toml"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("nope.toml: no such file");
  });

  const bad: [string, string, string][] = [
    ["TOML syntax", `[run]\ncmd = "x"\nworkers = \n`, "hr.toml:3:"],
    ["wrong type", `[run]\ncmd = "x"\n[serve]\ndrain_timeout = 30\n`, `hr.toml:4: serve.drain_timeout: expected a duration like "30s", got 30`],
    ["unknown key", `[run]\ncmd = "x"\n[serve]\nworkerz = 2\n`, `serve.workerz: unknown key in [serve]; did you mean "workers"?`],
    ["bad enum", `[run]\ncmd = "x"\n[dev]\nstrategy = "socket"\n`, `dev.strategy: expected one of "fd", "proxy", "none", got "socket"`],
    ["missing run", `[watch]\npaths = ["."]\n`, `run: missing`],
  ];
  for (const [kind, text, expected] of bad) {
    test(`${kind} → problem listed, exit 1`, () => {
      writeFileSync(join(dir, "hr.toml"), text);
      const r = runHr(["check"], { cwd: dir });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe("");
      expect(r.stderr).toContain(expected);
    });
  }

  test("environment overrides are checked too", () => {
    writeFileSync(join(dir, "hr.toml"), good);
    const r = runHr(["check"], { cwd: dir, env: { HR_SERVE_WORKERS: "0" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("serve.workers: expected a whole number from 1 to 1024, got 0");
  });
});

describe("hr schema", () => {
  test("emits a JSON Schema (draft 2020-12) describing every section, closed to unknown keys", () => {
    const r = runHr(["schema"]);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout);
    expect(schema.$schema).toContain("json-schema.org");
    expect(schema.type).toBe("object");
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toEqual(["build", "run", "watch", "listen", "dev", "serve", "log"]);
    expect(schema.properties.listen.items.required).toEqual(["name", "address"]);
  });

  test("-o writes a file", () => {
    const out = join(dir, "hr.schema.json");
    expect(runHr(["schema", "-o", out]).code).toBe(0);
    expect(JSON.parse(require("node:fs").readFileSync(out, "utf8")).title).toBe("hr.toml");
  });
});

describe("hr shim", () => {
  test("prints the embedded Bun.serve shim, byte for byte the shipped source", () => {
    const r = runHr(["shim", "bun"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(require("node:fs").readFileSync(join(import.meta.dir, "../../src/shims/bun-serve-shim.js"), "utf8"));
  });

  test("anything but bun is a usage error", () => {
    const r = runHr(["shim", "node"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`got "node" (only Bun needs a shim)`);
  });
});
