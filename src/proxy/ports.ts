/**
 * Private addresses for proxied workers (given to each in PORT). Today a loopback
 * TCP port per worker start; the proxy itself only sees UpstreamAddress, so a
 * different scheme (a socket injected into the worker) can replace this file.
 */
import { sysctl } from "../platform/proc.ts";
import { freePort } from "../sockets/free-port.ts";

/** Lowest private port hr picks below the ephemeral range. */
const PRIVATE_MIN = 10_000;

/** net.ipv4.ip_local_port_range (Linux default 32768 60999). */
function readPortRange(): [number, number] {
  const [a, b] = (sysctl("net.ipv4.ip_local_port_range") ?? "").split(/\s+/).map(Number);
  return a && b && a <= b ? [a, b] : [32768, 60999];
}

/** Whether 127.0.0.1:port can be bound right now (bind, then close). */
function canBind(port: number): boolean {
  try {
    Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
    return true;
  } catch {
    return false;
  }
}

export class PrivatePorts {
  private readonly reserved = new Set<number>();

  /**
   * A port for a new worker: free now, not handed to another running worker, and
   * outside the kernel's ephemeral range when possible — a port from bind(:0) is
   * ephemeral, so between our probe and the worker's bind one of hr's own outgoing
   * connections (to other workers, under load) could take it as its source port and
   * the worker would fail with EADDRINUSE.
   */
  reserve(): number {
    const [lo, hi] = readPortRange();
    const pool: [number, number] | null = lo - 1 >= PRIVATE_MIN + 1000 ? [PRIVATE_MIN, lo - 1] : hi + 1 <= 65535 - 1000 ? [hi + 1, 65535] : null;
    for (let i = 0; pool && i < 50; i++) {
      const p = pool[0] + Math.floor(Math.random() * (pool[1] - pool[0] + 1));
      if (this.reserved.has(p) || !canBind(p)) continue;
      this.reserved.add(p);
      return p;
    }
    for (let i = 0; i < 20; i++) {
      const p = freePort();
      if (!this.reserved.has(p)) {
        this.reserved.add(p);
        return p;
      }
    }
    throw new Error("proxy: no free private port found");
  }

  release(port: number): void {
    this.reserved.delete(port);
  }
}
