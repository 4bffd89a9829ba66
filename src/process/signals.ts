/** Signals hr sends to children (stop signal, reload signal, forced kill). */
export type SignalName = "SIGTERM" | "SIGINT" | "SIGHUP" | "SIGQUIT" | "SIGKILL" | "SIGUSR1" | "SIGUSR2";

export const SIGNALS = ["SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2"] as const satisfies readonly SignalName[];

/** Linux signal numbers, for exit-status arithmetic (128 + n) and logs. */
export const SIGNAL_NUMBERS: Readonly<Record<SignalName, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGUSR2: 12,
  SIGTERM: 15,
};

/** Error for an unknown or unsupported signal name. */
export class SignalError extends Error {
  override name = "SignalError";
}

/**
 * Parses a signal name as a user writes it: "TERM", "sigterm", "SIGTERM", " SigTerm "
 * all give "SIGTERM". Also accepts the number ("15"). Throws {@link SignalError} listing
 * the accepted names otherwise.
 * @internal unit-tested; the config schema normalizes stop_signal itself (config/schema.ts).
 */
export function parseSignal(name: string): SignalName {
  const raw = String(name).trim();
  if (/^\d+$/.test(raw)) {
    const n = Number(raw);
    const hit = SIGNALS.find((s) => SIGNAL_NUMBERS[s] === n);
    if (hit) return hit;
  } else {
    const upper = raw.toUpperCase();
    const full = upper.startsWith("SIG") ? upper : `SIG${upper}`;
    if ((SIGNALS as readonly string[]).includes(full)) return full as SignalName;
  }
  throw new SignalError(
    `unknown signal ${JSON.stringify(name)}: use one of ${SIGNALS.map((s) => s.slice(3)).join(", ")} (with or without SIG prefix)`,
  );
}
