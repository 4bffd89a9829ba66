/**
 * serve.strategy = "reuseport": every worker binds the [[listen]] address itself
 * with SO_REUSEPORT (Bun.serve({ reusePort: true }), Go's net.ListenConfig with
 * SO_REUSEPORT, gunicorn --reuse-port, …). The kernel spreads new connections over
 * every listener of the group; a new generation joins the group before the old
 * one leaves it.
 *
 * hr binds NOTHING for the app: a listener of hr's in the group would receive its
 * share of connections and never accept them (they would hang). It only checks at
 * start that the address is free (bind without SO_REUSEPORT, then close), picks a
 * port for "host:0", and passes PORT and HOST to the workers.
 *
 * Linux resets the connections still queued on a listener that closes, unless
 * net.ipv4.tcp_migrate_req = 1 (Linux ≥ 5.14) moves them to another listener of
 * the group: hr reads the sysctl at start and warns when it is off.
 */
import { readFileSync } from "node:fs";
import type { ListenConfig } from "../config/schema.ts";
import type { Logger } from "../log/logger.ts";
import { formatListenAddress, parseListenAddress, type ListenAddress } from "../sockets/address.ts";
import type { SocketSet } from "../sockets/handoff.ts";
import { bindListener } from "../sockets/listen.ts";
import { sysctl } from "../platform/proc.ts";
import { toArgv } from "../process/command.ts";
import { bunShimWiring, installBunShim } from "../shims/bun-shim.ts";
import type { Opener } from "./types.ts";

export const TCP_MIGRATE_REQ = "/proc/sys/net/ipv4/tcp_migrate_req";

export type MigrateReq = "on" | "off" | "unsupported";

/** Reads net.ipv4.tcp_migrate_req (of hr's network namespace, through platform/proc.ts), or the file at `path` instead. */
export function readTcpMigrateReq(path?: string): MigrateReq {
  let text: string | undefined;
  if (path === undefined) text = sysctl("net.ipv4.tcp_migrate_req");
  else {
    try {
      text = readFileSync(path, "utf8").trim();
    } catch {
      /* unsupported */
    }
  }
  return text === undefined ? "unsupported" : text === "0" ? "off" : "on";
}

/** The warning hr logs at start, or undefined when connections migrate. */
export function migrateReqWarning(state: MigrateReq): string | undefined {
  if (state === "on") return undefined;
  const why =
    "when an old worker closes its listener, Linux resets the connections still waiting in that listener's queue " +
    "(measured: 160–200 failed requests per 10 reloads under load)";
  if (state === "off") {
    return (
      `serve.strategy = "reuseport" and net.ipv4.tcp_migrate_req = 0: ${why}. ` +
      "Turn migration on: `sysctl -w net.ipv4.tcp_migrate_req=1` (as root), and persist it with " +
      "`echo net.ipv4.tcp_migrate_req=1 > /etc/sysctl.d/90-hr-reuseport.conf`; or use the default strategy \"fd\". See docs/serve.md#reuseport"
    );
  }
  return `serve.strategy = "reuseport": ${TCP_MIGRATE_REQ} not found (Linux < 5.14 or not Linux): ${why}; there is no way to migrate them. Prefer serve.strategy = "fd". See docs/serve.md#reuseport`;
}

export interface ReuseportTarget {
  name: string;
  address: Extract<ListenAddress, { kind: "tcp" }>;
  port: number;
}

/**
 * Resolves the [[listen]] entry the workers bind. Checks the address is free now
 * (a clear error naming the holder otherwise) and turns port 0 into a concrete port.
 * Throws with a config-style message for unix addresses or no entry at all.
 */
export function resolveReuseportTarget(listen: readonly ListenConfig[], root: string): { target: ReuseportTarget; ignored: string[] } {
  if (listen.length === 0) {
    throw new Error('serve.strategy = "reuseport" needs a [[listen]] entry: the address (host:port) every worker binds with SO_REUSEPORT');
  }
  const first = listen[0]!;
  const address = parseListenAddress(first.address, { baseDir: root, field: "listen[0].address" });
  if (address.kind !== "tcp") {
    throw new Error(`serve.strategy = "reuseport": listen ${JSON.stringify(first.name)} is ${formatListenAddress(address)}; SO_REUSEPORT needs a TCP address (use strategy "fd" for unix sockets)`);
  }
  // Bind once without SO_REUSEPORT and close at once: proves the address is free
  // (EADDRINUSE names the holder) and picks a port for ":0". Never kept open.
  const probe = bindListener({ name: first.name, address, backlog: 1 });
  const port = probe.port ?? address.port;
  probe.close();
  return { target: { name: first.name, address, port }, ignored: listen.slice(1).map((l) => l.name) };
}

/** A SocketSet with no sockets: the workers bind PORT/HOST themselves. */
export function reuseportSockets(target: ReuseportTarget): SocketSet {
  const host = target.address.host;
  return {
    listeners: [],
    fds: [],
    inherited: false,
    appEnv: () => ({ PORT: String(target.port), HOST: host, HR_SERVE_STRATEGY: "reuseport" }),
    wrapArgv: (argv) => argv,
    describe: () => `${target.name}=${formatListenAddress(target.address, target.port)}`,
    close() {},
  };
}

/** Start-up: resolve the target, warn about tcp_migrate_req, log what the workers must do. */
export function openReuseport(listen: readonly ListenConfig[], root: string, env: Record<string, string | undefined>, log: Logger, migrateReqPath?: string): SocketSet {
  const { target, ignored } = resolveReuseportTarget(listen, root);
  if (env.LISTEN_FDS) log.warn('serve.strategy = "reuseport": the sockets passed in LISTEN_FDS (systemd) are not used; workers bind the address themselves');
  if (ignored.length) log.warn(`serve.strategy = "reuseport": only the first [[listen]] entry is passed to the workers (PORT/HOST); ignoring ${ignored.join(", ")}`);
  const sockets = reuseportSockets(target);
  log.info(`reuseport: workers bind ${sockets.describe()} themselves with SO_REUSEPORT (PORT=${target.port} HOST=${target.address.host}); hr holds no listener`, {
    event: "listen",
    strategy: "reuseport",
    sockets: sockets.describe(),
  });
  const state = readTcpMigrateReq(migrateReqPath);
  const warning = migrateReqWarning(state);
  if (warning) log.warn(warning, { event: "tcp_migrate_req", value: state });
  else log.debug("net.ipv4.tcp_migrate_req = 1: connections queued on a closing listener move to the new generation");
  return sockets;
}

/** The reuseport strategy (serve only): PORT/HOST for every worker, the Bun shim, nothing held. */
export const openReuseportStrategy: Opener = async ({ config, root, env, log }) => {
  const sockets = openReuseport(config.listen, root, env, log);
  let shimPath: string | undefined;
  return {
    name: "reuseport",
    sockets,
    install(workDir) {
      shimPath = installBunShim(workDir);
    },
    wire(cfg) {
      const shim = bunShimWiring(shimPath, cfg, toArgv(cfg.run.cmd), env);
      return { env: { ...sockets.appEnv(), ...shim.env }, fds: [], argv: (a) => sockets.wrapArgv(shim.argv(a)) };
    },
    close: () => sockets.close(),
  };
};
