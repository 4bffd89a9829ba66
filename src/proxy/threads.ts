/**
 * hr serve's proxy on more than one core: the main thread runs one Proxy and
 * `threads - 1` Bun Workers (thread.ts) run one each, all accepting on the same
 * listening sockets. Every routing change is sent to all of them; drain() resolves
 * when every thread has drained the generation (reports summed).
 *
 * Why threads: one JS thread parsing HTTP caps the proxy near one core, below a
 * multi-worker app (docs/benchmarks.md, proxy). Each thread keeps its own upstream
 * pools and least-in-flight counts (balancing is per thread). hr dev uses one
 * thread (its live-reload filter lives in the main thread).
 */
import type { Logger } from "../log/logger.ts";
import { Proxy, type DrainReport, type ProxyOptions, type WorkerEndpoint } from "./proxy.ts";

type Shared = Omit<ProxyOptions, "log" | "filter" | "intercept">;

export type ToThread =
  | { op: "init"; options: Shared }
  | { op: "workerReady"; gen: string; w: WorkerEndpoint }
  | { op: "workerExited"; gen: string; worker: number; pid: number }
  | { op: "setLive"; gen: string }
  | { op: "clearLive" }
  | { op: "setDown"; message: string }
  | { op: "waitMs"; ms: number }
  | { op: "drain"; id: number; gen: string; timeoutMs: number; tunnels: "wait" | "cut" }
  | { op: "close" };

type FromThread = { op: "log"; level: "debug" | "info" | "warn" | "error"; msg: string } | { op: "drained"; id: number; report: DrainReport };

export class ProxyThreads {
  private readonly main: Proxy;
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, { left: number; sum: DrainReport; resolve: (r: DrainReport) => void }>();
  private seq = 0;

  constructor(
    private readonly options: Shared & { log: Logger },
    readonly threads: number,
  ) {
    this.main = new Proxy({ ...options, fdShare: threads });
  }

  start(): void {
    this.main.start();
    const { log, ...shared } = this.options;
    for (let i = 1; i < this.threads; i++) {
      const w = new Worker(new URL("./thread.ts", import.meta.url).href);
      w.onmessage = (e: MessageEvent<FromThread>) => this.onMessage(e.data);
      w.onerror = (e) => log.error(`proxy thread ${i}: ${e.message}`);
      w.postMessage({ op: "init", options: { ...shared, fdShare: this.threads } } satisfies ToThread);
      w.unref();
      this.workers.push(w);
    }
  }

  private onMessage(m: FromThread): void {
    if (m.op === "log") return this.options.log[m.level](m.msg);
    const p = this.pending.get(m.id);
    if (!p) return;
    add(p.sum, m.report);
    if (--p.left === 0) {
      this.pending.delete(m.id);
      p.resolve(p.sum);
    }
  }

  private send(m: ToThread): void {
    for (const w of this.workers) w.postMessage(m);
  }

  set waitMs(ms: number) {
    this.main.waitMs = ms;
    this.send({ op: "waitMs", ms });
  }

  workerReady(gen: string, w: WorkerEndpoint): void {
    this.main.workerReady(gen, w);
    this.send({ op: "workerReady", gen, w });
  }

  workerExited(gen: string, worker: number, pid: number): void {
    this.main.workerExited(gen, worker, pid);
    this.send({ op: "workerExited", gen, worker, pid });
  }

  setLive(gen: string): void {
    this.main.setLive(gen);
    this.send({ op: "setLive", gen });
  }

  clearLive(): void {
    this.main.clearLive();
    this.send({ op: "clearLive" });
  }

  setDown(message: string): void {
    this.main.setDown(message);
    this.send({ op: "setDown", message });
  }

  get liveGeneration(): string | null {
    return this.main.liveGeneration;
  }

  /** Every thread drains `gen`; the reports are summed (durationMs: the slowest). */
  drain(gen: string, timeoutMs: number, tunnels: "wait" | "cut" = "wait"): Promise<DrainReport> {
    const id = ++this.seq;
    const sum: DrainReport = { requests: 0, tunnels: 0, cut: 0, durationMs: 0 };
    return new Promise((resolve) => {
      this.pending.set(id, { left: this.workers.length + 1, sum, resolve });
      this.send({ op: "drain", id, gen, timeoutMs, tunnels });
      void this.main.drain(gen, timeoutMs, tunnels).then((report) => this.onMessage({ op: "drained", id, report }));
    });
  }

  close(): void {
    this.main.close();
    this.send({ op: "close" });
    // process.exit() in a Worker would end all of hr: the thread is terminated from here instead.
    for (const w of this.workers) setTimeout(() => w.terminate(), 100).unref();
    for (const p of this.pending.values()) p.resolve(p.sum);
    this.pending.clear();
  }
}

function add(into: DrainReport, r: DrainReport): void {
  into.requests += r.requests;
  into.tunnels += r.tunnels;
  into.cut += r.cut;
  into.durationMs = Math.max(into.durationMs, r.durationMs);
}
