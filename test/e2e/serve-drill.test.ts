/**
 * Zero-downtime drills: a non-retrying load client (50 connections, half
 * keep-alive, half new per request) runs against `hr serve` (fd strategy) while
 * it reloads N times. Pass = 0 failed requests, and after each reload a fresh
 * connection reaches the new generation (gen=N in the body), and every
 * generation shows up in the load's responses.
 *
 * Apps: examples/bun-net, node-http, python and go-gin (skipped, visibly, without
 * `go`), each with 20 reloads × 1 worker and 20 reloads × 2 workers; plus node-http
 * with ipc readiness.
 * Numbers are printed as "[drill] …" lines.
 */
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { reloadDrill } from "../helpers/drill.ts";
import { cleanupServes, EXAMPLES, startServe } from "../helpers/serve.ts";

beforeAll(() => void ensureBinary());
afterEach(async () => {
  expect(await cleanupServes()).toEqual([]);
});

const toml = (cmd: string[], workers: number, env: Record<string, string> = {}, ready = "notify") => `[run]
cmd = ${JSON.stringify(cmd)}
env = { ${Object.entries(env).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join(", ")} }

[[listen]]
name = "http"
address = "127.0.0.1:0"

[serve]
workers = ${workers}
drain_timeout = "15s"
ready = { type = "${ready}", timeout = "20s" }
`;

async function drill(name: string, cmd: string[], workers: number, reloads: number, env: Record<string, string> = {}, ready = "notify") {
  const h = await startServe({ toml: toml(cmd, workers, env, ready) });
  await reloadDrill(h, { label: `[drill] ${name} workers=${workers} ready=${ready}`, reloads, loadMs: 170_000, fresh: "soon" });
}

const goBin = spawnSync("sh", ["-c", "command -v go"]).status === 0;
const goSrc = existsSync(join(EXAMPLES, "go-gin", "main.go"));
if (!goBin || !goSrc) console.log(`[drill] go-gin skipped: ${!goBin ? "`go` is not installed (apt-get install golang-go golang-github-gin-gonic-gin-dev)" : "examples/go-gin/main.go is missing"}`);
const goDir = mkdtempSync(join(tmpdir(), "hr-gin-"));
afterAll(() => rmSync(goDir, { recursive: true, force: true }));

/** Builds the Gin example once (GOPATH style, offline with Debian's packages). */
let goBuilt: string | undefined;
function goApp(): string {
  if (goBuilt) return goBuilt;
  const b = spawnSync("go", ["build", "-o", join(goDir, "app"), "."], {
    cwd: join(EXAMPLES, "go-gin"),
    env: { ...process.env, GO111MODULE: "off", GOPATH: `${join(goDir, "gopath")}:/usr/share/gocode`, GOCACHE: process.env.GOCACHE ?? join(tmpdir(), "hr-go-cache"), GOFLAGS: "" },
    encoding: "utf8",
    timeout: 90_000,
  });
  if (b.status !== 0) throw new Error(`go build failed (is golang-github-gin-gonic-gin-dev installed?):\n${b.stderr}`);
  return (goBuilt = join(goDir, "app"));
}

const APPS: { name: string; cmd: () => string[]; env?: Record<string, string>; skip?: boolean }[] = [
  { name: "bun-net", cmd: () => ["bun", join(EXAMPLES, "bun-net", "server.ts")] },
  { name: "node-http", cmd: () => ["node", join(EXAMPLES, "node-http", "server.mjs")] },
  { name: "python", cmd: () => ["python3", join(EXAMPLES, "python", "server.py")], env: { PYTHONUNBUFFERED: "1" } },
  { name: "go-gin", cmd: () => [goApp()], env: { GIN_MODE: "release" }, skip: !goBin || !goSrc },
];

describe("zero-downtime drill (fd strategy, 50 connections, non-retrying, 20 reloads)", () => {
  for (const app of APPS) {
    for (const workers of [1, 2]) {
      test.skipIf(Boolean(app.skip))(`${app.name}, ${workers} worker${workers > 1 ? "s" : ""}, 20 reloads`, () => drill(app.name, app.cmd(), workers, 20, app.env), 180_000);
    }
  }
  test("node-http, 2 workers, 5 reloads, ipc readiness (process.send)", () => drill("node-http", ["node", join(EXAMPLES, "node-http", "server.mjs")], 2, 5, {}, "ipc"), 60_000);
});
