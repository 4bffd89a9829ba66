/**
 * One client connection in `protocol = "tcp"` mode: bytes piped to a worker of the
 * live generation, both directions with backpressure, half-close passed on. The
 * client stays paused until the upstream is connected, so hr holds no client bytes
 * and a refused connect is retried on another worker safely. A piped connection
 * is a tunnel for drain purposes: it keeps going until the drain deadline.
 */
import type { Backend, Backends, Cuttable } from "./backends.ts";
import type { Conn } from "./conn.ts";
import type { ProxyStats } from "./session.ts";

export class TcpSession implements Cuttable {
  private up: Conn | null = null;
  private backend: Backend | null = null;
  private done = false;

  constructor(
    readonly client: Conn,
    private readonly backends: Backends,
    private readonly waitMs: number,
    private readonly stats: ProxyStats,
    private readonly onDone: (s: TcpSession) => void,
  ) {
    client.pause();
    client.events = {
      data: (d) => {
        if (this.up && !this.up.write(d)) client.pause();
      },
      end: () => this.up?.end(),
      close: () => this.finish(),
      drain: () => this.up?.resume(),
    };
    void this.start();
  }

  private async start(): Promise<void> {
    const deadline = Date.now() + this.waitMs;
    const failed = new Set<Backend>();
    let delay = 5;
    while (!this.done && Date.now() < deadline) {
      const b = this.backends.pick(failed);
      if (!b) {
        if (this.backends.down !== null && !this.backends.available) break;
        if (failed.size) {
          failed.clear();
          await Bun.sleep(delay);
          delay = Math.min(100, delay * 2);
        } else await this.backends.waitForChange(deadline);
        continue;
      }
      const up = await this.backends.connectFresh(b);
      if (this.done) {
        up?.destroy();
        return;
      }
      if (!up || b.dead) {
        up?.destroy();
        this.stats.connectRetries++;
        failed.add(b);
        continue;
      }
      return this.attach(b, up);
    }
    if (!this.done) this.stats.timedOut++;
    this.client.destroy();
  }

  private attach(b: Backend, up: Conn): void {
    this.up = up;
    this.backend = b;
    b.tunnels.add(this);
    this.stats.requests++;
    const client = this.client;
    up.events = {
      data: (d) => {
        if (!client.write(d)) up.pause();
      },
      end: () => client.end(),
      close: () => {
        client.end();
        this.release();
      },
      drain: () => client.resume(),
    };
    client.resume();
  }

  private release(): void {
    if (!this.backend) return;
    this.backend.tunnels.delete(this);
    this.backend = null;
    this.backends.changed();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.up?.destroy();
    this.release();
    this.onDone(this);
  }

  cut(): void {
    this.client.destroy();
    this.up?.destroy();
    this.release();
  }
}
