import type { CommandSpec } from "../context.ts";

export const check: CommandSpec = {
  name: "check",
  summary: "Validate hr.toml: print ok, or every problem with its line",
  usage: "hr check [-c FILE]",
  help: "Exits 0 when the config is valid, 1 when it is not (every problem is listed).",
  options: {},
  async run(ctx) {
    const { file } = ctx.loadConfig();
    process.stdout.write(ctx.global.quiet ? "" : `ok${file ? ` (${file})` : ""}\n`);
    return 0;
  },
};
