import { jsonSchema } from "../../config/schema.ts";
import { writeOutputFile, type CommandSpec } from "../context.ts";

export const schema: CommandSpec = {
  name: "schema",
  summary: "Print the JSON Schema of hr.toml (for editors)",
  usage: "hr schema [-o FILE]",
  help: "Options:\n  -o, --output FILE   write to FILE instead of stdout\n\nTaplo / Even Better TOML: add `#:schema ./hr.schema.json` as the first line of hr.toml.",
  options: { output: { type: "string", short: "o" } },
  async run(ctx) {
    const text = `${JSON.stringify(jsonSchema(), null, 2)}\n`;
    if (ctx.values.output) writeOutputFile(String(ctx.values.output), text);
    else process.stdout.write(text);
    return 0;
  },
};
