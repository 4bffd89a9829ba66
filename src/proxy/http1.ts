/**
 * HTTP/1.1 message framing for hr's proxy (RFC 9112), strict by design: hr sits in
 * front of apps whose own parsers differ, so anything two parsers could read two
 * ways is refused here (400 and close) instead of being passed on.
 *
 *  - Request line `METHOD SP target SP HTTP/1.x CRLF`; lines end in CRLF (a bare LF
 *    or CR is 400); leading empty lines before a request are skipped.
 *  - Header `name: value`: name a token with no whitespace before the colon; a line
 *    starting with SP/HT (obsolete line folding) is 400; NUL/CR/LF in values is 400.
 *  - Content-Length: digits only, at most one field with one value; together with
 *    Transfer-Encoding it is 400. Transfer-Encoding must be exactly `chunked` (any
 *    other coding before chunked is 501; chunked not final, and any in an HTTP/1.0
 *    request, is 400).
 *  - HTTP/1.1 requests need exactly one Host.
 *  - Limits: head bytes and header count (431), chunk-size digits (400).
 *
 * Chunked bodies are decoded and re-encoded (extensions dropped), so the app always
 * sees canonical framing. NOT covered: HTTP/2 (the preface is answered 505),
 * request targets are passed through unparsed.
 */

export const MAX_HEAD_BYTES = 32 * 1024;
export const MAX_HEADERS = 100;

/** A request hr refuses: the status it answers and a one-line reason. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export type Framing = { kind: "none" } | { kind: "length"; length: number } | { kind: "chunked" } | { kind: "close" };

export interface Head {
  /** Header fields in order, names as sent. */
  headers: [string, string][];
  /** The same names in lower case (same order): looked up once per message. */
  names: string[];
  /** HTTP/1.0 → 0, HTTP/1.1 → 1. */
  minor: number;
  /** Tokens of the Connection header(s), lower case. */
  connection: Set<string>;
  framing: Framing;
  /** Bytes of the head including the final CRLFCRLF (and skipped leading CRLFs). */
  size: number;
}

export interface RequestHead extends Head {
  method: string;
  target: string;
  /** Upgrade requested (Connection: upgrade + Upgrade header). */
  upgrade: string | null;
  keepAlive: boolean;
  host: string | null;
}

export interface ResponseHead extends Head {
  status: number;
  reason: string;
  keepAlive: boolean;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const TARGET = /^[\x21-\x7e]+$/;

/** Index just past the CRLFCRLF ending the head, or -1 (needs more bytes). Throws 400 on a bare LF. */
function headEnd(buf: Buffer, from: number): number {
  const i = buf.indexOf("\r\n\r\n", from, "latin1");
  return i < 0 ? -1 : i + 4;
}

function splitLines(text: string): string[] {
  const lines = text.split("\r\n");
  for (const l of lines) if (l.includes("\n") || l.includes("\r")) throw new HttpError(400, "a bare LF or CR in the head");
  return lines;
}

/** Index of the first of `name` (lower case) in `h`, or -1. */
export function field(h: Pick<Head, "headers" | "names">, name: string): string | undefined {
  const i = h.names.indexOf(name);
  return i < 0 ? undefined : h.headers[i]![1];
}

/** Trims SP/HT only (a value's OWS), not other whitespace. */
function trimOws(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === 32 || s.charCodeAt(a) === 9)) a++;
  while (b > a && (s.charCodeAt(b - 1) === 32 || s.charCodeAt(b - 1) === 9)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

function parseFields(lines: string[], start: number, isRequest: boolean, names: string[] = []): [string, string][] {
  const out: [string, string][] = [];
  for (let i = start; i < lines.length; i++) {
    const line = lines[i]!;
    if (line === "") continue;
    const c = line.charCodeAt(0);
    if (c === 32 || c === 9) throw new HttpError(400, "obsolete line folding in a header");
    const colon = line.indexOf(":");
    if (colon <= 0) throw new HttpError(400, `a header line without a name and colon`);
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) throw new HttpError(400, `invalid header name ${JSON.stringify(name.slice(0, 40))}`);
    const value = trimOws(line.slice(colon + 1));
    if (value.includes("\0")) throw new HttpError(400, `invalid characters in header ${name}`);
    out.push([name, value]);
    names.push(name.toLowerCase());
    if (out.length > MAX_HEADERS) throw new HttpError(isRequest ? 431 : 502, `more than ${MAX_HEADERS} header fields`);
  }
  return out;
}

