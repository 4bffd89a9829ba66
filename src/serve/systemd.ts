/**
 * hr serve as a systemd service: what the master tells its supervisor over
 * sd_notify ($NOTIFY_SOCKET as hr itself received it; workers never see it, they
 * get their own per-worker socket or none).
 *
 *   first generation ready   READY=1, MAINPID=<hr>, STATUS=serving genN
 *   reload starts            RELOADING=1, MONOTONIC_USEC=<CLOCK_MONOTONIC µs>, STATUS=reloading …
 *   reload over              READY=1, STATUS=serving genN  (also after a rollback: STATUS says so)
 *   self-upgrade             RELOADING=1 … then MAINPID=<new master>, READY=1 (see upgrade.ts)
 *   shutdown                 STOPPING=1
 *
 * RELOADING=1 + MONOTONIC_USEC is what Type=notify-reload (systemd ≥ 253) waits for
 * after it sent the reload signal; with Type=notify it only shows up in
 * `systemctl status`. Every message is best effort: a supervisor that went away
 * must never break the master.
 */
import { monotonicUsec } from "../platform/libc.ts";
import { sdNotify } from "../sockets/systemd.ts";

export class SystemdNotifier {
  constructor(
    /** The supervisor's NOTIFY_SOCKET (undefined: not under systemd, every call is a no-op). */
    readonly target: string | undefined,
    private readonly onError?: (message: string) => void,
  ) {}

  get enabled(): boolean {
    return Boolean(this.target);
  }

  /** Sends raw "KEY=VALUE" lines; false when there is no target or the send failed. */
  send(...lines: string[]): boolean {
    if (!this.target) return false;
    try {
      return sdNotify(lines.map(oneLine).join("\n"), { NOTIFY_SOCKET: this.target });
    } catch (e) {
      this.onError?.(`sd_notify to ${this.target}: ${(e as Error).message}`);
      return false;
    }
  }

  ready(status: string, mainPid = process.pid): boolean {
    return this.send("READY=1", `MAINPID=${mainPid}`, `STATUS=${status}`);
  }

  reloading(status: string): boolean {
    return this.send("RELOADING=1", `MONOTONIC_USEC=${monotonicUsec()}`, `STATUS=${status}`);
  }

  /** The reload (or upgrade attempt) is over, whatever its outcome. */
  reloaded(status: string): boolean {
    return this.send("READY=1", `STATUS=${status}`);
  }

  status(status: string): boolean {
    return this.send(`STATUS=${status}`);
  }

  stopping(status = "stopping: draining every generation"): boolean {
    return this.send("STOPPING=1", `STATUS=${status}`);
  }

  /** After a self-upgrade: the new master is the service's main process now. */
  mainPid(pid: number, status: string): boolean {
    return this.send(`MAINPID=${pid}`, "READY=1", `STATUS=${status}`);
  }
}

/** STATUS= is one line: newlines would start new (bogus) assignments. */
function oneLine(s: string): string {
  const t = s.replace(/\s*\n\s*/g, " ");
  return t.length > 400 ? `${t.slice(0, 397)}...` : t;
}
