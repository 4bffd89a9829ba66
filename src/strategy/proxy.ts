/**
 * strategy "proxy": hr binds (or adopts) [[listen]] and accepts on it itself; each
 * process binds a private 127.0.0.1 PORT and hr forwards requests (protocol
 * "http") or bytes ("tcp") to it (src/proxy). No fds, no LISTEN_* and no shim for
 * the processes: for apps that can only bind a port themselves.
 *
 *  dev:   one app, routable as soon as it is spawned (requests retry the connect
 *         until it binds, up to 30 s); before its stop signal hr finishes what it has
 *         in flight to it and cuts tunnels (run.stop_timeout); dev.live_reload is a
 *         response filter that reloads open pages after each restart.
 *  serve: a worker is routable once ready, a generation once all are; a draining
 *         generation gets stop_signal only after hr's requests to it have finished
 *         (tunnels may run until serve.drain_timeout).
 */
import type { Config } from "../config/schema.ts";
import { LiveReload } from "../proxy/livereload.ts";
import { PrivatePorts } from "../proxy/ports.ts";
import { availableParallelism } from "node:os";
import { Proxy, type ProxyListener } from "../proxy/proxy.ts";
import { ProxyThreads } from "../proxy/threads.ts";
import { openSockets, type SocketSet } from "../sockets/handoff.ts";
import { captureFor } from "./capture.ts";
import type { Opener, Wiring } from "./types.ts";

/** How long a dev request waits for an app (restarting, building, not bound yet) before hr answers 503/502. */
const DEV_WAIT_MS = 30_000;

/** Each held socket with its [[listen]] entry's proxy settings (inherited sockets without an entry: http, untrusted). */
export function proxyListeners(cfg: Config, held: SocketSet): ProxyListener[] {
  return held.listeners.map((l) => {
    const entry = cfg.listen.find((e) => e.name === l.name);
    return { fd: l.fd, protocol: entry?.protocol ?? "http", trustForwarded: entry?.trust_forwarded ?? false };
  });
}

export const openProxy: Opener = async ({ mode, config, root, env, log }) => {
  if (config.listen.length === 0 && !(mode === "serve" && env.LISTEN_FDS)) {
    throw new Error(
      mode === "dev"
        ? 'dev.strategy = "proxy" needs a [[listen]] address for hr to accept on (the app gets a private PORT)'
        : 'serve.strategy = "proxy" needs a [[listen]] address for hr to accept on (each worker gets a private PORT)',
    );
  }
  const held = openSockets(config.listen, root, env);
  const live = mode === "dev" && config.dev.live_reload ? new LiveReload() : null;
  // serve.proxy_threads: more threads accepting on the same sockets (dev: one; its live-reload filter is here).
  const threads = mode === "serve" ? config.serve.proxy_threads || Math.min(4, availableParallelism()) : 1;
  const proxy: Proxy | ProxyThreads =
    mode === "dev"
      ? new Proxy({ listeners: proxyListeners(config, held), log, waitMs: DEV_WAIT_MS, filter: live?.filter, intercept: live?.intercept })
      : new ProxyThreads({ listeners: proxyListeners(config, held), log, waitMs: config.serve.ready.timeout, waitSetting: "serve.ready.timeout" }, threads);
  try {
    proxy.start();
  } catch (e) {
    held.close();
    throw new Error(`proxy: cannot accept on ${held.describe()}: ${(e as Error).message}`);
  }
  const ports = new PrivatePorts();
  if (mode === "serve") log.debug(`proxy: accepting on ${held.describe()} with ${threads} thread${threads === 1 ? "" : "s"}; workers get a private 127.0.0.1 PORT each`);
  const name = (gen: number) => `gen${gen}`;
  return {
    name: "proxy",
    sockets: { ...held, fds: [] }, // nothing is passed to the processes
    wire(cfg): Wiring {
      const port = ports.reserve();
      // run.capture: the app's bind of the [[listen]] port gets a private socket on `port`.
      const capture = cfg.run.capture ? captureFor(mode) : undefined;
      if (mode === "dev") return { env: { PORT: String(port) }, fds: [], argv: (a) => a, port, capture };
      proxy.waitMs = cfg.serve.ready.timeout;
      return { env: { HOST: "127.0.0.1", HR_SERVE_STRATEGY: "proxy", PORT: String(port) }, fds: [], argv: (a) => a, port, capture };
    },
    ready(p) {
      if (p.port !== undefined) proxy.workerReady(name(p.gen), { worker: p.worker, pid: p.pid, address: { host: "127.0.0.1", port: p.port } });
    },
    exited(p) {
      if (p.port === undefined) return;
      ports.release(p.port);
      proxy.workerExited(name(p.gen), p.worker, p.pid);
    },
    live(gen, replaced) {
      proxy.setLive(name(gen));
      if (!replaced || !live) return;
      // Pages reload now; their requests wait in the proxy until the new app accepts.
      log.debug(`live reload: ${live.listeners} page(s)`);
      live.reload(gen);
    },
    retire(gen, timeoutMs) {
      // dev: new requests wait for the next app; tunnels to the old one are cut at the deadline.
      if (mode === "dev" && proxy.liveGeneration === name(gen)) proxy.clearLive();
      return proxy.drain(name(gen), timeoutMs, mode === "dev" ? "cut" : "wait");
    },
    down: (message) => (message === null ? proxy.clearLive() : proxy.setDown(message)),
    close() {
      proxy.close();
      live?.close();
      held.close();
    },
  };
};
