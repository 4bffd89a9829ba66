/**
 * The orphan sweeper: covers the one case Child.stop() can't, the master being
 * SIGKILLed. Workers themselves die with the master (setpriv --pdeathsig SIGKILL),
 * but their children (a grandchild the app forked, `sh -c "a | b"`) would be
 * orphaned and could keep the listening socket, so the next `hr serve` gets
 * EADDRINUSE.
 *
 * The sweeper is a tiny `sh` started with `setpriv --pdeathsig SIGTERM`: when the
 * master dies, the kernel sends it SIGTERM, and its trap SIGKILLs every process
 * group listed in a file the master keeps current (the live workers' groups; each
 * worker leads its own), then removes the master's stale runtime files. On a
 * normal exit the master SIGKILLs the sweeper first, so nothing is swept twice.
 */
import { spawnChild, type Child } from "../process/child.ts";
import { writeRuntimeFile } from "../control/runtime.ts";

const SCRIPT = `
groups="$1"; shift
sweep() {
  for g in $(cat "$groups" 2>/dev/null); do kill -KILL "-$g" 2>/dev/null; done
  kill -KILL "$s" 2>/dev/null
  rm -rf "$@"
  exit 0
}
trap 'sweep "$@"' TERM
sleep 2147483647 & s=$!
wait "$s"
`;

export interface Sweeper {
  /** Replaces the list of process groups to kill if the master dies. */
  update(pgids: readonly number[]): void;
  /** Normal exit: stop the sweeper without sweeping. */
  stop(): Promise<void>;
  readonly pid: number;
}

/** Returns null when setpriv is missing (then only the workers themselves die with the master). */
export function startSweeper(groupsFile: string, removeOnSweep: string[], env: Record<string, string | undefined>): Sweeper | null {
  const setpriv = Bun.which("setpriv");
  if (!setpriv || process.platform !== "linux") return null;
  let last = "";
  const update = (pgids: readonly number[]) => {
    const text = `${pgids.join("\n")}\n`;
    if (text === last) return;
    last = text;
    writeRuntimeFile(groupsFile, text);
  };
  update([]);
  let child: Child;
  try {
    child = spawnChild({
      argv: [setpriv, "--pdeathsig", "SIGTERM", "--", "sh", "-c", SCRIPT, "hr-sweeper", groupsFile, ...removeOnSweep],
      cwd: "/",
      env,
    });
  } catch {
    return null;
  }
  return {
    pid: child.pid,
    update,
    async stop() {
      await child.kill();
    },
  };
}
