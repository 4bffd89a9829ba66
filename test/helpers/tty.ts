/**
 * Drive a program in a real pseudo-terminal through tmux: a detached session of
 * fixed size on a private server socket (-L), keys in with send-keys, the screen
 * out with capture-pane. Always call close() (afterEach/finally).
 */
import { spawnSync } from "node:child_process";
import { rmSync } from "node:fs";
import { join } from "node:path";

export const TMUX = "/usr/bin/tmux";

export interface TtyOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  cols?: number;
  rows?: number;
}

let counter = 0;

export class Tty {
  /** The private tmux server socket name (tmux -L). */
  readonly socket: string;
  readonly session = "t";
  private closed = false;

  private constructor(socket: string) {
    this.socket = socket;
  }

  /** Starts `argv` in a new detached session. The pane stays open after the program exits. */
  static start(argv: string[], opts: TtyOptions = {}): Tty {
    const tty = new Tty(`hr-test-${process.pid}-${Date.now()}-${counter++}`);
    const env = { ...process.env, ...opts.env, TERM: "xterm-256color" };
    const shell = argv.map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(" ");
    // The exit code is printed so tests can wait for it; `exec sleep` keeps the pane readable.
    const script = `${shell}; echo "[exit $?]"; exec sleep 600`;
    tty.tmux(
      ["new-session", "-d", "-s", tty.session, "-x", String(opts.cols ?? 120), "-y", String(opts.rows ?? 50), ...(opts.cwd ? ["-c", opts.cwd] : []), "sh", "-c", script],
      env,
    );
    return tty;
  }

  private tmux(args: string[], env: Record<string, string | undefined> = process.env): string {
    const r = spawnSync(TMUX, ["-L", this.socket, "-f", "/dev/null", ...args], { encoding: "utf8", env });
    if (r.status !== 0) throw new Error(`tmux ${args[0]} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /** Keys by tmux name ("Enter", "C-c", "Down", "BSpace") or literal text with { literal: true }. */
  send(keys: string | string[], opts: { literal?: boolean } = {}): void {
    const list = Array.isArray(keys) ? keys : [keys];
    this.tmux(["send-keys", "-t", this.session, ...(opts.literal ? ["-l"] : []), ...list]);
  }

  /** Types text literally. */
  type(text: string): void {
    this.send(text, { literal: true });
  }

  /** The visible screen (plus scrollback when `history`), trailing blanks trimmed. */
  screen(history = false): string {
    return this.tmux(["capture-pane", "-p", "-t", this.session, ...(history ? ["-S", "-"] : [])]).replace(/\s+$/, "");
  }

  /** Polls the screen until `pattern` matches; returns the screen. Throws with the screen on timeout. */
  async waitFor(pattern: RegExp, timeoutMs = 5000, history = true): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = "";
    while (Date.now() < deadline) {
      last = this.screen(history);
      if (pattern.test(last)) return last;
      await Bun.sleep(25);
    }
    throw new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} in:\n${last}`);
  }

  /** Waits for the program to exit and returns its exit code. */
  async exitCode(timeoutMs = 5000): Promise<number> {
    const screen = await this.waitFor(/\[exit \d+\]/, timeoutMs);
    return Number(screen.match(/\[exit (\d+)\]/)![1]);
  }

  /** Kills the tmux server (and with it the program). Safe to call twice. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    spawnSync(TMUX, ["-L", this.socket, "kill-server"], { stdio: "ignore" });
    // tmux leaves the socket file behind after kill-server.
    rmSync(join(process.env.TMUX_TMPDIR || "/tmp", `tmux-${process.getuid?.() ?? 0}`, this.socket), { force: true });
  }
}
