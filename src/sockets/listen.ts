/**
 * Bind listening sockets once, in the master. The master NEVER accepts: it only
 * holds the fd and passes it to each worker generation through a Bun.spawn stdio
 * slot (fd 3, 4, ...). The kernel queue keeps accepting while workers change.
 *
 * Fds are created with FD_CLOEXEC so they don't leak into unrelated commands
 * (build steps); Bun.spawn's stdio slot dup2()s them into the child, which
 * clears the flag on the copy. Listeners are left blocking (O_NONBLOCK is
 * shared with every child and some runtimes expect a blocking fd).
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from "node:fs";
import { dirname } from "node:path";
import {
  AF_INET,
  AF_INET6,
  AF_UNIX,
  Errno,
  IPPROTO_IPV6,
  IPV6_V6ONLY,
  LibcError,
  SO_ACCEPTCONN,
  SO_REUSEADDR,
  SO_REUSEPORT,
  SOCK_CLOEXEC,
  SOCK_STREAM,
  SOL_SOCKET,
  libc,
  sockaddrIn,
  sockaddrIn6,
  sockaddrUn,
  type SockName,
} from "../platform/libc.ts";
import { cmdline, formatHostPort, pidsHoldingInode, tcpSockets, unixSockets } from "../platform/proc.ts";
import { formatListenAddress, type ListenAddress } from "./address.ts";

export interface ListenSpec {
  name: string;
  address: ListenAddress;
  /** listen(2) backlog; default 4096 (the kernel clamps to net.core.somaxconn). */
  backlog?: number;
  /** Unix sockets: permission bits applied to the socket file (e.g. 0o600). Default: umask. */
  mode?: number;
  /** TCP: set SO_REUSEPORT as well (off by default; fd handoff doesn't need it). */
  reusePort?: boolean;
}

export interface Listener {
  fd: number;
  name: string;
  address: ListenAddress;
  /** Actual port (TCP), after port 0. */
  port?: number;
  /** Closes the master's copy (children keep theirs); removes our unix socket file. */
  close(): void;
}

export class ListenError extends Error {
  readonly code: string;
  readonly holderPid?: number;
  constructor(message: string, code: string, holderPid?: number) {
    super(message);
    this.name = "ListenError";
    this.code = code;
    this.holderPid = holderPid;
  }
}

const DEFAULT_BACKLOG = 4096;

export function bindListener(spec: ListenSpec): Listener {
  return spec.address.kind === "unix" ? bindUnix(spec) : bindTcp(spec);
}

function bindTcp(spec: ListenSpec): Listener {
  const a = spec.address;
  if (a.kind !== "tcp") throw new Error("unreachable");
  const fd = libc.socket(a.family === 6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    libc.setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (spec.reusePort) libc.setsockoptInt(fd, SOL_SOCKET, SO_REUSEPORT, 1);
    if (a.family === 6) libc.setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    try {
      libc.bind(fd, a.family === 6 ? sockaddrIn6(a.ip, a.port) : sockaddrIn(a.ip, a.port));
    } catch (e) {
      throw translateBindError(spec, e);
    }
    libc.listen(fd, spec.backlog ?? DEFAULT_BACKLOG);
    const sn = libc.getsockname(fd);
    const port = sn.family === "inet" || sn.family === "inet6" ? sn.port : a.port;
    let closed = false;
    return {
      fd,
      name: spec.name,
      address: a,
      port,
      close() {
        if (closed) return;
        closed = true;
        safeClose(fd);
      },
    };
  } catch (e) {
    safeClose(fd);
    throw e;
  }
}

