/**
 * No hr.toml: `hr dev [--listen ADDR] -- CMD` and `hr serve --listen ADDR -- CMD`
 * (watchexec --socket / systemfd style), HR_* variables for nested keys, and
 * PORT semantics: hr never hands an app a PORT it holds itself unless the app is
 * meant to adopt that very socket (it got it at fd 3 with LISTEN_FDS).
 *
 * The app reports what it was given (PORT, LISTEN_FDS), whether PORT was free to
 * bind, and which port fd 3 is; it serves on fd 3 when given one, else on PORT.
 */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { body, DevHarness, freePort, waitForBody } from "../helpers/dev.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";

const APP = `const http = require("node:http");
const net = require("node:net");
const fs = require("node:fs");
const env = process.env;
const report = { PORT: env.PORT ?? null, LISTEN_FDS: env.LISTEN_FDS ?? null, portFree: null, fd3Port: null };
const server = http.createServer((req, res) => res.end(JSON.stringify(report)));
const done = () => { fs.writeFileSync(env.REPORT, JSON.stringify(report)); };
const probe = (port) => new Promise((resolve) => {
  const s = net.createServer();
  s.once("error", (e) => resolve(e.code));
  s.listen(port, "127.0.0.1", () => s.close(() => resolve("free")));
});
(async () => {
  if (env.PORT) report.portFree = await probe(Number(env.PORT));
  if (env.LISTEN_FDS) server.listen({ fd: 3 }, () => { report.fd3Port = server.address().port; done(); });
  else server.listen(Number(env.PORT ?? 0), "127.0.0.1", done);
})();
process.on("SIGTERM", () => process.exit(0));
`;

const dev = new DevHarness();
const dirs: string[] = [];
afterEach(async () => {
  await dev.cleanup();
  await cleanupServes();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface Report {
  PORT: string | null;
  LISTEN_FDS: string | null;
  portFree: string | null;
  fd3Port: number | null;
}

/** The PORT rule: a PORT equal to a port hr holds comes only with that socket at fd 3. */
function expectPortRule(r: Report, held: number | null) {
  if (r.PORT !== null && held !== null && Number(r.PORT) === held) {
    expect(r.LISTEN_FDS).toBe("1");
    expect(r.fd3Port).toBe(held);
  } else if (r.PORT !== null) {
    expect(r.portFree).toBe("free");
  }
}

async function readReport(file: string, timeoutMs = 15_000): Promise<Report> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      return JSON.parse(readFileSync(file, "utf8")) as Report;
    } catch {
      if (Date.now() > until) throw new Error(`no report in ${file}`);
      await Bun.sleep(20);
    }
  }
}

function setup(): { dir: string; report: string } {
  const dir = mkdtempSync(join(tmpdir(), "hr-noconfig-"));
  const out = mkdtempSync(join(tmpdir(), "hr-noconfig-out-")); // outside the watched tree
  dirs.push(dir, out);
  writeFileSync(join(dir, "app.cjs"), APP);
  return { dir, report: join(out, "report.json") };
}

describe("hr dev without hr.toml", () => {
  test("--listen ADDR -- CMD: hr holds the socket, the app adopts it at fd 3; PORT is that socket", async () => {
    const { dir, report } = setup();
    const port = freePort();
    const run = dev.start(dir, ["--listen", `127.0.0.1:${port}`, "--", "node", "app.cjs"], { REPORT: report });
    const r = await readReport(report);
    expect(r).toMatchObject({ PORT: String(port), LISTEN_FDS: "1", fd3Port: port, portFree: "EADDRINUSE" });
    expectPortRule(r, port);
    expect(JSON.parse(await body(`http://127.0.0.1:${port}/`))).toMatchObject({ fd3Port: port });
    expect(run.output).not.toContain("hr.toml");
  }, 30_000);

  test("--listen with --strategy proxy: PORT is a private port hr does not hold", async () => {
    const { dir, report } = setup();
    const port = freePort();
    dev.start(dir, ["--listen", `:${port}`, "--strategy", "proxy", "--", "node", "app.cjs"], { REPORT: report });
    const r = await readReport(report);
    expect(r.LISTEN_FDS).toBeNull();
    expect(Number(r.PORT)).not.toBe(port);
    expectPortRule(r, port);
    expect(JSON.parse(await body(`http://127.0.0.1:${port}/`))).toMatchObject({ PORT: r.PORT });
  }, 30_000);

  test("-- CMD alone: no socket, no PORT; HR_DEV_STRATEGY and HR_LISTEN set what flags would", async () => {
    const { dir, report } = setup();
    dev.start(dir, ["--", "node", "app.cjs"], { REPORT: report });
    expect(await readReport(report)).toMatchObject({ PORT: null, LISTEN_FDS: null });
    rmSync(report);
    const port = freePort();
    dev.start(dir, ["--", "node", "app.cjs"], { REPORT: report, HR_LISTEN: `127.0.0.1:${port}`, HR_DEV_STRATEGY: "proxy" });
    const r = await readReport(report);
    expect(r.LISTEN_FDS).toBeNull();
    expectPortRule(r, port);
    expect(JSON.parse(await body(`http://127.0.0.1:${port}/`))).toMatchObject({ PORT: r.PORT });
  }, 30_000);
});

