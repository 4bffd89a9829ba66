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
    const got = await this.backends.acquire({ holder: this, kind: "tunnels", waitMs: this.waitMs, describeWait: "", cancelled: () => this.done, reuse: false });
    if (got && !("status" in got) && !this.done) return this.attach(got.b, got.conn);
    if (got && !("status" in got)) {
      got.b.tunnels.delete(this);
      got.conn.destroy();
    }
    this.client.destroy();
  }

  private attach(b: Backend, up: Conn): void {
    this.up = up;
    this.backend = b;
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
