import type { CommandSpec } from "../context.ts";

export const status: CommandSpec = {
  name: "status",
  summary: "Show the running `hr serve`: generation, workers, recent reloads",
  usage: "hr status [--json]",
  help: "Options:\n      --json       print the status as JSON",
  options: { json: { type: "boolean" } },
  async run(ctx) {
    ctx.log.error("hr status is not implemented yet");
    return 1;
  },
};
