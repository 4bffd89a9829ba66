/** Builds dist/hr: one executable (bun build --compile, minified, bytecode) with version and commit baked in. */
import { spawnSync } from "node:child_process";
import { statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const pkg = await Bun.file(join(root, "package.json")).json();
const git = spawnSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: root, encoding: "utf8" });
const commit = git.status === 0 ? git.stdout.trim() : "unknown";
const dirty = spawnSync("git", ["status", "--porcelain", "--untracked-files=no"], { cwd: root, encoding: "utf8" }).stdout?.trim() ? "-dirty" : "";
const outfile = join(root, "dist", "hr");

/** Every runtime autoload a compiled Bun executable has, turned off. */
export const NO_AUTOLOAD = [
  "--no-compile-autoload-bunfig",
  "--no-compile-autoload-dotenv",
  "--no-compile-autoload-tsconfig",
  "--no-compile-autoload-package-json",
];

const started = performance.now();
const build = spawnSync(
  process.execPath,
  [
    // --bytecode: startup parses no JS (hr --version ~8 ms instead of ~31 ms).
    "build", "--compile", "--minify", "--bytecode", "--sourcemap=none",
    // hr runs inside other people's projects: the binary must not load the cwd's bunfig.toml
    // (its preload would run code inside hr), .env (secrets and HR_* would enter hr's own
    // environment), tsconfig.json or package.json. See test/e2e/autoload.test.ts.
    ...NO_AUTOLOAD,
    "--define", `HR_VERSION=${JSON.stringify(pkg.version)}`,
    "--define", `HR_COMMIT=${JSON.stringify(commit + dirty)}`,
    join(root, "src/cli/main.ts"),
    // The bind-capture notification thread (src/capture/worker.ts) is a Worker: an entry point of its own.
    join(root, "src/capture/worker.ts"),
    "--outfile", outfile,
  ],
  { cwd: root, stdio: ["ignore", "pipe", "inherit"], encoding: "utf8" },
);
if (build.status !== 0) {
  process.stderr.write(build.stdout ?? "");
  console.error(`build failed (exit ${build.status})`);
  process.exit(1);
}
const size = statSync(outfile).size / 1024 / 1024;
console.log(`built ${outfile} (${size.toFixed(1)} MiB, hr ${pkg.version} ${commit}${dirty}) in ${Math.round(performance.now() - started)} ms`);
