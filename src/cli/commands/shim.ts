import { bunShimSource } from "../../shims/bun-shim.ts";
import { UsageError, writeOutputFile, type CommandSpec } from "../context.ts";

export const shim: CommandSpec = {
  name: "shim",
  summary: "Print the Bun.serve preload shim (for running a Bun.serve app on an inherited socket without hr)",
  usage: "hr shim bun [-o FILE]",
  help: `Options:
  -o, --output FILE   write to FILE instead of stdout

hr serve preloads this shim by itself (serve.bun_shim). Print it to use elsewhere, e.g. under
systemd socket activation: \`hr shim bun -o hr-bun-shim.js\`, then \`bun --preload ./hr-bun-shim.js app.ts\`.`,
  options: { output: { type: "string", short: "o" } },
  allowPositionals: true,
  async run(ctx) {
    const [kind, ...rest] = ctx.positionals;
    if (kind !== "bun" || rest.length) throw new UsageError(`expected \`hr shim bun\`${kind && kind !== "bun" ? `, got "${kind}" (only Bun needs a shim)` : ""}`);
    if (ctx.values.output) writeOutputFile(String(ctx.values.output), bunShimSource());
    else process.stdout.write(bunShimSource());
    return 0;
  },
};
