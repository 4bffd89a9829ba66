/**
 * The control socket a running `hr serve` listens on (Bun.listen({ unix })),
 * mode 0600 inside a 0700 directory. One JSON request line in, one JSON line out.
 */
import { chmodSync, lstatSync, unlinkSync } from "node:fs";
import { parseRequest, type Request, type Response } from "./protocol.ts";

export type Handler = (req: Request) => Promise<Response> | Response;

export interface ControlServer {
  readonly path: string;
  close(): void;
}

const MAX_REQUEST = 64 * 1024;

export function startControlServer(path: string, handle: Handler): ControlServer {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    /* not there */
  }
  type Data = { buf: string; done: boolean };
  const old = process.umask(0o177);
  let server: ReturnType<typeof Bun.listen<Data>>;
  try {
    server = Bun.listen<Data>({
      unix: path,
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
  chmodSync(path, 0o600);
  const ino = lstatSync(path).ino;
  return {
    path,
    close() {
      server.stop(true);
      try {
        if (lstatSync(path).ino === ino) unlinkSync(path);
      } catch {
        /* gone */
      }
    },
  };
}
