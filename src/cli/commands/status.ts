import { resolve } from "node:path";
import type { CommandSpec, Context } from "../context.ts";
import { NotRunningError, request } from "../../control/client.ts";
import type { Request, Response } from "../../control/protocol.ts";
import { runtimePaths } from "../../control/runtime.ts";
import { formatStatus } from "../../serve/status.ts";
import { DEFAULT_CONFIG_FILE } from "../../config/load.ts";

/** Sends one control request to this project's `hr serve`; prints the problem and returns null when it can't. timeoutMs 0 = none. */
export async function controlRequest(ctx: Context, req: Request, timeoutMs: number): Promise<Response | null> {
  const paths = runtimePaths(resolve(ctx.global.cwd, ctx.global.configFile ?? DEFAULT_CONFIG_FILE), ctx.env);
  try {
    return await request(paths.socket, req, timeoutMs || 2 ** 31 - 1);
  } catch (e) {
    const msg = e instanceof NotRunningError ? `${e.message}; config ${paths.project}` : `control socket ${paths.socket}: ${(e as Error).message}`;
    if (ctx.values.json) process.stdout.write(`${JSON.stringify({ ok: false, error: msg })}\n`);
    process.stderr.write(`hr: ${msg}\n`);
    return null;
  }
}

export const status: CommandSpec = {
  name: "status",
  summary: "Show the running `hr serve`: generation, workers, recent reloads",
  usage: "hr status [--json]",
  help: "Options:\n      --json       print the status as JSON",
  options: { json: { type: "boolean" } },
  async run(ctx) {
    const res = await controlRequest(ctx, { cmd: "status" }, 10_000);
    if (!res) return 1;
    if (!res.ok || !("status" in res)) {
      process.stderr.write(`hr: ${res.ok ? "unexpected answer" : res.error}\n`);
      return 1;
    }
    process.stdout.write(ctx.values.json ? `${JSON.stringify(res.status)}\n` : `${formatStatus(res.status)}\n`);
    return 0;
  },
};
