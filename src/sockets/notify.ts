/**
 * sd_notify receiver for workers (readiness = "notify").
 *
 * Bun has no unix datagram API, and Bun.file(fd).stream() on a datagram fd
 * concatenates datagrams ("READY=1" + "STATUS=x" -> "READY=1STATUS=x"), losing
 * message boundaries. So: a non-blocking SOCK_DGRAM socket read with
 * recv(MSG_DONTWAIT) via FFI, polled on a short timer only while someone listens
 * (a waiter or an onMessage callback).
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { AF_UNIX, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, libc, sockaddrUn } from "../platform/libc.ts";

export type NotifyMessage = Record<string, string>;

export interface WaitOptions {
  signal?: AbortSignal;
  /** Resolve only on messages received after this call (ignore earlier state). Default false. */
  fresh?: boolean;
}

export interface NotifySocket {
  /** Value for the child's NOTIFY_SOCKET. */
  readonly path: string;
  readonly fd: number;
  /** Merged state of every message so far (later values win). */
  readonly state: Readonly<NotifyMessage>;
  /** Subscribe; returns an unsubscribe function. */
  onMessage(cb: (msg: NotifyMessage) => void): () => void;
  /**
   * Resolve with the first message carrying `key` (for READY/STOPPING/RELOADING the value must be "1").
   * Resolves immediately if already seen (unless opts.fresh). Rejects on abort or close().
   */
  waitFor(key: string, opts?: WaitOptions): Promise<NotifyMessage>;
  close(): void;
}

export interface OpenNotifyOptions {
  /** Poll interval while listening, ms (default 5). */
  pollMs?: number;
}

const BOOLEAN_KEYS = new Set(["READY", "STOPPING", "RELOADING", "WATCHDOG"]);

/** Parse "KEY=VALUE\n..." (lines without "=" are ignored). */
export function parseNotifyMessage(text: string): NotifyMessage {
  const out: NotifyMessage = {};
  for (const line of text.split("\n")) {
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

function matches(msg: NotifyMessage, key: string): boolean {
  const v = msg[key];
  if (v === undefined) return false;
  return BOOLEAN_KEYS.has(key) ? v === "1" : true;
}

/**
 * Create a unix datagram socket at `path` (mode 0600; the directory must exist).
 * "@name" creates an abstract socket. An existing file at `path` is replaced.
 */
export function openNotifySocket(path: string, opts: OpenNotifyOptions = {}): NotifySocket {
  const pollMs = opts.pollMs ?? 5;
  const abstract = path.startsWith("@");
  if (!abstract) {
    try {
      if (lstatSync(path).isSocket()) unlinkSync(path);
    } catch {
      /* not there */
    }
  }
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
  let ino: number | undefined;
  try {
    const old = abstract ? undefined : process.umask(0o177);
    try {
      libc.bind(fd, sockaddrUn(path));
    } finally {
      if (old !== undefined) process.umask(old);
    }
    if (!abstract) {
      chmodSync(path, 0o600);
      ino = lstatSync(path).ino;
    }
  } catch (e) {
    libc.close(fd);
    throw e;
  }

  const buf = new Uint8Array(65536);
  const decoder = new TextDecoder();
  const state: NotifyMessage = {};
  const subscribers = new Set<(msg: NotifyMessage) => void>();
  const closeHooks = new Set<() => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let closed = false;

  const drain = () => {
    if (closed) return;
    for (;;) {
      let n: number;
      try {
        n = libc.recv(fd, buf, MSG_DONTWAIT);
      } catch {
        return;
      }
      if (n < 0) return;
      const msg = parseNotifyMessage(decoder.decode(buf.subarray(0, Math.min(n, buf.length))));
      Object.assign(state, msg);
      for (const cb of [...subscribers]) {
        try {
          cb(msg);
        } catch {
          /* a subscriber's bug must not stop delivery */
        }
      }
    }
  };

  const updateTimer = () => {
    if (!closed && subscribers.size > 0) {
      timer ??= setInterval(drain, pollMs);
    } else if (timer) {
      clearInterval(timer);
      timer = undefined;
    }
  };

  const subscribe = (cb: (msg: NotifyMessage) => void) => {
    subscribers.add(cb);
    updateTimer();
    return () => {
      subscribers.delete(cb);
      updateTimer();
    };
  };

  const sock: NotifySocket = {
    path,
    fd,
    get state() {
      return state;
    },
    onMessage(cb) {
      if (closed) return () => {};
      const off = subscribe(cb);
      queueMicrotask(drain);
      return off;
    },
    waitFor(key, wopts = {}) {
      drain();
      if (!wopts.fresh && matches(state, key)) return Promise.resolve({ ...state });
      if (closed) return Promise.reject(new Error(`notify socket ${path} is closed`));
      const signal = wopts.signal;
      if (signal?.aborted) return Promise.reject(signal.reason ?? new Error("aborted"));
      return new Promise<NotifyMessage>((resolve, reject) => {
        const cleanup = () => {
          off();
          closeHooks.delete(onClose);
          signal?.removeEventListener("abort", onAbort);
        };
        const onAbort = () => {
          cleanup();
          reject(signal?.reason ?? new Error("aborted"));
        };
        const onClose = () => {
          cleanup();
          reject(new Error(`notify socket ${path} closed while waiting for ${key}`));
        };
        const off = subscribe((m) => {
          if (matches(m, key)) {
            cleanup();
            resolve(m);
          }
        });
        closeHooks.add(onClose);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    close() {
      if (closed) return;
      drain();
      closed = true;
      subscribers.clear();
      updateTimer();
      for (const h of [...closeHooks]) h();
      closeHooks.clear();
      try {
        libc.close(fd);
      } catch {
        /* already closed */
      }
      if (ino !== undefined) {
        try {
          if (lstatSync(path).ino === ino) unlinkSync(path);
        } catch {
          /* gone */
        }
      }
    },
  };
  return sock;
}
