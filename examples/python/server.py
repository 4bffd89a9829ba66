#!/usr/bin/env python3
"""python: a stdlib-only HTTP app that can adopt an inherited listening socket
at fd 3 (systemd's LISTEN_FDS convention), the way `hr serve` and `hr dev`
(strategy "fd") hand sockets to workers. Run with `python3 server.py`."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

VERSION = "v1"
APP = "python"
GEN = os.environ.get("HR_GENERATION", "0")
GRACE_MS = int(os.environ.get("HR_GRACE_MS", "1000"))
DRAIN_TIMEOUT_MS = int(os.environ.get("HR_DRAIN_TIMEOUT_MS", "30000"))

draining = False  # SIGTERM seen: answer with Connection: close
closing = False  # grace over: listener closed, waiting for in-flight
lock = threading.Lock()
conns = {}  # connection socket -> [in-flight requests, requests served, accept time]
# A connection accepted but still without a request is not idle: its request is
# on its way. Closing it would reset it, so it gets this long to send one
# (answered with Connection: close); Go's Shutdown() does the same for StateNew.
NEW_CONN_S = 0.5


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 5  # idle keep-alive connections time out like Node's

    def log_message(self, fmt, *args):
        pass

    def send(self, status, body):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        if draining:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def parse_request(self):
        # A request line has arrived: this connection is busy until do_GET ends
        # (shutdown_request() forgets the connection if it never gets there).
        with lock:
            st = conns.get(self.connection)
            if st:
                st[0] += 1
                st[1] += 1
        return super().parse_request()

    def do_GET(self):
        try:
            url = urlparse(self.path)
            if url.path == "/":
                self.send(200, f"hello from {APP} {VERSION} gen={GEN} pid={os.getpid()}\n")
            elif url.path == "/health":
                self.send(200, "ok")
            elif url.path == "/slow":
                ms = int(parse_qs(url.query).get("ms", ["1000"])[0])
                time.sleep(ms / 1000)
                self.send(200, f"slow {ms}ms pid={os.getpid()}\n")
            else:
                self.send(404, "not found\n")
        finally:
            with lock:
                st = conns.get(self.connection)
                if st:
                    st[0] -= 1


class Server(ThreadingHTTPServer):
    daemon_threads = True  # we wait for in-flight requests ourselves

    def process_request(self, request, client_address):
        # Registered on the accept thread, before the handler thread starts, so
        # the drain never misses a connection that was just accepted.
        with lock:
            conns[request] = [0, 0, time.monotonic()]
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with lock:
            conns.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client going away is not worth a traceback
        super().handle_error(request, client_address)


def inherited_fd():
    """LISTEN_FDS: sockets start at fd 3; LISTEN_FDNAMES names them. Honour
    them only when LISTEN_PID is unset or ours (systemd's rule)."""
    n = int(os.environ.get("LISTEN_FDS", "0") or 0)
    pid = os.environ.get("LISTEN_PID")
    if not n or (pid and int(pid) != os.getpid()):
        return None
    names = os.environ.get("LISTEN_FDNAMES", "").split(":")
    idx = names.index("http") if "http" in names else 0
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES"):
        os.environ.pop(k, None)
    return 3 + (idx if idx < n else 0)


def sd_notify(state):
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    addr = "\0" + path[1:] if path.startswith("@") else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(state.encode(), addr)
    except OSError as e:
        print(f"{APP}: sd_notify failed: {e}", file=sys.stderr)


def main():
    fd = inherited_fd()
    port = int(os.environ.get("PORT", "8080"))
    server = Server(("127.0.0.1", port), Handler, bind_and_activate=False)
    if fd is not None:
        server.socket.close()
        server.socket = socket.socket(fileno=fd)
        where = f"fd {fd}"
    else:
        server.server_bind()
        server.server_activate()
        where = f"127.0.0.1:{port}"

    done = threading.Event()
    signalled = []

    def on_signal(signum, _frame):
        signalled.append(signal.Signals(signum).name)
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    print(f"{APP} {VERSION} gen={GEN} pid={os.getpid()} listening on {where}", flush=True)
    sd_notify("READY=1")

    if os.environ.get("SPAWN_GRANDCHILD") == "1":
        # A long-lived descendant, so tests can check that no descendant survives a restart.
        subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)

    while not done.wait(0.5):
        pass

    # Draining. Why a grace period: closing idle keep-alive connections at once
    # (Go's Shutdown(), Bun's server.stop()) fails requests a client has already
    # sent on them — measured 491 failures over 10 handoffs without it, 0 with a
    # 1 s grace. During the grace we keep accepting and answer with
    # `Connection: close`; then stop accepting, wait for in-flight requests,
    # close the idle connections, exit 0.
    global draining, closing
    draining = True
    print(f"{APP} pid={os.getpid()}: {signalled[0]}, draining (grace {GRACE_MS} ms)", flush=True)
    deadline = time.monotonic() + DRAIN_TIMEOUT_MS / 1000
    time.sleep(GRACE_MS / 1000)
    closing = True
    server.shutdown()  # stop the accept loop
    server.socket.close()
    while True:
        now = time.monotonic()
        with lock:
            busy = sum(st[0] for st in conns.values())
            fresh = sum(1 for st in conns.values() if st[1] == 0 and now - st[2] < NEW_CONN_S)
            # Idle keep-alive connections: served before, nothing in flight (the
            # grace gave their clients a Connection: close if they were active),
            # or fresh ones whose time ran out.
            idle = [c for c, st in conns.items() if st[0] == 0 and (st[1] > 0 or now - st[2] >= NEW_CONN_S)]
        for c in idle:  # wakes the handler thread blocked reading the next request
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if busy == 0 and fresh == 0:
            break
        if time.monotonic() > deadline:
            print(f"{APP} pid={os.getpid()}: drain timeout, forcing exit", file=sys.stderr, flush=True)
            os._exit(1)
        time.sleep(0.01)
    print(f"{APP} pid={os.getpid()}: drained, exiting", flush=True)
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
