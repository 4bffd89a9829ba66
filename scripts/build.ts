/**
 * Builds dist/hr: one executable (bun build --compile, minified, bytecode) with version and commit baked in.
 * `compile()` is the one build: scripts/release.ts cross-compiles every release target through it, so the
 * release binaries carry exactly the flags dist/hr does.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

/** Every runtime autoload a compiled Bun executable has, turned off. */
export const NO_AUTOLOAD = [
  "--no-compile-autoload-bunfig",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-tsconfig",
  "--no-compile-autoload-package-json",
];

/** The version in package.json and the commit of the tree (with "-dirty" when tracked files changed). */
export function buildInfo(): { version: string; commit: string } {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  const git = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root, encoding: "utf8" });
  const commit = git.status === 0 ? git.stdout.trim() : "unknown";
  const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: root, encoding: "utf8" }).stdout?.trim() ? "-dirty" : "";
  return { version: pkg.version, commit: commit + dirty };
}

export interface CompileOptions {
  outfile: string;
  /** A `bun build --target` such as "bun-linux-arm64-musl"; omitted: the running Bun's own platform. */
  target?: string;
  info?: { version: string; commit: string };
}

/** Compiles src/cli/main.ts into one executable; throws with Bun's output when the build fails. */
export function compile(options: CompileOptions): { ms: number; bytes: number } {
  const info = options.info ?? buildInfo();
  const started = performance.now();
  const build = spawnSync(
    process.execPath,
    [
      // --bytecode: startup parses no JS (hr --version ~8 ms instead of ~31 ms).
      "build", "--compile", "--minify", "--bytecode", "--sourcemap=none",
      ...(options.target ? [`--target=${options.target}`] : []),
      // hr runs inside other people's projects: the binary must not load the cwd's bunfig.toml
      // (its preload would run code inside hr), .env (secrets and HR_* would enter hr's own
      // environment), tsconfig.json or package.json. See test/e2e/autoload.test.ts.
      ...NO_AUTOLOAD,
      "--define", `HR_VERSION=${JSON.stringify(info.version)}`,
      "--define", `HR_COMMIT=${JSON.stringify(info.commit)}`,
      join(root, "src/cli/main.ts"),
      // The bind-capture notification thread (src/capture/worker.ts) is a Worker: an entry point of its own.
      join(root, "src/capture/worker.ts"),
      // So is each extra proxy thread of hr serve (src/proxy/thread.ts).
      join(root, "src/proxy/thread.ts"),
      "--outfile", options.outfile,
    ],
    { cwd: root, stdio: ["ignore", "pipe", "pipe"], encoding: "utf8" },
  );
  if (build.status !== 0) {
    throw new Error(`bun build${options.target ? ` --target=${options.target}` : ""} failed (${build.signal ? `killed by ${build.signal}` : `exit ${build.status}`}):\n${build.stdout ?? ""}${build.stderr ?? ""}${build.error ? String(build.error) : ""}`);
  }
  return { ms: Math.round(performance.now() - started), bytes: statSync(options.outfile).size };
}

if (import.meta.main) {
  const info = buildInfo();
  const outfile = join(root, "dist", "hr");
  try {
    const { ms, bytes } = compile({ outfile, info });
    console.log(`built ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB, hr ${info.version} ${info.commit}) in ${ms} ms`);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
