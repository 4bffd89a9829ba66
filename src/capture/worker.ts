/**
 * The capture notification thread (a Bun Worker): answers the bind()/listen()
 * notifications of every captured app, so the main thread never blocks.
 *
 * One loop: poll() on a wake-up eventfd, each app's launcher socket (until the
 * listener arrives) and each app's seccomp listener; handle what is ready; repeat.
 * Control messages (add/remove an app) are counted in shared memory, so the loop
 * never blocks in poll() with a message still undelivered.
 *
 * Invariants:
 *  - Every notification received is answered (a thrown error answers CONTINUE):
 *    an unanswered one would hang the app's thread forever.
 *  - The sockaddr read from the app's memory is used only if
 *    SECCOMP_IOCTL_NOTIF_ID_VALID says the caller is still in that syscall.
 *  - The worker never closes hr's sockets (the main thread owns them); it closes
 *    only launcher sockets and listeners.
 */
import {
  borrowFd,
  closeFd,
  eventFdDrain,
  fdFlags,
  notifAddFdAt,
  notifContinue,
  notifIdValid,
  notifRecv,
  notifReturn,
  pollIn,
  POLLHUP,
  POLLIN,
  POLLERR,
  POLLNVAL,
  readMemory,
  recvFdOrText,
  setNonblock,
  socketInode,
  socketType,
  sockname,
  tgidOf,
  type Notification,
} from "../platform/seccomp.ts";
import type { FromWorker, Mode, PortTarget, ToWorker } from "./messages.ts";

declare const self: Worker;

interface App {
  id: number;
  pair: number;
  /** A warm launcher's pair stays open (the main thread sends it the app) until remove. */
  keepPair: boolean;
  listener: number | null;
  mode: Mode;
  targets: Map<number, PortTarget>;
  /** socket inode → target, for listen(): hr's sockets this app holds. */
  handed: Map<number, PortTarget>;
  /** Non-zero ports the app bound itself (not a target). */
  fixed: Set<number>;
}

const apps = new Map<number, App>();
let wake = -1;
/** [0]: messages posted by the main thread; [1]: messages handled here. */
let counters: Int32Array | null = null;

const post = (m: FromWorker) => self.postMessage(m);

function inodeOfOwn(fd: number): number | null {
  return socketInode(process.pid, fd);
}

function onMessage(m: ToWorker): void {
  if (m.type === "add") {
    const app: App = { id: m.id, pair: m.pair, keepPair: m.keepPair === true, listener: null, mode: m.mode, targets: new Map(), handed: new Map(), fixed: new Set() };
    for (const t of m.targets) {
      app.targets.set(t.port, t);
      // In observe mode the app inherited hr's sockets itself (fd 3…): its listen() on them is its ready signal.
      if (m.mode === "observe") {
        const ino = inodeOfOwn(t.fd);
        if (ino !== null) app.handed.set(ino, t);
      }
    }
    apps.set(m.id, app);
  } else if (m.type === "remove") {
    const app = apps.get(m.id);
    if (app) drop(app);
  }
}

function drop(app: App): void {
  if (app.pair >= 0) closeFd(app.pair);
  if (app.listener !== null) closeFd(app.listener);
  app.pair = -1;
  app.listener = null;
  apps.delete(app.id);
}

/** host:port of a sockaddr_in / sockaddr_in6, or null for other families. */
function inetAddress(b: Uint8Array): { host: string; port: number } | null {
  if (b.length < 8) return null;
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = v.getUint16(0, true);
  const port = v.getUint16(2, false);
  if (family === 2) return { host: Array.from(b.subarray(4, 8)).join("."), port };
  if (family === 10 && b.length >= 24) {
    const words: number[] = [];
    for (let i = 0; i < 8; i++) words.push(v.getUint16(8 + i * 2, false));
    const zeros = words.slice(0, 7).every((w) => w === 0);
    const text = zeros && words[7] === 0 ? "::" : zeros && words[7] === 1 ? "::1" : words.map((w) => w.toString(16)).join(":");
    return { host: `[${text}]`, port };
  }
  return null;
}

