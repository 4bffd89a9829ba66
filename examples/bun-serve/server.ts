// bun-serve: an ordinary Bun.serve app listening on $PORT. Bun.serve cannot
// adopt an inherited socket (it ignores `fd`), so `hr dev` runs it with the
// "proxy" strategy (hr forwards to the PORT it gives the app) and `hr serve`
// preloads hr's Bun.serve shim, which serves the inherited socket (or adds
// reusePort: true under serve.strategy = "reuseport"). This file knows of neither.
import { spawn } from "node:child_process";
import { dlopen, FFIType, ptr } from "bun:ffi";

const VERSION = "v1";
const APP = "bun-serve";
const GEN = process.env.HR_GENERATION ?? "0";
const GRACE_MS = Number(process.env.HR_GRACE_MS ?? 1000);
const DRAIN_TIMEOUT_MS = Number(process.env.HR_DRAIN_TIMEOUT_MS ?? 30000);

let draining = false; // SIGTERM seen: answer with Connection: close
let inflight = 0;

function text(body: string, status = 200): Response {
  const headers: Record<string, string> = { "Content-Type": "text/plain" };
  if (draining) headers["Connection"] = "close";
  return new Response(body, { status, headers });
}

const server = Bun.serve({
  port: Number(process.env.PORT ?? 8080),
  hostname: "127.0.0.1",
  async fetch(req) {
    inflight++;
    try {
      const url = new URL(req.url);
      if (url.pathname === "/") return text(`hello from ${APP} ${VERSION} gen=${GEN} pid=${process.pid}\n`);
      if (url.pathname === "/health") return text("ok");
      if (url.pathname === "/slow") {
        const ms = Number(url.searchParams.get("ms") ?? 1000);
        await Bun.sleep(ms);
        return text(`slow ${ms}ms pid=${process.pid}\n`);
      }
      return text("not found\n", 404);
    } finally {
      inflight--;
    }
  },
});

console.log(`${APP} ${VERSION} gen=${GEN} pid=${process.pid} listening on ${server.hostname}:${server.port}`);
sdNotify("READY=1");
process.send?.("ready");

if (process.env.SPAWN_GRANDCHILD === "1") {
  // A long-lived descendant, so tests can check that no descendant survives a restart.
  spawn("sleep", ["600"], { stdio: "ignore" }).unref();
}

// Draining. Why a grace period: server.stop() (like Go's Shutdown()) closes idle
// keep-alive connections at once, failing requests a client has already sent on
// them — measured 491 failures over 10 handoffs without a grace, 0 with a 1 s
// one. During the grace we keep accepting and answer with `Connection: close`,
// so keep-alive clients (here: hr's proxy) move to new connections; then
// server.stop() stops accepting and we exit once in-flight requests are done.
async function drain(sig: string) {
  if (draining) return;
  draining = true;
  console.log(`${APP} pid=${process.pid}: ${sig}, draining (grace ${GRACE_MS} ms)`);
  setTimeout(() => {
    console.error(`${APP} pid=${process.pid}: drain timeout, forcing exit`);
    process.exit(1);
  }, DRAIN_TIMEOUT_MS).unref();
  await Bun.sleep(GRACE_MS);
  const stopped = server.stop(); // not forced: in-flight requests finish
  while (inflight > 0 || server.pendingRequests > 0) await Bun.sleep(10);
  await stopped;
  console.log(`${APP} pid=${process.pid}: drained, exiting`);
  process.exit(0);
}

process.on("SIGTERM", () => void drain("SIGTERM"));
process.on("SIGINT", () => void drain("SIGINT"));

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
    const addr = new Uint8Array(110); // sa_family (u16) + sun_path[108]
    addr[0] = 1; // AF_UNIX
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
