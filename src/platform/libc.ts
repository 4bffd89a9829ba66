/**
 * The only module that touches libc (bun:ffi). Linux x86_64 / arm64 only.
 *
 * Everything here is synchronous and thin: each wrapper calls the libc
 * function, and on -1 reads errno immediately and throws a LibcError
 * (code = "EADDRINUSE" etc., errno = number). Higher layers translate
 * these into user-facing messages.
 *
 * Constants are the Linux generic values, identical on x86_64 and arm64.
 */
import { dlopen, FFIType, ptr as ptrOf, read, type Pointer } from "bun:ffi";

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const SO_ACCEPTCONN = 30;
export const IPPROTO_IPV6 = 41;
export const IPV6_V6ONLY = 26;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const FD_CLOEXEC = 1;
export const O_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const SUN_PATH_MAX = 108;
export const CLOCK_MONOTONIC = 1;

/** errno numbers we branch on (Linux generic). */
export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EACCES: 13,
  EPIPE: 32,
  ECONNRESET: 104,
  ENOTCONN: 107,
  ENOTSOCK: 88,
  EADDRINUSE: 98,
  EADDRNOTAVAIL: 99,
  ECONNREFUSED: 111,
} as const;

const ERRNO_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(Errno).map(([k, v]) => [v, k]),
);

export class LibcError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;
  constructor(syscall: string, errno: number, detail: string) {
    const code = ERRNO_NAMES[errno] ?? `E#${errno}`;
    super(`${syscall}: ${detail} (${code})`);
    this.name = "LibcError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

function unsupported(): never {
  throw new Error(
    `hr's socket layer needs Linux (x86_64 or arm64); this is ${process.platform}/${process.arch}`,
  );
}

const { i32, u32, u64, ptr, cstring } = FFIType;

function open() {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) unsupported();
  return dlopen("libc.so.6", {
    socket: { args: [i32, i32, i32], returns: i32 },
    bind: { args: [i32, ptr, u32], returns: i32 },
    connect: { args: [i32, ptr, u32], returns: i32 },
    listen: { args: [i32, i32], returns: i32 },
    setsockopt: { args: [i32, i32, i32, ptr, u32], returns: i32 },
    getsockopt: { args: [i32, i32, i32, ptr, ptr], returns: i32 },
    getsockname: { args: [i32, ptr, ptr], returns: i32 },
    close: { args: [i32], returns: i32 },
    // fcntl is variadic; with integer-only arguments the x86_64/aarch64 Linux ABI matches a fixed call.
    fcntl: { args: [i32, i32, i32], returns: i32 },
    recv: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
    sendto: { args: [i32, ptr, u64, i32, ptr, u32], returns: FFIType.i64 },
    send: { args: [i32, ptr, u64, i32], returns: FFIType.i64 },
    prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
    waitpid: { args: [i32, ptr, i32], returns: i32 },
    tcgetpgrp: { args: [i32], returns: i32 },
    getpgrp: { args: [], returns: i32 },
    clock_gettime: { args: [i32, ptr], returns: i32 },
    __errno_location: { args: [], returns: ptr },
    strerror: { args: [i32], returns: cstring },
  });
}

type Lib = ReturnType<typeof open>["symbols"];
let lib: Lib | undefined;
function L(): Lib {
  lib ??= open().symbols;
  return lib;
}

/** Read errno right after a failed call (no JS allocation in between). */
export function errno(): number {
  const p = L().__errno_location();
  return p === null ? 0 : read.i32(p as Pointer, 0);
}

export function strerror(e: number): string {
  return String(L().strerror(e));
}

function fail(syscall: string): never {
  const e = errno();
  throw new LibcError(syscall, e, strerror(e));
}

function check(syscall: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) fail(syscall);
  return n;
}

/* ---------------------------------------------------------------- sockaddr */

/** struct sockaddr_in (16 bytes). `addr` is 4 bytes in network order. */
export function sockaddrIn(addr: Uint8Array, port: number): Uint8Array {
  const b = new Uint8Array(16);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET, true);
  v.setUint16(2, port, false);
  b.set(addr.subarray(0, 4), 4);
  return b;
}

