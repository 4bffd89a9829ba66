/**
 * seccomp user notification, fd passing and the few other syscalls bind capture
 * needs (capture/), via bun:ffi. Linux x86_64 / arm64 only; the ioctl numbers and
 * struct layouts below are those of 64-bit Linux (identical on both).
 *
 * The filter (bindListenFilter) sends bind() and listen() of the native ABI to a
 * user-notification listener and allows everything else; another ABI (x32, i386
 * compat) is allowed untouched. It is installed by the launcher on its own thread
 * right before execve(), so the app and every process it forks inherit it, while
 * the rest of the (multi-threaded) Bun launcher never runs under it.
 *
 * Not covered: kernels older than 5.9 (no SECCOMP_IOCTL_NOTIF_ADDFD) and
 * environments that forbid seccomp(2) (some container profiles): unavailable()
 * says which, and callers report it instead of running without capture.
 */
import { dlopen, FFIType, ptr } from "bun:ffi";
import { readFileSync } from "node:fs";
import { release } from "node:os";
import { errno, LibcError, strerror } from "./libc.ts";
import { fdTarget } from "./proc.ts";

const X64 = process.arch === "x64";
const NR = X64 ? { bind: 49, listen: 50, seccomp: 317 } : { bind: 200, listen: 201, seccomp: 277 };
const NR_PIDFD_OPEN = 434;
const NR_PIDFD_GETFD = 438;
const AUDIT_ARCH = X64 ? 0xc000003e : 0xc00000b7;

const PR_SET_NO_NEW_PRIVS = 38;
const SECCOMP_SET_MODE_FILTER = 1;
const SECCOMP_GET_ACTION_AVAIL = 2;
const SECCOMP_FILTER_FLAG_NEW_LISTENER = 8;
const SECCOMP_RET_ALLOW = 0x7fff0000;
const SECCOMP_RET_ERRNO = 0x00050000;
const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;
const SECCOMP_ADDFD_FLAG_SETFD = 1;
const IOCTL_NOTIF_RECV = 0xc0502100;
const IOCTL_NOTIF_SEND = 0xc0182101;
const IOCTL_NOTIF_ID_VALID = 0x40082102;
const IOCTL_NOTIF_ADDFD = 0x40182103;

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const SO_TYPE = 3;
const MSG_DONTWAIT = 0x40;
export const POLLIN = 1;
export const POLLHUP = 0x10;
export const POLLERR = 0x8;
export const POLLNVAL = 0x20;
const O_CLOEXEC = 0o2000000;
const O_NONBLOCK = 0o4000;
const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;

const { i32, i64, u64, ptr: P } = FFIType;