function tokens(h: Pick<Head, "headers" | "names">, name: string): Set<string> {
  const set = new Set<string>();
  for (let i = 0; i < h.names.length; i++) if (h.names[i] === name) for (const t of h.headers[i]![1].split(",")) if (t.trim()) set.add(t.trim().toLowerCase());
  return set;
}

/** Content-Length / Transfer-Encoding → framing, strictly. `status` is the error status to use (400 requests, 502 responses). */
function bodyFraming(headers: [string, string][], names: string[], minor: number, status: number): Framing | null {
  let cl: string | null = null;
  let te: string | null = null;
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    const v = headers[i]![1];
    if (n === "content-length") {
      if (cl !== null) throw new HttpError(status, "more than one Content-Length");
      if (!/^\d{1,15}$/.test(v)) throw new HttpError(status, `invalid Content-Length ${JSON.stringify(v.slice(0, 40))}`);
      cl = v;
    } else if (n === "transfer-encoding") {
      if (te !== null) throw new HttpError(status, "more than one Transfer-Encoding");
      te = v;
    }
  }
  if (te !== null) {
    if (cl !== null) throw new HttpError(status, "both Content-Length and Transfer-Encoding");
    if (minor === 0 && status === 400) throw new HttpError(400, "Transfer-Encoding in an HTTP/1.0 request");
    const codings = te.toLowerCase().split(",").map((c) => c.trim());
    // Chunked not final: the length can't be known (RFC 9112 §6.3) → 400; another coding before it → 501.
    if (codings[codings.length - 1] !== "chunked" || codings.filter((c) => c === "chunked").length > 1) throw new HttpError(status, `Transfer-Encoding ${JSON.stringify(te.slice(0, 40))} does not end in a single "chunked"`);
    if (codings.length > 1) throw new HttpError(status === 400 ? 501 : status, `unsupported Transfer-Encoding ${JSON.stringify(te.slice(0, 40))} (only "chunked")`);
    return { kind: "chunked" };
  }
  if (cl !== null) return { kind: "length", length: Number(cl) };
  return null;
}

/**
 * Parses a request head at the start of `buf` (scanning from `scanFrom` for the
 * end). Returns null when incomplete; throws HttpError on bad input or limits.
 */
export function parseRequest(buf: Buffer): RequestHead | null {
  let skip = 0;
  while (skip + 1 < buf.length && buf[skip] === 13 && buf[skip + 1] === 10) skip += 2;
  const end = headEnd(buf, skip);
  if (end < 0) {
    if (buf.length - skip > MAX_HEAD_BYTES) throw new HttpError(431, `request head larger than ${MAX_HEAD_BYTES / 1024} KiB`);
    // A bare LF in what we have cannot become valid: refuse early (no waiting for a timeout).
    const nl = buf.indexOf(10, skip);
    if (nl >= 0 && (nl === skip || buf[nl - 1] !== 13)) throw new HttpError(400, "a bare LF in the head");
    return null;
  }
  if (end - skip > MAX_HEAD_BYTES) throw new HttpError(431, `request head larger than ${MAX_HEAD_BYTES / 1024} KiB`);
  const lines = splitLines(buf.toString("latin1", skip, end - 4));
  const first = lines[0]!;
  const sp1 = first.indexOf(" ");
  const sp2 = first.lastIndexOf(" ");
  if (sp1 <= 0 || sp2 === sp1) throw new HttpError(400, "malformed request line");
  const method = first.slice(0, sp1);
  const target = first.slice(sp1 + 1, sp2);
  const version = first.slice(sp2 + 1);
  if (!TOKEN.test(method)) throw new HttpError(400, "invalid method");
  if (!TARGET.test(target)) throw new HttpError(400, "invalid request target");
  let minor: number;
  if (version === "HTTP/1.1") minor = 1;
  else if (version === "HTTP/1.0") minor = 0;
  else if (/^HTTP\/\d\.\d$/.test(version)) throw new HttpError(505, `${version} is not supported (HTTP/1.0 and 1.1 only)`);
  else throw new HttpError(400, "malformed request line");
  const names: string[] = [];
  const headers = parseFields(lines, 1, true, names);
  const connection = tokens({ headers, names }, "connection");
  let host: string | null = null;
  let hosts = 0;
  let upgradeValue: string | null = null;
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    if (n === "host") {
      hosts++;
      host = headers[i]![1];
    } else if (n === "upgrade") upgradeValue = headers[i]![1];
  }
  if (hosts > 1) throw new HttpError(400, "more than one Host");
  if (minor === 1 && hosts === 0) throw new HttpError(400, "an HTTP/1.1 request without Host");
  const framing = bodyFraming(headers, names, minor, 400) ?? { kind: "none" as const };
  const keepAlive = minor === 1 ? !connection.has("close") : connection.has("keep-alive");
  const upgrade = upgradeValue && connection.has("upgrade") && minor === 1 ? upgradeValue : null;
  return { method, target, minor, headers, names, connection, framing, size: end, upgrade, keepAlive, host };
}

