/**
 * One app start under bind capture, for `hr dev` and `hr serve` alike: which of
 * hr's sockets the app's binds get, the launcher argv and fds, the app's
 * environment, and the messages hr prints when the app and hr disagree.
 *
 *  - shared (strategy fd): a bind of a [[listen]] port gets hr's held listener.
 *  - private (strategy proxy): a bind of the first [[listen]] TCP port gets a
 *    fresh socket bound to 127.0.0.1:<private port>, which hr's proxy forwards to.
 *
 * The app gets no LISTEN_FDS and no fd 3 (it is not meant to adopt anything), and
 * PORT is the [[listen]] port it binds — so an app that reads PORT is captured too.
 */
import type { Listener } from "../sockets/listen.ts";
import { AF_INET, libc, SOCK_CLOEXEC, SOCK_STREAM, SO_REUSEADDR, SOL_SOCKET, sockaddrIn } from "../platform/libc.ts";
import { Capture, captureUnavailable, type CaptureEvents, type PortTarget } from "./index.ts";

/** The message when run.capture = true cannot work here (hr stops; nothing degrades silently). */
export function unavailableMessage(reason: string, command: "dev" | "serve"): string {
  const strategy = command === "dev" ? "dev.strategy" : "serve.strategy";
  return (
    `run.capture = true, but ${reason}. hr cannot hand the app its socket here. Alternatives: ` +
    `make the app take hr's socket at fd 3 (LISTEN_FDS; see docs) and set run.capture = false, ` +
    `or let the app bind $PORT behind hr's proxy (${strategy} = "proxy", run.capture = false)`
  );
}

/** Capture for this process, or an Error carrying unavailableMessage(). */
export function openCapture(command: "dev" | "serve"): Capture {
  const reason = captureUnavailable();
  if (reason) throw new Error(unavailableMessage(reason, command));
  return Capture.get();
}

/** The [[listen]] TCP ports an app may bind, each with the held listener (strategy fd). */
export function sharedTargets(listeners: readonly Listener[]): PortTarget[] {
  return listeners.flatMap((l) =>
    l.port !== undefined && l.address.kind === "tcp" ? [{ port: l.port, fd: l.fd, shared: true, address: `${l.address.family === 6 ? `[${l.address.host}]` : l.address.host}:${l.port}` }] : [],
  );
}

/** The first [[listen]] TCP port (what PORT says under capture). */
export function publicPort(listeners: readonly Listener[]): number | undefined {
  return listeners.find((l) => l.port !== undefined && l.address.kind === "tcp")?.port;
}

/** A TCP socket bound (not listening) to 127.0.0.1:port (0: any); the app's listen() makes it serve. */
export function privateSocket(port: number): { fd: number; port: number } {
  const fd = libc.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    libc.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    libc.bind(fd, sockaddrIn(new Uint8Array([127, 0, 0, 1]), port));
    const name = libc.getsockname(fd);
    return { fd, port: name.family === "inet" ? name.port : port };
  } catch (error) {
    libc.close(fd);
    throw error;
  }
}

export interface CaptureStartOptions {
  capture: Capture;
  argv: string[];
  cwd: string;
  env: Record<string, string | undefined>;
  /** hr's sockets: shared targets (fd), or where the private socket's port comes from (proxy). */
  listeners: readonly Listener[];
  /** proxy: the private 127.0.0.1 port this start gets (0: any free port). */
  privatePort?: number;
  /** fds the child receives at 3, 4, … before the launcher's socket. */
  extraFds?: number[];
  events: CaptureEvents;
}

export interface CaptureStart {
  /** Spawn these. */
  readonly argv: string[];
  readonly extraFds: number[];
  readonly env: Record<string, string | undefined>;
  /** proxy: where the app will listen (hr forwards there). */
  readonly privatePort?: number;
  /** Right after the spawn attempt. */
  spawned(): void;
  /** Once the app's tree is gone (or the spawn failed): closes the private socket, forgets the app. */
  dispose(): void;
}

/**
 * Prepares one captured start. Throws (with a user-facing message) when the
 * program cannot be found or the private socket cannot be bound.
 */
