/** The generation state machine (legal / illegal transitions), crash backoff, and one real generation. */
import { afterEach, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validate } from "../../src/config/load.ts";
import type { Config } from "../../src/config/schema.ts";
import { Logger } from "../../src/log/logger.ts";
import { backoffDelay, CrashBackoff, crashesInWindow } from "../../src/process/backoff.ts";
import { Generation, IllegalTransition, isTerminal, transition, TRANSITIONS, WORKER_TRANSITIONS, type GenerationState, type WorkerState } from "../../src/serve/generation.ts";
import { openSockets } from "../../src/sockets/handoff.ts";
import { fdStrategy } from "../../src/strategy/fd.ts";

const STATES: GenerationState[] = ["starting", "ready", "draining", "exited", "failed"];
const LEGAL = new Set(["starting>ready", "starting>failed", "ready>draining", "draining>exited"]);

describe("generation state machine", () => {
  test("exactly the documented transitions are legal", () => {
    for (const from of STATES) {
      for (const to of STATES) {
        const key = `${from}>${to}`;
        if (LEGAL.has(key)) expect(transition(from, to)).toBe(to);
        else expect(() => transition(from, to)).toThrow(IllegalTransition);
      }
    }
    expect(Object.values(TRANSITIONS).flat()).toHaveLength(LEGAL.size);
  });

  test("illegal transitions say what is allowed", () => {
    expect(() => transition("starting", "draining")).toThrow("illegal generation transition starting → draining (allowed from starting: ready, failed)");
    expect(() => transition("exited", "starting")).toThrow("none, terminal");
    expect(() => transition("failed", "ready")).toThrow(IllegalTransition);
    expect(() => transition("ready", "ready")).toThrow(IllegalTransition);
  });

  test("exited and failed are terminal", () => {
    expect(STATES.filter(isTerminal)).toEqual(["exited", "failed"]);
  });
});

describe("worker state machine", () => {
  test("exactly the documented transitions: exited is terminal, stopping only ends, backoff only restarts or ends", () => {
    const legal: Record<WorkerState, WorkerState[]> = {
      starting: ["ready", "backoff", "stopping", "exited"],
      ready: ["backoff", "stopping", "exited"],
      backoff: ["starting", "exited"],
      stopping: ["exited"],
      exited: [],
    };
    expect(WORKER_TRANSITIONS).toEqual(legal);
  });
});

describe("crash backoff", () => {
  test("doubles from restart_backoff, capped at 30 s", () => {
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(500, n))).toEqual([500, 1000, 2000, 4000, 8000]);
    expect(backoffDelay(500, 7)).toBe(30_000); // 32 s capped
    expect(backoffDelay(500, 60)).toBe(30_000);
  });
  test("crash-loop window counts only recent crashes", () => {
    const now = 100_000;
    expect(crashesInWindow([now - 70_000, now - 50_000, now - 1000, now], now)).toBe(3);
  });
  test("one policy: consecutive crashes double the delay, a stable run (10 s) or reset() starts over, 5 in a minute is a loop", () => {
    const b = new CrashBackoff(500);
    let t = 1_000_000;
    expect([1, 2, 3, 4].map(() => b.crashed(100, (t += 1000)).delayMs)).toEqual([500, 1000, 2000, 4000]);
    const fifth = b.crashed(100, (t += 1000));
    expect(fifth).toMatchObject({ delayMs: 8000, consecutive: 5, recent: 5, loop: true });
    expect(b.crashed(10_000, (t += 1000)).delayMs).toBe(500); // stayed up 10 s
    b.reset();
    expect(b.crashed(100, (t += 1000)).consecutive).toBe(1);
    expect(b.recent(t + 61_000)).toBe(0);
  });
});

describe("Generation with real processes", () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  function setup(run: unknown, serve: Record<string, unknown> = {}) {
    const dir = mkdtempSync(join(tmpdir(), "hr-gen-"));
    dirs.push(dir);
    const v = validate({ run, listen: [{ name: "http", address: "127.0.0.1:0" }], serve: { drain_timeout: "2s", ...serve } });
    if (!v.ok) throw new Error(JSON.stringify(v.problems));
    const lines: string[] = [];
    const log = new Logger({ format: "json", color: false, level: "debug", write: (l) => lines.push(l) });
    const sockets = openSockets(v.config.listen, dir, {});
    const mk = (n: number) => new Generation({ number: n, config: v.config as Config, root: dir, strategy: fdStrategy(sockets, "serve"), runtimeDir: dir, log, baseEnv: { PATH: process.env.PATH } });
    return { mk, lines, sockets };
  }

  test("starting → ready → draining → exited, with json events and worker env", async () => {
    const { mk, lines, sockets } = setup({ cmd: 'echo "gen=$HR_GENERATION w=$HR_WORKER fds=$LISTEN_FDS names=$LISTEN_FDNAMES pidok=$([ "$LISTEN_PID" = "$$" ] && echo y)"; exec sleep 30' }, { workers: 2, ready: { type: "delay", delay: "150ms" } });
    try {
      const g = mk(7);
      expect(g.state).toBe("starting");
      const r = await g.start();
      expect(r.ok).toBe(true);
      expect(g.state).toBe("ready");
      expect(g.pids()).toHaveLength(2);
      await g.drain();
      expect(g.state).toBe("exited");
      expect(g.pids()).toEqual([]);
      const events = lines.map((l) => JSON.parse(l));
      expect(events.filter((e) => e.event === "generation").map((e) => e.state)).toEqual(["starting", "ready", "draining", "exited"]);
      const out = events.filter((e) => e.scope?.startsWith("gen7/")).map((e) => `${e.scope} ${e.msg}`).sort();
      expect(out).toEqual(["gen7/w1 gen=7 w=1 fds=1 names=http pidok=y", "gen7/w2 gen=7 w=2 fds=1 names=http pidok=y"]);
      expect(() => g.status()).not.toThrow();
      expect(g.status().workers.map((w) => w.state)).toEqual(["exited", "exited"]);
    } finally {
      sockets.close();
    }
  });

  test("starting → failed when one worker exits; the other is stopped too", async () => {
    const { mk, sockets } = setup({ cmd: 'if [ "$HR_WORKER" = 2 ]; then echo bad >&2; exit 9; fi; exec sleep 30' }, { workers: 2, ready: { type: "delay", delay: "2s" } });
    try {
      const g = mk(1);
      const r = await g.start();
      expect(r.ok).toBe(false);
      expect(r.reason).toBe("gen1/w2: exited with code 9 before it was ready");
      expect(r.output).toEqual(["bad"]);
      expect(r.ms).toBeLessThan(1500); // the failure of w2 cancels the wait for w1
      expect(g.state).toBe("failed");
      await g.stopped;
      expect(g.pids()).toEqual([]);
      expect(() => transition(g.state, "ready")).toThrow(IllegalTransition);
    } finally {
      sockets.close();
    }
  });
});