describe("hr serve without hr.toml", () => {
  // The app sends no ready signal: HR_SERVE_READY_TYPE (a nested key) picks a delay.
  const env = (report: string) => ({ REPORT: report, HR_SERVE_READY_TYPE: "delay", HR_SERVE_READY_DELAY: "100ms" });

  test("--listen ADDR -- CMD, fd: the worker adopts hr's socket; PORT is that socket", async () => {
    const { dir, report } = setup();
    const port = freePort();
    const h = await startServe({ toml: null, files: { "app.cjs": APP }, env: env(report), args: ["--listen", `127.0.0.1:${port}`, "--", "node", "app.cjs"] });
    const r = await readReport(report);
    expect(r).toMatchObject({ PORT: String(port), LISTEN_FDS: "1", fd3Port: port });
    expectPortRule(r, port);
    expect(JSON.parse(await body(`http://127.0.0.1:${port}/`))).toMatchObject({ fd3Port: port });
    expect(await h.stop()).toBe(0);
    expect(h.logs()).not.toContain("hr.toml");
    void dir;
  }, 30_000);

  test("proxy and reuseport: PORT is never a socket hr holds", async () => {
    for (const strategy of ["proxy", "reuseport"]) {
      const { report } = setup();
      const port = freePort();
      const h = await startServe({ toml: null, files: { "app.cjs": APP }, env: env(report), args: ["--listen", `127.0.0.1:${port}`, "--strategy", strategy, "--", "node", "app.cjs"] });
      const r = await readReport(report);
      expect(r.LISTEN_FDS).toBeNull();
      expectPortRule(r, strategy === "reuseport" ? null : port); // reuseport: hr checked the port is free and holds nothing
      if (strategy === "reuseport") expect(r.PORT).toBe(String(port)); // hr holds nothing; the worker binds it
      else expect(Number(r.PORT)).not.toBe(port);
      expect(JSON.parse(await body(`http://127.0.0.1:${port}/`))).toMatchObject({ PORT: r.PORT });
      expect(await h.stop()).toBe(0);
    }
  }, 40_000);
});

describe("--capture without hr.toml: an app with a hard-coded port runs unmodified", () => {
  const hardCoded = (port: number, v: string) => `require("node:http").createServer((req, res) => res.end("${v} " + (process.env.PORT ?? "-"))).listen(${port}, "0.0.0.0");\nprocess.on("SIGTERM", () => process.exit(0));\n`;

  test("hr dev --listen ADDR --capture -- CMD: the app's listen(PORT) gets hr's held socket; an edit restarts it", async () => {
    const { dir } = setup();
    const port = freePort();
    writeFileSync(join(dir, "app.cjs"), hardCoded(port, "v1"));
    const run = dev.start(dir, ["--listen", `127.0.0.1:${port}`, "--capture", "--", "node", "app.cjs"]);
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /v1/)).toBe(`v1 ${port}`);
    writeFileSync(join(dir, "app.cjs"), hardCoded(port, "v2"));
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /v2/)).toBe(`v2 ${port}`);
    expect(run.output).toContain("capturing the app's bind");
  }, 30_000);

  test("hr serve --listen ADDR --capture --strategy proxy -- CMD: ready when the app listens; a reload starts a new one", async () => {
    const port = freePort();
    const h = await startServe({ toml: null, files: { "app.cjs": hardCoded(port, "v1") }, args: ["--listen", `127.0.0.1:${port}`, "--capture", "--strategy", "proxy", "--", "node", "app.cjs"] });
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /v1/)).toStartWith("v1");
    writeFileSync(join(h.dir, "app.cjs"), hardCoded(port, "v2"));
    expect((await h.reload()).code).toBe(0);
    expect(await waitForBody(`http://127.0.0.1:${port}/`, /v2/)).toStartWith("v2");
    expect(await h.stop()).toBe(0);
  }, 30_000);
});