export function captureStart(opts: CaptureStartOptions): CaptureStart {
  const port = publicPort(opts.listeners);
  let targets: PortTarget[];
  let priv: { fd: number; port: number } | undefined;
  if (opts.privatePort !== undefined) {
    if (port === undefined) throw new Error("run.capture with the proxy needs a TCP [[listen]] address (the port the app binds)");
    priv = privateSocket(opts.privatePort);
    targets = [{ port, fd: priv.fd, shared: false, address: `127.0.0.1:${priv.port}` }];
  } else {
    targets = sharedTargets(opts.listeners);
  }
  const extra = opts.extraFds ?? [];
  const env = captureEnv(opts.env, opts.listeners);
  let launch;
  try {
    launch = opts.capture.prepare({ argv: opts.argv, cwd: opts.cwd, path: env.PATH ?? "", fdIndex: 3 + extra.length, mode: "capture", targets, events: opts.events });
  } catch (error) {
    if (priv) libc.close(priv.fd);
    throw error;
  }
  let closed = false;
  return {
    argv: launch.argv,
    extraFds: [...extra, launch.fd],
    env,
    privatePort: priv?.port,
    spawned: () => launch.spawned(),
    dispose: () => {
      launch.dispose();
      if (priv && !closed) libc.close(priv.fd);
      closed = true;
    },
  };
}

/**
 * Observe mode (run.capture = false): the app runs under the launcher but nothing is
 * replaced; a bind of a port hr holds is reported (`conflict`) the moment it happens,
 * before the app dies of EADDRINUSE. argv/env/fds are the strategy's own, plus the launcher's socket.
 */
export function observeStart(opts: { capture: Capture; argv: string[]; cwd: string; env: Record<string, string | undefined>; listeners: readonly Listener[]; extraFds: number[]; events: CaptureEvents }): CaptureStart {
  const launch = opts.capture.prepare({
    argv: opts.argv,
    cwd: opts.cwd,
    path: opts.env.PATH ?? "",
    fdIndex: 3 + opts.extraFds.length,
    mode: "observe",
    targets: sharedTargets(opts.listeners),
    events: opts.events,
  });
  return { argv: launch.argv, extraFds: [...opts.extraFds, launch.fd], env: opts.env, spawned: () => launch.spawned(), dispose: () => launch.dispose() };
}

/** The conflict message: the app binds a port hr holds itself (without capture). */
export function conflictMessage(who: string, e: { port: number; host: string }, holds: string, strategy: "fd" | "proxy"): string {
  const how = strategy === "proxy" ? "hr's proxy accepts there; the app must bind $PORT, its private port" : "dev.strategy = \"fd\" passes it at fd 3 (LISTEN_FDS) for the app to adopt";
  return `${who} binds ${e.host}:${e.port} itself, but hr holds that port (${holds}; ${how}): the app gets EADDRINUSE. Fix without code changes: set run.capture = true (or pass --capture), and hr hands the app its socket when it binds`;
}

/** A captured app's environment: no LISTEN_* (nothing to adopt), PORT = the [[listen]] port it binds. */
export function captureEnv(base: Record<string, string | undefined>, listeners: readonly Listener[]): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = { ...base, LISTEN_FDS: undefined, LISTEN_FDNAMES: undefined, LISTEN_PID: undefined };
  const port = publicPort(listeners);
  if (port !== undefined) env.PORT = String(port);
  return env;
}

/** What to say when the app listens on a TCP port hr does not hold. `holds`: what hr holds ("http=127.0.0.1:8080"). */
export function otherListenMessage(who: string, e: { port: number; host: string }, holds: string, captured: boolean): string {
  if (captured) return `${who} also listens on ${e.host}:${e.port} itself (not a [[listen]] port: it keeps it)`;
  return `${who} listens on ${e.host}:${e.port}, which hr does not hold (hr holds ${holds || "no TCP port"}; requests there wait for the app). If ${e.port} is the app's HTTP port, set its [[listen]] address = ":${e.port}"`;
}
