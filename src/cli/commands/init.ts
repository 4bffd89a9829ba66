import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { CommandSpec } from "../context.ts";
import { DEFAULT_CONFIG_FILE } from "../../config/load.ts";
import { initInteractive, initNonInteractive } from "../../init/wizard.ts";

export const init: CommandSpec = {
  name: "init",
  summary: "Detect the project and write a commented hr.toml",
  usage: "hr init [--yes] [--force]",
  help: `Looks at the project's files (go.mod, package.json, pyproject.toml, requirements.txt,
Cargo.toml, Makefile), proposes build/run commands, watch rules, a listen socket and
strategies, asks about each (or not, with --yes) and writes a commented hr.toml.

Options:
  -y, --yes        write the detected defaults without asking (no TTY needed)
  -f, --force      overwrite an existing hr.toml without asking

Examples:
  hr init                   interactive
  hr init --yes --cwd app   detect app/ and write app/hr.toml`,
  options: { yes: { type: "boolean", short: "y" }, force: { type: "boolean", short: "f" } },
  async run(ctx) {
    const dir = ctx.global.cwd;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      ctx.log.error(`no such directory: ${dir}`);
      return 1;
    }
    const opts = { dir, file: resolve(dir, ctx.global.configFile ?? DEFAULT_CONFIG_FILE), force: Boolean(ctx.values.force) };
    if (ctx.values.yes) {
      return initNonInteractive(opts, { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) });
    }
    if (!process.stdin.isTTY) {
      ctx.log.error("stdin is not a terminal, so hr init can't ask questions; run `hr init --yes` to write the detected defaults");
      return 1;
    }
    return initInteractive(opts);
  },
};
