/**
 * Listen addresses.
 *
 *   "127.0.0.1:8080"  IPv4
 *   ":8080"           all interfaces. Deliberately IPv4 0.0.0.0, not [::]: a dual-stack
 *                     [::] socket behaves differently per host (bindv6only sysctl, hosts
 *                     without IPv6) and "[::]:8080" is easy to ask for explicitly.
 *   "*:8080"          same as ":8080"
 *   "[::1]:8080"      IPv6 (always IPV6_V6ONLY); "[::]:8080" = all IPv6 interfaces
 *   "localhost:8080"  127.0.0.1 (no resolver: "localhost" may resolve to ::1 first and
 *                     clients disagree; other hostnames are rejected)
 *   "unix:./app.sock" unix stream socket, relative to the config file's directory;
 *   "unix:@name"      Linux abstract socket
 * Port 0 means "any free port" (the bound port is reported by bindListener).
 */
import { isAbsolute, resolve } from "node:path";
import { formatIp } from "../platform/proc.ts";

export type ListenAddress =
  | { kind: "tcp"; family: 4; host: string; ip: Uint8Array; port: number }
  | { kind: "tcp"; family: 6; host: string; ip: Uint8Array; port: number }
  | { kind: "unix"; path: string };

export class ListenAddressError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ListenAddressError";
  }
}

const EXPECTED = `expected "host:port", "[v6]:port" or "unix:/path"`;

export interface ParseOptions {
  /** Directory relative unix paths are resolved against (default: process.cwd()). */
  baseDir?: string;
  /** Config path for error messages, e.g. "listen[0].address". */
  field?: string;
}

export function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(s: string): Uint8Array | undefined {
  if (s.includes("%")) return undefined; // zone ids not supported
  let head = s;
  let v4: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    v4 = parseIPv4(s.slice(lastColon + 1));
    if (!v4) return undefined;
    head = s.slice(0, lastColon + 1);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const want = v4 ? 6 : 8;
  const dbl = head.indexOf("::");
  if (dbl !== head.lastIndexOf("::")) return undefined;
  const group = (g: string) => (/^[0-9a-fA-F]{1,4}$/.test(g) ? parseInt(g, 16) : NaN);
  let words: number[];
  if (dbl >= 0) {
    const left = head.slice(0, dbl) ? head.slice(0, dbl).split(":").map(group) : [];
    const right = head.slice(dbl + 2) ? head.slice(dbl + 2).split(":").map(group) : [];
    const fill = want - left.length - right.length;
    if (fill < 1) return undefined;
    words = [...left, ...new Array<number>(fill).fill(0), ...right];
  } else {
    words = head ? head.split(":").map(group) : [];
  }
  if (words.length !== want || words.some((w) => Number.isNaN(w))) return undefined;
  const out = new Uint8Array(16);
  words.forEach((w, i) => {
    out[i * 2] = w >> 8;
    out[i * 2 + 1] = w & 0xff;
  });
  if (v4) out.set(v4, 12);
  return out;
}

function parsePort(p: string, bad: () => never): number {
  if (!/^\d{1,5}$/.test(p)) bad();
  const n = Number(p);
  if (n > 65535) {
    bad();
  }
  return n;
}

/** Parse a listen address; throws ListenAddressError with a message naming `field`. */
export function parseListenAddress(input: string, opts: ParseOptions = {}): ListenAddress {
  const field = opts.field ?? "address";
  const raw = input.trim();
  const bad = (why?: string): never => {
    throw new ListenAddressError(
      `${field}: ${JSON.stringify(input)} is not an address; ${why ?? EXPECTED}`,
    );
  };

  if (raw.startsWith("unix:")) {
    const p = raw.slice(5);
    if (!p) bad(`"unix:" needs a path, e.g. "unix:./app.sock"`);
    if (p.startsWith("@")) {
      if (p.length === 1) bad(`abstract socket needs a name, e.g. "unix:@myapp"`);
      return { kind: "unix", path: p };
    }
    const path = isAbsolute(p) ? p : resolve(opts.baseDir ?? process.cwd(), p);
    if (Buffer.byteLength(path) > 107) {
      bad(`unix socket path is ${Buffer.byteLength(path)} bytes after resolving (${path}); Linux allows 107`);
    }
    return { kind: "unix", path };
  }

  if (raw.startsWith("[")) {
    const close = raw.indexOf("]");
    if (close < 0 || raw[close + 1] !== ":") bad();
    const host = raw.slice(1, close);
    const ip = parseIPv6(host);
    if (!ip) bad(`${JSON.stringify(host)} is not an IPv6 address (zone ids like %eth0 are not supported)`);
    const port = parsePort(raw.slice(close + 2), () => bad(`port must be 0-65535`));
    return { kind: "tcp", family: 6, host: formatIp(ip!), ip: ip!, port };
  }

  if (/^\d+$/.test(raw)) bad(`did you mean ":${raw}" (all interfaces) or "127.0.0.1:${raw}"?`);
  const colon = raw.lastIndexOf(":");
  if (colon < 0) bad();
  const hostPart = raw.slice(0, colon);
  const port = parsePort(raw.slice(colon + 1), () => bad(`port must be 0-65535`));
  if (hostPart.includes(":")) bad(`IPv6 addresses need brackets: "[${hostPart}]:${port}"`);
  if (hostPart === "" || hostPart === "*") {
    return { kind: "tcp", family: 4, host: "0.0.0.0", ip: new Uint8Array(4), port };
  }
  if (hostPart.toLowerCase() === "localhost") {
    return { kind: "tcp", family: 4, host: "127.0.0.1", ip: new Uint8Array([127, 0, 0, 1]), port };
  }
  const ip = parseIPv4(hostPart);
  if (!ip) {
    if (/^[a-zA-Z0-9.-]+$/.test(hostPart)) {
      bad(`hostnames other than "localhost" are not resolved; use an IP address such as "0.0.0.0:${port}"`);
    }
    bad();
  }
  return { kind: "tcp", family: 4, host: formatIp(ip!), ip: ip!, port };
}

/** Human/log form: "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock". `port` overrides (after port 0). */
export function formatListenAddress(a: ListenAddress, port?: number): string {
  if (a.kind === "unix") return `unix:${a.path}`;
  const p = port ?? a.port;
  return a.family === 6 ? `[${a.host}]:${p}` : `${a.host}:${p}`;
}

