/** Load and test traffic goes to this machine only (127.0.0.0/8, ::1): the guard every client here calls. */
/** Throws unless the URL points at this machine (127.0.0.0/8, localhost, ::1). */
export function assertLoopback(url: string | URL): URL {
  const u = typeof url === "string" ? new URL(url) : url;
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const ok = host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
  if (!ok) throw new Error(`refusing non-loopback target ${u.host}: tests only talk to 127.0.0.0/8 or ::1`);
  if (u.protocol !== "http:") throw new Error(`only http: URLs are supported, got ${u.protocol}`);
  return u;
}