/** Parses a response head from an upstream; null when incomplete; HttpError(502) on bad framing. */
export function parseResponse(buf: Buffer, method: string): ResponseHead | null {
  const end = headEnd(buf, 0);
  if (end < 0) {
    if (buf.length > 2 * MAX_HEAD_BYTES) throw new HttpError(502, "the app's response head is too large");
    return null;
  }
  const lines = buf.toString("latin1", 0, end - 4).split("\r\n");
  for (const l of lines) if (l.includes("\n") || l.includes("\r")) throw new HttpError(502, "the app sent a bare LF or CR in a response head");
  const sl = lines[0]!;
  // "HTTP/1.x NNN[ reason]"
  const minor = sl.charCodeAt(7) - 48;
  const status = Number(sl.slice(9, 12));
  if (!sl.startsWith("HTTP/1.") || (minor !== 0 && minor !== 1) || sl.charCodeAt(8) !== 32 || !/^\d{3}$/.test(sl.slice(9, 12)) || (sl.length > 12 && sl.charCodeAt(12) !== 32))
    throw new HttpError(502, `the app sent a malformed status line ${JSON.stringify(sl.slice(0, 60))}`);
  const reason = sl.slice(13);
  const names: string[] = [];
  let headers: [string, string][];
  try {
    headers = parseFields(lines, 1, false, names);
  } catch (e) {
    throw new HttpError(502, `the app sent a bad response header (${(e as Error).message})`);
  }
  const connection = tokens({ headers, names }, "connection");
  let framing: Framing;
  if (method === "HEAD" || (status >= 100 && status < 200) || status === 204 || status === 304) framing = { kind: "none" };
  else framing = bodyFraming(headers, names, minor, 502) ?? { kind: "close" };
  const keepAlive = framing.kind !== "close" && (minor === 1 ? !connection.has("close") : connection.has("keep-alive"));
  return { status, reason, minor, headers, names, connection, framing, size: end, keepAlive };
}

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus the framing hr sets itself. */
const HOP = new Set(["connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "content-length"]);

/** Header fields without hop-by-hop ones (and those the Connection header names). Content-Length is removed too: the caller sets the framing. */
export function endToEnd(h: Head, keep: readonly string[] = [], drop?: ReadonlySet<string>): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i < h.names.length; i++) {
    const n = h.names[i]!;
    if (keep.includes(n) || (!HOP.has(n) && (h.connection.size === 0 || !h.connection.has(n)) && !drop?.has(n))) out.push(h.headers[i]!);
  }
  return out;
}

export function serializeFields(fields: [string, string][]): string {
  let s = "";
  for (const [k, v] of fields) s += `${k}: ${v}\r\n`;
  return s;
}

const CRLF = Buffer.from("\r\n");
const LAST_CHUNK = Buffer.from("0\r\n");

/** `data` framed as one chunk. */
export function chunk(data: Buffer): Buffer[] {
  return [Buffer.from(`${data.length.toString(16)}\r\n`, "latin1"), data, CRLF];
}

/** The end of a chunked body, with trailer fields. */
export function lastChunk(trailers: [string, string][] = []): Buffer {
  return trailers.length ? Buffer.concat([LAST_CHUNK, Buffer.from(serializeFields(trailers), "latin1"), CRLF]) : Buffer.from("0\r\n\r\n");
}

