// hr-bun-shim: lets an UNMODIFIED Bun.serve app run under `hr serve` / `hr dev`.
//
// Preload it: `bun --preload ./hr-bun-shim.js server.ts` (hr adds the flag itself
// when run.cmd starts with `bun`, see serve.bun_shim; `hr shim bun` prints this file).
//
// fd strategy (LISTEN_FDS set, LISTEN_PID = this process): Bun.serve cannot adopt
// an inherited socket (it ignores `fd`, bun#22559). The first Bun.serve() call is
// rewritten so the real server listens on a private abstract unix socket, and the
// connections accepted on the inherited socket (fd 3) are bridged to it byte for
// byte (HTTP/1.1, keep-alive, streaming, WebSocket upgrades all pass through).
// server.stop() stops accepting on fd 3 first (the master still holds the socket,
// so new connections wait in its queue for the next worker), lets the connections
// it already accepted send their first request and in-flight requests get their
// answer, then stops the real server the usual way.
//
// reuseport strategy (HR_SERVE_STRATEGY=reuseport): Bun.serve gets reusePort: true
// unless the app chose otherwise, so every worker joins the port's reuseport group.
//
// Anything else (no hr, a Bun.serve({ unix }) call, a second Bun.serve call, child
// processes): Bun.serve is left alone. Set HR_BUN_SHIM=0 to disable the shim.
//
// Limits: server.requestIP() returns null under the fd bridge (the real server sees
// a unix socket); `export default { fetch }` auto-serve is not intercepted (call
// Bun.serve yourself).
(() => {
  const env = process.env;
  if (typeof Bun === "undefined" || env.HR_BUN_SHIM === "0" || globalThis.__hrBunShim) return;
  globalThis.__hrBunShim = true;
  const realServe = Bun.serve;
  const log = (msg) => console.error(`[hr-bun-shim] ${msg}`);

  if (env.HR_SERVE_STRATEGY === "reuseport") {
    Bun.serve = function serve(options, ...rest) {
      if (options && typeof options === "object" && !options.unix && options.reusePort === undefined) {
        options = { ...options, reusePort: true };
      }
      return realServe.call(this, options, ...rest);
    };
    return;
  }

  const nfds = Number(env.LISTEN_FDS);
  if (!(nfds >= 1)) return;
  if (env.LISTEN_PID && Number(env.LISTEN_PID) !== process.pid) return; // meant for another process
  const fd = Number(env.HR_BUN_SHIM_FD ?? 3);
  let used = false;

  Bun.serve = function serve(options, ...rest) {
    if (used || !options || typeof options !== "object" || options.unix) return realServe.call(this, options, ...rest);
    used = true;
    const path = `\0hr-bun-shim-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
    const { port: _port, hostname: _host, reusePort: _rp, ipv6Only: _v6, exclusive: _ex, ...opts } = options;
    const real = realServe.call(this, { ...opts, unix: path }, ...rest);
    let bridge;
    try {
      bridge = startBridge(fd, path);
    } catch (e) {
      real.stop(true);
      throw new Error(`hr-bun-shim: cannot accept on inherited fd ${fd}: ${e?.message ?? e}`);
    }
    const host = env.HOST && env.HOST !== "0.0.0.0" ? env.HOST : bridge.hostname || "127.0.0.1";
    const port = bridge.port || Number(env.PORT) || 0;
    log(`Bun.serve() serves the inherited socket (fd ${fd}, ${host}:${port})${_port !== undefined && Number(_port) !== port ? ` instead of port ${_port}` : ""}`);
    return wrapServer(real, bridge, host, port);
  };

  function wrapServer(real, bridge, host, port) {
    let stopping;
    const stop = (closeActive = false) => {
      stopping ??= (async () => {
        bridge.close();
        if (closeActive) {
          bridge.terminateAll();
          await real.stop(true);
          return;
        }
        await bridge.settle(); // first requests arrive, answers start, before the real server closes idle connections
        await real.stop(false);
        await bridge.drained();
      })();
      return stopping;
    };
    const overrides = {
      stop,
      port,
      hostname: host,
      url: new URL(`http://${host.includes(":") ? `[${host}]` : host}:${port}/`),
      address: { address: host, port, family: host.includes(":") ? "IPv6" : "IPv4" },
      unref() {
        bridge.listener.unref();
        return real.unref();
      },
      ref() {
        bridge.listener.ref();
        return real.ref();
      },
      reload(o) {
        if (o && typeof o === "object") {
          const { port: _p, hostname: _h, unix: _u, ...rest } = o;
          return real.reload(rest);
        }
        return real.reload(o);
      },
    };
    return new Proxy(real, {
      get(target, key) {
        if (Object.prototype.hasOwnProperty.call(overrides, key)) return overrides[key];
        const v = Reflect.get(target, key, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
  }

  // ---------------------------------------------------------------- the bridge
  // One connection pair per accepted client: client <-> upstream (the real server).
  // Backpressure: a short write queues the rest and pauses the other side until drain.
  function startBridge(listenFd, unixPath) {
    const conns = new Set();
    const JUST_ACCEPTED_MS = 300; // a connection this young may have its first request on the way
    const SETTLE_CAP_MS = 1000;

    const pump = (pair, from, dest, queue, chunk) => {
      if (pair.closed) return;
      if (queue.length || !dest) {
        queue.push(Buffer.from(chunk));
      } else {
        const n = dest.write(chunk);
        if (n < chunk.length) {
          queue.push(Buffer.from(n > 0 ? chunk.subarray(n) : chunk));
        }
      }
      if (queue.length && from) from.pause();
    };
    const flush = (pair, dest, queue, from, endPending) => {
      while (queue.length) {
        const chunk = queue[0];
        const n = dest.write(chunk);
        if (n < chunk.length) {
          queue[0] = n > 0 ? chunk.subarray(n) : chunk;
          return;
        }
        queue.shift();
      }
      from?.resume();
      if (endPending) dest.end();
    };
    const finish = (pair) => {
      if (pair.closed) return;
      if (pair.clientGone && pair.upGone) {
        pair.closed = true;
        conns.delete(pair);
      }
    };

    const upHandlers = {
      open(up) {
        const pair = up.data;
        pair.up = up;
        if (pair.clientGone) return up.end();
        flush(pair, up, pair.toUp, pair.client, pair.clientEnded);
      },
      data(up, chunk) {
        const pair = up.data;
        pair.lastServerAt = performance.now();
        pump(pair, up, pair.client, pair.toClient, chunk);
      },
      drain(up) {
        const pair = up.data;
        flush(pair, up, pair.toUp, pair.client, pair.clientEnded);
      },
      end(up) {
        const pair = up.data;
        pair.upEnded = true;
        if (!pair.toClient.length) pair.client.end();
      },
      close(up) {
        const pair = up.data;
        pair.upGone = true;
        if (!pair.clientGone && !pair.toClient.length) pair.client.end();
        else if (!pair.clientGone) pair.upEnded = true;
        finish(pair);
      },
      error() {},
      connectError(up) {
        const pair = up.data;
        pair.upGone = true;
        pair.client.terminate();
        finish(pair);
      },
    };

    const listener = Bun.listen({
      fd: listenFd,
      allowHalfOpen: true,
      socket: {
        open(client) {
          const pair = {
            client,
            up: undefined,
            toUp: [],
            toClient: [],
            acceptedAt: performance.now(),
            lastClientAt: 0,
            lastServerAt: 0,
            clientEnded: false,
            upEnded: false,
            clientGone: false,
            upGone: false,
            closed: false,
          };
          client.data = pair;
          conns.add(pair);
          Bun.connect({ unix: unixPath, allowHalfOpen: true, data: pair, socket: upHandlers }).catch(() => {
            pair.upGone = true;
            client.terminate();
            finish(pair);
          });
        },
        data(client, chunk) {
          const pair = client.data;
          pair.lastClientAt = performance.now();
          pump(pair, client, pair.up, pair.toUp, chunk);
        },
        drain(client) {
          const pair = client.data;
          flush(pair, client, pair.toClient, pair.up, pair.upEnded);
        },
        end(client) {
          const pair = client.data;
          pair.clientEnded = true;
          if (pair.up && !pair.toUp.length) pair.up.shutdown();
        },
        close(client) {
          const pair = client.data;
          pair.clientGone = true;
          if (pair.up && !pair.upGone) pair.up.end();
          finish(pair);
        },
        error() {},
      },
    });

    const busy = (now) => {
      for (const p of conns) {
        if (p.closed || p.clientGone) continue;
        if (!p.up) return true; // still connecting upstream
        if (!p.lastClientAt && now - p.acceptedAt < JUST_ACCEPTED_MS) return true; // first request may be on its way
        if (p.toUp.length) return true; // request bytes not handed over yet
        if (p.lastClientAt > p.lastServerAt) return true; // sent a request, no answer started yet
      }
      return false;
    };

    return {
      listener,
      port: listener.port,
      hostname: listener.hostname,
      close() {
        try {
          listener.stop(false);
        } catch {}
      },
      terminateAll() {
        for (const p of conns) p.client.terminate();
      },
      async settle() {
        const t0 = performance.now();
        while (busy(performance.now()) && performance.now() - t0 < SETTLE_CAP_MS) await Bun.sleep(5);
      },
      async drained() {
        const t0 = performance.now();
        while (conns.size && performance.now() - t0 < 2000) await Bun.sleep(5);
        for (const p of conns) p.client.terminate();
      },
    };
  }
})();
