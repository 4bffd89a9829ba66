/**
 * Writing to one of hr's own output fds (1, 2) without ever blocking.
 *
 * O_NONBLOCK cannot simply be set on fd 1/2: the flag lives on the open file
 * description, which hr shares with its shell, its dev-mode app and everyone
 * else holding the same pipe or terminal; they would start failing with EAGAIN.
 * Instead, per kind of target:
 * - pipe / FIFO / terminal: re-open /proc/self/fd/N with O_NONBLOCK. Linux gives a
 *   new open file description of the same pipe or tty, whose flags are hr's alone.
 * - socket (journald's stdout stream, some supervisors): send(2) with MSG_DONTWAIT,
 *   non-blocking per call (re-opening a socket through /proc fails with ENXIO).
 * - regular file, /dev/null, anything else: plain write(2) on the fd itself (a file
 *   write does not wait for a reader). O_APPEND and the shared offset are kept.
 */
import { fstatSync, openSync, writeSync, constants as C } from "node:fs";
import { isatty } from "node:tty";
import { MSG_DONTWAIT, O_CLOEXEC, libc } from "./libc.ts";

export type WriteResult = number | "again" | "closed";

export interface RawWriter {
  readonly kind: "pipe" | "tty" | "socket" | "file" | "closed";
  /** Bytes written (possibly fewer than given), "again" when the reader is slow, "closed" when it is gone (EPIPE…). */
  write(data: Uint8Array): WriteResult;
}

/** EAGAIN/EINTR: try later. Anything else (EPIPE, ECONNRESET, EBADF, ENOSPC, EIO…): nobody can take it. */
function classify(error: unknown): "again" | "closed" {
  const code = (error as { code?: string }).code ?? "";
  return code === "EAGAIN" || code === "EWOULDBLOCK" || code === "EINTR" ? "again" : "closed";
}

function fdWriter(fd: number, kind: RawWriter["kind"]): RawWriter {
  return {
    kind,
    write(data) {
      try {
        return writeSync(fd, data);
      } catch (error) {
        return classify(error);
      }
    },
  };
}

/** A non-blocking writer for `fd`; never throws (a closed fd gives a writer that reports "closed"). */
export function openNonBlocking(fd: number): RawWriter {
  let st;
  try {
    st = fstatSync(fd);
  } catch {
    return { kind: "closed", write: () => "closed" };
  }
  if (st.isSocket()) {
    return {
      kind: "socket",
      write(data) {
        try {
          const n = libc.send(fd, data, MSG_DONTWAIT);
          return n < 0 ? "again" : n;
        } catch (error) {
          return classify(error);
        }
      },
    };
  }
  const tty = st.isCharacterDevice() && isatty(fd);
  if (st.isFIFO() || tty) {
    try {
      const own = openSync(`/proc/self/fd/${fd}`, C.O_WRONLY | C.O_NONBLOCK | C.O_NOCTTY | O_CLOEXEC);
      return fdWriter(own, tty ? "tty" : "pipe");
    } catch {
      // No /proc (or the FIFO lost its reader): fall through to the plain fd.
    }
  }
  return fdWriter(fd, st.isFIFO() ? "pipe" : tty ? "tty" : "file");
}
