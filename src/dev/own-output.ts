/**
 * Files hr itself writes inside the project must never trigger a rebuild, or hr
 * restarts on its own output forever:
 * - its stdout/stderr when redirected to a file in the tree (`hr dev > dev.log`,
 *   found through /proc/self/fd/1 and /2: the file's real path, whatever the
 *   shell called it);
 * - [log] file and its rotated copies (hr.log, hr.log.1, …);
 * - what [build] produces for [run]: the program run.cmd starts, when it is a
 *   path inside the project (`go build -o ./tmp/app` + cmd = ["./tmp/app"]).
 * They become watch.ignore globs (relative to the project). Not covered: other
 * artefacts a build writes into watched directories (exclude them with
 * watch.exclude, e.g. "tmp/**").
 */
import { fstatSync } from "node:fs";
import { isAbsolute, relative, resolve } from "node:path";
import type { Config } from "../config/schema.ts";
import { fdTarget } from "../platform/proc.ts";
import { toArgv } from "../process/command.ts";

/** A literal path as a Bun.Glob pattern (metacharacters escaped). */
function literalGlob(rel: string): string {
  return rel.replace(/[\\[\]{}()*?!]/g, (c) => `\\${c}`);
}

function inside(root: string, file: string): string | null {
  const rel = relative(root, file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : null;
}

export interface OwnOutput {
  /** watch.ignore globs. */
  globs: string[];
  /** Relative paths, for the log. */
  paths: string[];
}

export function ownOutput(root: string, cfg: Config): OwnOutput {
  const paths = new Set<string>();
  for (const fd of [1, 2]) {
    try {
      if (!fstatSync(fd).isFile()) continue;
      const file = fdTarget(fd);
      const rel = file ? inside(root, file) : null;
      if (rel) paths.add(rel);
    } catch {
      /* closed fd, no /proc */
    }
  }
  const globs: string[] = [];
  if (cfg.log.file) {
    const rel = inside(root, resolve(root, cfg.log.file));
    if (rel) {
      paths.add(rel);
      globs.push(`${literalGlob(rel)}.*`);
    }
  }
  if (cfg.build.cmd || cfg.build.post) {
    try {
      // A string command runs through `sh -c`: its program is the first word.
      const prog = typeof cfg.run.cmd === "string" ? cfg.run.cmd.trim().split(/\s+/)[0] : toArgv(cfg.run.cmd)[0];
      if (prog && prog.includes("/")) {
        const rel = inside(root, resolve(root, prog));
        if (rel) paths.add(rel);
      }
    } catch {
      /* an unparsable command fails elsewhere, with its own message */
    }
  }
  return { paths: [...paths], globs: [...[...paths].map(literalGlob), ...globs] };
}
