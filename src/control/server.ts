/**
 * The control socket a running `hr serve` listens on (Bun.listen({ unix })),
 * mode 0600 inside a 0700 directory. One JSON request line in, one JSON line out.
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

export function startControlServer(path: string, handle: Handler, opts: ControlServerOptions = {}): ControlServer {
  let at = opts.stagingPath ?? path;
  try {
    if (lstatSync(at).isSocket()) unlinkSync(at);
  } catch {
    /* not there */
  }
  type Data = { buf: string; done: boolean };
  const old = process.umask(0o177);
  let server: ReturnType<typeof Bun.listen<Data>>;
  try {
    server = Bun.listen<Data>({
      unix: at,
      socket: {
        open(sock) {
          sock.data = { buf: "", done: false };
        },
        data(sock, chunk) {
          const st = sock.data;
          if (st.done) return;
          st.buf += chunk.toString();
          const nl = st.buf.indexOf("\n");
          if (nl < 0) {
            if (st.buf.length > MAX_REQUEST) {
              st.done = true;
              sock.end(`${JSON.stringify({ ok: false, error: "request too long" })}\n`);
            }
            return;
          }
          st.done = true;
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
