/**
 * strategy "fd" (the default with [[listen]]): hr binds [[listen]] once (or adopts
 * systemd's sockets) and passes them at fd 3, 4, … with LISTEN_FDS/LISTEN_FDNAMES and
 * LISTEN_PID (systemd's convention; sockets/handoff.ts). The kernel queue survives
 * restarts and reloads, so connections wait instead of being refused.
 *
 * run.capture: the app binds its port itself and gets the held socket then (capture.ts).
 *
 * serve: Bun workers get the Bun.serve preload shim (shims/bun-shim.ts), and after
 * each generation is ready the socket audit checks no worker ignored fd 3 and bound
 * a port of its own (socket-audit.ts).
 */
import { toArgv } from "../process/command.ts";
import { bunShimWiring, installBunShim } from "../shims/bun-shim.ts";
import { openSockets, type SocketSet } from "../sockets/handoff.ts";
import type { Logger } from "../log/logger.ts";
import { auditGeneration, inodesAtFds } from "./socket-audit.ts";
import { captureFor } from "./capture.ts";
import type { Mode, Opener, Strategy } from "./types.ts";

export const openFd: Opener = async ({ mode, config, root, env, log }) => fdStrategy(openSockets(config.listen, root, env), mode, mode === "serve" ? { log, env } : undefined);

/** The fd strategy over sockets already open. `serve`: with the Bun shim and the socket audit. */
export function fdStrategy(sockets: SocketSet, mode: Mode = "serve", serve?: { log: Logger; env: Record<string, string | undefined> }): Strategy {
  const hrInodes = serve ? inodesAtFds(process.pid, sockets.fds) : new Set<number>();
  let shimPath: string | undefined;
  return {
    name: "fd",
    sockets,
    install(workDir) {
      if (serve) shimPath = installBunShim(workDir);
    },
    wire(cfg) {
      // run.capture: the app binds its port and gets the socket then; no LISTEN_* wrapper, no shim.
      if (cfg.run.capture) return { env: sockets.appEnv(), fds: sockets.fds, argv: (a) => sockets.wrapArgv(a), capture: captureFor(mode) };
      const shim = bunShimWiring(shimPath, cfg, toArgv(cfg.run.cmd), serve?.env ?? {});
      return { env: { ...sockets.appEnv(), ...shim.env }, fds: sockets.fds, argv: (a) => sockets.wrapArgv(shim.argv(a)) };
    },
    audit: serve ? (gen, workers) => auditGeneration(`gen${gen}`, workers, hrInodes, serve.log) : undefined,
    close: () => sockets.close(),
  };
}
