// node-http: a plain Node app (node:http) that can adopt an inherited listening
// socket at fd 3 (systemd's LISTEN_FDS convention), the way `hr serve` and
// `hr dev` (strategy "fd") hand sockets to workers. Run with `node server.mjs`.
import http from "node:http";
import net from "node:net";
import { spawn, execFile } from "node:child_process";

const VERSION = "v1";
const APP = "node-http";
const GEN = process.env.HR_GENERATION ?? "0";
const GRACE_MS = Number(process.env.HR_GRACE_MS ?? 1000);
const DRAIN_TIMEOUT_MS = Number(process.env.HR_DRAIN_TIMEOUT_MS ?? 30000);

let draining = false; // SIGTERM seen: answer with Connection: close
let closing = false; // grace over: listener closed, waiting for in-flight

// Our connections: in-flight requests, requests served, accept time.
const conns = new Map();
// A connection accepted but still without a request is not idle: its request is
// on its way. Closing it would reset it, so it gets this long to send one
// (answered with Connection: close); Go's Shutdown() does the same for StateNew.
const NEW_CONN_MS = 500;

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  const state = conns.get(req.socket);
  if (state) {
    state.busy++;
    state.served++;
  }
  res.on("close", () => {
    if (state) state.busy--;
    // While draining every response carries Connection: close, so Node ends
    // the socket after it; we only need to notice when all are done.
    if (closing) maybeExit();
  });
  if (draining) res.setHeader("Connection", "close");
  const send = (status, body) => {
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

server.on("connection", (sock) => {
  conns.set(sock, { busy: 0, served: 0, since: Date.now() });
  sock.on("close", () => {
    conns.delete(sock);
    maybeExit();
  });
});

// LISTEN_FDS: sockets start at fd 3; LISTEN_FDNAMES (":"-separated) names them.
// Honour them only when LISTEN_PID is unset or ours (systemd's rule).
function inheritedFd() {
  const n = Number(process.env.LISTEN_FDS ?? 0);
  const pid = process.env.LISTEN_PID;
  if (!n || (pid && Number(pid) !== process.pid)) return undefined;
  const idx = (process.env.LISTEN_FDNAMES ?? "").split(":").indexOf("http");
  for (const k of ["LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"]) delete process.env[k];
  return 3 + (idx >= 0 && idx < n ? idx : 0);
}

const fd = inheritedFd();
const port = Number(process.env.PORT ?? 8080);
const onListening = () => {
  const where = fd !== undefined ? `fd ${fd}` : `127.0.0.1:${port}`;
  console.log(`${APP} ${VERSION} gen=${GEN} pid=${process.pid} listening on ${where}`);
  sdNotify("READY=1");
  process.send?.("ready");
};
if (fd !== undefined) server.listen({ fd }, onListening);
else server.listen({ port, host: "127.0.0.1" }, onListening);

if (process.env.SPAWN_GRANDCHILD === "1") {
  // A long-lived descendant, so tests can check that no descendant survives a restart.
  spawn("sleep", ["600"], { stdio: "ignore" }).unref();
}

// Draining. Why a grace period: closing idle keep-alive connections at once
// (what server.close()/closeIdleConnections(), Go's Shutdown() and Bun's
// server.stop() do) fails requests a client has already sent on them — measured
// 491 failures over 10 handoffs without it, 0 with a 1 s grace. During the grace
// we keep accepting and answer every request with `Connection: close`, so busy
// keep-alive clients move to a new connection (which the next worker picks up
// from the shared socket). Then we stop accepting, wait for in-flight requests,
// close the connections left idle, and exit 0.
function drain(sig) {
  if (draining) return;
  draining = true;
  console.log(`${APP} pid=${process.pid}: ${sig}, draining (grace ${GRACE_MS} ms)`);
  setTimeout(() => {
    console.error(`${APP} pid=${process.pid}: drain timeout, forcing exit`);
    process.exit(1);
  }, DRAIN_TIMEOUT_MS).unref();
  setTimeout(() => {
    closing = true;
    // Stop accepting. Not http.Server.close(): since Node 19 it also calls
    // closeIdleConnections(), which counts connections accepted a moment ago
    // whose first request has not been parsed yet as idle and resets them
    // (measured: 48 ECONNRESET over 10 handoffs). net.Server's close only
    // closes the listening fd (hr's master keeps the socket itself open).
    net.Server.prototype.close.call(server);
    // Idle keep-alive connections (served before, nothing in flight) are closed
    // now; the grace gave their clients a Connection: close if they were active.
    for (const [sock, st] of conns) if (st.busy === 0 && st.served > 0) sock.destroy();
    setInterval(maybeExit, 100); // re-check fresh connections that run out of time
    maybeExit();
  }, GRACE_MS);
}

function maybeExit() {
  if (!closing) return;
  const now = Date.now();
  for (const st of conns.values()) {
    if (st.busy > 0) return;
    if (st.served === 0 && now - st.since < NEW_CONN_MS) return;
  }
  console.log(`${APP} pid=${process.pid}: drained, exiting`);
  process.exit(0);
}

process.on("SIGTERM", () => drain("SIGTERM"));
process.on("SIGINT", () => drain("SIGINT"));

// sd_notify: Node has no AF_UNIX datagram socket, so hand the message to
// systemd-notify (libsystemd handles the "@" abstract namespace; --no-block
// skips the BARRIER=1 round trip newer versions add), or else to python3.
function sdNotify(state) {
  const path = process.env.NOTIFY_SOCKET;
  if (!path) return;
  execFile("systemd-notify", ["--no-block", state], (err) => {
    if (!err) return;
    const py =
      "import os,socket;p=os.environ['NOTIFY_SOCKET'];" +
      "s=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM);" +
      "s.sendto(os.environ['SD_STATE'].encode(),'\\0'+p[1:] if p[0]=='@' else p)";
    execFile("python3", ["-c", py], { env: { ...process.env, SD_STATE: state } }, (err2) => {
      if (err2) console.error(`${APP}: sd_notify failed: ${err.message}; ${err2.message}`);
    });
  });
}
