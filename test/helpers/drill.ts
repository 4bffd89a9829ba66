/**
 * The zero-downtime drill shared by the serve tests: a non-retrying load (50
 * connections, half keep-alive) runs while `hr serve` reloads N times. Pass =
 * 0 failed requests, a fresh connection reaches each new generation, every
 * generation answered the load, and hr reports every reload ok.
 */
import { expect } from "bun:test";
import { get, waitForHttp } from "./http.ts";
import { percentile, startLoad } from "../../scripts/harness/load.ts";
import type { ServeHandle } from "./serve.ts";

export interface DrillOptions {
  /** Printed in the result line, e.g. "[drill] node-http workers=2 ready=notify". */
  label: string;
  reloads: number;
  /** Upper bound for the load (it is stopped as soon as the reloads are done). */
  loadMs: number;
  /**
   * "at-once": a fresh connection right after `hr reload --wait` must reach the new
   * generation (proxy: hr switches new connections when it is ready). "soon": within
   * 5 s (fd: the old generation shares the socket during its grace period).
   */
  fresh: "at-once" | "soon";
}

export async function reloadDrill(h: ServeHandle, opts: DrillOptions): Promise<void> {
  const url = `http://127.0.0.1:${h.port}/`;
  const load = startLoad({ url, concurrency: 50, keepAliveShare: 0.5, durationMs: opts.loadMs, timeoutMs: 10_000 });
  const durations: number[] = [];
  let res;
  try {
    await Bun.sleep(300);
    for (let i = 0; i < opts.reloads; i++) {
      const r = await h.reload();
      if (r.code !== 0) throw new Error(`reload ${i + 1} failed: ${r.stderr} ${JSON.stringify(r.json)}\n${h.logs().slice(-3000)}`);
      const gen = r.json.reload.generation as number;
      durations.push(r.json.reload.durationMs);
      const newGen = new RegExp(`gen=${gen} `);
      if (opts.fresh === "at-once") expect((await get(url)).body).toMatch(newGen);
      else await waitForHttp(url, { match: newGen, timeoutMs: 5000, intervalMs: 10 });
    }
    await Bun.sleep(300);
  } finally {
    res = await load.stop();
  }
  const ms = (xs: number[], p: number) => Math.round(percentile(xs, p));
  console.log(
    `${opts.label}: ${opts.reloads} reloads, ${res.ok} ok, ${res.failed} failed${res.failed ? ` ${JSON.stringify(res.errors)}` : ""}; ` +
      `reload ms median ${ms(durations, 50)} max ${Math.max(...durations)}; latency p50 ${ms(res.latenciesMs, 50)} p99 ${ms(res.latenciesMs, 99)} max ${ms(res.latenciesMs, 100)} ms; ${(res.elapsedMs / 1000).toFixed(1)} s`,
  );
  if (res.failed) console.log(`${opts.label} first failures: ${JSON.stringify(res.failures.slice(0, 5))}\n${h.logs().slice(-2000)}`);
  expect(res.failed).toBe(0);
  expect(res.ok).toBeGreaterThan(opts.reloads * 20);
  const seen = new Set([...res.bodies.keys()].map((k) => Number(k.match(/gen=(\d+)/)?.[1])));
  for (let g = 1; g <= opts.reloads + 1; g++) expect(seen.has(g) ? g : `gen ${g} never answered`).toBe(g);
  const st = await h.status();
  expect(st.generation).toBe(opts.reloads + 1);
  expect(st.reloads.every((r) => r.result === "ok")).toBe(true);
  expect(await h.stop()).toBe(0);
}