// The launcher needs only the first group; every symbol costs start-up time (bun:ffi
// compiles a trampoline per symbol), and the launcher's start is the cost of capture.
const LAUNCHER_SYMBOLS = {
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  syscall: { args: [i64, i64, i64, i64], returns: i64 },
  sendmsg: { args: [i32, P, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
  execv: { args: [P, P], returns: i32 },
  execve: { args: [P, P, P], returns: i32 },
  recv: { args: [i32, P, u64, i32], returns: i64 },
  signal: { args: [i32, u64], returns: u64 },
  sigprocmask: { args: [i32, P, P], returns: i32 },
  fcntl: { args: [i32, i32, i32], returns: i32 },
} as const;
const SUPERVISOR_SYMBOLS = {
  ioctl: { args: [i32, u64, P], returns: i32 },
  poll: { args: [P, u64, i32], returns: i32 },
  socketpair: { args: [i32, i32, i32, P], returns: i32 },
  recvmsg: { args: [i32, P, i32], returns: i64 },
  eventfd: { args: [i32, i32], returns: i32 },
  read: { args: [i32, P, u64], returns: i64 },
  write: { args: [i32, P, u64], returns: i64 },
  getsockopt: { args: [i32, i32, i32, P, P], returns: i32 },
  getsockname: { args: [i32, P, P], returns: i32 },
  pread: { args: [i32, P, u64, i64], returns: i64 },
  open: { args: [P, i32, i32], returns: i32 },
} as const;
const openLauncher = () => dlopen("libc.so.6", LAUNCHER_SYMBOLS).symbols;
const openSupervisor = () => dlopen("libc.so.6", SUPERVISOR_SYMBOLS).symbols;
let launcherLib: ReturnType<typeof openLauncher> | undefined;
let supervisorLib: ReturnType<typeof openSupervisor> | undefined;
/** Launcher-side calls (also used by the supervisor). */
const L = () => (launcherLib ??= openLauncher());
/** Supervisor-only calls. */
const S = () => (supervisorLib ??= openSupervisor());

function fail(call: string): never {
  const e = errno();
  throw new LibcError(call, e, strerror(e));
}
function check(call: string, r: number | bigint): number {
  const n = Number(r);
  if (n < 0) fail(call);
  return n;
}
const cstr = (s: string) => Buffer.from(`${s}\0`);

/* ------------------------------------------------------------ availability */

/**
 * Why bind capture cannot work here, or null when it can: the kernel must be
 * ≥ 5.9 (SECCOMP_IOCTL_NOTIF_ADDFD) and let this process use seccomp user
 * notification (not forbidden by a seccomp profile, LSM or container runtime).
 * Checks without installing anything.
 */
export function unavailable(): string | null {
  if (process.platform !== "linux" || (process.arch !== "x64" && process.arch !== "arm64")) {
    return `bind capture needs Linux on x86_64 or arm64; this is ${process.platform}/${process.arch}`;
  }
  const m = /^(\d+)\.(\d+)/.exec(release());
  if (m && (Number(m[1]) < 5 || (Number(m[1]) === 5 && Number(m[2]) < 9))) {
    return `bind capture needs Linux ≥ 5.9 (seccomp SECCOMP_IOCTL_NOTIF_ADDFD); this kernel is ${release()}`;
  }
  const action = new Uint32Array([SECCOMP_RET_USER_NOTIF]);
  const r = Number(L().syscall(NR.seccomp, SECCOMP_GET_ACTION_AVAIL, 0, Number(ptr(action))));
  if (r !== 0) {
    const e = errno();
    return `seccomp(2) user notification is not available to hr (${strerror(e)}): a seccomp profile or security policy forbids it`;
  }
  return null;
}

/* ------------------------------------------------------------ the filter */

/** struct sock_filter entries: (code, jt, jf, k). */
function bpf(prog: [number, number, number, number][]): Uint8Array {
  const b = new Uint8Array(prog.length * 8);
  const v = new DataView(b.buffer);
  prog.forEach(([code, jt, jf, k], i) => {
    v.setUint16(i * 8, code, true);
    v.setUint8(i * 8 + 2, jt);
    v.setUint8(i * 8 + 3, jf);
    v.setUint32(i * 8 + 4, k >>> 0, true);
  });
  return b;
}
const LD_W_ABS = 0x20;
const JEQ_K = 0x15;
const RET_K = 0x06;

/**
 * arch == native ? (nr == bind || nr == listen ? USER_NOTIF : ALLOW) : ALLOW.
 * `deny` (tests only: a container profile forbidding seccomp) makes seccomp(2) fail with EPERM instead.
 */
function filterProgram(kind: "capture" | "deny-seccomp"): Uint8Array {
  if (kind === "deny-seccomp") {
    return bpf([
      [LD_W_ABS, 0, 0, 4],
      [JEQ_K, 0, 3, AUDIT_ARCH],
      [LD_W_ABS, 0, 0, 0],
      [JEQ_K, 0, 1, NR.seccomp],
      [RET_K, 0, 0, SECCOMP_RET_ERRNO | 1],
      [RET_K, 0, 0, SECCOMP_RET_ALLOW],
    ]);
  }
  return bpf([
    [LD_W_ABS, 0, 0, 4], // seccomp_data.arch
    [JEQ_K, 0, 4, AUDIT_ARCH],
    [LD_W_ABS, 0, 0, 0], // seccomp_data.nr
    [JEQ_K, 1, 0, NR.bind],
    [JEQ_K, 0, 1, NR.listen],
    [RET_K, 0, 0, SECCOMP_RET_USER_NOTIF],
    [RET_K, 0, 0, SECCOMP_RET_ALLOW],
  ]);
}

/**
 * Sets no_new_privs and installs the filter on the calling thread. "capture"
 * returns the notification listener fd (O_CLOEXEC); "deny-seccomp" returns -1.
 * Throws LibcError when seccomp(2) is refused.
 */
export function installFilter(kind: "capture" | "deny-seccomp"): number {
  check("prctl(PR_SET_NO_NEW_PRIVS)", L().prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0));
  const code = filterProgram(kind);
  const prog = new Uint8Array(16); // struct sock_fprog { u16 len; pad; struct sock_filter *filter }
  const v = new DataView(prog.buffer);
  v.setUint16(0, code.length / 8, true);
  v.setBigUint64(8, BigInt(ptr(code)), true);
  const flags = kind === "capture" ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0;
  const fd = check("seccomp", L().syscall(NR.seccomp, SECCOMP_SET_MODE_FILTER, flags, Number(ptr(prog))));
  return kind === "capture" ? fd : -1;
}

/* ------------------------------------------------------------ exec */

/**
 * execv(path, argv) — or execve with `env` ("K=V" entries) — with a clean signal
 * state (nothing blocked, nothing ignored: Bun ignores SIGPIPE and blocks some
 * signals, and both survive execve) and the given stdio file status flags
 * restored. Returns only on failure (throws).
 */
export function execClean(path: string, argv: string[], stdioFlags: number[], env?: string[]): never {
  for (let sig = 1; sig <= 64; sig++) if (sig !== 9 && sig !== 19 && sig !== 32 && sig !== 33) L().signal(sig, 0);
  const empty = new BigUint64Array(2); // sigset_t as the kernel sees it (128 bytes in glibc; the rest is ignored)
  const full = new Uint8Array(128);
  full.set(new Uint8Array(empty.buffer));
  L().sigprocmask(2 /* SIG_SETMASK */, full, null);
  stdioFlags.forEach((flags, fd) => {
    if (flags >= 0) L().fcntl(fd, 4 /* F_SETFL */, flags);
  });
  const strings = argv.map(cstr);
  const vec = new BigUint64Array(strings.length + 1);
  strings.forEach((s, i) => (vec[i] = BigInt(ptr(s))));
  const file = cstr(path);
  if (env) {
    const vars = env.map(cstr);
    const envp = new BigUint64Array(vars.length + 1);
    vars.forEach((v, i) => (envp[i] = BigInt(ptr(v))));
    L().execve(file, vec, envp);
  } else L().execv(file, vec);
  fail(`execv ${path}`);
}

/** fcntl(F_GETFL) of fds 0–2 (-1 when closed), to restore before exec. */
export function stdioFlags(): number[] {
  return [0, 1, 2].map((fd) => Number(L().fcntl(fd, 3 /* F_GETFL */, 0)));
}

/* ------------------------------------------------------------ fd passing */

/** socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC): [a, b]. */
export function seqpacketPair(): [number, number] {
  const fds = new Int32Array(2);
  check("socketpair", S().socketpair(1, 5 | 0o2000000, 0, fds));
  return [fds[0]!, fds[1]!];
}

function msghdr(data: Uint8Array, control: Uint8Array | null): { hdr: Uint8Array; keep: unknown[] } {
  const iov = new BigUint64Array([BigInt(ptr(data)), BigInt(data.length)]);
  const hdr = new Uint8Array(56);
  const v = new DataView(hdr.buffer);
  v.setBigUint64(16, BigInt(ptr(iov)), true); // msg_iov
  v.setBigUint64(24, 1n, true); // msg_iovlen
  if (control) {
    v.setBigUint64(32, BigInt(ptr(control)), true); // msg_control
    v.setBigUint64(40, BigInt(control.length), true); // msg_controllen
  }
  return { hdr, keep: [iov, data, control] };
}

/** Sends `fd` (SCM_RIGHTS) with a one-byte message. */
export function sendFd(sock: number, fd: number): void {
  const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
  const v = new DataView(control.buffer);
  v.setBigUint64(0, 20n, true); // cmsg_len = CMSG_LEN(4)
  v.setInt32(8, SOL_SOCKET, true);
  v.setInt32(12, SCM_RIGHTS, true);
  v.setInt32(16, fd, true);
  const { hdr, keep } = msghdr(new Uint8Array([1]), control);
  check("sendmsg", L().sendmsg(sock, hdr, 0x4000 /* MSG_NOSIGNAL */));
  void keep;
}

/** Blocking receive of one message (a warm launcher waiting for its app); null when the peer closed. */
export function recvTextBlocking(sock: number, max = 1 << 20): string | null {
  const b = new Uint8Array(max);
  while (true) {
    const n = Number(L().recv(sock, b, max, 0));
    if (n > 0) return new TextDecoder().decode(b.subarray(0, n));
    if (n === 0) return null;
    if (errno() !== 4 /* EINTR */) fail("recv");
  }
}

/** Sends a short text message (no fd), e.g. the launcher's error. */
export function sendText(sock: number, text: string): void {
  const { hdr, keep } = msghdr(Buffer.from(text), null);
  check("sendmsg", L().sendmsg(sock, hdr, 0x4000 /* MSG_NOSIGNAL */));
  void keep;
}

/**
 * Non-blocking receive: { fd } for a message carrying a descriptor (made
 * O_CLOEXEC), { text } for a plain one, { eof } when the peer closed, null when
 * nothing is queued.
 */
export function recvFdOrText(sock: number): { fd: number } | { text: string } | { eof: true } | null {
  const data = new Uint8Array(512);
  const control = new Uint8Array(24);
  const { hdr, keep } = msghdr(data, control);
  const n = Number(S().recvmsg(sock, hdr, MSG_DONTWAIT | 0x40000000 /* MSG_CMSG_CLOEXEC */));
  void keep;
  if (n < 0) {
    const e = errno();
    if (e === 11 || e === 4) return null;
    throw new LibcError("recvmsg", e, strerror(e));
  }
  if (n === 0) return { eof: true };
  const cv = new DataView(control.buffer);
  const controllen = Number(new DataView(hdr.buffer).getBigUint64(40, true));
  if (controllen >= 20 && cv.getInt32(8, true) === SOL_SOCKET && cv.getInt32(12, true) === SCM_RIGHTS) return { fd: cv.getInt32(16, true) };
  return { text: new TextDecoder().decode(data.subarray(0, n)) };
}

/* ------------------------------------------------------------ waiting */

/** eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC): a wake-up for a thread blocked in poll(). */
export function eventFd(): number {
  return check("eventfd", S().eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
}
export function eventFdSignal(fd: number): void {
  S().write(fd, new BigUint64Array([1n]), 8);
}
export function eventFdDrain(fd: number): void {
  S().read(fd, new BigUint64Array(1), 8);
}

/** poll(2) on `fds` for POLLIN; returns revents per fd. timeoutMs -1 blocks. */
export function pollIn(fds: readonly number[], timeoutMs: number): number[] {
  const buf = new Uint8Array(Math.max(1, fds.length) * 8);
  const v = new DataView(buf.buffer);
  fds.forEach((fd, i) => {
    v.setInt32(i * 8, fd, true);
    v.setInt16(i * 8 + 4, POLLIN, true);
  });
  const r = Number(S().poll(buf, fds.length, timeoutMs));
  if (r < 0 && errno() !== 4) fail("poll");
  return fds.map((_, i) => (r <= 0 ? 0 : v.getInt16(i * 8 + 6, true)));
}

export function closeFd(fd: number): void {
  L().close(fd);
}

/* ------------------------------------------------------------ notifications */

export interface Notification {
  id: bigint;
  /** Thread id of the caller (in hr's pid namespace). */
  tid: number;
  nr: "bind" | "listen" | "other";
  args: bigint[];
}

/** SECCOMP_IOCTL_NOTIF_RECV; null when the notification vanished (the caller was killed). */
export function notifRecv(listener: number): Notification | null {
  const b = new Uint8Array(80); // struct seccomp_notif, zeroed as the kernel requires
  if (Number(S().ioctl(listener, IOCTL_NOTIF_RECV, b)) < 0) {
    const e = errno();
    if (e === 2 /* ENOENT */ || e === 4) return null;
    fail("ioctl(SECCOMP_IOCTL_NOTIF_RECV)");
  }
  const v = new DataView(b.buffer);
  const nr = v.getInt32(16, true);
  return {
    id: v.getBigUint64(0, true),
    tid: v.getUint32(8, true),
    nr: nr === NR.bind ? "bind" : nr === NR.listen ? "listen" : "other",
    args: Array.from({ length: 6 }, (_, i) => v.getBigUint64(32 + i * 8, true)),
  };
}

/** SECCOMP_IOCTL_NOTIF_ID_VALID: is the caller still blocked in this syscall (memory read in between still trustworthy)? */
export function notifIdValid(listener: number, id: bigint): boolean {
  return Number(S().ioctl(listener, IOCTL_NOTIF_ID_VALID, new BigUint64Array([id]))) === 0;
}

function respond(listener: number, id: bigint, val: bigint, error: number, flags: number): boolean {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, id, true);
  v.setBigInt64(8, val, true);
  v.setInt32(16, -error, true);
  v.setUint32(20, flags, true);
  return Number(S().ioctl(listener, IOCTL_NOTIF_SEND, b)) === 0;
}

/** Let the syscall run as if unfiltered. false when the caller is gone. */
export function notifContinue(listener: number, id: bigint): boolean {
  return respond(listener, id, 0n, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE);
}
/** Complete the syscall with this return value (0 = success) without running it. */
export function notifReturn(listener: number, id: bigint, val: number): boolean {
  return respond(listener, id, BigInt(val), 0, 0);
}

/** SECCOMP_IOCTL_NOTIF_ADDFD with SETFD: install a duplicate of our `src` at the caller's `target` (replacing it, like dup2). */
export function notifAddFdAt(listener: number, id: bigint, src: number, target: number, cloexec: boolean): boolean {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, id, true);
  v.setUint32(8, SECCOMP_ADDFD_FLAG_SETFD, true);
  v.setUint32(12, src, true);
  v.setUint32(16, target, true);
  v.setUint32(20, cloexec ? O_CLOEXEC : 0, true);
  return Number(S().ioctl(listener, IOCTL_NOTIF_ADDFD, b)) >= 0;
}

