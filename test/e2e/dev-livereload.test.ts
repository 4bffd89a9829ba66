/**
 * dev.live_reload (proxy strategy): the reload script is injected into HTML
 * (Content-Length fixed, compressed and non-HTML bodies untouched), /__hr/events
 * (SSE, read with node:http) sends `reload` after a file edit restarted the app.
 * A config with live_reload and another strategy is refused.
 */
import { afterEach, beforeAll, expect, test } from "bun:test";
import http from "node:http";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBinary } from "../helpers/hr.ts";
import { DevHarness, freePort, tempProject, waitForBody } from "../helpers/dev.ts";

const h = new DevHarness();
const sse: http.ClientRequest[] = [];
beforeAll(() => ensureBinary());
afterEach(async () => {
  for (const r of sse.splice(0)) r.destroy();
  await h.cleanup();
});

const app = (version: string) => `const port = Number(process.env.PORT);
const page = "<!doctype html><html><head><title>t</title></head><body><h1>VERSION ${version} gen=" + process.env.HR_GENERATION + " é</h1></BODY></html>";
Bun.serve({ hostname: "127.0.0.1", port, fetch(req) {
  const path = new URL(req.url).pathname;
  if (path === "/plain") return new Response("plain </body> text", { headers: { "Content-Type": "text/plain" } });
  if (path === "/gz") return new Response(Bun.gzipSync(Buffer.from(page)), { headers: { "Content-Type": "text/html", "Content-Encoding": "gzip" } });
  if (path === "/echo" && req.method === "POST") return req.text().then((t) => new Response("echo:" + t));
  return new Response(page, { headers: { "Content-Type": "text/html; charset=utf-8" } });
} });
`;

function project(strategy = "proxy") {
  const port = freePort();
  const dir = h.dir(
    tempProject({
      "app.ts": app("v1"),
      "hr.toml": `[run]\ncmd = ["bun", "app.ts"]\n[watch]\ninclude_ext = ["ts"]\n[[listen]]\nname = "http"\naddress = "127.0.0.1:${port}"\n[dev]\nstrategy = "${strategy}"\nlive_reload = true\n`,
    }),
  );
  return { dir, port, url: `http://127.0.0.1:${port}/` };
}

/** Raw GET through node:http: status, headers, body bytes (no decompression). */
function rawGet(port: number, path: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on("data", (c: Buffer) => parts.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts) }));
      res.on("error", reject);
    });
    req.on("error", reject);
  });
}

test("HTML gets the reload script (Content-Length fixed); /__hr/events sends reload after an edit", async () => {
  const p = project();
  const hr = h.start(p.dir);
  await waitForBody(p.url, /VERSION v1 gen=1/);

  const page = await rawGet(p.port, "/");
  const html = page.body.toString("utf8");
  expect(page.status).toBe(200);
  expect(html).toMatch(/gen=1 é<\/h1><script data-hr-live-reload>.*<\/script><\/BODY><\/html>$/);
  expect(Number(page.headers["content-length"])).toBe(page.body.length);
  expect(html).toContain('new EventSource("/__hr/events")');

  // Untouched: non-HTML and compressed bodies.
  const plain = await rawGet(p.port, "/plain");
  expect(plain.body.toString()).toBe("plain </body> text");
  const gz = await rawGet(p.port, "/gz");
  expect(gz.headers["content-encoding"]).toBe("gzip");
  expect(Bun.gunzipSync(new Uint8Array(gz.body)).toString()).not.toContain("data-hr-live-reload");
  // Request bodies are forwarded.
  const echo = await fetch(`${p.url}echo`, { method: "POST", body: "hi" }).then((r) => r.text());
  expect(echo).toBe("echo:hi");

  // An SSE client (node:http) sees `reload` after the edit restarted the app.
  let events = "";
  const connected = new Promise<void>((resolve, reject) => {
    const req = http.get({ host: "127.0.0.1", port: p.port, path: "/__hr/events", agent: false }, (res) => {
      expect(res.statusCode).toBe(200);
      expect(res.headers["content-type"]).toBe("text/event-stream");
      res.setEncoding("utf8");
      res.on("data", (c: string) => {
        events += c;
        resolve();
      });
    });
    req.on("error", reject);
    sse.push(req);
  });
  await connected;
  writeFileSync(join(p.dir, "app.ts"), app("v2"));
  await hr.waitFor(() => /event: reload\ndata: 2\n\n/.test(events), 15_000, "the reload event");
  expect(await waitForBody(p.url, /VERSION v2 gen=2/)).toContain("data-hr-live-reload");
}, 30_000);

test("live_reload with a strategy other than proxy is a config error", async () => {
  const p = project("fd");
  const hr = h.start(p.dir);
  expect(await hr.exited(10_000)).not.toBe(0);
  expect(hr.output).toContain('dev.live_reload needs dev.strategy = "proxy"');
}, 20_000);
