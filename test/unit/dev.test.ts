import { afterEach, describe, expect, test } from "bun:test";
import net from "node:net";
import { DevProxy } from "../../src/dev/proxy.ts";
import { freePort } from "../../src/sockets/free-port.ts";
import { backoffMs, resolveStrategy } from "../../src/dev/state.ts";
import { describeChanges, parseKeyLine } from "../../src/dev/terminal.ts";
import { changedPathsEnv } from "../../src/dev/pipeline.ts";
import { buildSteps } from "../../src/process/build.ts";
import { injectable, injectScript } from "../../src/dev/livereload.ts";
import { openSockets, type SocketSet } from "../../src/sockets/handoff.ts";
import { Logger } from "../../src/log/logger.ts";

const log = new Logger({ format: "text", color: false, level: "error", write: () => {} });
const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

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
    expect([1, 2, 3, 4].map((n) => backoffMs(n))).toEqual([500, 1000, 2000, 4000]);
    expect(backoffMs(20)).toBe(30_000);
  });
  test("strategy default: fd with [[listen]], else none", () => {
    expect(resolveStrategy(undefined, 1)).toBe("fd");
    expect(resolveStrategy(undefined, 0)).toBe("none");
    expect(resolveStrategy("proxy", 1)).toBe("proxy");
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

/** Tiny upstream: answers each chunk with "echo:<chunk>", optional behaviour per connection. */
function upstream(port: number, onConn?: (s: net.Socket) => boolean): Promise<net.Server> {
  const server = net.createServer((s) => {
    if (onConn && !onConn(s)) return;
    s.on("data", (d) => s.write(`echo:${d}`));
    s.on("error", () => {});
  });
  cleanups.push(() => server.close());
  return new Promise((r) => server.listen(port, "127.0.0.1", () => r(server)));
}

async function startProxy(waitMs = 5000): Promise<{ proxy: DevProxy; port: number }> {
  const sockets: SocketSet = openSockets([{ name: "http", address: "127.0.0.1:0", backlog: 128 }], "/tmp", {});
  const proxy = new DevProxy({ fds: sockets.fds, log, waitMs });
  await proxy.start();
  cleanups.push(() => {
    proxy.close();
    sockets.close();
  });
  return { proxy, port: sockets.listeners[0]!.port! };
}

/** Connects, sends msg, resolves with everything received until close or `until` matches. */
function roundtrip(port: number, msg: string, until = /echo:/): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: "127.0.0.1", port });
    let got = "";
    s.on("connect", () => s.write(msg));
    s.on("data", (d) => {
      got += d;
      if (until.test(got)) {
        s.destroy();
        resolve(got);
      }
    });
    s.on("error", (e) => (got ? resolve(got) : reject(e)));
    s.on("close", () => resolve(got));
  });
}

describe("live reload injection", () => {
  test("before the last </body>, any case; appended without one", () => {
    expect(injectScript("<body>a</body></BODY>", "<s>")).toBe("<body>a</body><s></BODY>");
    expect(injectScript("<p>x", "<s>")).toBe("<p>x<s>");
  });
  test("only uncompressed text/html with a body", () => {
    expect(injectable({ "content-type": "text/html; charset=utf-8" }, "GET", 200)).toBe(true);
    expect(injectable({ "content-type": "text/html", "content-encoding": "gzip" }, "GET", 200)).toBe(false);
    expect(injectable({ "content-type": "text/plain" }, "GET", 200)).toBe(false);
    expect(injectable({ "content-type": "text/html" }, "HEAD", 200)).toBe(false);
    expect(injectable({ "content-type": "text/html" }, "GET", 304)).toBe(false);
  });
});

describe("DevProxy", () => {
  test("setDown: waiting and new connections get 502 with the reason; setTarget ends it", async () => {
    const { proxy, port } = await startProxy();
    const waiting = roundtrip(port, "GET / HTTP/1.1\r\n\r\n", /crashed/);
    await Bun.sleep(100);
    proxy.setDown("app crashed\n");
    expect(await waiting).toMatch(/^HTTP\/1\.1 502 Bad Gateway\r\n[\s\S]*\r\n\r\napp crashed\n$/);
    expect(await roundtrip(port, "GET / HTTP/1.1\r\n\r\n", /crashed/)).toContain("502 Bad Gateway");
    const up = freePort();
    await upstream(up);
    proxy.setTarget(up);
    expect(await roundtrip(port, "hi")).toBe("echo:hi");
  });

  test("forwards bytes to the target", async () => {
    const { proxy, port } = await startProxy();
    const up = freePort();
    await upstream(up);
    proxy.setTarget(up);
    expect(await roundtrip(port, "hi")).toBe("echo:hi");
  });

  test("holds connections while there is no target, then forwards", async () => {
    const { proxy, port } = await startProxy();
    const pending = roundtrip(port, "wait");
    await Bun.sleep(200);
    const up = freePort();
    await upstream(up);
    proxy.setTarget(up);
    expect(await pending).toBe("echo:wait");
  });

  test("retries refused connects until the app binds its port", async () => {
    const { proxy, port } = await startProxy();
    const up = freePort();
    proxy.setTarget(up); // nothing listens yet
    const pending = roundtrip(port, "late");
    await Bun.sleep(150);
    await upstream(up);
    expect(await pending).toBe("echo:late");
  });

  test("replays unanswered bytes when the app closes on them", async () => {
    const { proxy, port } = await startProxy();
    const oldPort = freePort();
    // The "old app" closes every connection without answering.
    await upstream(oldPort, (s) => {
      s.once("data", () => s.destroy());
      return false;
    });
    proxy.setTarget(oldPort);
    const pending = roundtrip(port, "req");
    await Bun.sleep(100);
    const newPort = freePort();
    await upstream(newPort);
    proxy.setTarget(newPort);
    expect(await pending).toBe("echo:req");
    expect(proxy.replayed).toBeGreaterThanOrEqual(1);
  });

  test("gives up after waitMs", async () => {
    const { proxy, port } = await startProxy(200);
    expect(await roundtrip(port, "x").catch(() => "")).toBe("");
    expect(proxy.timedOut).toBe(1);
  });
});
