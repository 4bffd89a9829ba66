/**
 * No refused or failed request across 10 restarts: a non-retrying client loop
 * (half keep-alive, half new connection per request) runs while hr dev restarts the
 * app 10 times — fd strategy (bun-net adopts fd 3) and proxy strategy (bun-serve
 * binds $PORT, hr forwards).
 */
import { afterEach, beforeAll, describe, expect, test } from "bun:test";
import { appendFileSync } from "node:fs";
import { ensureBinary } from "../helpers/hr.ts";
import { DevHarness, EXAMPLE_APPS, exampleProject, waitForBody } from "../helpers/dev.ts";
import { startLoad } from "../../scripts/harness/load.ts";

const h = new DevHarness();
beforeAll(() => ensureBinary());
afterEach(() => h.cleanup());
const RESTARTED = /^hr .*restarted in/;

for (const [name, strategy] of [["bun-net", "fd"], ["node-http", "fd"], ["bun-serve", "proxy"]] as const) {
  describe(`hr dev under load (${name}, ${strategy})`, () => {
    test("10 restarts, 0 refused or failed requests", async () => {
      const app = EXAMPLE_APPS.find((a) => a.name === name)!;
      const p = exampleProject(app, { check: false });
      h.dir(p.dir);
      const hr = h.start(p.dir, ["--strategy", strategy], { HR_GRACE_MS: "300" });
      await waitForBody(p.url, /gen=1 /);
      expect(hr.output).toContain(`strategy ${strategy}`);
      const load = startLoad({ url: p.url, concurrency: 16, keepAliveShare: 0.5, durationMs: 60_000 });
      try {
        for (let i = 1; i <= 10; i++) {
          await Bun.sleep(150);
          appendFileSync(p.src, `\n// save ${i}\n`);
          await hr.waitCount(RESTARTED, i, 15_000);
          await waitForBody(p.url, new RegExp(`gen=${i + 1} `)); // each generation serves before the next save
        }
        await Bun.sleep(300);
      } finally {
        const r = await load.stop();
        const bodies = Object.fromEntries(r.bodies);
        console.log(`${name}/${strategy}: ok=${r.ok} failed=${r.failed} errors=${JSON.stringify(r.errors)} gens=${Object.keys(bodies).length}`);
        expect(r.failed).toBe(0);
        expect(r.errors).toEqual({});
        expect(r.ok).toBeGreaterThan(100);
        expect(Object.keys(bodies).some((b) => b.includes("gen=11"))).toBe(true);
        // every generation in between answered too: requests waited instead of failing
        expect(Object.keys(bodies).length).toBeGreaterThanOrEqual(10);
      }
    }, 90_000);
  });
}