function bindUnix(spec: ListenSpec): Listener {
  const a = spec.address;
  if (a.kind !== "unix") throw new Error("unreachable");
  const abstract = a.path.startsWith("@");
  const sa = sockaddrUn(a.path);
  if (!abstract) {
    mkdirSync(dirname(a.path), { recursive: true });
    removeStaleUnixSocket(spec);
  }
  const fd = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    // Narrow the umask around bind so the file never exists with looser permissions.
    const oldMask = spec.mode !== undefined && !abstract ? process.umask(~spec.mode & 0o777) : undefined;
    try {
      libc.bind(fd, sa);
    } catch (e) {
      throw translateBindError(spec, e);
    } finally {
      if (oldMask !== undefined) process.umask(oldMask);
    }
    let ino: number | undefined;
    if (!abstract) {
      if (spec.mode !== undefined) chmodSync(a.path, spec.mode);
      ino = lstatSync(a.path).ino;
    }
    libc.listen(fd, spec.backlog ?? DEFAULT_BACKLOG);
    let closed = false;
    return {
      fd,
      name: spec.name,
      address: a,
      close() {
        if (closed) return;
        closed = true;
        safeClose(fd);
        if (ino !== undefined) {
          // Only remove the file if it is still ours (a newer master may have replaced it).
          try {
            if (lstatSync(a.path).ino === ino) unlinkSync(a.path);
          } catch {
            /* already gone */
          }
        }
      },
    };
  } catch (e) {
    safeClose(fd);
    throw e;
  }
}

/** Remove an existing socket file only if nothing accepts on it; throw if it is live or not a socket. */
function removeStaleUnixSocket(spec: ListenSpec): void {
  const a = spec.address;
  if (a.kind !== "unix") return;
  let st;
  try {
    st = lstatSync(a.path);
  } catch {
    return; // doesn't exist
  }
  if (!st.isSocket()) {
    throw new ListenError(
      `listen ${JSON.stringify(spec.name)}: ${a.path} exists and is not a socket; remove it or choose another path`,
      "EEXIST",
    );
  }
  const probe = libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC);
  try {
    libc.connect(probe, sockaddrUn(a.path));
  } catch (e) {
    if (e instanceof LibcError && (e.errno === Errno.ECONNREFUSED || e.errno === Errno.ENOENT)) {
      try {
        unlinkSync(a.path);
      } catch {
        /* raced with someone else */
      }
      return;
    }
    throw e;
  } finally {
    safeClose(probe);
  }
  throw inUseError(spec, findUnixHolder(a.path));
}

function safeClose(fd: number): void {
  try {
    libc.close(fd);
  } catch {
    /* EBADF: already closed */
  }
}

/* ---------------------------------------------------------------- errors */

interface Holder {
  pid: number;
  cmd?: string;
}

function translateBindError(spec: ListenSpec, e: unknown): Error {
  if (!(e instanceof LibcError)) return e as Error;
  const where = formatListenAddress(spec.address);
  const who = `listen ${JSON.stringify(spec.name)}`;
  switch (e.errno) {
    case Errno.EADDRINUSE:
      return inUseError(spec, spec.address.kind === "tcp" ? findTcpHolder(spec.address) : findUnixHolder(spec.address.path));
    case Errno.EACCES:
      if (spec.address.kind === "tcp" && spec.address.port < 1024) {
        return new ListenError(
          `${who}: permission denied for ${where}; ports below 1024 need root or CAP_NET_BIND_SERVICE`,
          e.code,
        );
      }
      return new ListenError(`${who}: permission denied for ${where}`, e.code);
    case Errno.EADDRNOTAVAIL:
      return new ListenError(`${who}: ${where} is not an address of this machine`, e.code);
    default:
      return new ListenError(`${who}: cannot bind ${where}: ${e.message}`, e.code);
  }
}

function inUseError(spec: ListenSpec, holder: Holder | undefined): ListenError {
  const where = formatListenAddress(spec.address);
  let by: string;
  if (!holder) by = " (the holder was not found: another user or network namespace?)";
  else if (holder.pid === process.pid) by = ` by this hr process (pid ${holder.pid}; listed twice?)`;
  else by = ` by pid ${holder.pid}${holder.cmd ? ` (${truncate(shortCmd(holder.cmd), 200)})` : ""}`;
  return new ListenError(
    `listen ${JSON.stringify(spec.name)}: ${where} is already in use${by}; stop it or choose another address`,
    "EADDRINUSE",
    holder?.pid,
  );
}

/** "/usr/bin/node /srv/app/server.js" -> "node /srv/app/server.js" */
function shortCmd(cmd: string): string {
  const sp = cmd.indexOf(" ");
  const argv0 = sp < 0 ? cmd : cmd.slice(0, sp);
  return argv0.slice(argv0.lastIndexOf("/") + 1) + (sp < 0 ? "" : cmd.slice(sp));
}

