/** Connecting a proxy (dev or serve) to an app on its private 127.0.0.1 port. */
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