/** struct sockaddr_in6 (28 bytes). `addr` is 16 bytes in network order. */
export function sockaddrIn6(addr: Uint8Array, port: number, scopeId = 0): Uint8Array {
  const b = new Uint8Array(28);
  const v = new DataView(b.buffer);
  v.setUint16(0, AF_INET6, true);
  v.setUint16(2, port, false);
  v.setUint32(4, 0, false); // flowinfo
  b.set(addr.subarray(0, 16), 8);
  v.setUint32(24, scopeId, true);
  return b;
}

/**
 * struct sockaddr_un, trimmed to the used length (pass `.length` as addrlen).
 * A path starting with "@" is an abstract socket (leading NUL, no terminator).
 */
export function sockaddrUn(path: string): Uint8Array {
  const abstract = path.startsWith("@");
  const name = new TextEncoder().encode(abstract ? path.slice(1) : path);
  const max = SUN_PATH_MAX - 1; // room for the terminating NUL (path) or the leading NUL (abstract)
  if (name.length > max) {
    throw new Error(`unix socket path is ${name.length} bytes; Linux allows at most ${max}: ${path}`);
  }
  const len = 2 + (abstract ? 1 + name.length : name.length + 1);
  const b = new Uint8Array(len);
  new DataView(b.buffer).setUint16(0, AF_UNIX, true);
  b.set(name, abstract ? 3 : 2);
  return b;
}

export type SockName =
  | { family: "inet"; addr: Uint8Array; port: number }
  | { family: "inet6"; addr: Uint8Array; port: number; scopeId: number }
  | { family: "unix"; path: string }
  | { family: "other"; code: number };

/** Decode a sockaddr buffer of `len` used bytes. */
export function parseSockaddr(b: Uint8Array, len: number): SockName {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const fam = v.getUint16(0, true);
  if (fam === AF_INET) return { family: "inet", addr: b.slice(4, 8), port: v.getUint16(2, false) };
  if (fam === AF_INET6) {
    return { family: "inet6", addr: b.slice(8, 24), port: v.getUint16(2, false), scopeId: v.getUint32(24, true) };
  }
  if (fam === AF_UNIX) {
    const raw = b.subarray(2, Math.max(2, len));
    if (raw.length === 0) return { family: "unix", path: "" };
    if (raw[0] === 0) return { family: "unix", path: "@" + new TextDecoder().decode(raw.subarray(1)) };
    const nul = raw.indexOf(0);
    return { family: "unix", path: new TextDecoder().decode(nul >= 0 ? raw.subarray(0, nul) : raw) };
  }
  return { family: "other", code: fam };
}

/* ---------------------------------------------------------------- calls */

export const libc = {
  socket(domain: number, type: number, protocol = 0): number {
    return check("socket", L().socket(domain, type, protocol));
  },
  bind(fd: number, addr: Uint8Array): void {
    check("bind", L().bind(fd, addr, addr.length));
  },
  connect(fd: number, addr: Uint8Array): void {
    check("connect", L().connect(fd, addr, addr.length));
  },
  listen(fd: number, backlog: number): void {
    check("listen", L().listen(fd, backlog));
  },
  setsockoptInt(fd: number, level: number, name: number, value: number): void {
    const v = new Int32Array([value]);
    check("setsockopt", L().setsockopt(fd, level, name, v, 4));
  },
  getsockoptInt(fd: number, level: number, name: number): number {
    const v = new Int32Array(1);
    const len = new Uint32Array([4]);
    check("getsockopt", L().getsockopt(fd, level, name, v, len));
    return v[0]!;
  },
  getsockname(fd: number): SockName {
    const b = new Uint8Array(128);
    const len = new Uint32Array([b.length]);
    check("getsockname", L().getsockname(fd, b, len));
    return parseSockaddr(b, len[0]!);
  },
  close(fd: number): void {
    check("close", L().close(fd));
  },
  fcntl(fd: number, cmd: number, arg = 0): number {
    return check("fcntl", L().fcntl(fd, cmd, arg));
  },
  /** recv(2). Returns bytes received, or -1 for EAGAIN/EWOULDBLOCK (nothing queued). */
  recv(fd: number, buf: Uint8Array, flags = 0): number {
    const n = Number(L().recv(fd, buf, buf.length, flags));
    if (n < 0) {
      const e = errno();
      if (e === Errno.EAGAIN || e === Errno.EINTR) return -1;
      throw new LibcError("recv", e, strerror(e));
    }
    return n;
  },
  sendto(fd: number, data: Uint8Array, addr: Uint8Array, flags = 0): number {
    return check("sendto", L().sendto(fd, data, data.length, flags, addr, addr.length));
  },
  /** send(2) on a connected socket. Returns bytes sent, or -1 for EAGAIN/EINTR (buffer full). */
  send(fd: number, data: Uint8Array, flags = 0): number {
    const n = Number(L().send(fd, data, data.length, flags));
    if (n < 0) {
      const e = errno();
      if (e === Errno.EAGAIN || e === Errno.EINTR) return -1;
      throw new LibcError("send", e, strerror(e));
    }
    return n;
  },
};

