/**
 * /proc readers (Linux). Synchronous, best-effort: unreadable entries
 * (processes that exited mid-scan, other users' fds) are skipped, never thrown.
 */
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from "node:fs";

export interface SocketEntry {
  inode: number;
  /** "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:8080", "[::]:8080" or "unix:/path" / "unix:@abstract" */
  address: string;
  /** TCP only */
  port?: number;
  /** Raw 4- or 16-byte address, network order (TCP only). */
  ip?: Uint8Array;
  family: "inet" | "inet6" | "unix";
  listening: boolean;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

function pidDirs(): number[] {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const n of names) {
    const c = n.charCodeAt(0);
    if (c >= 48 && c <= 57) out.push(Number(n));
  }
  return out;
}

export interface ProcEntry {
  pid: number;
  ppid: number;
  /** Process group id. */
  pgid: number;
  /** Session id: orphans reparented to init keep it, so it still ties them to their tree. */
  sid: number;
  state: string;
  /** Start time in clock ticks since boot: (pid, start) identifies a process across pid reuse. */
  start: number;
}

/** Parse /proc/<pid>/stat (comm may contain spaces and parens: split after the last ')'). */
export function readStat(pid: number): ProcEntry | undefined {
  const s = readText(`/proc/${pid}/stat`);
  if (!s) return undefined;
  const close = s.lastIndexOf(")");
  if (close < 0) return undefined;
  // f[0] is field 3 (state); field n is f[n - 3].
  const f = s.slice(close + 2).split(" ");
  return { pid, state: f[0] ?? "?", ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), start: Number(f[19]) };
}

/** Every process's stat entry (processes that exit mid-scan are skipped). */
export function processTable(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const pid of pidDirs()) {
    const entry = readStat(pid);
    if (entry) out.push(entry);
  }
  return out;
}

/** All descendants of `pid` (children, grandchildren, ...), breadth-first; excludes `pid`. */
export function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const st of processTable()) {
    let list = children.get(st.ppid);
    if (!list) children.set(st.ppid, (list = []));
    list.push(st.pid);
  }
  const out: number[] = [];
  const queue = [pid];
  const seen = new Set<number>([pid]);
  while (queue.length) {
    const cur = queue.shift()!;
    for (const c of children.get(cur) ?? []) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** @internal tests: true if the process exists and is not a zombie (a zombie has exited; it only awaits reaping). */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const st = readStat(pid);
  if (!st) return false; // vanished between kill(0) and the read
  return st.state !== "Z" && st.state !== "X";
}

/** Command line of `pid` joined with spaces, or undefined if unreadable / kernel thread. */
export function cmdline(pid: number): string | undefined {
  const raw = readText(`/proc/${pid}/cmdline`);
  if (!raw) return undefined;
  const parts = raw.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts.join(" ") || undefined;
}

/** Where fd `fd` of `pid` points (the /proc/PID/fd/N symlink: a path, "socket:[N]", "pipe:[N]"); undefined when unreadable. */
export function fdTarget(fd: number | string, pid: number | "self" = "self"): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return undefined;
  }
}

/** Socket inodes held open by `pid` (from the "socket:[N]" fd symlinks). Map inode -> fd numbers. */
export function socketInodesOf(pid: number): Map<number, number[]> {
  const out = new Map<number, number[]>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    const link = fdTarget(fd, pid);
    if (!link?.startsWith("socket:[")) continue;
    const inode = Number(link.slice(8, -1));
    let list = out.get(inode);
    if (!list) out.set(inode, (list = []));
    list.push(Number(fd));
  }
  return out;
}

/* ---------------------------------------------------------------- /proc/net */

function hexBytesLE32Words(hex: string): Uint8Array {
  // /proc/net/tcp{,6} prints each 32-bit word of the address in host (little-endian) order.
  const out = new Uint8Array(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    for (let i = 0; i < 4; i++) {
      out[w * 4 + i] = parseInt(hex.slice(w * 8 + (3 - i) * 2, w * 8 + (3 - i) * 2 + 2), 16);
    }
  }
  return out;
}

export function formatIp(ip: Uint8Array): string {
  if (ip.length === 4) return Array.from(ip).join(".");
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((ip[i]! << 8) | ip[i + 1]!);
  // v4-mapped ::ffff:a.b.c.d
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  }
  // longest run of zero words -> "::"
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(":");
  return hex.slice(0, bestStart).join(":") + "::" + hex.slice(bestStart + bestLen).join(":");
}

export function formatHostPort(ip: Uint8Array, port: number): string {
  return ip.length === 4 ? `${formatIp(ip)}:${port}` : `[${formatIp(ip)}]:${port}`;
}

const TCP_LISTEN = "0A";

/**
 * The one /proc/<pid|self>/net/tcp{,6} parser (`pid` selects the network namespace).
 * The kernel prints listeners first (listening hash, then established) and
 * generates the file lazily per read(), so it is read in chunks; with
 * `listeningOnly` the read stops at the first non-LISTEN line. Under load the file
 * holds tens of thousands of TIME_WAIT lines: reading all of it took 0.3–2.6 s per
 * reload on the drill (measured), the early stop ~1 ms.
 */
