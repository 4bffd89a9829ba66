/**
 * hr dev against every example app (its own hr.toml, on a free port): an edit reaches
 * the next response; a broken source file fails the build and the old app keeps
 * answering; fixing it restarts. Apps whose toolchain is missing are skipped, saying why.
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync, writeFileSync } from "node:fs";
import { ensureBinary } from "../helpers/hr.ts";
import { body, DevHarness, edit, EXAMPLE_APPS, exampleProject, waitForBody } from "../helpers/dev.ts";

const h = new DevHarness();
beforeAll(() => ensureBinary());
afterEach(() => h.cleanup());
const RESTARTED = /^hr .*restarted in/;

for (const app of EXAMPLE_APPS) {
  const missing = app.missing();
  if (missing) console.warn(`skipping hr dev tests for examples/${app.name}: ${missing}`);
  describe.skipIf(missing !== null)(`hr dev examples/${app.name}`, () => {
    test("edit v1→v2 → next response from the new code; broken build keeps the old app; fix restarts", async () => {
      const p = exampleProject(app);
      h.dir(p.dir);
      const hr = h.start(p.dir, [], { HR_GRACE_MS: "100" });
      await waitForBody(p.url, new RegExp(`hello from ${app.name} v1 gen=1 `), app.name === "go-gin" ? 60_000 : 15_000);

      const good = await Bun.file(p.src).text();
      edit(p.src, /VERSION = "v1"/, 'VERSION = "v2"');
      await hr.waitCount(RESTARTED, 1, 30_000);
      expect(await body(p.url)).toMatch(new RegExp(`hello from ${app.name} v2 gen=2 `));

      appendFileSync(p.src, app.breaker);
      await hr.waitFor(/^hr .*failed \(exited with code \d+\).*gen 2 \(pid \d+\) keeps running/m, 30_000);
      for (let i = 0; i < 3; i++) expect(await body(p.url)).toMatch(/ v2 gen=2 /);
      expect(hr.count(RESTARTED)).toBe(1);

      writeFileSync(p.src, good.replace(/VERSION = "v1"/, 'VERSION = "v3"'));
      await hr.waitCount(RESTARTED, 2, 30_000);
      expect(await body(p.url)).toMatch(new RegExp(`hello from ${app.name} v3 gen=3 `));
    }, 90_000);
  });
}
