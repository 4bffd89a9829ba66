/** Finding the processes a test started, so cleanup can prove none survived. */
import { readdirSync, readFileSync } from "node:fs";
import { tcpSockets } from "../../src/platform/proc.ts";

/** Pids of live (non-zombie) processes whose environment carries HR_TEST_TAG=tag. */
export function taggedPids(tag: string): number[] {
  return pidsWithEnv("HR_TEST_TAG", tag);
}

/** Pids of live (non-zombie) processes whose environment has name=value. */
export function pidsWithEnv(name: string, value: string): number[] {
  const needle = `${name}=${value}\0`;
  const out: number[] = [];
  for (const n of readdirSync("/proc")) {
    if (!/^\d+$/.test(n)) continue;
    try {
      const stat = readFileSync(`/proc/${n}/stat`, "latin1");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state === "Z" || state === "X") continue;
      if (readFileSync(`/proc/${n}/environ`, "latin1").includes(needle)) out.push(Number(n));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** Inode of the socket listening on 127.0.0.1/any :port (to prove a socket survived a handoff). */
export function listeningInode(port: number): number | undefined {
  return tcpSockets().find((s) => s.listening && s.port === port)?.inode;
}