/**
 * Incremental body reader for one message: feed bytes, get the body's data slices
 * and how many input bytes belonged to the body; `done` once the message ended.
 * Chunked input is validated (sizes, CRLFs, trailers) and decoded.
 */
export class BodyReader {
  /** The reader of every message without a body (shared: it never changes). */
  static readonly NONE = new BodyReader({ kind: "none" });
  done = false;
  /** Trailer fields of a chunked body. */
  trailers: [string, string][] = [];
  private remaining: number;
  private state: "size" | "data" | "data-crlf" | "trailers" = "size";
  private line = "";
  private trailerBytes = 0;

  constructor(
    readonly framing: Framing,
    private readonly errorStatus = 400,
  ) {
    this.remaining = framing.kind === "length" ? framing.length : 0;
    if (framing.kind === "none" || (framing.kind === "length" && framing.length === 0)) this.done = true;
  }

  /** Consumes from `buf`; returns the decoded data slices and the count of bytes consumed (the rest is the next message). */
  read(buf: Buffer): { data: Buffer[]; used: number } {
    const data: Buffer[] = [];
    if (this.done) return { data, used: 0 };
    const f = this.framing;
    if (f.kind === "close") {
      if (buf.length) data.push(buf);
      return { data, used: buf.length };
    }
    if (f.kind === "length") {
      const n = Math.min(this.remaining, buf.length);
      if (n) data.push(n === buf.length ? buf : buf.subarray(0, n));
      this.remaining -= n;
      if (this.remaining === 0) this.done = true;
      return { data, used: n };
    }
    let i = 0;
    while (i < buf.length && !this.done) {
      if (this.state === "data") {
        const n = Math.min(this.remaining, buf.length - i);
        data.push(buf.subarray(i, i + n));
        i += n;
        this.remaining -= n;
        if (this.remaining === 0) this.state = "data-crlf";
        continue;
      }
      // Line-oriented states: collect up to LF.
      const nl = buf.indexOf(10, i);
      const end = nl < 0 ? buf.length : nl + 1;
      this.line += buf.toString("latin1", i, end);
      i = end;
      if (this.line.length > 4096) throw new HttpError(this.errorStatus, "a chunk line is too long");
      if (nl < 0) continue;
      if (!this.line.endsWith("\r\n")) throw new HttpError(this.errorStatus, "a bare LF in a chunked body");
      const line = this.line.slice(0, -2);
      this.line = "";
      if (this.state === "data-crlf") {
        if (line !== "") throw new HttpError(this.errorStatus, "chunk data longer than its size");
        this.state = "size";
      } else if (this.state === "size") {
        const m = /^([0-9A-Fa-f]{1,15})[ \t]*(;.*)?$/.exec(line);
        if (!m || (m[2] !== undefined && !/^(;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+([ \t]*=[ \t]*([!#$%&'*+\-.^_`|~0-9A-Za-z]+|"([^"\\\r\n]|\\[\t !-~])*"))?[ \t]*)+$/.test(m[2])))
          throw new HttpError(this.errorStatus, `invalid chunk size line ${JSON.stringify(line.slice(0, 40))}`);
        this.remaining = parseInt(m[1]!, 16);
        this.state = this.remaining === 0 ? "trailers" : "data";
      } else {
        // trailers
        if (line === "") {
          this.done = true;
          break;
        }
        this.trailerBytes += line.length;
        if (this.trailerBytes > MAX_HEAD_BYTES) throw new HttpError(this.errorStatus === 400 ? 431 : this.errorStatus, "trailers too large");
        this.trailers.push(...parseFields([line], 0, this.errorStatus === 400));
      }
    }
    return { data, used: i };
  }
}

/** Methods a request may be repeated with (RFC 9110 §9.2.2). */
export const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]);

export const REASONS: Record<number, string> = {
  400: "Bad Request",
  408: "Request Timeout",
  413: "Content Too Large",
  414: "URI Too Long",
  431: "Request Header Fields Too Large",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

/** A complete plain-text response hr answers itself (always closing when `close`). */
export function errorResponse(status: number, text: string, close: boolean): Buffer {
  const body = `${text}\n`;
  return Buffer.from(
    `HTTP/1.1 ${status} ${REASONS[status] ?? "Error"}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\n${close ? "Connection: close\r\n" : ""}\r\n${body}`,
  );
}
