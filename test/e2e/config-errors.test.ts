/**
 * Bad config and CLI input end in "exit 1 with a message", never a stack trace and
 * never a hang (issue 13): a seeded corpus of a few hundred mutated hr.toml files
 * run in-process through the CLI's own entry (dispatch.ts main, one process, so the
 * corpus costs seconds), plus the file-system cases through the real binary:
 * hr.toml unreadable, a directory, a FIFO; `-o` into a directory or a missing one;
 * a 100k-key file; values that would exhaust the machine; env keys with "=".
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary, runHr } from "../helpers/hr.ts";
import { main, unexpected } from "../../src/cli/dispatch.ts";

setDefaultTimeout(60_000);
let dir: string;
beforeAll(() => {
  ensureBinary();
  dir = mkdtempSync(join(tmpdir(), "hr-cfgerr-"));
  chmodSync(dir, 0o755); // the "unreadable" case runs hr as nobody, who must reach the file
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const BASE = `[build]
cmd = "go build -o ./tmp/app ."
env = { CGO_ENABLED = "0" }

[run]
cmd = ["./tmp/app", "--flag"]
env = { GIN_MODE = "release", PORT = "8080" }
stop_signal = "SIGTERM"
stop_timeout = "5s"

[watch]
paths = ["."]
include_ext = ["go", "html"]
exclude = ["tmp/**"]
gitignore = true
debounce = "50ms"

[[listen]]
name = "http"
address = "127.0.0.1:8084"
backlog = 1024

[dev]
strategy = "fd"

[serve]
strategy = "fd"
workers = 2
ready = { type = "notify", timeout = "30s" }
drain_timeout = "30s"
restart_backoff = "500ms"

[log]
format = "text"
timestamps = true
`;

/** mulberry32: a small seeded PRNG, so a failing case can be reproduced from its number. */
function rng(seed: number): () => number {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const WEIRD_VALUES = [
  "1e9", "-1", "0", "1e400", "nan", "inf", "-inf", "0x7fffffff", "99999999999999999999", "3.5",
  '"9999999h"', '"1e9s"', '"25h"', '"-5s"', '"5 s"', `"${"9".repeat(400)}ms"`, '""', "[]", "{}", "[[]]", "[1, \"a\"]",
  "true", "1979-05-27T07:32:00Z", '"\\u0000"', `"${"x".repeat(70_000)}"`, "{ a = { b = { c = 1 } } }", `${"[".repeat(3000)}${"]".repeat(3000)}`,
  '"SIGFOO"', '"unix:"', '"[::1]:99999"', '"*:-1"', "'''\nmulti\n'''", '"""unterminated',
];
const SPECIAL = ["[", "]", "{", "}", "=", '"', "'", "\n", "#", ".", ",", "\\", "\0", "\u{1F600}", "\uFFFF", "\t", "[[", "]]", "\r"];
const ENV_KEYS = ['"A=B"', '""', '"PATH=/evil"', '"NUL\\u0000KEY"', '"with space"'];

function mutate(text: string, r: () => number): string {
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)]!;
  const at = Math.floor(r() * text.length);
  const lines = text.split("\n");
  const li = Math.floor(r() * lines.length);
  switch (Math.floor(r() * 7)) {
    case 0: // truncate
      return text.slice(0, at);
    case 1: // delete a run of characters
      return text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 8));
    case 2: // insert TOML-significant or odd characters
      return text.slice(0, at) + pick(SPECIAL) + text.slice(at);
    case 3: // replace a value with a weird one
      if (lines[li]!.includes("=")) lines[li] = `${lines[li]!.split("=")[0]}= ${pick(WEIRD_VALUES)}`;
      return lines.join("\n");
    case 4: // duplicate a line (duplicate key or table)
      lines.splice(li, 0, lines[li]!);
      return lines.join("\n");
    case 5: // an environment key that execve would misread
      return text.replace("GIN_MODE", pick(ENV_KEYS));
    default: // random bytes
      return text.slice(0, at) + String.fromCharCode(...Array.from({ length: 1 + Math.floor(r() * 6) }, () => Math.floor(r() * 256))) + text.slice(at);
  }
}

