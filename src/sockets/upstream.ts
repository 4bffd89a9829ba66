/** The two ends of hr's proxies (dev and serve): accepting on hr's socket, connecting to an app's private port. */
import net from "node:net";

/**
 * A connected socket to 127.0.0.1:port, or null when the connect fails (the app
 * has not bound yet, or is gone): callers retry or pick another worker. Half-open
 * is allowed so a client's FIN is forwarded without cutting the app's answer.
 */
export function connectUpstream(port: number): Promise<net.Socket | null> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port, allowHalfOpen: true });
    socket.setNoDelay(true);
    const onError = () => {
      socket.destroy();
      resolve(null);
    };
    socket.once("error", onError);
    socket.once("connect", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/** Makes `server` accept on an already-listening fd (hr's [[listen]] socket); rejects if it can't. */
export function listenOnFd(server: net.Server, fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ fd }, () => {
      server.off("error", reject);
      resolve();
    });
  });
}
