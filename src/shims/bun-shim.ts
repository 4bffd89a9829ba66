/**
 * hr's Bun.serve preload shim (serve.bun_shim): which workers get it and how.
 * The shim's source (bun-serve-shim.js) is embedded in the hr binary as text and
 * written into hr's private runtime directory by the fd and reuseport strategies.
 */
import { writeRuntimeFile } from "../control/runtime.ts";
import { basename, join } from "node:path";
import type { Config } from "../config/schema.ts";
import shimSource from "./bun-serve-shim.js" with { type: "text" };

export const BUN_SHIM_FILE = "hr-bun-shim.js";

/** The Bun.serve preload shim's source (embedded in the hr binary). */
export function bunShimSource(): string {
  return shimSource;
}

/** Whether a worker running `argv` gets the shim, and how: "argv" (--preload after bun), "env" (BUN_OPTIONS) or none. */
export function bunShimMode(setting: Config["serve"]["bun_shim"], argv: readonly string[]): "argv" | "env" | undefined {
  if (setting === false) return undefined;
  const isBun = /^bun(\.exe)?$/.test(basename(argv[0] ?? ""));
  if (isBun) return "argv";
  return setting === true ? "env" : undefined;
}

/** `bun …` → `bun --preload <shim> …` */
export function withPreload(argv: readonly string[], shimPath: string): string[] {
  return [argv[0]!, "--preload", shimPath, ...argv.slice(1)];
}

/** Writes the shim into `dir` (hr's private runtime directory); returns its path. */
export function installBunShim(dir: string): string {
  const path = join(dir, BUN_SHIM_FILE);
  writeRuntimeFile(path, bunShimSource());
  return path;
}

/** What the shim adds to a process started with `argv` under `cfg`: BUN_OPTIONS or a --preload argv. */
export function bunShimWiring(shimPath: string | undefined, cfg: Config, argv: readonly string[], env: Record<string, string | undefined>): { env: Record<string, string>; argv: (a: string[]) => string[] } {
  const mode = shimPath ? bunShimMode(cfg.serve.bun_shim, argv) : undefined;
  const extra: Record<string, string> = {};
  if (mode === "env") {
    const prev = cfg.run.env.BUN_OPTIONS ?? env.BUN_OPTIONS;
    extra.BUN_OPTIONS = `${prev ? `${prev} ` : ""}--preload ${shimPath}`;
  }
  return { env: extra, argv: (a) => (mode === "argv" ? withPreload(a, shimPath!) : a) };
}
