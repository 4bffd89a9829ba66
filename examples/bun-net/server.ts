// bun-net: a node:http app run by Bun that can adopt an inherited listening
// socket (fd 3, systemd's LISTEN_FDS convention) — the way `hr serve` and
// `hr dev` (strategy "fd") hand sockets to workers.
//
// Why the bridge: in Bun, node:http `listen({ fd: 3 })` silently binds a random
// port and Bun.serve ignores `fd`; node:net `listen({ fd })` works, so a net
// server accepts and hands each socket to the http server via emit("connection").
import http from "node:http";
import net from "node:net";
import { spawn } from "node:child_process";
import { dlopen, FFIType, ptr } from "bun:ffi";

const VERSION = "v1";
const APP = "bun-net";
const GEN = process.env.HR_GENERATION ?? "0";
const GRACE_MS = Number(process.env.HR_GRACE_MS ?? 1000);
const DRAIN_TIMEOUT_MS = Number(process.env.HR_DRAIN_TIMEOUT_MS ?? 30000);

let draining = false; // SIGTERM seen: answer with Connection: close
let closing = false; // grace over: listener closed, waiting for in-flight

// Every connection we own, with its number of in-flight requests. Bun's
// http.Server.close() does not wait for sockets injected with emit("connection"),
// so we track them ourselves.
const conns = new Map<net.Socket, { busy: number; served: number }>();
let freshExpired = false; // a just-accepted socket may still be sending its first request

const app = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const sock = req.socket as net.Socket;
  const state = conns.get(sock);
  if (state) {
    state.busy++;
    state.served++;
  }
  res.on("close", () => {
    if (state) state.busy--;
    // While draining every response carries Connection: close, so the http
    // server ends the socket after it; we only need to notice when all are done.
    if (closing) maybeExit();
  });
  if (draining) res.setHeader("Connection", "close");
  const send = (status: number, body: string) => {
    res.writeHead(status, { "Content-Type": "text/plain", "Content-Length": Buffer.byteLength(body) });
    res.end(body);
  };
  if (url.pathname === "/") return send(200, `hello from ${APP} ${VERSION} gen=${GEN} pid=${process.pid}\n`);
  if (url.pathname === "/health") return send(200, "ok");
  if (url.pathname === "/slow") {
    const ms = Number(url.searchParams.get("ms") ?? 1000);
    setTimeout(() => send(200, `slow ${ms}ms pid=${process.pid}\n`), ms);
    return;
  }
  send(404, "not found\n");
});

const listener = net.createServer({ pauseOnConnect: false }, (sock) => {
  conns.set(sock, { busy: 0, served: 0 });
  sock.on("close", () => {
    conns.delete(sock);
    maybeExit();
  });
  app.emit("connection", sock);
});

// LISTEN_FDS: sockets start at fd 3; LISTEN_FDNAMES (":"-separated) names them.
// Honour them only when LISTEN_PID is unset or ours (systemd's rule).
function inheritedFd(): number | undefined {
  const n = Number(process.env.LISTEN_FDS ?? 0);
  const pid = process.env.LISTEN_PID;
  if (!n || (pid && Number(pid) !== process.pid)) return undefined;
  const idx = (process.env.LISTEN_FDNAMES ?? "").split(":").indexOf("http");
  for (const k of ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) delete process.env[k];
  return 3 + (idx >= 0 && idx < n ? idx : 0);
}

const fd = inheritedFd();
const onListening = () => {
  const where = fd !== undefined ? `fd ${fd}` : `127.0.0.1:${port}`;
  console.log(`${APP} ${VERSION} gen=${GEN} pid=${process.pid} listening on ${where}`);
  sdNotify("READY=1");
  process.send?.("ready");
};
const port = Number(process.env.PORT ?? 8080);
if (fd !== undefined) listener.listen({ fd }, onListening);
else listener.listen({ port, host: "127.0.0.1" }, onListening);

if (process.env.SPAWN_GRANDCHILD === "1") {
  // A long-lived descendant, so tests can check that no descendant survives a restart.
  spawn("sleep", ["600"], { stdio: "ignore" }).unref();
}

// Draining. Why a grace period: closing idle keep-alive connections at once
// (what Go's Shutdown() and Bun's server.stop() do) fails requests a client has
// already sent on them — measured 491 failures over 10 handoffs without it, 0 with
// a 1 s grace. During the grace we keep accepting and answer every request with
// `Connection: close`, so busy keep-alive clients move to a new connection (which
// the next worker picks up from the shared socket). Then we stop accepting, wait
// for in-flight requests, close the connections left idle, and exit 0.
function drain(sig: string) {
  if (draining) return;
  draining = true;
  console.log(`${APP} pid=${process.pid}: ${sig}, draining (grace ${GRACE_MS} ms)`);
  setTimeout(() => {
    console.error(`${APP} pid=${process.pid}: drain timeout, forcing exit`);
    process.exit(1);
  }, DRAIN_TIMEOUT_MS).unref();
  setTimeout(() => {
    closing = true;
    listener.close();
    // Close idle keep-alive sockets; a socket accepted just before close() whose first
    // request is still on its way gets 500 ms to send it (destroying it resets the client).
    for (const [sock, st] of conns) if (st.busy === 0 && st.served > 0) sock.destroy();
    setTimeout(() => {
      freshExpired = true;
      maybeExit();
    }, 500);
    maybeExit();
  }, GRACE_MS);
}

function maybeExit() {
  if (!closing) return;
  for (const st of conns.values()) if (st.busy > 0 || (st.served === 0 && !freshExpired)) return;
  for (const sock of conns.keys()) sock.destroy();
  console.log(`${APP} pid=${process.pid}: drained, exiting`);
  process.exit(0);
}

process.on("SIGTERM", () => drain("SIGTERM"));
process.on("SIGINT", () => drain("SIGINT"));

// sd_notify: one datagram to the AF_UNIX socket named by NOTIFY_SOCKET ("@" =
// abstract namespace). Bun has no unix-datagram API, so a few libc calls via FFI.
function sdNotify(state: string) {
  const path = process.env.NOTIFY_SOCKET;
  if (!path) return;
  try {
    // Linux layout of struct sockaddr_un (sa_family is a little-endian u16).
    const libc = dlopen("libc.so.6", {
      socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
      sendto: {
        args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
        returns: FFIType.i64,
      },
      close: { args: [FFIType.i32], returns: FFIType.i32 },
    });
    const name = Buffer.from(path.startsWith("@") ? "\0" + path.slice(1) : path);
    const addr = new Uint8Array(110); // struct sockaddr_un: sa_family (u16) + sun_path[108]
    addr[0] = 1; // AF_UNIX (little-endian)
    addr.set(name, 2);
    const addrLen = 2 + name.length + (path.startsWith("@") ? 0 : 1);
    const msg = Buffer.from(state);
    const s = libc.symbols.socket(1 /* AF_UNIX */, 2 /* SOCK_DGRAM */, 0);
    if (s < 0) return;
    libc.symbols.sendto(s, ptr(msg), msg.length, 0, ptr(addr), addrLen);
    libc.symbols.close(s);
  } catch (e) {
    console.error(`${APP}: sd_notify failed: ${e}`);
  }
}
