/** Turning command-line flags into config overrides (the last word in precedence). */
import { UsageError, type Values } from "../context.ts";
import { listenEntries } from "../../config/load.ts";

/** Sets path in out when the flag was given. */
export function override(out: Record<string, unknown>, path: string, value: unknown): void {
  if (value === undefined) return;
  const keys = path.split(".");
  let table = out;
  for (const key of keys.slice(0, -1)) table = (table[key] ??= {}) as Record<string, unknown>;
  table[keys.at(-1)!] = value;
}

export function intFlag(values: Values, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} expects a whole number, got ${JSON.stringify(raw)}`);
  return n;
}

/** `hr dev -- ./app --flag`: positionals after `--` replace [run].cmd. */
export function runOverride(positionals: string[]): string[] | undefined {
  return positionals.length ? positionals : undefined;
}

/** `--listen :8080 --listen admin=unix:./a.sock`: replaces [[listen]] (watchexec --socket / systemfd style). */
export function listenOverride(values: Values): { name: string; address: string }[] | undefined {
  const raw = values.listen;
  if (raw === undefined) return undefined;
  return listenEntries((Array.isArray(raw) ? raw : [raw]).map(String));
}

export const LISTEN_OPTION = { listen: { type: "string", multiple: true }, capture: { type: "boolean" } } as const;
export const LISTEN_HELP = `      --listen ADDR       hold this socket instead of [[listen]] (repeatable; NAME=ADDR names it), e.g.
                          --listen :8080, --listen 127.0.0.1:3000, --listen admin=unix:./admin.sock
      --capture           bind capture (run.capture): the app's own bind() of a [[listen]] port gets
                          hr's socket, so an app with a hard-coded port runs unmodified`;
