/** Finding the processes a test started, so cleanup can prove none survived. */
import { pidsWithEnv, tcpSockets } from "../../src/platform/proc.ts";

/** Pids of live (non-zombie) processes whose environment carries HR_TEST_TAG=tag. */
export function taggedPids(tag: string): number[] {
  return pidsWithEnv("HR_TEST_TAG", tag);
}

/** Inode of the socket listening on 127.0.0.1/any :port (to prove a socket survived a handoff). */
export function listeningInode(port: number): number | undefined {
  return tcpSockets().find((s) => s.listening && s.port === port)?.inode;
}
