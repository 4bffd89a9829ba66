/**
 * hr's one output path: every line hr prints (its own log, worker and build
 * output) goes through an OutputStream for fd 1 or fd 2.
 *
 * Invariants:
 * - Never blocks: writes go through a non-blocking writer (platform/fdout.ts); what
 *   the reader does not take at once waits in a queue of at most QUEUE_BYTES.
 * - Bounded: a line that does not fit in the queue is dropped whole and counted;
 *   once the reader takes lines again, a line says how much was dropped ("hr warn:
 *   the reader of hr's stderr was too slow: 1.2 MiB in 3,400 lines dropped"), when
 *   the queue has drained or at most once a second while it stays behind.
 *   The totals are in `hr status` (outputStats()).
 * - A reader that is gone (EPIPE, ECONNRESET: `hr serve | head`, a restarted
 *   journald) is not an error: lines are counted as dropped, hr keeps running and
 *   retries once a second (a FIFO may get a new reader).
 * - On exit, what is queued gets a last chance of up to EXIT_FLUSH_MS.
 *
 * Not covered: a regular file on a stalled disk or NFS (file writes are plain
 * write(2)); systems without /proc, where a pipe is written blocking.
 */
import { openNonBlocking, type RawWriter } from "../platform/fdout.ts";
import { RotatingFile } from "./file.ts";

export const QUEUE_BYTES = 1024 * 1024;
const RETRY_MS = 20;
const GONE_RETRY_MS = 1000;
const EXIT_FLUSH_MS = 250;
const NOTICE_MS = 1000;

export interface OutputStats {
  /** Bytes dropped since hr started (reader too slow or gone). */
  droppedBytes: number;
  droppedLines: number;
  /** Bytes waiting for the reader right now. */
  queuedBytes: number;
  /** The reader went away (EPIPE) and has not come back. */
  readerGone: boolean;
}

export type DropNotice = (stream: "stdout" | "stderr" | "log file", bytes: number, lines: number, gone: boolean) => string;

