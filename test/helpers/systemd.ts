/** A fake service manager for tests: a NOTIFY_SOCKET that records every sd_notify datagram hr sends. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openNotifySocket, type NotifyMessage, type NotifySocket } from "../../src/sockets/notify.ts";

export interface FakeManager {
  sock: NotifySocket;
  /** The NOTIFY_SOCKET path to give hr. */
  path: string;
  msgs: NotifyMessage[];
  /** Resolves with the index of the first message (from the start) matching pred. */
  waitFor(pred: (m: NotifyMessage, i: number) => boolean, what: string, timeoutMs?: number): Promise<number>;
  close(): void;
}

export function fakeManager(): FakeManager {
  const dir = mkdtempSync(join(tmpdir(), "hr-sd-"));
  const sock = openNotifySocket(join(dir, "notify.sock"));
  const msgs: NotifyMessage[] = [];
  const off = sock.onMessage((m) => msgs.push(m));
  return {
    sock,
    path: sock.path,
    msgs,
    async waitFor(pred, what, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const i = msgs.findIndex(pred);
        if (i >= 0) return i;
        if (Date.now() > until) throw new Error(`no ${what} within ${timeoutMs} ms; got ${JSON.stringify(msgs)}`);
        await Bun.sleep(20);
      }
    },
    close() {
      off();
      sock.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
