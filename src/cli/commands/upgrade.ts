import type { CommandSpec } from "../context.ts";
import { controlRequest } from "./status.ts";

export const upgrade: CommandSpec = {
  name: "upgrade",
  summary: "Re-exec the running `hr serve` from the hr binary on disk, sockets kept open (same as SIGUSR2)",
  usage: "hr upgrade [--wait] [--json]",
  help: `The master starts the hr binary at its own path again (a new version installed
there is picked up) with the listening sockets at fd 3.., waits until the new
master's first generation is ready, then drains its workers and exits 0. If the
new master fails or isn't ready within serve.ready.timeout + 10s, it is stopped
and the old master keeps serving.

Options:
      --wait       wait for the outcome; exit 1 if the upgrade failed
      --json       print the answer as JSON`,
  options: { wait: { type: "boolean" }, json: { type: "boolean" } },
  async run(ctx) {
    const wait = Boolean(ctx.values.wait);
    const res = await controlRequest(ctx, { cmd: "upgrade", wait }, wait ? 0 : 10_000);
    if (!res) return 1;
    if (ctx.values.json) process.stdout.write(`${JSON.stringify(res)}\n`);
    if (!res.ok) {
      if (!ctx.values.json) process.stderr.write(`hr: upgrade failed: ${res.error}\n`);
      return 1;
    }
    if (!ctx.values.json && "upgrade" in res) {
      const u = res.upgrade;
      process.stdout.write(
        u.result === "ok"
          ? `pid ${u.newPid} is the master now (upgrade took ${u.durationMs} ms); pid ${u.oldPid} drains and exits\n`
          : `upgrade started (pid ${u.oldPid}); \`hr status\` shows the outcome\n`,
      );
    }
    return 0;
  },
};
