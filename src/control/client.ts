/** Client side of the control socket (`hr status`, `hr reload`, and the "already running?" check). */
import type { Request, Response } from "./protocol.ts";

export class NotRunningError extends Error {
  override name = "NotRunningError";
}

/** Sends one request, returns the one response. Throws NotRunningError when nobody listens at `path`. */
export function request(path: string, req: Request, timeoutMs = 10_000): Promise<Response> {
  return new Promise((resolve, reject) => {
    let buf = "";
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`no answer from ${path} within ${timeoutMs} ms`))), timeoutMs);
    Bun.connect({
      unix: path,
      socket: {
        open(sock) {
          sock.write(`${JSON.stringify(req)}\n`);
        },
        data(sock, chunk) {
          buf += chunk.toString();
          const nl = buf.indexOf("\n");
          if (nl < 0) return;
          const line = buf.slice(0, nl);
          // Settle before end(): Bun runs the close handler synchronously inside end().
          finish(() => {
            try {
              resolve(JSON.parse(line) as Response);
            } catch {
              reject(new Error(`bad answer from ${path}: ${line.slice(0, 200)}`));
            }
          });
          sock.end();
        },
        close() {
          finish(() => reject(new Error(`${path} closed the connection without an answer`)));
        },
        error(_sock, e) {
          finish(() => reject(e));
        },
      },
    }).catch((e: NodeJS.ErrnoException) => {
      finish(() => reject(e?.code === "ENOENT" || e?.code === "ECONNREFUSED" ? new NotRunningError(`no hr serve is running for this project (nothing listens on ${path})`) : e));
    });
  });
}
