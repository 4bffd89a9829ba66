import type { CommandSpec } from "../context.ts";
import { controlRequest } from "./status.ts";

export const reload: CommandSpec = {
  name: "reload",
  summary: "Ask the running `hr serve` to start a new generation",
  usage: "hr reload [--wait] [--json]",
  help: `Options:
      --wait       wait until the new generation is ready (or rolled back) and, under the proxy,
                   the old one has finished hr's requests; exit 1 on rollback
      --json       print the result as JSON`,
  options: { wait: { type: "boolean" }, json: { type: "boolean" } },
  async run(ctx) {
    const wait = Boolean(ctx.values.wait);
    const res = await controlRequest(ctx, { cmd: "reload", wait }, wait ? 0 : 10_000);
    if (!res) return 1;
    if (ctx.values.json) process.stdout.write(`${JSON.stringify(res)}\n`);
    if (!res.ok) {
      const out = res.reload?.output?.length ? `\nlast output:\n${res.reload.output.map((l) => `  | ${l}`).join("\n")}` : "";
      if (!ctx.values.json) process.stderr.write(`hr: reload failed: ${res.error}${out}\n`);
      return 1;
    }
    if (!ctx.values.json && "queued" in res) {
      const r = res.reload;
      process.stdout.write(r ? `gen${r.generation} is live (reload #${r.id} took ${r.durationMs} ms)\n` : `reload ${res.queued ? "queued" : "started"}\n`);
      const d = r?.drain;
      if (d) {
        const cut = d.cut ? `, ${d.cut} cut at drain_timeout` : ", none cut";
        process.stdout.write(`gen${d.generation} drained in ${d.durationMs} ms: ${d.requests} request${d.requests === 1 ? "" : "s"} and ${d.tunnels} tunnel${d.tunnels === 1 ? "" : "s"} finished${cut}\n`);
      }
    }
    return 0;
  },
};
