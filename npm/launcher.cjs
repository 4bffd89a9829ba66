#!/usr/bin/env node
// hr's npm launcher: runs the native hr binary from the per-platform package npm installed next to
// this one (selected by its os/cpu/libc fields), passing arguments, stdio, signals and the exit
// status through. Not covered: hr under a service manager (systemd Type=notify, `hr upgrade`)
// should run the binary itself — `hr --version` works either way; the path is printed by
// `node -p "require.resolve('<package>/bin/hr')"`.
"use strict";
const { spawn } = require("node:child_process");
const { readFileSync } = require("node:fs");

const SCOPE = "@hr-reloader";

function target() {
  if (process.platform !== "linux") return { error: `hr is Linux-only today (this is ${process.platform}).` };
  const arch = { x64: "x64", arm64: "arm64" }[process.arch];
  if (!arch) return { error: `hr has no build for ${process.arch} (linux-x64 and linux-arm64 only).` };
  const report = typeof process.report?.getReport === "function" ? process.report.getReport() : {};
  const musl = !(report.header && report.header.glibcVersionRuntime);
  if (musl) return { name: `linux-${arch}-musl` };
  if (arch === "x64" && !hasAvx2()) return { name: "linux-x64-baseline" };
  return { name: `linux-${arch}` };
}

function hasAvx2() {
  try {
    return /\bavx2\b/.test(readFileSync("/proc/cpuinfo", "utf8"));
  } catch {
    return true;
  }
}

const t = target();
if (t.error) {
  process.stderr.write(`hr: ${t.error}\n`);
  process.exit(1);
}
const pkg = `${SCOPE}/${t.name}`;
let binary;
try {
  binary = require.resolve(`${pkg}/bin/hr`);
} catch {
  process.stderr.write(
    `hr: the package ${pkg} is not installed. npm installs it as an optional dependency of hr-reloader; ` +
      `it is missing when installing with --no-optional / --omit=optional or across platforms (a copied node_modules). ` +
      `Fix: npm install ${pkg}, or download the binary: https://github.com/hr-reloader/hr/releases\n`,
  );
  process.exit(1);
}

const child = spawn(binary, process.argv.slice(2), { stdio: "inherit" });
// Signals sent to this process go on to hr. Ctrl-C and Ctrl-\ reach hr from the terminal already
// (same process group): forwarding them too would deliver them twice.
const forwarded = ["SIGHUP", "SIGTERM", "SIGUSR1", "SIGUSR2"];
for (const signal of forwarded) process.on(signal, () => child.kill(signal));
for (const signal of ["SIGINT", "SIGQUIT"]) process.on(signal, () => {});
child.on("error", (error) => {
  process.stderr.write(`hr: could not run ${binary}: ${error.message}\n`);
  process.exit(1);
});
child.on("exit", (code, signal) => {
  if (signal) {
    for (const s of [...forwarded, "SIGINT", "SIGQUIT"]) process.removeAllListeners(s);
    process.kill(process.pid, signal);
    return;
  }
  process.exit(code ?? 1);
});