function handleBind(app: App, listener: number, n: Notification): void {
  const len = Math.min(Number(n.args[2]), 128);
  const raw = len >= 8 ? readMemory(n.tid, n.args[1]!, len) : null;
  if (!notifIdValid(listener, n.id)) return; // the caller is gone (or moved on): nothing to answer
  const addr = raw && inetAddress(raw);
  const target = addr && app.targets.get(addr.port);
  if (!addr || !target) {
    if (addr && addr.port !== 0) app.fixed.add(addr.port);
    notifContinue(listener, n.id);
    return;
  }
  const pid = tgidOf(n.tid);
  const fd = Number(n.args[0]);
  const theirs = borrowFd(pid, fd);
  const type = theirs === null ? -1 : socketType(theirs);
  if (theirs !== null) closeFd(theirs);
  if (type !== 1 /* SOCK_STREAM */) {
    notifContinue(listener, n.id);
    post({ type: "skipped", id: app.id, pid, port: addr.port, host: addr.host, why: type === -1 ? "hr cannot inspect the socket" : "not a TCP socket" });
    return;
  }
  if (app.mode === "observe") {
    notifContinue(listener, n.id);
    post({ type: "conflict", id: app.id, pid, port: addr.port, host: addr.host });
    return;
  }
  const flags = fdFlags(pid, fd) ?? { nonblocking: false, cloexec: false };
  // O_NONBLOCK belongs to the open socket, shared with every holder: it follows the app's choice.
  setNonblock(target.fd, flags.nonblocking);
  if (!notifAddFdAt(listener, n.id, target.fd, fd, flags.cloexec)) {
    notifContinue(listener, n.id);
    return;
  }
  notifReturn(listener, n.id, 0);
  const ino = inodeOfOwn(target.fd);
  if (ino !== null) app.handed.set(ino, target);
  post({ type: "captured", id: app.id, pid, port: addr.port, host: addr.host });
}

function handleListen(app: App, listener: number, n: Notification): void {
  const pid = tgidOf(n.tid);
  const fd = Number(n.args[0]);
  const ino = socketInode(pid, fd);
  const target = ino !== null ? app.handed.get(ino) : undefined;
  if (!notifIdValid(listener, n.id)) return;
  if (target) {
    // hr's held listener already listens with its own (large) backlog: answer success without shrinking it.
    if (target.shared && app.mode === "capture") notifReturn(listener, n.id, 0);
    else notifContinue(listener, n.id);
    post({ type: "listening", id: app.id, pid, port: target.port });
    return;
  }
  const theirs = borrowFd(pid, fd);
  const name = theirs === null ? null : sockname(theirs);
  const type = theirs === null ? -1 : socketType(theirs);
  if (theirs !== null) closeFd(theirs);
  notifContinue(listener, n.id);
  const addr = name && inetAddress(name);
  if (addr && addr.port !== 0 && type === 1) post({ type: "other-listen", id: app.id, pid, port: addr.port, host: addr.host, fixed: app.fixed.has(addr.port) });
}

function handle(app: App, listener: number): void {
  const n = notifRecv(listener);
  if (!n) return;
  try {
    if (n.nr === "bind") handleBind(app, listener, n);
    else if (n.nr === "listen") handleListen(app, listener, n);
    else notifContinue(listener, n.id);
  } catch (error) {
    notifContinue(listener, n.id);
    post({ type: "error", id: app.id, message: (error as Error).message });
  }
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

async function loop(): Promise<void> {
  while (true) {
    while (counters && Atomics.load(counters, 0) !== Atomics.load(counters, 1)) await tick();
    const watched: { fd: number; app?: App; kind: "wake" | "pair" | "listener" }[] = [{ fd: wake, kind: "wake" }];
    for (const app of apps.values()) {
      if (app.listener !== null) watched.push({ fd: app.listener, app, kind: "listener" });
      else if (app.pair >= 0) watched.push({ fd: app.pair, app, kind: "pair" });
    }
    const revents = pollIn(
      watched.map((w) => w.fd),
      -1,
    );
    for (const [i, w] of watched.entries()) {
      const ev = revents[i]!;
      if (!ev) continue;
      if (w.kind === "wake") {
        eventFdDrain(wake);
        continue;
      }
      const app = w.app!;
      if (!apps.has(app.id)) continue;
      if (w.kind === "pair") {
        const got = recvFdOrText(app.pair);
        if (!got) continue;
        if ("fd" in got) {
          app.listener = got.fd;
          if (!app.keepPair) {
            closeFd(app.pair);
            app.pair = -1;
          }
          post({ type: "attached", id: app.id });
        } else {
          if ("text" in got) post({ type: "refused", id: app.id, message: got.text.replace(/^error: /, "") });
          else post({ type: "error", id: app.id, message: "hr's launcher exited before starting the app (see its output above)" });
          drop(app);
        }
        continue;
      }
      if (ev & POLLIN) handle(app, w.fd);
      else if (ev & (POLLHUP | POLLERR | POLLNVAL)) {
        drop(app);
        post({ type: "gone", id: app.id });
      }
    }
  }
}

self.onmessage = (e: MessageEvent) => {
  const m = e.data as ToWorker | { type: "init"; wake: number; counters: SharedArrayBuffer };
  if (m.type === "init") {
    wake = m.wake;
    counters = new Int32Array(m.counters);
    void loop().catch((error) => post({ type: "error", id: 0, message: `capture thread stopped: ${(error as Error).message}` }));
    return;
  }
  onMessage(m);
  if (counters) Atomics.add(counters, 1, 1);
};
