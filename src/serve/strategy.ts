/**
 * How the workers of `hr serve` get their listening socket (serve.strategy), and
 * what hr adds to each worker for it:
 *
 *  - "fd" (default): hr binds [[listen]] once and passes it at fd 3, 4, …
 *    (sockets/handoff.ts). After each generation is ready, the socket audit checks
 *    no worker ignored fd 3 and bound a port of its own (socket-audit.ts).
 *  - "reuseport": workers bind the address themselves with SO_REUSEPORT; hr holds
 *    nothing (reuseport.ts).
 *  - "proxy": hr binds [[listen]] once and accepts on it itself; each worker gets a
 *    private 127.0.0.1 PORT and hr forwards requests (protocol "http") or bytes
 *    ("tcp") to the live generation's ready workers (src/proxy). A draining
 *    generation gets stop_signal only after hr's requests to it have finished
 *    (beforeStop). No fds, no LISTEN_* and no shim for the workers.
 *
 * run.capture (fd or proxy): workers run unmodified under bind capture (capture/): a
 * bind of the [[listen]] port gets the held socket (fd) or a private socket on the
 * worker's private port (proxy). No fds, LISTEN_* or shim are passed then.
 *
 * fd and reuseport: Bun apps get the Bun.serve preload shim (serve.bun_shim, shims/), written
 * into hr's private runtime directory from the copy embedded in the binary.
 */
import { writeRuntimeFile } from "../control/runtime.ts";
import { basename, join } from "node:path";
import type { Config } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { toArgv } from "../process/command.ts";
import { openSockets, type SocketSet } from "../sockets/handoff.ts";
import shimSource from "../shims/bun-serve-shim.js" with { type: "text" };
import { Proxy, type DrainReport, type ProxyListener } from "../proxy/proxy.ts";
import { PrivatePorts } from "../proxy/ports.ts";
import { openReuseport } from "./reuseport.ts";
import { auditGeneration, inodesAtFds, type AuditVerdict } from "./socket-audit.ts";
import { openCapture } from "../capture/app.ts";
import type { Capture } from "../capture/index.ts";

export const BUN_SHIM_FILE = "hr-bun-shim.js";

/** The Bun.serve preload shim's source (embedded in the hr binary). */
export function bunShimSource(): string {
  return shimSource;
}

/** Whether a worker running `argv` gets the shim, and how: "argv" (--preload after bun), "env" (BUN_OPTIONS) or none. */
export function bunShimMode(setting: Config["serve"]["bun_shim"], argv: readonly string[]): "argv" | "env" | undefined {
  if (setting === false) return undefined;
  const isBun = /^bun(\.exe)?$/.test(basename(argv[0] ?? ""));
  if (isBun) return "argv";
  return setting === true ? "env" : undefined;
}

/** `bun …` → `bun --preload <shim> …` */
export function withPreload(argv: readonly string[], shimPath: string): string[] {
  return [argv[0]!, "--preload", shimPath, ...argv.slice(1)];
}

export interface GenerationHooks {
  sockets: SocketSet;
  /** run.capture: the supervisor, or why capture can't be used (the generation fails with it). */
  capture?: Capture | Error;
  afterReady?: (workers: { worker: number; pid: number }[]) => AuditVerdict;
  /** proxy: per-worker private PORT and routing hooks (see GenerationOptions). */
  workerPort?: () => number;
  onWorkerReady?: (w: { worker: number; pid: number; port: number }) => void;
  onWorkerExit?: (w: { worker: number; pid: number; port: number }) => void;
  onReady?: () => void;
  beforeStop?: () => Promise<DrainReport>;
}

export interface ServeStrategy {
  readonly name: "fd" | "reuseport" | "proxy";
  /** What the master holds (fd, proxy: closing it stops the proxy) or describes (reuseport). */
  readonly sockets: SocketSet;
  /** Writes the shim into the master's private runtime directory (call once it exists). */
  install(workDir: string): void;
  /** Per generation, with the config it starts with: the decorated socket set (argv/env) and the audit. */
  generation(cfg: Config, name: string): GenerationHooks;
}