const encoder = new TextEncoder();

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} bytes`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

const defaultNotice: DropNotice = (stream, bytes, lines, gone) =>
  `hr warn: ${gone ? `${stream} had no reader` : `the reader of hr's ${stream} was too slow`}: ${formatBytes(bytes)} in ${lines.toLocaleString("en-US")} line${lines === 1 ? "" : "s"} dropped\n`;

export class OutputStream {
  private queue: Uint8Array[] = [];
  private queued = 0;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private gone = false;
  private goneAt = 0;
  /** Not yet reported in a notice line. */
  private pendingBytes = 0;
  private pendingLines = 0;
  private pendingGone = false;
  private noticeAt = 0;
  private totalBytes = 0;
  private totalLines = 0;
  notice: DropNotice = defaultNotice;

  constructor(
    private readonly writer: RawWriter,
    readonly name: "stdout" | "stderr" | "log file",
    private readonly capacity = QUEUE_BYTES,
  ) {}

  /** Queues `text` (whole lines, newline included) and writes what the reader takes now. */
  write(text: string): void {
    const data = encoder.encode(text);
    if (this.gone) {
      if (Date.now() - this.goneAt < GONE_RETRY_MS) return this.drop(data.length, 1);
      this.gone = false; // try again: a FIFO may have a new reader
    }
    if (this.queued + data.length > this.capacity) {
      this.drop(data.length, 1);
      this.schedule();
      return;
    }
    this.queue.push(data);
    this.queued += data.length;
    if (!this.timer) this.flush();
  }

  stats(): OutputStats {
    return { droppedBytes: this.totalBytes, droppedLines: this.totalLines, queuedBytes: this.queued, readerGone: this.gone };
  }

  /** Writes as much as the reader takes now; true when nothing is left. */
  flush(): boolean {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    while (this.queue.length) {
      const head = this.queue[0]!;
      const r = this.writer.write(head);
      if (r === "again") {
        this.schedule();
        return false;
      }
      if (r === "closed") {
        this.gone = true;
        this.pendingGone = true;
        this.goneAt = Date.now();
        this.drop(this.queued, this.queue.length);
        this.queue = [];
        this.queued = 0;
        return true;
      }
      this.queued -= r;
      if (r < head.length) this.queue[0] = head.subarray(r);
      else this.queue.shift();
      this.maybeNotice();
    }
    return true;
  }

  /**
   * After a successful write: say what was lost, once the queue has drained or at
   * most once per NOTICE_MS while the reader stays behind (the line may exceed the
   * queue bound by its own length).
   */
  private maybeNotice(): void {
    if (this.pendingBytes === 0) return;
    const now = Date.now();
    if (this.queue.length > 0 && now - this.noticeAt < NOTICE_MS) return;
    this.noticeAt = now;
    const line = encoder.encode(this.notice(this.name, this.pendingBytes, this.pendingLines, this.pendingGone));
    this.pendingBytes = this.pendingLines = 0;
    this.pendingGone = false;
    this.queue.push(line);
    this.queued += line.length;
  }

  /** Synchronous last flush (process exit): retries for up to `ms` while the reader is slow. */
  flushBeforeExit(ms = EXIT_FLUSH_MS): void {
    const until = Date.now() + ms;
    const pause = new Int32Array(new SharedArrayBuffer(4));
    while (!this.flush() && Date.now() < until) Atomics.wait(pause, 0, 0, 5);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private drop(bytes: number, lines: number): void {
    this.pendingBytes += bytes;
    this.pendingLines += lines;
    this.totalBytes += bytes;
    this.totalLines += lines;
  }

  private schedule(): void {
    if (this.timer || this.gone) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.flush();
    }, RETRY_MS);
    this.timer.unref?.();
  }
}

const streams: { stdout?: OutputStream; stderr?: OutputStream; file?: OutputStream } = {};
let exitHook = false;

function stream(name: "stdout" | "stderr"): OutputStream {
  let s = streams[name];
  if (!s) {
    s = streams[name] = new OutputStream(openNonBlocking(name === "stdout" ? 1 : 2), name);
    if (!exitHook) {
      exitHook = true;
      process.on("exit", () => {
        streams.stdout?.flushBeforeExit();
        streams.stderr?.flushBeforeExit();
        streams.file?.flushBeforeExit();
      });
    }
  }
  return s;
}

/** hr's stdout (fd 1) and stderr (fd 2) through the bounded, non-blocking path. */
export const out = {
  stdout: () => stream("stdout"),
  stderr: () => stream("stderr"),
  /**
   * [log] file: one per process, opened by the first call (which says so on stderr).
   * A file that cannot be opened is said once, and stderr is used instead.
   */
  file(path: string, maxBytes: number, keep: number): OutputStream {
    if (!streams.file) {
      const stderr = stream("stderr"); // also installs the exit flush
      try {
        streams.file = new OutputStream(new RotatingFile(path, maxBytes, keep), "log file");
        stderr.write(`hr: logging to ${path}\n`);
      } catch (error) {
        stderr.write(`hr error: log.file: cannot open ${path} (${(error as Error).message}); logging to stderr instead\n`);
        streams.file = stderr;
      }
    }
    return streams.file;
  },
};

/** Sets how the "… dropped" line reads (json logs want an object). */
export function setDropNotice(notice: DropNotice): void {
  out.stdout().notice = notice;
  out.stderr().notice = notice;
  if (streams.file) streams.file.notice = notice;
}

/** Both streams' drops together (hr status). */
export function outputStats(): OutputStats {
  const all = [...new Set([streams.stdout, streams.stderr, streams.file])].flatMap((s) => (s ? [s.stats()] : []));
  return {
    droppedBytes: all.reduce((n, s) => n + s.droppedBytes, 0),
    droppedLines: all.reduce((n, s) => n + s.droppedLines, 0),
    queuedBytes: all.reduce((n, s) => n + s.queuedBytes, 0),
    readerGone: all.some((s) => s.readerGone),
  };
}
