/**
 * A proxy thread (Bun Worker): one more Proxy accepting on the same listening
 * sockets (its own dup of each fd; the kernel hands each connection to one
 * acceptor). It only obeys the messages of proxy/threads.ts; its log lines go back
 * to the main thread.
 */
import { Logger } from "../log/logger.ts";
import { Proxy, type ProxyOptions } from "./proxy.ts";
import type { ToThread } from "./threads.ts";

declare const self: Worker;

let proxy: Proxy | null = null;

self.onmessage = (e: MessageEvent<ToThread>) => {
  const m = e.data;
  if (m.op === "init") {
    const log = new Logger({ format: "text", color: false, level: "debug", write: () => {} });
    for (const level of ["debug", "info", "warn", "error"] as const) log[level] = (msg: string) => postMessage({ op: "log", level, msg });
    const opts: ProxyOptions = { ...m.options, log };
    proxy = new Proxy(opts);
    proxy.start();
    return;
  }
  if (!proxy) return;
  switch (m.op) {
    case "workerReady":
      return proxy.workerReady(m.gen, m.w);
    case "workerExited":
      return proxy.workerExited(m.gen, m.worker, m.pid);
    case "setLive":
      return proxy.setLive(m.gen);
    case "clearLive":
      return proxy.clearLive();
    case "setDown":
      return proxy.setDown(m.message);
    case "waitMs":
      proxy.waitMs = m.ms;
      return;
    case "drain":
      void proxy.drain(m.gen, m.timeoutMs, m.tunnels).then((report) => postMessage({ op: "drained", id: m.id, report }));
      return;
    case "close":
      proxy.close();
      proxy = null;
  }
};
