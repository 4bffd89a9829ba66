/**
 * The bounded, non-blocking output path (log/output.ts, platform/fdout.ts) on a
 * real FIFO that nobody reads until the test says so, and the line splitter's cap.
 */
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, readSync, rmSync, constants as C } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { OutputStream } from "../../src/log/output.ts";
import { openNonBlocking } from "../../src/platform/fdout.ts";
import { lines } from "../../src/process/child.ts";

setDefaultTimeout(30_000);
const fds: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) closeSync(fd);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** A FIFO held open read-write (so opening never blocks and writes never EPIPE): fd to write, fd to drain. */
function fifo(): { writeFd: number; readFd: number } {
  const dir = mkdtempSync(join(tmpdir(), "hr-output-"));
  dirs.push(dir);
  const path = join(dir, "fifo");
  expect(spawnSync("mkfifo", [path]).status).toBe(0);
  const readFd = openSync(path, C.O_RDONLY | C.O_NONBLOCK);
  const writeFd = openSync(path, C.O_WRONLY);
  fds.push(readFd, writeFd);
  return { writeFd, readFd };
}

function drain(fd: number): string {
  const buf = Buffer.alloc(1 << 16);
  let text = "";
  for (;;) {
    try {
      const n = readSync(fd, buf);
      if (n <= 0) return text;
      text += buf.toString("latin1", 0, n);
    } catch {
      return text; // EAGAIN: empty
    }
  }
}

test("a full pipe never blocks the writer: what does not fit is dropped, counted and reported once the reader catches up", () => {
  const { writeFd, readFd } = fifo();
  const writer = openNonBlocking(writeFd);
  expect(writer.kind).toBe("pipe");
  const out = new OutputStream(writer, "stderr", 256 * 1024);
  const line = `${"x".repeat(1023)}\n`;
  const t0 = performance.now();
  for (let i = 0; i < 2000; i++) out.write(line); // ~2 MB into a 64 KiB pipe + 256 KiB queue
  expect(performance.now() - t0).toBeLessThan(2000); // a blocking write would hang here forever
  const s = out.stats();
  expect(s.droppedLines).toBeGreaterThan(1000);
  expect(s.droppedBytes).toBe(s.droppedLines * 1024);
  expect(s.queuedBytes).toBeLessThanOrEqual(256 * 1024);
  // The original fd 'writeFd' is still blocking: only hr's own description is non-blocking.
  expect(spawnSync("sh", ["-c", `cat /proc/${process.pid}/fdinfo/${writeFd}`]).stdout.toString()).toMatch(/flags:\s+\d*[0-3]\d{3}\n/);
  let seen = "";
  for (let i = 0; i < 50 && !/dropped/.test(seen); i++) {
    seen += drain(readFd);
    out.flush();
  }
  seen += drain(readFd);
  expect(seen).toMatch(new RegExp(`hr warn: the reader of hr's stderr was too slow: [\\d.]+ (KiB|MiB) in ${s.droppedLines.toLocaleString("en-US")} lines dropped\\n`));
  // Whole lines only: everything before the notice is intact 1 KiB lines.
  const body = seen.slice(0, seen.indexOf("hr warn"));
  expect(body.length % 1024).toBe(0);
  expect(out.stats().queuedBytes).toBe(0);
});

test("a reader that is gone (EPIPE) is not an error: lines are counted, nothing throws", () => {
  const dir = mkdtempSync(join(tmpdir(), "hr-output-"));
  dirs.push(dir);
  const path = join(dir, "fifo");
  spawnSync("mkfifo", [path]);
  const readFd = openSync(path, C.O_RDONLY | C.O_NONBLOCK);
  const writeFd = openSync(path, C.O_WRONLY);
  fds.push(writeFd);
  const out = new OutputStream(openNonBlocking(writeFd), "stdout");
  out.write("one\n");
  closeSync(readFd);
  for (let i = 0; i < 10; i++) out.write("more\n");
  expect(out.stats()).toMatchObject({ readerGone: true, droppedLines: 10, droppedBytes: 50 });
});

function streamOf(chunks: Uint8Array[]): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(ch);
      c.close();
    },
  });
}

test("lines() caps a line at 64 KiB and says how much was cut; short lines around it are intact", async () => {
  const enc = new TextEncoder();
  const big = new Uint8Array(3 * 1024 * 1024).fill(121);
  const got: string[] = [];
  await lines(streamOf([enc.encode("before\r\nhalf"), big, big, enc.encode("\nafter\nlast")]), (l) => got.push(l));
  expect(got).toHaveLength(4);
  expect(got[0]).toBe("before");
  expect(got[1]!.startsWith(`half${"y".repeat(100)}`)).toBe(true);
  expect(got[1]!.length).toBe(64 * 1024 + ` [… ${6 * 1024 * 1024 + 4 - 64 * 1024} bytes cut by hr]`.length);
  expect(got[1]!.endsWith(` [… ${6 * 1024 * 1024 + 4 - 64 * 1024} bytes cut by hr]`)).toBe(true);
  expect(got.slice(2)).toEqual(["after", "last"]);
});

test("lines() is linear: 200k short lines and a 50 MB line fed in 64 KiB chunks", async () => {
  const enc = new TextEncoder();
  const chunks: Uint8Array[] = [];
  const block = enc.encode("a short line of output\n".repeat(2849)); // ~64 KiB
  for (let i = 0; i < 70; i++) chunks.push(block);
  const piece = new Uint8Array(64 * 1024).fill(122);
  for (let i = 0; i < 800; i++) chunks.push(piece);
  chunks.push(enc.encode("\n"));
  let n = 0;
  let longest = 0;
  const t0 = performance.now();
  await lines(streamOf(chunks), (l) => {
    n++;
    longest = Math.max(longest, l.length);
  });
  const ms = performance.now() - t0;
  expect(n).toBe(70 * 2849 + 1);
  expect(longest).toBeLessThan(64 * 1024 + 64);
  // Quadratic re-scanning of the pending line (the old splitter) takes minutes here; linear takes well under a second.
  expect(ms).toBeLessThan(10_000);
});

test("[log] file rotates by size: hr.log → hr.log.1 → … → hr.log.<keep>, whole lines, the oldest dropped", async () => {
  const { RotatingFile } = await import("../../src/log/file.ts");
  const { readdirSync, readFileSync, statSync } = await import("node:fs");
  const dir = mkdtempSync(join(tmpdir(), "hr-logfile-"));
  dirs.push(dir);
  const path = join(dir, "logs", "hr.log"); // the directory is created
  const out = new OutputStream(new RotatingFile(path, 1024, 3), "log file");
  for (let i = 0; i < 100; i++) out.write(`line ${String(i).padStart(3, "0")} ${"x".repeat(90)}\n`); // 100 × 100 bytes
  expect(readdirSync(join(dir, "logs")).sort()).toEqual(["hr.log", "hr.log.1", "hr.log.2", "hr.log.3"]);
  for (const f of ["hr.log", "hr.log.1", "hr.log.2", "hr.log.3"]) {
    expect(statSync(join(dir, "logs", f)).size).toBeLessThanOrEqual(1024);
    expect(readFileSync(join(dir, "logs", f), "utf8")).toMatch(/^(line \d{3} x{90}\n)+$/);
  }
  expect(readFileSync(path, "utf8")).toContain("line 099");
  expect(readFileSync(`${path}.3`, "utf8")).not.toContain("line 000"); // dropped with the oldest file
  expect(out.stats().droppedLines).toBe(0);
});