/* ------------------------------------------------------------ the caller's side */

/** Reads `len` bytes at `addr` in process `tid`'s memory (/proc/tid/mem); null when unreadable. */
export function readMemory(tid: number, addr: bigint, len: number): Uint8Array | null {
  const fd = Number(S().open(cstr(`/proc/${tid}/mem`), O_CLOEXEC, 0));
  if (fd < 0) return null;
  try {
    const b = new Uint8Array(len);
    const n = Number(S().pread(fd, b, len, addr));
    return n === len ? b : null;
  } finally {
    L().close(fd);
  }
}

/** Thread group (process) id of a thread. */
export function tgidOf(tid: number): number {
  try {
    const m = /^Tgid:\s*(\d+)/m.exec(readFileSync(`/proc/${tid}/status`, "utf8"));
    return m ? Number(m[1]) : tid;
  } catch {
    return tid;
  }
}

/** "socket:[123]" → 123 for the caller's fd, or null. */
export function socketInode(pid: number, fd: number): number | null {
  const m = /^socket:\[(\d+)\]$/.exec(fdTarget(fd, pid) ?? "");
  return m ? Number(m[1]) : null;
}

/** File status flags and close-on-exec of the caller's fd (/proc/pid/fdinfo). */
export function fdFlags(pid: number, fd: number): { nonblocking: boolean; cloexec: boolean } | null {
  try {
    const m = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
    if (!m) return null;
    const flags = parseInt(m[1]!, 8);
    return { nonblocking: (flags & O_NONBLOCK) !== 0, cloexec: (flags & O_CLOEXEC) !== 0 };
  } catch {
    return null;
  }
}

