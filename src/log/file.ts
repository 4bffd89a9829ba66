/**
 * [log] file: hr's log written to a file, rotated by size (hr.log → hr.log.1 →
 * … → hr.log.<keep>, the oldest dropped), for setups without journald or a
 * container log driver. It is a RawWriter, so it sits behind the same bounded
 * OutputStream as stderr (output.ts). Files are opened O_APPEND|O_NOFOLLOW.
 *
 * Not covered: several hr processes writing the same file (each rotates on its
 * own count); a file renamed away by an outside logrotate keeps being written
 * until hr rotates it (use copytruncate there, or let hr rotate).
 */
import { closeSync, fstatSync, mkdirSync, openSync, renameSync, writeSync, constants as C } from "node:fs";
import { dirname } from "node:path";
import type { RawWriter, WriteResult } from "../platform/fdout.ts";

export class RotatingFile implements RawWriter {
  readonly kind = "file" as const;
  private fd: number;
  private size: number;

  constructor(
    readonly path: string,
    private readonly maxBytes: number,
    private readonly keep: number,
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.fd = this.open();
    this.size = fstatSync(this.fd).size;
  }

  private open(): number {
    return openSync(this.path, C.O_WRONLY | C.O_APPEND | C.O_CREAT | C.O_NOFOLLOW, 0o644);
  }

  write(data: Uint8Array): WriteResult {
    try {
      if (this.size > 0 && this.size + data.length > this.maxBytes) this.rotate();
      const n = writeSync(this.fd, data);
      this.size += n;
      return n;
    } catch (error) {
      const code = (error as { code?: string }).code;
      return code === "EAGAIN" || code === "EINTR" ? "again" : "closed";
    }
  }

  private rotate(): void {
    closeSync(this.fd);
    for (let i = this.keep - 1; i >= 1; i--) {
      try {
        renameSync(`${this.path}.${i}`, `${this.path}.${i + 1}`);
      } catch {
        /* not there yet */
      }
    }
    renameSync(this.path, `${this.path}.1`);
    this.fd = this.open();
    this.size = 0;
  }
}
