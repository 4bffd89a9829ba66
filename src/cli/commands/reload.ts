import type { CommandSpec } from "../context.ts";

export const reload: CommandSpec = {
  name: "reload",
  summary: "Ask the running `hr serve` to start a new generation",
  usage: "hr reload [--wait] [--json]",
  help: `Options:
      --wait       wait until the new generation is ready (or rolled back); exit 1 on rollback
      --json       print the result as JSON`,
  options: { wait: { type: "boolean" }, json: { type: "boolean" } },
  async run(ctx) {
    ctx.log.error("hr reload is not implemented yet");
    return 1;
  },
};
