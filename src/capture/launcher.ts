/**
 * `hr __capture <fd> <program> -- <argv…>`: the tiny launcher hr re-executes
 * itself as to start an app under bind capture (never typed by users).
 *
 * 1. Installs the bind/listen user-notification filter on this thread
 *    (platform/seccomp.ts; sets no_new_privs first).
 * 2. Sends the listener fd to the master over the inherited socket <fd> (SCM_RIGHTS),
 *    then closes both. If seccomp is refused, sends "error: …" instead and exits 126.
 * 3. execve()s <program> with <argv> and the environment it was given, after
 *    restoring what the Bun runtime changed in this process that survives exec
 *    (ignored/blocked signals, stdio O_NONBLOCK).
 *
 * Warm (`hr __capture <fd> --wait`, hr dev): steps 1–2 happen ahead of time; the
 * launcher then blocks until hr sends the app's program, argv, environment and cwd
 * (one JSON message, WarmSpec) and execs it at once — a restart does not wait for
 * hr's own start-up. EOF (hr gone or the launcher discarded): exit 0.
 *
 * The pid stays the app's pid, so the master supervises the app itself. The
 * filter is inherited across fork and exec: the app's children (gunicorn
 * workers, `sh -c` pipelines) are covered too. Not covered: RLIMIT_NOFILE stays
 * as Bun raised it.
 */
import { closeFd, execClean, installFilter, recvTextBlocking, sendFd, sendText, stdioFlags } from "../platform/seccomp.ts";

/** What a warm launcher (`hr __capture <fd> --wait`) receives once hr knows the app to start. */
export interface WarmSpec {
  path: string;
  argv: string[];
  /** "K=V" entries: the app's complete environment. */
  env: string[];
  cwd: string;
}

export function runLauncher(args: string[]): number {
  const flags = stdioFlags();
  const sock = Number(args[0]);
  const warm = args[1] === "--wait" && args.length === 2;
  const program = args[1];
  const sep = args.indexOf("--");
  if (!Number.isInteger(sock) || (!warm && (!program || sep !== 2 || sep + 1 >= args.length))) {
    process.stderr.write("hr __capture is hr's internal launcher: hr __capture <fd> <program> -- <argv…> | hr __capture <fd> --wait\n");
    return 2;
  }
  let listener: number;
  try {
    listener = installFilter("capture");
  } catch (error) {
    try {
      sendText(sock, `error: ${(error as Error).message}`);
    } catch {
      /* the master is gone */
    }
    return 126;
  }
  try {
    sendFd(sock, listener);
  } catch (error) {
    process.stderr.write(`hr: capture launcher: cannot hand the seccomp listener to hr: ${(error as Error).message}\n`);
    return 126;
  }
  closeFd(listener);
  let spec: WarmSpec = { path: program!, argv: args.slice(sep + 1), env: [], cwd: "" };
  if (warm) {
    let text: string | null;
    try {
      text = recvTextBlocking(sock);
    } catch {
      text = null;
    }
    if (text === null) return 0; // discarded before use
    spec = JSON.parse(text) as WarmSpec;
    try {
      process.chdir(spec.cwd);
    } catch (error) {
      process.stderr.write(`hr: cannot start ${JSON.stringify(spec.path)}: cwd ${spec.cwd}: ${(error as Error).message}\n`);
      return 127;
    }
  }
  closeFd(sock);
  try {
    execClean(spec.path, spec.argv, flags, warm ? spec.env : undefined);
  } catch (error) {
    process.stderr.write(`hr: cannot start ${JSON.stringify(spec.path)}: ${(error as Error).message}\n`);
  }
  return 127;
}
