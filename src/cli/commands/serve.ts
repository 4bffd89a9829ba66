import type { CommandSpec } from "../context.ts";
import { intFlag, LISTEN_HELP, LISTEN_OPTION, listenOverride, override, runOverride } from "./flags.ts";
import { Master } from "../../serve/master.ts";

export const serve: CommandSpec = {
  name: "serve",
  summary: "Zero-downtime master: bind sockets once, pass them to worker generations, reload without dropping a request",
  usage: "hr serve [options] [-- run command…]",
  help: `Options:
${LISTEN_HELP}
  -w, --workers N         processes per generation (default 1)
      --strategy S        fd | reuseport | proxy
      --drain-timeout DUR how long an old generation may drain (default 30s)
      --ready-timeout DUR how long a new generation may take to get ready (default 30s)
  -- CMD…                 run CMD instead of [run].cmd

Reload with SIGHUP or \`hr reload\` (hr.toml is re-read: [run], [build] and [serve]
changes apply to the new generation; [[listen]] changes need a restart);
stop with SIGTERM or Ctrl-C (twice: kill at once).`,
  options: {
    ...LISTEN_OPTION,
    workers: { type: "string", short: "w" },
    strategy: { type: "string" },
    "drain-timeout": { type: "string" },
    "ready-timeout": { type: "string" },
  },
  allowPositionals: true,
  async run(ctx) {
    const flags: Record<string, unknown> = {};
    override(flags, "listen", listenOverride(ctx.values));
    override(flags, "run.capture", ctx.values.capture);
    override(flags, "serve.workers", intFlag(ctx.values, "workers"));
    override(flags, "serve.strategy", ctx.values.strategy);
    override(flags, "serve.drain_timeout", ctx.values["drain-timeout"]);
    override(flags, "serve.ready.timeout", ctx.values["ready-timeout"]);
    override(flags, "run.cmd", runOverride(ctx.positionals));
    const loaded = ctx.loadConfig(flags);
    const log = ctx.log;
    const reloadConfig = loaded.file ? () => ctx.loadConfig(flags).config : undefined;
    return new Master({ config: loaded.config, root: loaded.root, configFile: loaded.file, log, env: ctx.env, reloadConfig }).run();
  },
};
