import { existsSync, statSync } from "node:fs";
import { resolve } from "node:path";
import type { CommandSpec } from "../context.ts";
import { DEFAULT_CONFIG_FILE } from "../../config/load.ts";
import { initInteractive, initNonInteractive } from "../../init/wizard.ts";

export const init: CommandSpec = {
  name: "init",
  summary: "Detect the project and write a commented hr.toml",
  usage: "hr init [--yes] [--force]",
  help: `Reads the project (go.mod or *.go, package.json, pyproject.toml, requirements.txt, *.py,
Cargo.toml, Makefile) and the app's code: the framework, the entry, the port it binds, whether
it adopts an inherited socket (LISTEN_FDS, fd 3) and which commands exist on PATH. Proposes
build/run commands, watch rules, a listen socket and strategies — fd for apps that adopt the
socket, else bind capture (dev: held socket; serve: proxy) — with one line of reasons per
choice, asks about each (or not, with --yes), says what the app must change (usually
nothing) and writes a commented hr.toml. Nothing in the project is executed.

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
