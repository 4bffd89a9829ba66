/**
 * The control socket a running `hr serve` listens on (Bun.listen({ unix })),
 * mode 0600 inside a 0700 directory. One JSON request line in, one JSON line out.
 *
 * Bounded: a client has IDLE_TIMEOUT_S to send its request line (then it is
 * closed; once the request is in, the answer may take as long as a reload does),
 * and at most MAX_CONNECTIONS are open at once: a new client beyond that evicts
 * the oldest one still silent, or is refused when all are being answered. Idle
 * clients therefore cannot exhaust hr's fds nor lock `hr status` out.
 */
import { chmodSync, lstatSync, renameSync, unlinkSync } from "node:fs";
import { parseRequest, type Request, type Response } from "./protocol.ts";

export type Handler = (req: Request) => Promise<Response> | Response;

export interface ControlServer {
  readonly path: string;
  /**
   * Staged server (opts.stagingPath): atomically moves the socket to `path`
   * (rename(2) over a predecessor's socket, so clients never see ENOENT). No-op otherwise.
   */
  publish(): void;
  /** Is the socket at `path` still this server's (not replaced by another master's)? */
  owned(): boolean;
  close(): void;
}

export interface ControlServerOptions {
  /**
   * Bind here first and take over `path` only on publish() (a self-upgraded master
   * takes the control socket over from the old one only once it is ready).
   */
  stagingPath?: string;
}

const MAX_REQUEST = 64 * 1024;
export const IDLE_TIMEOUT_S = 5;
export const MAX_CONNECTIONS = 64;

export function startControlServer(path: string, handle: Handler, opts: ControlServerOptions = {}): ControlServer {
  let at = opts.stagingPath ?? path;
  try {
    if (lstatSync(at).isSocket()) unlinkSync(at);
  } catch {
    /* not there */
  }
  type Data = { buf: string; done: boolean; openedAt: number };
  type Sock = Parameters<NonNullable<Parameters<typeof Bun.listen<Data>>[0]["socket"]["open"]>>[0];
  const open = new Set<Sock>();
  /** Connected, no request line yet: the ones evicted first. Insertion order = oldest first. */
  const silent = new Set<Sock>();
  const refuse = (sock: Sock, error: string) => {
    try {
      sock.end(`${JSON.stringify({ ok: false, error })}\n`);
    } catch {
      /* gone */
    }
  };
  const old = process.umask(0o177);
  let server: ReturnType<typeof Bun.listen<Data>>;
  try {
    server = Bun.listen<Data>({
      unix: at,
      socket: {
        open(sock) {
          sock.data = { buf: "", done: false, openedAt: Date.now() };
          if (open.size >= MAX_CONNECTIONS) {
            const oldest = silent.values().next().value;
            if (!oldest) {
              sock.data.done = true;
              return refuse(sock, `too many control connections (${MAX_CONNECTIONS}) being answered; try again`);
            }
            silent.delete(oldest);
            open.delete(oldest);
            oldest.data.done = true;
            refuse(oldest, "closed: too many control connections, and this one sent nothing");
          }
          open.add(sock);
          silent.add(sock);
        },
        close(sock) {
          open.delete(sock);
          silent.delete(sock);
        },
        data(sock, chunk) {
          const st = sock.data;
          if (st.done) return;
          st.buf += chunk.toString();
          const nl = st.buf.indexOf("\n");
          if (nl < 0) {
            if (st.buf.length > MAX_REQUEST) {
              st.done = true;
              silent.delete(sock);
              sock.end(`${JSON.stringify({ ok: false, error: "request too long" })}\n`);
            }
            return;
          }
          st.done = true;
          silent.delete(sock); // answering may take as long as a reload: no timeout from here on
          const parsed = parseRequest(st.buf.slice(0, nl));
          const reply = (r: Response) => {
            try {
              sock.end(`${JSON.stringify(r)}\n`);
            } catch {
              /* client went away */
            }
          };
          if ("error" in parsed) return reply({ ok: false, error: parsed.error });
          Promise.resolve()
            .then(() => handle(parsed))
            .then(reply, (e) => reply({ ok: false, error: (e as Error).message }));
        },
        error() {},
      },
    });
  } finally {
    process.umask(old);
  }
  // Bun's socket.timeout() fires anywhere up to twice the time asked; one sweep a second is exact enough.
  const sweep = setInterval(() => {
    const cutoff = Date.now() - IDLE_TIMEOUT_S * 1000;
    for (const sock of silent) {
      if (sock.data.openedAt > cutoff) break; // insertion order: the rest are younger
      silent.delete(sock);
      sock.data.done = true;
      refuse(sock, `no request within ${IDLE_TIMEOUT_S}s`);
    }
  }, 1000);
  sweep.unref?.();
  chmodSync(at, 0o600);
  const ino = lstatSync(at).ino;
  return {
    path,
    publish() {
      if (at === path) return;
      renameSync(at, path);
      at = path;
    },
    owned() {
      try {
        return lstatSync(at).ino === ino;
      } catch {
        return false;
      }
    },
    close() {
      const ours = this.owned();
      // Bun's stop() unlinks the path by name: when another master has renamed its
      // socket over ours (self-upgrade), stopping would delete ITS socket. Then leave
      // ours alone (unnamed, unreachable); it closes when this process exits.
      clearInterval(sweep);
      if (!ours) return;
      server.stop(true);
      try {
        unlinkSync(at);
      } catch {
        /* gone */
      }
    },
  };
}
