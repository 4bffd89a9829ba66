/** Version and commit: baked in by scripts/build.ts (--define), read from the tree when run from source. */
declare const HR_VERSION: string | undefined;
declare const HR_COMMIT: string | undefined;

import pkg from "../../package.json" with { type: "json" };

export const VERSION: string = typeof HR_VERSION === "string" ? HR_VERSION : pkg.version;
export const COMMIT: string = typeof HR_COMMIT === "string" ? HR_COMMIT : "source";
export const VERSION_LINE = `hr ${VERSION} (${COMMIT}, bun ${Bun.version}, ${process.platform}-${process.arch})`;

export function isVersionRequest(argv: readonly string[]): boolean {
  return argv[0] === "--version" || argv[0] === "-V" || argv[0] === "version";
}
