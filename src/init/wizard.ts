/**
 * `hr init`: the interactive wizard (@clack/prompts) and the --yes path, both
 * ending in an atomic write of a validated, commented hr.toml.
 */
import * as p from "@clack/prompts";
import { existsSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Command } from "../config/schema.ts";
import {
  defaultAnswers,
  detectProject,
  requiredChanges,
  simpleCommand,
  toConfigInput,
  type Answers,
  type Detection,
} from "./detect.ts";
import type { DevStrategyName as DevStrategy, ReadyType, ServeStrategyName as ServeStrategy } from "../config/schema.ts";
import { renderConfig } from "./render.ts";
import { describe } from "../process/command.ts";
import { parseListenAddress } from "../sockets/address.ts";

export const CANCELLED = "Cancelled; nothing written.";

/** Writes via a temp file in the same directory and rename(2): readers never see half a file. */
export function writeAtomic(file: string, text: string): void {
  const tmp = join(dirname(file), `.${basename(file)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644 });
    renameSync(tmp, file);
  } catch (error) {
    try {
      rmSync(tmp, { force: true });
    } catch {
      /* a read-only directory: nothing was written */
    }
    // Name the file the user asked for, not the temp name.
    throw Object.assign(error as Error, { path: file, syscall: "write" });
  }
}

/** A command as the user would type it; simpleCommand() reads it back. */
export function showCommand(cmd: Command | undefined): string {
  return cmd === undefined ? "" : describe(cmd);
}

export const splitList = (text: string) => text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean);

/** undefined when `text` is a listen address hr can bind (or is empty: no socket), else the problem. */
export function checkAddress(text: string | undefined): string | undefined {
  const value = (text ?? "").trim();
  if (value === "") return undefined;
  try {
    parseListenAddress(value);
    return undefined;
  } catch (error) {
    return (error as Error).message.replace(/^address: /, "");
  }
}

export function checkWorkers(text: string | undefined): string | undefined {
  const value = (text ?? "").trim();
  return /^[1-9]\d{0,3}$/.test(value) && Number(value) <= 1024 ? undefined : "expected a whole number from 1 to 1024";
}

export function checkPattern(text: string | undefined): string | undefined {
  if (!(text ?? "").trim()) return "a pattern is required";
  try {
    new RegExp(text ?? "");
    return undefined;
  } catch (error) {
    return `not a regular expression: ${(error as Error).message}`;
  }
}

export interface InitOptions {
  dir: string;
  /** Absolute path of the file to write. */
  file: string;
  force: boolean;
}

export interface InitIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** Why an app needs no code change under these answers (capture, or it adopts fd 3 already). */
export function noChangeWhy(a: Pick<Answers, "capture" | "listen">): string {
  const port = a.listen?.match(/:(\d+)$/)?.[1];
  return a.capture ? `when it binds port ${port ?? "(the [[listen]] port)"}, hr hands it its own socket (run.capture)` : "it already takes the socket hr passes at fd 3";
}

/** The lines hr init prints after writing: what runs, how, and what the app must change. */
export function summaryLines(file: string, answers: Answers, detection: Detection): string[] {
  const out = [`hr: wrote ${file}`];
  out.push(`    build:  ${showCommand(answers.build) || "(none)"}`);
  out.push(`    run:    ${showCommand(answers.run)}`);
  if (answers.listen) {
    const capture = answers.capture ? " + bind capture" : "";
    out.push(`    listen: ${answers.listen}; hr dev: ${answers.devStrategy}${capture}; hr serve: ${answers.serveStrategy}${capture}, ready "${answers.readyType}"`);
  } else out.push("    listen: (none); hr dev restarts the app without holding a socket");
  const changes = requiredChanges(answers, detection);
  if (changes.length) {
    out.push("The app must change for this config:");
    for (const c of changes) out.push(`  - ${c}`);
  } else if (answers.listen) {
    out.push(`The app needs no code change: ${noChangeWhy(answers)}.`);
  }
  if (answers.capture) for (const w of detection.warnings) out.push(`warning: ${w}`);
  for (const cmd of detection.missing) out.push(`warning: \`${cmd}\` is not on PATH; install it (or edit the commands) before \`hr dev\``);
  return out;
}

