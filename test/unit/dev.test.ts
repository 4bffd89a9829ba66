import { describe, expect, test } from "bun:test";
import { backoffDelay, DEFAULT_BASE_MS } from "../../src/process/backoff.ts";
import { validate } from "../../src/config/load.ts";
import { describeChanges, parseKeyLine } from "../../src/dev/terminal.ts";
import { changedPathsEnv } from "../../src/dev/pipeline.ts";
import { buildSteps } from "../../src/process/build.ts";
import { injectable, ScriptInjector } from "../../src/proxy/livereload.ts";

describe("dev helpers", () => {
  test("describeChanges", () => {
    expect(describeChanges([])).toBe("no files changed");
    expect(describeChanges(["a.go"])).toBe("1 file changed (a.go)");
    expect(describeChanges(["a", "b", "c", "d", "e"])).toBe("5 files changed (a, b, c, … +2)");
  });
  test("parseKeyLine", () => {
    expect(parseKeyLine("r")).toBe("restart");
    expect(parseKeyLine(" R \r")).toBe("restart");
    expect(parseKeyLine("q")).toBe("quit");
    expect(parseKeyLine("x")).toBeNull();
  });
  test("backoffMs doubles from 500 ms up to 30 s", () => {
    expect([1, 2, 3, 4].map((n) => backoffDelay(DEFAULT_BASE_MS, n))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffDelay(DEFAULT_BASE_MS, 20)).toBe(30_000);
  });
  test("strategy default: fd with [[listen]], else none", () => {
    const strategy = (input: Record<string, unknown>) => {
      const v = validate({ run: { cmd: "x" }, ...input });
      if (!v.ok) throw new Error(JSON.stringify(v.problems));
      return v.config.dev.strategy;
    };
    const listen = [{ name: "http", address: "127.0.0.1:0" }];
    expect(strategy({ listen })).toBe("fd");
    expect(strategy({})).toBe("none");
    expect(strategy({ listen, dev: { strategy: "proxy" } })).toBe("proxy");
  });
  test("HR_CHANGED_PATHS is newline-separated and capped", () => {
    expect(changedPathsEnv(["a", "b/c"])).toBe("a\nb/c");
    expect(changedPathsEnv(["aaaa", "bbbb", "cccc"], 10)).toBe("aaaa\nbbbb");
  });
  test("build steps run pre, cmd, post in order", () => {
    expect(buildSteps({ post: "c", cmd: ["b"], pre: "a" }).map((s) => s.name)).toEqual(["pre", "cmd", "post"]);
    expect(buildSteps({})).toEqual([]);
  });
});

describe("live reload injection", () => {
  test("streamed: before the last </body> even when split across reads; size grows by the script only", () => {
    const inj = new ScriptInjector("<s>");
    const parts = ["<body>a</bo", "dy></B", "ODY>tail"].map((p) => inj.push(Buffer.from(p)));
    const out = Buffer.concat([...parts, inj.end()]).toString();
    expect(out).toBe("<body>a</body><s></BODY>tail");
    expect(out.length).toBe("<body>a</body></BODY>tail".length + inj.addsBytes);
    const none = new ScriptInjector("<s>");
    expect(Buffer.concat([none.push(Buffer.from("<p>x")), none.end()]).toString()).toBe("<p>x<s>");
  });
  test("before the last </body>, any case; appended without one", () => {
    const whole = (html: string) => {
      const inj = new ScriptInjector("<s>");
      return Buffer.concat([inj.push(Buffer.from(html)), inj.end()]).toString();
    };
    expect(whole("<body>a</body></BODY>")).toBe("<body>a</body><s></BODY>");
    expect(whole("<p>x")).toBe("<p>x<s>");
  });
  test("only uncompressed text/html with a body", () => {
    expect(injectable({ "content-type": "text/html; charset=utf-8" }, "GET", 200)).toBe(true);
    expect(injectable({ "content-type": "text/html", "content-encoding": "gzip" }, "GET", 200)).toBe(false);
    expect(injectable({ "content-type": "text/plain" }, "GET", 200)).toBe(false);
    expect(injectable({ "content-type": "text/html" }, "HEAD", 200)).toBe(false);
    expect(injectable({ "content-type": "text/html" }, "GET", 304)).toBe(false);
  });
});
