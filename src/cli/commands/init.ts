import type { CommandSpec } from "../context.ts";

export const init: CommandSpec = {
  name: "init",
  summary: "Detect the project and write a commented hr.toml",
  usage: "hr init [--yes] [--force]",
  help: `Options:
  -y, --yes        write the detected defaults without asking
  -f, --force      overwrite an existing hr.toml without asking`,
  options: { yes: { type: "boolean", short: "y" }, force: { type: "boolean", short: "f" } },
  async run(ctx) {
    ctx.log.error("hr init is not implemented yet");
    return 1;
  },
};
