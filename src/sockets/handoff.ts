/**
 * The sockets hr holds for an app: bound once from [[listen]] (or adopted from
 * systemd's LISTEN_FDS, matched by name), passed to every app process at fd 3, 4, …
 * Shared by `hr dev` (fd strategy) and `hr serve`.
 */
import { parseListenAddress } from "./address.ts";
import { bindListener, listenerFromFd, type Listener } from "./listen.ts";
import { adoptSystemdListeners, listenEnv, withListenPid } from "./systemd.ts";

/** A [[listen]] entry as the socket code needs it (config/schema.ts's ListenConfig is one). */
export interface ListenSpec {
  name: string;
  address: string;
  backlog: number;
  /** unix sockets: the file mode, octal ("0660"). */
  mode?: string;
}

export interface SocketSet {
  readonly listeners: readonly Listener[];
  /** hr-side fds, in the order the app receives them (fd 3, 4, …). */
  readonly fds: number[];
  /** True when the sockets came from systemd (or another socket activator). */
  readonly inherited: boolean;
  /** LISTEN_FDS, LISTEN_FDNAMES and PORT (the first TCP socket's port) for an app. */
  appEnv(): Record<string, string>;
  /** argv that sets LISTEN_PID to the app's own pid before exec (systemd's convention). */
  wrapArgv(argv: string[]): string[];
  /** "http=127.0.0.1:8080, admin=unix:/run/a.sock" */
  describe(): string;
  close(): void;
}

/**
 * Binds every [[listen]] entry, or adopts inherited sockets: an inherited socket
 * named like an entry replaces it; with no [[listen]] at all, every inherited
 * socket is used as is. Throws ListenError / ListenAddressError with a clear message.
 */
export function openSockets(listen: readonly ListenSpec[], root: string, env: Record<string, string | undefined> = process.env): SocketSet {
  const inherited = adoptSystemdListeners(env);
  const byName = new Map(inherited.map((fd) => [fd.name, fd]));
  const listeners: Listener[] = [];
  try {
    if (listen.length === 0) {
      for (const fd of inherited) listeners.push(listenerFromFd(fd.fd, fd.name));
    }
    listen.forEach((entry, i) => {
      const adopted = byName.get(entry.name) ?? (inherited.length === 1 && listen.length === 1 ? inherited[0] : undefined);
      if (adopted) {
        listeners.push(listenerFromFd(adopted.fd, entry.name));
        return;
      }
      const address = parseListenAddress(entry.address, { baseDir: root, field: `listen[${i}].address` });
      listeners.push(bindListener({ name: entry.name, address, backlog: entry.backlog, mode: entry.mode ? parseInt(entry.mode, 8) : undefined }));
    });
  } catch (error) {
    for (const l of listeners) l.close();
    throw error;
  }
  return {
    listeners,
    fds: listeners.map((l) => l.fd),
    inherited: inherited.length > 0,
    appEnv() {
      if (listeners.length === 0) return {};
      const port = listeners.find((l) => l.port !== undefined)?.port;
      return { ...listenEnv(listeners.map((l) => l.name)), ...(port !== undefined ? { PORT: String(port) } : {}) };
    },
    wrapArgv(argv) {
      return listeners.length ? withListenPid(argv) : argv;
    },
    describe() {
      return listeners.map((l) => `${l.name}=${l.address.kind === "unix" ? `unix:${l.address.path}` : `${l.address.family === 6 ? `[${l.address.host}]` : l.address.host}:${l.port}`}`).join(", ");
    },
    close() {
      for (const l of listeners) l.close();
    },
  };
}
