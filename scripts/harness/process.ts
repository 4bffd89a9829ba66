/**
 * The process harness for tests and benchmarks: spawn → wait → kill, cleanup
 * guaranteed.
 *
 * Every process is started with a unique tag in its environment (`tagVar`,
 * inherited by everything it starts, escaped grandchildren included) and
 * registered; `cleanup()` (call it from afterEach / a finally) SIGKILLs each
 * one's process group and every live process carrying its tag, and says which
 * were still alive before (a clean exit leaves none) and which survived.
 * Zombies count as dead (this sandbox's PID 1 never reaps).
 */
import { pidsWithEnv } from "../../src/platform/proc.ts";

export interface SpawnOptions {
  cwd: string;
  /** The complete environment (the tag is added). */
  env: Record<string, string | undefined>;
  stdin?: "pipe" | "ignore";
  /** "pipe" (default): captured in output; "ignore"; a number: stdout and stderr go to that fd; or one fd each. */
  output?: "pipe" | "ignore" | number | { stdout: number; stderr: number };
  /** Own process group (and session): kill() also SIGKILLs -pid. */
  detached?: boolean;
}

let seq = 0;

export class Proc {
  readonly tag: string;
  readonly proc: Bun.Subprocess<"pipe" | "ignore", "pipe" | "ignore", "pipe" | "ignore">;
  /** stdout + stderr as they arrived (output: "pipe"). */
  output = "";
  private readonly waiters = new Set<() => void>();
  private readonly drained: Promise<void>;

  constructor(
    argv: string[],
    private readonly opts: SpawnOptions,
    readonly tagVar: string,
  ) {
    this.tag = `${process.pid}-${Date.now().toString(36)}-${seq++}`;
    const sink = opts.output ?? "pipe";
    const [stdout, stderr] = typeof sink === "object" ? [sink.stdout, sink.stderr] : [sink, sink];
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries({ ...opts.env, [tagVar]: this.tag })) if (v !== undefined) env[k] = v;
    this.proc = Bun.spawn(argv, { cwd: opts.cwd, env, stdin: opts.stdin ?? "ignore", stdout, stderr, detached: opts.detached ?? false }) as Proc["proc"];
    const pump = async (s: ReadableStream<Uint8Array>) => {
      const dec = new TextDecoder();
      for await (const chunk of s) {
        this.output += dec.decode(chunk, { stream: true });
        this.wake();
      }
    };
    this.drained = sink === "pipe" ? Promise.all([pump(this.proc.stdout as ReadableStream<Uint8Array>), pump(this.proc.stderr as ReadableStream<Uint8Array>)]).then(() => {}) : Promise.resolve();
    void this.proc.exited.then(() => this.wake());
  }

  get pid(): number {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private wake(): void {
    for (const w of [...this.waiters]) w();
  }

  /**
   * Resolves once `what` holds: a RegExp matching the output (with the match), or a
   * predicate. Rejects on timeout, or when the process exited and it still doesn't hold.
   */
  waitFor(what: RegExp, timeoutMs?: number, label?: string): Promise<RegExpMatchArray>;
  waitFor(what: () => boolean, timeoutMs?: number, label?: string): Promise<true>;
  waitFor(what: RegExp | (() => boolean), timeoutMs = 15_000, label = String(what)): Promise<RegExpMatchArray | true> {
    const test = (): RegExpMatchArray | true | null => (typeof what === "function" ? (what() ? true : null) : this.output.match(what));
    return new Promise((resolve, reject) => {
      let poll: ReturnType<typeof setInterval> | undefined;
      const done = () => {
        clearTimeout(timer);
        clearInterval(poll);
        this.waiters.delete(check);
      };
      const check = () => {
        const hit = test();
        if (hit) {
          done();
          resolve(hit);
        } else if (!this.running) {
          // Output still in the pipe when it exited: look once more after the pumps finish.
          void Promise.race([this.drained, Bun.sleep(1000)]).then(() => {
            if (!this.waiters.has(check)) return;
            const late = test();
            done();
            if (late) resolve(late);
            else reject(new Error(`the process exited (${this.proc.exitCode ?? this.proc.signalCode}) while waiting for ${label}\n--- output ---\n${this.output}`));
          });
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${label}\n--- output ---\n${this.output}`));
      }, timeoutMs);
      this.waiters.add(check);
      if (typeof what === "function") poll = setInterval(check, 20); // predicates may watch the world, not the output
      check();
    });
  }

  signal(sig: NodeJS.Signals): void {
    try {
      process.kill(this.pid, sig);
    } catch {
      /* gone */
    }
  }

  /** Resolves with the exit code, or null if it has not exited within timeoutMs. */
  async exited(timeoutMs: number): Promise<number | null> {
    const r = await Promise.race([this.proc.exited, Bun.sleep(timeoutMs).then(() => null)]);
    if (r !== null) await Promise.race([this.drained, Bun.sleep(1000)]);
    return r;
  }

  /** Sends `sig`, waits up to timeoutMs for the exit (then SIGKILL); resolves with the exit code. */
  async stop(sig: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000): Promise<number | null> {
    if (this.running) this.proc.kill(sig);
    const t = setTimeout(() => this.proc.kill("SIGKILL"), timeoutMs);
    await this.proc.exited;
    clearTimeout(t);
    return this.proc.exitCode;
  }

  /** Live processes carrying this tag (the process itself included). */
  survivors(): number[] {
    return pidsWithEnv(this.tagVar, this.tag).filter((p) => p !== process.pid);
  }

  /** One SIGKILL to its group (detached) and every tagged process; returns how many tagged processes were alive. */
  killOnce(): number {
    if (this.opts.detached) {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const left = this.survivors();
    for (const pid of left) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    return left.length;
  }

  /** SIGKILL its group (detached) and every tagged process, until none is left (≤ 2 s); returns the survivors. */
  async kill(): Promise<number[]> {
    for (let i = 0; i < 100; i++) {
      if (this.killOnce() === 0) return [];
      await Bun.sleep(20);
    }
    return this.survivors();
  }
}

/** A registry of spawned processes: one per test file (or benchmark), cleaned up in afterEach / finally. */
export class Harness {
  private readonly procs = new Set<Proc>();

  constructor(readonly tagVar = "HR_TEST_TAG") {}

  spawn(argv: string[], opts: SpawnOptions): Proc {
    const p = new Proc(argv, opts, this.tagVar);
    this.procs.add(p);
    return p;
  }

  /** Drops a process that has exited and whose leftovers the caller handled (a finished command). */
  forget(p: Proc): void {
    this.procs.delete(p);
  }

  /** Synchronous cleanup for signal handlers and exit paths: one SIGKILL to everything (Proc.killOnce); returns how many were alive. */
  killAllNow(): number {
    let n = 0;
    for (const p of this.procs) n += p.killOnce();
    this.procs.clear();
    return n;
  }

  /**
   * Kills everything every process started (see Proc.kill). `leftovers`: processes
   * still alive before the kill (a test that expected a clean exit asserts none);
   * `survivors`: alive even after SIGKILL.
   */
  async cleanup(): Promise<{ leftovers: number[]; survivors: number[] }> {
    const leftovers: number[] = [];
    const survivors: number[] = [];
    for (const p of [...this.procs]) {
      leftovers.push(...p.survivors());
      survivors.push(...(await p.kill()));
      this.procs.delete(p);
    }
    return { leftovers, survivors };
  }
}
