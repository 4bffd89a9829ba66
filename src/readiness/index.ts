/**
 * Picks the probe for [serve.ready].type and bounds it: ready.timeout passing, or
 * the worker exiting before it is ready, is a failure with a reason. The probe is
 * always cancelled (its AbortSignal fires) when the wait ends, whatever the outcome.
 */
import type { ExitInfo } from "../process/child.ts";
import { formatMs } from "../config/duration.ts";
import type { ReadyConfig } from "../config/schema.ts";
import { delayProbe } from "./delay.ts";
import { httpProbe } from "./http.ts";
import { ipcProbe } from "./ipc.ts";
import { listenProbe } from "./listen.ts";
import { logProbe } from "./log.ts";
import { notifyProbe } from "./notify.ts";
import { tcpProbe } from "./tcp.ts";
import type { Probe, ProbeContext } from "./types.ts";

export type { Probe } from "./types.ts";
import type { ReadyType } from "../config/schema.ts";
export type { ReadyType } from "../config/schema.ts";

export const PROBES: Record<ReadyType, Probe> = {
  listen: listenProbe,
  notify: notifyProbe,
  ipc: ipcProbe,
  http: httpProbe,
  tcp: tcpProbe,
  log: logProbe,
  delay: delayProbe,
};

export function probeFor(type: ReadyType): Probe {
  return PROBES[type];
}

/** Whether the probe needs a health port (http, tcp). */
export function needsPort(type: ReadyType): boolean {
  return type === "http" || type === "tcp";
}

/** What a stock app (one that sends nothing) needs instead, said when a code-dependent readiness type times out. */
const TIMEOUT_HINT: Partial<Record<string, string>> = {
  notify:
    ': the app never sent READY=1 to $NOTIFY_SOCKET. An app without that code: set run.capture = true with a [[listen]] for its port (ready when it listens; no config: `hr serve --listen :PORT --capture -- CMD`), or serve.ready.type = "tcp" / "delay"',
  ipc: ': the app never called process.send("ready"). An app without that code: set run.capture = true with a [[listen]] for its port, or serve.ready.type = "tcp" / "delay"',
};

export type ReadyResult =
  | { ok: true; ms: number }
  | { ok: false; ms: number; reason: string; kind: "timeout" | "exited" | "probe" | "aborted" };

export interface WaitReadyOptions extends Omit<ProbeContext, "signal"> {
  /** The worker's exit; resolving first means failure. */
  exited: Promise<ExitInfo>;
  /** Cancels the wait (e.g. hr is shutting down): result kind "aborted". */
  signal?: AbortSignal;
}


/** Waits for readiness; never rejects. */
export async function waitReady(opts: WaitReadyOptions): Promise<ReadyResult> {
  const t0 = performance.now();
  const elapsed = () => Math.round(performance.now() - t0);
  const ac = new AbortController();
  const { exited, signal: outer, ...rest } = opts;
  const probe = probeFor(opts.config.type);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onOuter: (() => void) | undefined;
  type Outcome = { kind: "ready" } | { kind: "timeout" } | { kind: "exited"; info: ExitInfo } | { kind: "probe"; error: unknown } | { kind: "aborted" };
  const races: Promise<Outcome>[] = [
    probe({ ...rest, signal: ac.signal }).then(
      (): Outcome => ({ kind: "ready" }),
      (error): Outcome => ({ kind: "probe", error }),
    ),
    exited.then((info): Outcome => ({ kind: "exited", info })),
    new Promise<Outcome>((r) => (timer = setTimeout(() => r({ kind: "timeout" }), opts.config.timeout))),
  ];
  if (outer) {
    races.push(
      new Promise<Outcome>((r) => {
        onOuter = () => r({ kind: "aborted" });
        if (outer.aborted) onOuter();
        else outer.addEventListener("abort", onOuter, { once: true });
      }),
    );
  }
  const outcome = await Promise.race(races);
  clearTimeout(timer);
  if (onOuter) outer?.removeEventListener("abort", onOuter);
  ac.abort(new Error("readiness wait over"));
  const ms = elapsed();
  switch (outcome.kind) {
    case "ready":
      return { ok: true, ms };
    case "timeout":
      return { ok: false, ms, kind: "timeout", reason: `not ready after ${formatMs(opts.config.timeout)} (ready.type = ${JSON.stringify(opts.config.type)})${TIMEOUT_HINT[opts.config.type] ?? ""}` };
    case "exited":
      return { ok: false, ms, kind: "exited", reason: `${outcome.info.describe()} before it was ready` };
    case "aborted":
      return { ok: false, ms, kind: "aborted", reason: "cancelled" };
    case "probe": {
      // A probe that gave up because we aborted it lost the race to another outcome; otherwise it is a config problem.
      const msg = outcome.error instanceof Error ? outcome.error.message : String(outcome.error);
      return { ok: false, ms, kind: "probe", reason: msg };
    }
  }
}
