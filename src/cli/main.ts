#!/usr/bin/env bun
/**
 * hr: the entry point. `hr --version` answers before anything else is loaded;
 * every other call goes through dispatch.ts (parseArgs, then one command module).
 * No top-level await: the binary is compiled to bytecode (scripts/build.ts), which needs CommonJS.
 */
import { VERSION_LINE, isVersionRequest } from "./version.ts";

const argv = process.argv.slice(2);
if (isVersionRequest(argv)) {
  process.stdout.write(`${VERSION_LINE}\n`);
  process.exit(0);
}
if (argv[0] === "__capture") {
  // hr's internal launcher for bind capture (capture/launcher.ts): loads nothing else.
  void import("../capture/launcher.ts").then(({ runLauncher }) => process.exit(runLauncher(argv.slice(1))));
} else {
  void import("./dispatch.ts").then(async ({ main, unexpected }) => {
    // Errors thrown outside a command's own handling (e.g. in an event handler) end as one line, not a stack trace.
    process.on("uncaughtException", (error) => process.exit(unexpected(error)));
    process.on("unhandledRejection", (error) => process.exit(unexpected(error)));
    process.exit(await main(argv).catch((error) => unexpected(error)));
  });
}