/** A duplicate of process `pid`'s fd in hr (pidfd_getfd, Linux ≥ 5.6); close it after use. null on failure. */
export function borrowFd(pid: number, fd: number): number | null {
  const pidfd = Number(L().syscall(NR_PIDFD_OPEN, pid, 0, 0));
  if (pidfd < 0) return null;
  try {
    const r = Number(L().syscall(NR_PIDFD_GETFD, pidfd, fd, 0));
    return r < 0 ? null : r;
  } finally {
    L().close(pidfd);
  }
}

/** SO_TYPE of our fd (1 = SOCK_STREAM), or -1. */
export function socketType(fd: number): number {
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  return Number(S().getsockopt(fd, SOL_SOCKET, SO_TYPE, v, len)) === 0 ? v[0]! : -1;
}

/** Raw getsockname of our fd (sockaddr bytes), or null. */
export function sockname(fd: number): Uint8Array | null {
  const b = new Uint8Array(128);
  const len = new Uint32Array([b.length]);
  return Number(S().getsockname(fd, b, len)) === 0 ? b.subarray(0, len[0]!) : null;
}

/** Sets or clears O_NONBLOCK on our fd (shared by every holder of the open file). */
export function setNonblock(fd: number, on: boolean): void {
  const cur = Number(L().fcntl(fd, 3, 0));
  if (cur < 0) return;
  const next = on ? cur | O_NONBLOCK : cur & ~O_NONBLOCK;
  if (next !== cur) L().fcntl(fd, 4, next);
}