const PR_SET_CHILD_SUBREAPER = 36;
const PR_GET_CHILD_SUBREAPER = 37;

/**
 * prctl(PR_SET_CHILD_SUBREAPER): orphaned descendants are reparented to this
 * process instead of PID 1 (or the nearest other subreaper), so they stay in
 * hr's process tree. Inherited by nobody (fork clears it).
 */
export function setChildSubreaper(on: boolean): void {
  check("prctl", L().prctl(PR_SET_CHILD_SUBREAPER, on ? 1 : 0, 0, 0, 0));
}

const WNOHANG = 1;

/**
 * Reaps `pid` if it is a zombie child of this process (waitpid(pid, WNOHANG)).
 * Only ever called for a pid hr did not spawn itself: Bun waits for its own
 * children by pid, and reaping one of them here would steal its exit status.
 * Returns true when the zombie was reaped.
 */
export function reapChild(pid: number): boolean {
  if (pid <= 0) return false;
  return Number(L().waitpid(pid, null, WNOHANG)) === pid;
}

export function isChildSubreaper(): boolean {
  const v = new Int32Array(1);
  check("prctl", L().prctl(PR_GET_CHILD_SUBREAPER, Number(ptrOf(v)), 0, 0, 0));
  return v[0] !== 0;
}

/** Set or clear FD_CLOEXEC (cleared = inherited across exec). */
export function setCloexec(fd: number, on: boolean): void {
  const cur = libc.fcntl(fd, F_GETFD);
  const next = on ? cur | FD_CLOEXEC : cur & ~FD_CLOEXEC;
  if (next !== cur) libc.fcntl(fd, F_SETFD, next);
}

/** @internal test fixtures: whether FD_CLOEXEC is set. */
export function getCloexec(fd: number): boolean {
  return (libc.fcntl(fd, F_GETFD) & FD_CLOEXEC) !== 0;
}

/** True if `fd` is an open descriptor in this process. */
export function fdIsOpen(fd: number): boolean {
  return Number(L().fcntl(fd, F_GETFD, 0)) >= 0;
}

/**
 * Is this process in the foreground process group of the terminal on `fd`?
 * false when it runs in the background of a job-control shell (reading the
 * terminal would stop it with SIGTTIN), or when `fd` is not a terminal.
 */
export function inForeground(fd: number): boolean {
  const fg = Number(L().tcgetpgrp(fd));
  return fg >= 0 && fg === Number(L().getpgrp());
}

/** clock_gettime(CLOCK_MONOTONIC) in microseconds (sd_notify's MONOTONIC_USEC). */
export function monotonicUsec(): bigint {
  const ts = new BigInt64Array(2); // struct timespec { time_t tv_sec; long tv_nsec } on 64-bit Linux
  check("clock_gettime", L().clock_gettime(CLOCK_MONOTONIC, ts));
  return ts[0]! * 1_000_000n + ts[1]! / 1000n;
}