function readTcpTables(pid: number | "self", listeningOnly: boolean): SocketEntry[] {
  const out: SocketEntry[] = [];
  const buf = Buffer.alloc(4 * 1024);
  for (const [file, family] of [
    ["tcp", "inet"],
    ["tcp6", "inet6"],
  ] as const) {
    let fd: number;
    try {
      fd = openSync(`/proc/${pid}/net/${file}`, "r");
    } catch {
      continue;
    }
    try {
      let rest = "";
      let header = true;
      let done = false;
      while (!done) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n <= 0) break;
        const lines = (rest + buf.toString("latin1", 0, n)).split("\n");
        rest = lines.pop() ?? "";
        for (const line of lines) {
          if (header) {
            header = false;
            continue;
          }
          // "sl local_address rem_address st … inode": st is the 4th field.
          const f = line.trim().split(/\s+/);
          if (f.length < 10) continue;
          const listening = f[3] === TCP_LISTEN;
          if (listeningOnly && !listening) {
            done = true;
            break;
          }
          const [ipHex, portHex] = f[1]!.split(":");
          if (!ipHex || !portHex) continue;
          const ip = hexBytesLE32Words(ipHex);
          const port = parseInt(portHex, 16);
          out.push({ inode: Number(f[9]), address: formatHostPort(ip, port), port, ip, family, listening });
        }
      }
    } catch {
      /* unreadable mid-way: what was read stands */
    } finally {
      closeSync(fd);
    }
  }
  return out;
}

/** Every TCP socket of the network namespace of `pid`. */
export function tcpSockets(pid: number | "self" = "self"): SocketEntry[] {
  return readTcpTables(pid, false);
}

/** Whether this system has the /proc/net TCP tables (Linux with /proc mounted). */
export function hasTcpTables(): boolean {
  return existsSync("/proc/self/net/tcp");
}

/** The listening TCP sockets of the network namespace of `pid` (stops reading at the first other line). */
export function listeningTcpSockets(pid: number | "self" = "self"): SocketEntry[] {
  return readTcpTables(pid, true);
}

const SO_ACCEPTCON_FLAG = 0x10000;

/** Parse /proc/<pid|self>/net/unix (stream sockets with a path). */
export function unixSockets(pid: number | "self" = "self"): SocketEntry[] {
  const text = readText(`/proc/${pid}/net/unix`);
  if (!text) return [];
  const out: SocketEntry[] = [];
  const lines = text.split("\n");
  for (let i = 1; i < lines.length; i++) {
    // Num RefCount Protocol Flags Type St Inode Path
    const f = lines[i]!.trim().split(/\s+/);
    if (f.length < 8) continue;
    const path = f.slice(7).join(" ");
    out.push({
      inode: Number(f[6]),
      address: `unix:${path}`,
      family: "unix",
      listening: (parseInt(f[3]!, 16) & SO_ACCEPTCON_FLAG) !== 0,
    });
  }
  return out;
}

/** @internal tests: listening TCP / unix sockets held by `pid` (including inherited ones). */
export function listeningSocketsOf(pid: number): SocketEntry[] {
  const inodes = socketInodesOf(pid);
  if (inodes.size === 0) return [];
  const all = [...tcpSockets(pid), ...unixSockets(pid)];
  return all.filter((s) => s.listening && inodes.has(s.inode));
}

/** Processes holding a socket with this inode open. */
export function pidsHoldingInode(inode: number): number[] {
  const out: number[] = [];
  if (!inode) return out;
  const want = `socket:[${inode}]`;
  for (const pid of pidDirs()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    if (fds.some((fd) => fdTarget(fd, pid) === want)) out.push(pid); // an fd closed mid-scan is skipped
  }
  return out;
}

/** Pids of `pid`'s children (every thread's), from /proc/<pid>/task/<tid>/children; undefined when the kernel lacks that file. */
export function childrenOf(pid: number | "self" = "self"): number[] | undefined {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const out: number[] = [];
  for (const tid of tids) {
    const text = readText(`/proc/${pid}/task/${tid}/children`);
    if (text === undefined) return undefined;
    for (const n of text.split(" ")) if (n) out.push(Number(n));
  }
  return out;
}

/** `name`'s value in the process's initial environment (undefined when unset or unreadable). */
export function environValue(pid: number, name: string): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/environ`, "latin1");
    const key = `${name}=`;
    const hit = text.startsWith(key) ? 0 : text.indexOf(`\0${key}`);
    if (hit < 0) return undefined;
    const start = (hit === 0 && text.startsWith(key) ? 0 : hit + 1) + key.length;
    const end = text.indexOf("\0", start);
    return text.slice(start, end < 0 ? undefined : end);
  } catch {
    return undefined;
  }
}

/** @internal the test and benchmark harness: live (non-zombie) processes whose initial environment holds `name=value` (a tag every descendant inherits). */
export function pidsWithEnv(name: string, value: string): number[] {
  return processTable()
    .filter((e) => e.state !== "Z" && e.state !== "X" && environHas(e.pid, name, value))
    .map((e) => e.pid);
}

/** Does the process's initial environment hold `name=value`? (false when unreadable) */
export function environHas(pid: number, name: string, value: string): boolean {
  try {
    const text = readFileSync(`/proc/${pid}/environ`, "latin1");
    const needle = `${name}=${value}\0`;
    return text.startsWith(needle) || text.includes(`\0${needle}`);
  } catch {
    return false;
  }
}

/* ---------------------------------------------------------------- limits, sysctls, mounts */

/** A sysctl's value ("fs.inotify.max_user_watches" → /proc/sys/fs/inotify/max_user_watches), trimmed; undefined when unreadable. */
export function sysctl(name: string): string | undefined {
  return readText(`/proc/sys/${name.replaceAll(".", "/")}`)?.trim();
}

/** The soft RLIMIT_NOFILE of hr (Infinity: unlimited; undefined: unknown, e.g. not Linux). */
export function openFilesLimit(): number | undefined {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readText("/proc/self/limits") ?? "");
  return m ? (m[1] === "unlimited" ? Infinity : Number(m[1])) : undefined;
}

/** /proc/self/mountinfo (undefined when unreadable). */
export function mountinfo(): string | undefined {
  return readText("/proc/self/mountinfo");
}
