/**
 * [run] env_file under hr dev and hr serve: the app gets the variables (environment < env files <
 * [run].env), hr's own config never does; a change restarts the app under dev (even when the file is
 * gitignored and outside include_ext) and is applied by the next reload under serve; a file that
 * stops parsing keeps the running app / generation, with file:line in the error.
 */
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DevHarness, tempProject } from "../helpers/dev.ts";
import { get } from "../helpers/http.ts";
import { runHr } from "../helpers/hr.ts";
import { cleanupServes, startServe } from "../helpers/serve.ts";

setDefaultTimeout(60_000);
const dev = new DevHarness();
afterEach(async () => {
  await dev.cleanup();
  expect(await cleanupServes()).toEqual([]);
});

const SHOW = 'echo "app FROM_ENV=$FROM_ENV FILE=$FILE OVER=$OVER LOCAL=$LOCAL HR_SERVE_WORKERS=$HR_SERVE_WORKERS"; exec sleep 600';

describe("hr dev", () => {
  test("variables reach the app with their precedence; editing .env restarts it; a broken .env keeps it", async () => {
    const dir = dev.dir(tempProject({
      "hr.toml": `[run]\ncmd = ${JSON.stringify(SHOW)}\nenv_file = [".env", ".env.local"]\nenv = { OVER = "toml" }\n[watch]\ninclude_ext = ["txt"]\n`,
      ".gitignore": ".env\n.env.local\n",
      ".env": "# settings\nexport FROM_ENV=file\nFILE='from .env'\nOVER=file\nHR_SERVE_WORKERS=9\n",
      ".env.local": "LOCAL=\"local\\nvalue\"\n",
    }));
    const run = dev.start(dir, [], { FROM_ENV: "environment", OVER: "environment" });
    await run.waitFor(/app FROM_ENV=file FILE=from \.env OVER=toml LOCAL=local\nvalue HR_SERVE_WORKERS=9/);
    writeFileSync(join(dir, ".env"), "FROM_ENV=file\nFILE=edited\n");
    await run.waitFor(/app FROM_ENV=file FILE=edited OVER=toml/);
    expect(run.count(/restarted/)).toBe(1);
    writeFileSync(join(dir, ".env"), "FILE=ok\nFILE2=\"unterminated\n");
    await run.waitFor(/run\.env_file: \.env:2: unterminated double-quoted value for FILE2.*gen 2 \(pid \d+\) keeps running/);
    writeFileSync(join(dir, ".env"), "FILE=fixed\n");
    await run.waitFor(/app FROM_ENV=environment FILE=fixed OVER=toml/);
    run.signal("SIGTERM");
    expect(await run.exited(20_000)).toBe(0);
  });

  test("hr check names the env file and line", () => {
    const dir = dev.dir(tempProject({ "hr.toml": '[run]\ncmd = "true"\nenv_file = ".env"\n', ".env": "A=1\nB\n" }));
    const r = runHr(["check"], { cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stdout + r.stderr).toContain('.env:2: expected KEY=value, got "B" (run.env_file)');
  });
});

describe("hr init", () => {
  test("proposes env_file when the project has a .env; the file it writes passes hr check", () => {
    const dir = dev.dir(tempProject({ "server.py": "import os\nprint(os.environ['SECRET'])\n", ".env": "SECRET=s3cret\nPORT=9090\n" }));
    const init = runHr(["init", "--yes"], { cwd: dir });
    expect(init.code).toBe(0);
    const toml = readFileSync(join(dir, "hr.toml"), "utf8");
    expect(toml).toMatch(/^env_file = "\.env"$/m);
    expect(toml).not.toContain("s3cret");
    expect(runHr(["check"], { cwd: dir }).code).toBe(0);
    const none = dev.dir(tempProject({ "server.py": "print(1)\n" }));
    expect(runHr(["init", "--yes"], { cwd: none }).code).toBe(0);
    expect(readFileSync(join(none, "hr.toml"), "utf8")).toMatch(/^# env_file = "\.env"$/m);
  });
});

describe("hr serve", () => {
  const WORKER = `const net = require("node:net");
const body = JSON.stringify({ FILE: process.env.FILE, OVER: process.env.OVER });
net.createServer((s) => s.once("data", () => s.end("HTTP/1.1 200 OK\\r\\nContent-Length: " + body.length + "\\r\\nConnection: close\\r\\n\\r\\n" + body)))
  .listen({ fd: 3 }, () => console.log("listening"));
process.on("SIGTERM", () => process.exit(0));
`;

  test("the next reload applies a changed .env; a broken one fails the reload and the old generation keeps serving", async () => {
    const h = await startServe({
      toml: `[run]\ncmd = ["node", "worker.cjs"]\nenv_file = ".env"\nenv = { OVER = "toml" }\n[[listen]]\nname = "http"\naddress = "127.0.0.1:0"\n[serve]\nready = { type = "log", pattern = "listening" }\ndrain_timeout = "5s"\n`,
      files: { "worker.cjs": WORKER, ".env": "FILE=one\nOVER=file\nHR_SERVE_WORKERS=3\n" },
    });
    const url = `http://127.0.0.1:${h.port}/`;
    expect(JSON.parse((await get(url)).body)).toEqual({ FILE: "one", OVER: "toml" });
    expect((await h.status()).generations[0]!.workers).toHaveLength(1); // HR_SERVE_WORKERS in .env is the app's, not hr's
    writeFileSync(join(h.dir, ".env"), "FILE=two\n");
    expect(JSON.parse((await get(url)).body).FILE).toBe("one"); // not before a reload
    const ok = await h.reload();
    expect(ok.code).toBe(0);
    // The old worker shares the socket until it has exited: ask until gen 1 is gone.
    for (let i = 0; i < 100 && (await h.status()).generations.some((g) => g.generation === 1 && g.state !== "exited"); i++) await Bun.sleep(50);
    expect(JSON.parse((await get(url)).body).FILE).toBe("two");
    writeFileSync(join(h.dir, ".env"), "FILE='three\n");
    const bad = await h.reload();
    expect(bad.code).not.toBe(0);
    expect(JSON.stringify(bad.json) + bad.stderr).toContain(".env:1: unterminated single-quoted value for FILE");
    expect(JSON.parse((await get(url)).body).FILE).toBe("two");
    expect(await h.stop("SIGTERM")).toBe(0);
  });
});
