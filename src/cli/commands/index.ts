import type { CommandSpec } from "../context.ts";
import { check } from "./check.ts";
import { dev } from "./dev.ts";
import { init } from "./init.ts";
import { reload } from "./reload.ts";
import { schema } from "./schema.ts";
import { serve } from "./serve.ts";
import { shim } from "./shim.ts";
import { status } from "./status.ts";
import { upgrade } from "./upgrade.ts";

export const COMMANDS: CommandSpec[] = [init, dev, serve, reload, upgrade, status, check, schema, shim];

export function findCommand(name: string): CommandSpec | undefined {
  return COMMANDS.find((c) => c.name === name);
}