/** `hr init --yes`: detected defaults, no questions. */
export function initNonInteractive(opts: InitOptions, io: InitIO): number {
  const shown = basename(opts.file);
  if (existsSync(opts.file) && !opts.force) {
    io.err(`hr: ${shown} already exists; nothing written. Pass --force to overwrite it.`);
    return 1;
  }
  const detection = detectProject(opts.dir);
  const answers = defaultAnswers(detection);
  let text: string;
  try {
    text = renderConfig(toConfigInput(answers), { ...detection, changes: requiredChanges(answers, detection) }, { file: shown });
  } catch (error) {
    io.err(`hr: ${(error as Error).message}`);
    return 1;
  }
  writeAtomic(opts.file, text);
  io.err(`hr: detected ${detection.label}:`);
  for (const reason of detection.reasons) io.err(`  - ${reason}`);
  for (const line of summaryLines(opts.file, answers, detection)) io.err(line);
  io.err("Next: `hr dev` (watch, rebuild, restart) or `hr serve` (zero-downtime); edit hr.toml first if a command is not right.");
  return 0;
}

class Cancelled extends Error {}

/** A prompt's answer, or throw Cancelled on Ctrl-C / Escape (clack returns its cancel symbol). */
function ask<T>(value: T): Exclude<T, symbol> {
  if (p.isCancel(value)) throw new Cancelled();
  return value as Exclude<T, symbol>;
}

const DEV_OPTIONS: { value: DevStrategy; label: string; hint: string }[] = [
  { value: "fd", label: "fd", hint: "hr holds the socket across restarts (with capture, or the app adopts fd 3)" },
  { value: "proxy", label: "proxy", hint: "hr forwards to the app on $PORT" },
  { value: "none", label: "none", hint: "no socket handling; just restart" },
];

const SERVE_OPTIONS: { value: ServeStrategy; label: string; hint: string }[] = [
  { value: "proxy", label: "proxy", hint: "hr forwards to each worker's private socket; stock shutdowns lose nothing" },
  { value: "fd", label: "fd", hint: "workers share hr's socket: zero overhead; the app must drain on SIGTERM" },
  { value: "reuseport", label: "reuseport", hint: "workers bind the port with SO_REUSEPORT themselves" },
];

const READY_OPTIONS: { value: ReadyType; label: string; hint: string }[] = [
  { value: "listen", label: "listen", hint: "the app calls listen() (bind capture; no code)" },
  { value: "notify", label: "notify", hint: "sd_notify READY=1" },
  { value: "ipc", label: "ipc", hint: "process.send('ready')" },
  { value: "http", label: "http", hint: "GET /health answers" },
  { value: "tcp", label: "tcp", hint: "the port accepts" },
  { value: "log", label: "log", hint: "a line matches a pattern" },
  { value: "delay", label: "delay", hint: "wait a fixed time" },
];

