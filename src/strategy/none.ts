/** dev.strategy = "none": hr holds no socket; the app binds its own port and a restart refuses connections meanwhile. */
import type { SocketSet } from "../sockets/handoff.ts";
import type { Opener } from "./types.ts";

export const NO_SOCKETS: SocketSet = {
  listeners: [],
  fds: [],
  inherited: false,
  appEnv: () => ({}),
  wrapArgv: (argv) => argv,
  describe: () => "",
  close() {},
};

export const openNone: Opener = async () => ({
  name: "none",
  sockets: NO_SOCKETS,
  wire: () => ({ env: {}, fds: [], argv: (a) => a }),
  close() {},
});
