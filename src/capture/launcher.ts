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
 * The pid stays the app's pid, so the master supervises the app itself. The
 * filter is inherited across fork and exec: the app's children (gunicorn
 * workers, `sh -c` pipelines) are covered too. Not covered: RLIMIT_NOFILE stays
 * as Bun raised it.
 */
import { closeFd, execClean, installFilter, sendFd, sendText, stdioFlags } from "../platform/seccomp.ts";

export function runLauncher(args: string[]): number {
  const flags = stdioFlags();
  const sock = Number(args[0]);
  const program = args[1];
  const sep = args.indexOf("--");
  if (!Number.isInteger(sock) || !program || sep !== 2 || sep + 1 >= args.length) {
    process.stderr.write("hr __capture is hr's internal launcher: hr __capture <fd> <program> -- <argv…>\n");
    return 2;
  }
  const argv = args.slice(sep + 1);
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
  closeFd(sock);
  try {
    execClean(program, argv, flags);
  } catch (error) {
    process.stderr.write(`hr: cannot start ${JSON.stringify(program)}: ${(error as Error).message}\n`);
  }
  return 127;
}