/** Opens the strategy's sockets. Throws an Error with a user-facing message (the master logs it and exits 1). */
export function openStrategy(cfg: Config, root: string, env: Record<string, string | undefined>, log: Logger): ServeStrategy {
  const name = cfg.serve.strategy;
  if (cfg.run.capture) {
    if (name === "reuseport") throw new Error('run.capture needs serve.strategy = "fd" or "proxy" (under reuseport the workers bind the port themselves)');
    if (!cfg.listen.some((l) => !l.address.startsWith("unix:"))) throw new Error('run.capture = true needs a TCP [[listen]] address: the port the app binds (e.g. address = ":8080")');
    openCapture("serve"); // says at start when seccomp can't be used
  }
  if (name === "proxy") return openProxy(cfg, root, env, log);
  if (name !== "fd" && name !== "reuseport") {
    throw new Error(`serve.strategy = ${JSON.stringify(name)} is not implemented; use "fd" (the default), "reuseport" or "proxy"`);
  }
  const sockets = name === "fd" ? openSockets(cfg.listen, root, env) : openReuseport(cfg.listen, root, env, log);
  const hrInodes = name === "fd" ? inodesAtFds(process.pid, sockets.fds) : new Set<number>();
  let shimPath: string | undefined;
  return {
    name,
    sockets,
    install(workDir) {
      shimPath = join(workDir, BUN_SHIM_FILE);
      writeRuntimeFile(shimPath, bunShimSource());
    },
    generation(genCfg, genName) {
      const mode = shimPath ? bunShimMode(genCfg.serve.bun_shim, toArgv(genCfg.run.cmd)) : undefined;
      const path = shimPath!;
      const decorated: SocketSet = {
        ...sockets,
        listeners: sockets.listeners,
        fds: sockets.fds,
        inherited: sockets.inherited,
        appEnv() {
          const e: Record<string, string> = { ...sockets.appEnv() };
          if (mode === "env") {
            const prev = genCfg.run.env.BUN_OPTIONS ?? env.BUN_OPTIONS;
            e.BUN_OPTIONS = `${prev ? `${prev} ` : ""}--preload ${path}`;
          }
          return e;
        },
        wrapArgv(argv) {
          return sockets.wrapArgv(mode === "argv" ? withPreload(argv, path) : argv);
        },
      };
      return {
        sockets: genCfg.run.capture ? sockets : decorated,
        capture: genCfg.run.capture ? captureFor() : undefined,
        afterReady: name === "fd" ? (workers) => auditGeneration(genName, workers, hrInodes, log) : undefined,
      };
    },
  };
}

/** The capture supervisor for a generation whose config asks for it (an Error when seccomp can't be used). */
function captureFor(): Capture | Error {
  try {
    return openCapture("serve");
  } catch (error) {
    return error as Error;
  }
}

/**
 * serve.strategy = "proxy": hr binds (or adopts) [[listen]] and accepts on it;
 * every worker binds its own private 127.0.0.1 PORT and hr forwards to it.
 */
function openProxy(cfg: Config, root: string, env: Record<string, string | undefined>, log: Logger): ServeStrategy {
  if (cfg.listen.length === 0 && !env.LISTEN_FDS) {
    throw new Error('serve.strategy = "proxy" needs a [[listen]] address for hr to accept on (each worker gets a private PORT)');
  }
  const held = openSockets(cfg.listen, root, env);
  const proxy = new Proxy({ listeners: proxyListeners(cfg, held), log, waitMs: cfg.serve.ready.timeout, waitSetting: "serve.ready.timeout" });
  try {
    proxy.start();
  } catch (e) {
    held.close();
    throw new Error(`proxy: cannot accept on ${held.describe()}: ${(e as Error).message}`);
  }
  const ports = new PrivatePorts();
  log.debug(`proxy: accepting on ${held.describe()}; workers get a private 127.0.0.1 PORT each`);
  const sockets: SocketSet = {
    listeners: held.listeners,
    fds: [], // nothing is passed to the workers
    inherited: held.inherited,
    appEnv: () => ({ HOST: "127.0.0.1", HR_SERVE_STRATEGY: "proxy" }),
    wrapArgv: (argv) => argv,
    describe: () => held.describe(),
    close() {
      proxy.close();
      held.close();
    },
  };
  return {
    name: "proxy",
    sockets,
    install() {},
    generation(genCfg, genName) {
      proxy.waitMs = genCfg.serve.ready.timeout;
      return {
        sockets,
        capture: genCfg.run.capture ? captureFor() : undefined,
        workerPort: () => ports.reserve(),
        onWorkerReady: (w) => proxy.workerReady(genName, { worker: w.worker, pid: w.pid, address: { host: "127.0.0.1", port: w.port } }),
        onWorkerExit: (w) => {
          ports.release(w.port);
          proxy.workerExited(genName, w.worker, w.pid);
        },
        onReady: () => proxy.setLive(genName),
        beforeStop: () => proxy.drain(genName, genCfg.serve.drain_timeout),
      };
    },
  };
}

/** Each held socket with its [[listen]] entry's proxy settings (inherited sockets without an entry: http, untrusted). */
export function proxyListeners(cfg: Config, held: SocketSet): ProxyListener[] {
  return held.listeners.map((l) => {
    const entry = cfg.listen.find((e) => e.name === l.name);
    return { fd: l.fd, protocol: entry?.protocol ?? "http", trustForwarded: entry?.trust_forwarded ?? false };
  });
}