function truncate(s: string, n: number): string {
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}

function holderOfInodes(inodes: number[]): Holder | undefined {
  for (const inode of inodes) {
    const pids = pidsHoldingInode(inode).sort((x, y) => x - y);
    const pid = pids[0];
    if (pid !== undefined) return { pid, cmd: cmdline(pid) };
  }
  return undefined;
}

function findTcpHolder(a: Extract<ListenAddress, { kind: "tcp" }>): Holder | undefined {
  const want = formatHostPort(a.ip, a.port);
  const wild = a.ip.every((b) => b === 0);
  const score = (s: ReturnType<typeof tcpSockets>[number]): number => {
    if (s.port !== a.port || !s.inode) return -1;
    let n = s.listening ? 10 : 0;
    if (s.address === want) n += 5;
    else if (s.ip?.every((b) => b === 0) || wild) n += 3;
    else if (s.family === "inet6" && a.family === 4 && s.ip && isV4Mapped(s.ip, a.ip)) n += 4;
    else return -1;
    return n;
  };
  const candidates = tcpSockets()
    .map((s) => ({ s, n: score(s) }))
    .filter((c) => c.n >= 0)
    .sort((x, y) => y.n - x.n)
    .map((c) => c.s.inode);
  return holderOfInodes(candidates);
}

function isV4Mapped(v6: Uint8Array, v4: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (v6[i] !== 0) return false;
  return v6[10] === 0xff && v6[11] === 0xff && v6.subarray(12).every((b, i) => b === v4[i]);
}

function findUnixHolder(path: string): Holder | undefined {
  const want = `unix:${path}`;
  const inodes = unixSockets()
    .filter((s) => s.address === want && s.listening)
    .map((s) => s.inode);
  return holderOfInodes(inodes);
}

/* ---------------------------------------------------------------- describe / adopt */

export function sockNameToString(sn: SockName): string {
  switch (sn.family) {
    case "inet":
    case "inet6":
      return formatHostPort(sn.addr, sn.port);
    case "unix":
      return sn.path ? `unix:${sn.path}` : "unix:(unnamed)";
    default:
      return `family ${sn.code}`;
  }
}

/** @internal tests and fixtures: "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock" (via getsockname). */
export function describeListener(fd: number): string {
  try {
    return sockNameToString(libc.getsockname(fd));
  } catch (e) {
    return `fd ${fd} (${e instanceof LibcError ? e.code : String(e)})`;
  }
}

/**
 * Wrap an already-listening fd (e.g. from systemd) as a Listener.
 * Throws if it isn't a listening stream socket.
 */
export function listenerFromFd(fd: number, name: string): Listener {
  let sn: SockName;
  try {
    sn = libc.getsockname(fd);
    if (libc.getsockoptInt(fd, SOL_SOCKET, SO_ACCEPTCONN) !== 1) throw new Error("not listening");
  } catch (e) {
    const why = e instanceof LibcError ? e.code : (e as Error).message;
    throw new ListenError(`listen ${JSON.stringify(name)}: inherited fd ${fd} is not a listening socket (${why})`, "ENOTSOCK");
  }
  let address: ListenAddress;
  if (sn.family === "inet") address = { kind: "tcp", family: 4, host: sockNameToString(sn).replace(/:\d+$/, ""), ip: sn.addr, port: sn.port };
  else if (sn.family === "inet6") {
    address = { kind: "tcp", family: 6, host: sockNameToString(sn).replace(/^\[(.*)\]:\d+$/, "$1"), ip: sn.addr, port: sn.port };
  } else if (sn.family === "unix") address = { kind: "unix", path: sn.path };
  else throw new ListenError(`listen ${JSON.stringify(name)}: inherited fd ${fd} has unsupported address family ${sn.code}`, "EAFNOSUPPORT");
  let closed = false;
  return {
    fd,
    name,
    address,
    port: address.kind === "tcp" ? address.port : undefined,
    close() {
      if (closed) return;
      closed = true;
      safeClose(fd);
    },
  };
}
