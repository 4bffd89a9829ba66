import type { CommandSpec } from "../context.ts";
import { LISTEN_HELP, LISTEN_OPTION, listenOverride, override, runOverride } from "./flags.ts";
import { runDev } from "../../dev/pipeline.ts";

export const dev: CommandSpec = {
  name: "dev",
  summary: "Watch files, rebuild and restart the app; hold its socket so requests wait instead of failing",
  usage: "hr dev [options] [-- run command…]",
  help: `Options:
${LISTEN_HELP}
      --strategy S        fd | proxy | none (socket handling across restarts)
      --debounce DUR      quiet time after the last change (default 10ms, capped at 1s)
      --poll DUR          poll instead of native events, e.g. 500ms
      --restart-on-crash  restart a crashed app with backoff
      --clear             clear the screen before each rebuild
  -- CMD…                 run CMD instead of [run].cmd

No hr.toml is needed when the command is given: \`hr dev -- go run .\` restarts on every
change; \`hr dev --listen :8080 -- ./app\` also holds :8080 across restarts (the app gets it
at fd 3, LISTEN_FDS=1); with --capture the app may bind :8080 itself, unmodified.
HR_* variables set any key: HR_WATCH_INCLUDE_EXT=go,html, HR_SERVE_READY_TYPE=tcp.`,
  options: {
    ...LISTEN_OPTION,
    strategy: { type: "string" },
    debounce: { type: "string" },
    poll: { type: "string" },
    "restart-on-crash": { type: "boolean" },
    clear: { type: "boolean" },
  },
  allowPositionals: true,
  async run(ctx) {
    const flags: Record<string, unknown> = {};
    override(flags, "listen", listenOverride(ctx.values));
    override(flags, "run.capture", ctx.values.capture);
    override(flags, "dev.strategy", ctx.values.strategy);
    override(flags, "watch.debounce", ctx.values.debounce);
    override(flags, "watch.poll", ctx.values.poll);
    override(flags, "dev.restart_on_crash", ctx.values["restart-on-crash"]);
    override(flags, "dev.clear_screen", ctx.values.clear);
    override(flags, "run.cmd", runOverride(ctx.positionals));
    const loaded = ctx.loadConfig(flags);
    return runDev({ config: loaded.config, root: loaded.root, log: ctx.log, env: ctx.env });
  },
};