/** The interactive wizard. Needs a TTY on stdin. */
export async function initInteractive(opts: InitOptions): Promise<number> {
  const shown = basename(opts.file);
  try {
    p.intro("hr init");
    const spin = p.spinner();
    spin.start("Detecting project");
    const detection: Detection = detectProject(opts.dir);
    spin.stop(`Detected ${detection.label}`);
    p.note(detection.reasons.map((r) => `• ${r}`).join("\n"), `${detection.label} project in ${opts.dir}`);
    for (const w of detection.warnings) p.log.warn(w);
    for (const cmd of detection.missing) p.log.warn(`\`${cmd}\` is not on PATH; install it (or edit the commands) before \`hr dev\``);

    if (existsSync(opts.file) && !opts.force) {
      const overwrite = ask(await p.confirm({ message: `${shown} already exists. Overwrite it?`, initialValue: false }));
      if (!overwrite) {
        p.cancel(`Kept the existing ${shown}; nothing written.`);
        return 1;
      }
    }

    const d = defaultAnswers(detection);
    const build = ask(
      await p.text({ message: "Build command (empty: no build step)", initialValue: showCommand(d.build), placeholder: "none" }),
    );
    const run = ask(
      await p.text({
        message: "Run command",
        initialValue: showCommand(d.run),
        validate: (v) => ((v ?? "").trim() ? undefined : "the run command is required"),
      }),
    );
    const exts = ask(
      await p.text({ message: "File extensions that trigger a rebuild (comma-separated; empty: all)", initialValue: d.includeExt.join(", "), placeholder: "all" }),
    );
    const excludes = ask(
      await p.text({ message: "Paths to ignore (globs, comma-separated)", initialValue: d.exclude.join(", "), placeholder: "none" }),
    );
    let envFiles: string[] = [];
    if (d.envFiles.length) {
      const load = ask(await p.confirm({ message: `Give the app the variables in ${d.envFiles.join(", ")} (run.env_file)?`, initialValue: true }));
      envFiles = load ? d.envFiles : [];
    }
    const listen = ask(
      await p.text({
        message: "Listen address (host:port or unix:path; empty: no socket)",
        initialValue: d.listen ?? "",
        placeholder: "no socket",
        validate: checkAddress,
      }),
    ).trim();
    let devStrategy: DevStrategy = "none";
    let capture = false;
    const port = listen.match(/:(\d+)$/)?.[1];
    if (listen) {
      capture = ask(
        await p.confirm({
          message: `Bind capture: when the app binds port ${port ?? "(the listen port)"} itself, hand it hr's socket instead (no code change)?`,
          initialValue: d.capture || !detection.adopts,
        }),
      );
      devStrategy = ask(
        await p.select({
          message: "hr dev strategy",
          options: DEV_OPTIONS,
          initialValue: d.devStrategy === "none" ? "fd" : d.devStrategy,
        }),
      );
    } else {
      p.log.info('No socket: hr dev strategy "none".');
    }
    // Under reuseport the workers bind the port themselves: nothing for capture to hand over.
    const serveOptions = SERVE_OPTIONS.filter((o) => !capture || o.value !== "reuseport");
    const serveInitial = serveOptions.some((o) => o.value === d.serveStrategy) ? d.serveStrategy : "proxy";
    const serveStrategy = ask(await p.select({ message: "hr serve strategy", options: serveOptions, initialValue: serveInitial }));
    const workers = ask(await p.text({ message: "hr serve: workers per generation", initialValue: String(d.workers), validate: checkWorkers }));
    const readyOptions = READY_OPTIONS.filter((o) => capture || o.value !== "listen");
    const readyInitial = readyOptions.some((o) => o.value === d.readyType) ? d.readyType : serveStrategy === "proxy" ? "tcp" : "delay";
    const readyType = ask(await p.select({ message: "hr serve: how a new worker signals ready", options: readyOptions, initialValue: readyInitial }));
    let readyPattern: string | undefined;
    if (readyType === "log") {
      readyPattern = ask(
        await p.text({
          message: "Ready when a line matches (regex)",
          initialValue: d.readyPattern ?? "listening",
          validate: checkPattern,
        }),
      );
    }

    const answers: Answers = {
      ...d,
      build: build.trim() ? simpleCommand(build) : undefined,
      run: simpleCommand(run),
      includeExt: splitList(exts).map((e) => e.replace(/^\*?\./, "")),
      exclude: splitList(excludes),
      listen: listen || null,
      capture,
      envFiles,
      devStrategy,
      serveStrategy,
      workers: Number(workers.trim()),
      readyType,
      readyPattern,
    };
    const changes = requiredChanges(answers, detection);
    p.note(
      changes.length
        ? changes.map((c) => `• ${c}`).join("\n")
        : answers.listen
          ? `Nothing: ${noChangeWhy(answers)}.`
          : "Nothing: hr only restarts it.",
      "What the app must change",
    );
    const input = toConfigInput(answers);
    let text: string;
    try {
      text = renderConfig(input, { ...detection, changes }, { file: shown });
    } catch (error) {
      p.log.error((error as Error).message);
      p.cancel("Nothing written.");
      return 1;
    }
    const kept = text.split("\n").filter((line) => line.trim() && !line.trimStart().startsWith("#"));
    // Drop headers of tables left at their defaults (e.g. [log]).
    const summary = kept.filter((line, i) => !(line.startsWith("[") && (i + 1 === kept.length || kept[i + 1]!.startsWith("[")))).join("\n");
    p.note(summary, `${shown} (comments omitted here)`);
    const write = ask(await p.confirm({ message: `Write ${shown}?`, initialValue: true }));
    if (!write) {
      p.cancel("Nothing written.");
      return 1;
    }
    writeAtomic(opts.file, text);
    p.outro(`Wrote ${opts.file}. Next: run \`hr dev\``);
    return 0;
  } catch (error) {
    if (error instanceof Cancelled) {
      p.cancel(CANCELLED);
      return 130;
    }
    throw error;
  }
}
