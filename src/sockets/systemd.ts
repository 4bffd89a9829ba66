/**
 * systemd socket-activation protocol, both directions:
 *  - adopt: hr started by systemd (or systemfd / watchexec --socket) receives
 *    LISTEN_FDS fds at 3.. and hands them on to its workers;
 *  - export: hr passes its listeners to a worker as fds 3.. with LISTEN_FDS /
 *    LISTEN_FDNAMES, and LISTEN_PID set to the worker's own pid by a tiny sh shim
 *    (the worker's pid isn't known before spawn).
 * Plus sdNotify() for hr itself running as a Type=notify service.
 */
import { AF_UNIX, SOCK_CLOEXEC, SOCK_DGRAM, fdIsOpen, libc, setCloexec, sockaddrUn } from "../platform/libc.ts";

export const SD_LISTEN_FDS_START = 3;

export interface InheritedFd {
  fd: number;
  name: string;
}

type Env = Record<string, string | undefined>;

/**
 * Adopt fds passed with LISTEN_FDS. Like sd_listen_fds(3): if LISTEN_PID is set it
 * must equal `pid` (else the fds were meant for another process: return []).
 * Unlike systemd, a missing LISTEN_PID is accepted, since watchexec --socket
 * doesn't set it. On adoption the LISTEN_* variables are removed from `env`
 * (so they don't leak to children) and FD_CLOEXEC is set on the fds.
 */
export function adoptSystemdListeners(env: Env = process.env, pid: number = process.pid): InheritedFd[] {
  const fdsRaw = env.LISTEN_FDS;
  if (fdsRaw === undefined) return [];
  const lp = env.LISTEN_PID;
  if (lp !== undefined && lp !== "" && Number(lp) !== pid) return [];
  const n = /^\d+$/.test(fdsRaw) ? Number(fdsRaw) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 1024) {
    throw new Error(`LISTEN_FDS=${JSON.stringify(fdsRaw)} is not a number of file descriptors`);
  }
  const names = env.LISTEN_FDNAMES ? env.LISTEN_FDNAMES.split(":") : [];
  delete env.LISTEN_PID;
  delete env.LISTEN_FDS;
  delete env.LISTEN_FDNAMES;
  const out: InheritedFd[] = [];
  for (let i = 0; i < n; i++) {
    const fd = SD_LISTEN_FDS_START + i;
    if (!fdIsOpen(fd)) throw new Error(`LISTEN_FDS=${n} but fd ${fd} is not open`);
    setCloexec(fd, true);
    out.push({ fd, name: names[i] || "unknown" });
  }
  return out;
}

/** Environment for a child that receives `names.length` sockets at fds 3.. (add LISTEN_PID via withListenPid). */
export function listenEnv(names: string[]): Record<string, string> {
  for (const n of names) {
    if (n.includes(":") || n.length > 255) throw new Error(`socket name ${JSON.stringify(n)}: names can't contain ":" or exceed 255 chars`);
  }
  return { LISTEN_FDS: String(names.length), LISTEN_FDNAMES: names.join(":") };
}

/** argv wrapper that sets LISTEN_PID to the exec'd program's pid ($$ survives exec). */
export function withListenPid(argv: string[]): string[] {
  return ["sh", "-c", 'LISTEN_PID=$$; export LISTEN_PID; exec "$@"', "hr-shim", ...argv];
}

/**
 * Send one sd_notify datagram (e.g. "READY=1\nSTATUS=serving") to $NOTIFY_SOCKET
 * (a path, or "@name" for an abstract socket). Returns false if NOTIFY_SOCKET is
 * unset; throws if the send fails.
 */
export function sdNotify(message: string, env: Env = process.env): boolean {
  const target = env.NOTIFY_SOCKET;
  if (!target) return false;
  if (!target.startsWith("/") && !target.startsWith("@")) {
    throw new Error(`NOTIFY_SOCKET=${JSON.stringify(target)}: expected an absolute path or "@abstract"`);
  }
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC);
  try {
    libc.sendto(fd, new TextEncoder().encode(message), sockaddrUn(target));
  } finally {
    libc.close(fd);
  }
  return true;
}
