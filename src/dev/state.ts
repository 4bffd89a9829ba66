/**
 * The state of an `hr dev` session, as one explicit value rather than scattered
 * booleans: what hr is doing (phase) and what the app is (app). The two are
 * independent on purpose — the last good app keeps running while a build runs.
 */
import type { Child, ExitInfo } from "../process/child.ts";
import type { BuildRun } from "../process/build.ts";
import type { CaptureStart } from "../capture/app.ts";

export type App =
  /** Nothing started yet, the first build failed, or the command could not be spawned. */
  | { status: "none" }
  | {
      status: "running";
      child: Child;
      gen: number;
      startedAt: number;
      /** proxy: where hr forwards to. */
      port?: number;
      /** run.capture: the launch to dispose once the tree is gone, and when the app listened on hr's socket. */
      capture?: CaptureStart;
      listening?: Promise<void>;
      /** Fixed TCP ports the app listens on itself (not [[listen]]): a second instance could not start beside it. */
      ownPorts: Set<number>;
    }
  /** Exited on its own (any exit code or signal); leftovers of its group are swept before the next start. */
  | { status: "crashed"; child: Child; gen: number; exit: ExitInfo; ranMs: number };

export type Trigger = "start" | "change" | "manual" | "crash";

export type Phase =
  /** Waiting for a change, a key or a crash-restart timer. */
  | { kind: "idle" }
  /** A build is running; the app (if any) keeps serving. A change cancels it. */
  | { kind: "building"; build: BuildRun; trigger: Trigger }
  /** Build succeeded (or none): stopping the old tree, then starting the new one. */
  | { kind: "restarting"; trigger: Trigger }
  /** Crashed with dev.restart_on_crash: waiting out the backoff. */
  | { kind: "backoff"; delayMs: number; timer: ReturnType<typeof setTimeout> }
  /** Ctrl-C, SIGTERM or q: stopping everything. */
  | { kind: "quitting" };

export interface DevState {
  phase: Phase;
  app: App;
}

/**
 * What the loop is told (DevSession's inbox): a debounced batch of changes, r+Enter,
 * the app's own exit, the crash-restart timer, q / Ctrl-C / SIGTERM. Run() takes them in order; a
 * quit stays in the inbox until the loop ends.
 */
export type DevEvent = { kind: "change" } | { kind: "manual" } | { kind: "crashed" } | { kind: "crash-timer" } | { kind: "quit" };
