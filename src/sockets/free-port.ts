/**
 * A free TCP port on 127.0.0.1: bind :0, read the port, close. Another process
 * may take it before the caller binds it; callers that hand it to an app (proxy
 * upstreams, health ports) treat a failed bind like any failed start.
 */
export function freePort(): number {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = server.port;
  server.stop(true);
  return port;
}