/** Runs `hr args` in this process; returns the exit code and what it printed. */
async function inProcess(args: string[]): Promise<{ code: number; stdout: string; stderr: string; ms: number }> {
  let stdout = "";
  let stderr = "";
  const [ow, ew] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((s: string | Uint8Array) => ((stdout += String(s)), true)) as typeof process.stdout.write;
  process.stderr.write = ((s: string | Uint8Array) => ((stderr += String(s)), true)) as typeof process.stderr.write;
  const t0 = performance.now();
  try {
    const code = await main(args, { PATH: process.env.PATH, NO_COLOR: "1" });
    return { code, stdout, stderr, ms: performance.now() - t0 };
  } finally {
    process.stdout.write = ow;
    process.stderr.write = ew;
  }
}

const STACK = /^\s+at .+[:(]\d+/m;

describe("a fuzzed hr.toml corpus", () => {
  test("400 mutated configs: each is ok (exit 0) or exit 1 with a located message, within 5 s, never a stack trace", async () => {
    const file = join(dir, "fuzz.toml");
    let valid = 0;
    let slowest = 0;
    const bad: string[] = [];
    for (let seed = 1; seed <= 400; seed++) {
      const r = rng(seed);
      let text = BASE;
      const rounds = 1 + Math.floor(r() * 3);
      for (let i = 0; i < rounds; i++) text = mutate(text, r);
      writeFileSync(file, text);
      const res = await inProcess(["check", "-c", file]);
      slowest = Math.max(slowest, res.ms);
      if (res.code === 0 && res.stdout.startsWith("ok")) valid++;
      else if (res.code !== 1 || !res.stderr.startsWith("hr: ") || !res.stderr.includes("fuzz.toml") || STACK.test(res.stderr) || res.ms > 5000)
        bad.push(`seed ${seed}: exit ${res.code} in ${Math.round(res.ms)} ms: ${res.stderr.slice(0, 300)}`);
    }
    expect(bad).toEqual([]);
    expect(valid).toBeLessThan(400); // the mutations do break things
    console.log(`fuzz: 400 cases, ${valid} still valid, ${400 - valid} rejected with a message; slowest ${Math.round(slowest)} ms`);
  });

  test("100k keys are checked in linear time; 40k bad keys give 50 problems and a summary", async () => {
    const big = join(dir, "big.toml");
    writeFileSync(big, `[run]\ncmd = "x"\n[run.env]\n${Array.from({ length: 100_000 }, (_, i) => `K${i} = "v"`).join("\n")}\n`);
    const ok = await inProcess(["check", "-c", big]);
    expect(ok.code).toBe(0);
    const unknown = join(dir, "unknown.toml");
    writeFileSync(unknown, `[run]\ncmd = "x"\n${Array.from({ length: 40_000 }, (_, i) => `k${i} = "v"`).join("\n")}\n`);
    const bad = await inProcess(["check", "-c", unknown]);
    expect(bad.code).toBe(1);
    expect(bad.stderr.split("\n").filter((l) => l.includes("unknown key"))).toHaveLength(50);
    expect(bad.stderr).toContain("… and 39950 more problems");
    expect(bad.stderr).toMatch(/unknown\.toml:3: run\.k0: unknown key/);
    // Before: quadratic (40k keys 1.9 s, 100k keys 15 s on a quiet machine).
    console.log(`100k env keys: ${Math.round(ok.ms)} ms; 40k unknown keys: ${Math.round(bad.ms)} ms`);
    expect(ok.ms + bad.ms).toBeLessThan(15_000);
  });

  test("limits: workers, durations and backlog that would exhaust the machine are refused by hr check", async () => {
    const f = join(dir, "limits.toml");
    writeFileSync(f, `[run]\ncmd = "x"\nenv = { "A=B" = "1", "PATH=/evil" = "x" }\n[[listen]]\nname = "h"\naddress = "127.0.0.1:1"\nbacklog = 1e12\n[serve]\nworkers = 1e9\ndrain_timeout = "9999999h"\nproxy_threads = 100000\n`);
    const res = await inProcess(["check", "-c", f]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("limits.toml:9: serve.workers: expected a whole number from 1 to 1024, got 1000000000");
    expect(res.stderr).toContain('serve.drain_timeout: expected a duration of at most 24h, got "9999999h"');
    expect(res.stderr).toContain("listen[0].backlog: expected a whole number from 1 to 65535");
    expect(res.stderr).toContain("serve.proxy_threads: expected a whole number from 0 to 64, got 100000");
    expect(res.stderr).toContain('run.env.A=B: "A=B" is not a usable environment variable name');
    expect(res.stderr).toContain('"PATH=/evil" is not a usable environment variable name');
  });
});

describe("file-system errors through the real binary: a message, exit 1", () => {
  const expectMessage = (r: { code: number | null; stderr: string }, re: RegExp) => {
    expect(r.stderr).toMatch(re);
    expect(r.stderr).not.toMatch(STACK);
    expect(r.code).toBe(1);
  };

  test("hr.toml is a directory, a FIFO, unreadable", () => {
    const d = join(dir, "asdir");
    mkdirSync(join(d, "hr.toml"), { recursive: true });
    expectMessage(runHr(["check"], { cwd: d }), /^hr: invalid configuration:\n {2}hr\.toml: is a directory, not a file/);
    const f = join(dir, "fifo");
    mkdirSync(f);
    expect(spawnSync("mkfifo", [join(f, "hr.toml")]).status).toBe(0);
    expectMessage(runHr(["check"], { cwd: f, timeoutMs: 5000 }), /hr\.toml: is not a regular file \(a FIFO\)/);
    const u = join(dir, "unreadable");
    mkdirSync(u, { mode: 0o755 });
    writeFileSync(join(u, "hr.toml"), `[run]\ncmd = "x"\n`, { mode: 0o000 });
    chmodSync(join(u, "hr.toml"), 0o000);
    // root reads anything: drop to nobody for this one.
    const asNobody = process.getuid?.() === 0 ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"] : [];
    const r = spawnSync(asNobody[0] ?? ensureBinary(), [...asNobody.slice(1), ...(asNobody.length ? [ensureBinary()] : []), "check"], { cwd: u, encoding: "utf8", timeout: 10_000, env: { ...process.env, NO_COLOR: "1" } });
    expectMessage({ code: r.status, stderr: r.stderr }, /hr\.toml: cannot be read: permission denied; make it readable/);
  });

  test("`hr schema -o` and `hr shim bun -o` into a directory or a missing one", () => {
    expectMessage(runHr(["schema", "-o", dir]), new RegExp(`^hr: cannot write ${dir}: it is a directory\\n$`));
    expectMessage(runHr(["shim", "bun", "-o", join(dir, "no", "such", "shim.js")]), /^hr: cannot write .*shim\.js: its directory does not exist\n$/);
    const ok = runHr(["schema", "-o", join(dir, "schema.json")]);
    expect(ok.code).toBe(0);
  });
});

test("a stray file-system error from any command is one line naming the file and the reason", () => {
  const blocker = join(dir, "a-file");
  writeFileSync(blocker, "");
  let caught: unknown;
  try {
    writeFileSync(join(blocker, "hr.toml"), "x"); // ENOTDIR, as a real fs call raises it
  } catch (error) {
    caught = error;
  }
  let printed = "";
  const ew = process.stderr.write;
  process.stderr.write = ((s: string) => ((printed += s), true)) as typeof process.stderr.write;
  try {
    expect(unexpected(caught, {})).toBe(1);
  } finally {
    process.stderr.write = ew;
  }
  expect(printed).toBe(`hr: cannot write ${join(blocker, "hr.toml")}: a part of the path is not a directory\n`);
});
