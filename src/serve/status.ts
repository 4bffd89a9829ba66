/** Human-readable `hr status` (also printed to the log on SIGUSR1). */
import type { ReloadRecord, ServeStatus } from "../control/protocol.ts";
import { CRASH_LOOP_COUNT } from "../process/backoff.ts";
import { formatMs } from "../config/duration.ts";
import { formatBytes } from "../log/output.ts";

function reloadLine(r: ReloadRecord): string {
  const when = r.startedAt.slice(11, 19);
  const gen = r.generation !== undefined ? `gen${r.generation}` : "no generation";
  const dur = r.durationMs !== undefined ? ` in ${formatMs(r.durationMs)}` : "";
  const what = r.result === "ok" ? `ok${dur}` : r.result === "failed" ? `FAILED${dur}: ${r.error ?? "?"}` : r.result;
  return `  #${r.id} ${when} ${gen} ${what} (${r.trigger})`;
}

export function formatStatus(s: ServeStatus): string {
  const out: string[] = [];
  out.push(`hr serve pid ${s.pid}, up ${formatMs(s.uptimeMs)}, ${s.state}${s.reloadQueued ? " (a reload is queued)" : ""}`);
  out.push(`project: ${s.project}`);
  if (s.upgradedFrom) out.push(`upgraded from master pid ${s.upgradedFrom}`);
  if (s.upgrade) {
    const u = s.upgrade;
    const result = u.result === "failed" ? `FAILED: ${u.error ?? "?"}` : u.result;
    out.push(`last upgrade: ${u.startedAt.slice(11, 19)} ${result}${u.durationMs !== undefined ? ` in ${formatMs(u.durationMs)}` : ""}${u.newPid ? ` (new master pid ${u.newPid})` : ""} (${u.trigger})`);
  }
  if (s.sockets) out.push(`sockets: ${s.sockets}`);
  out.push(`live generation: ${s.generation ?? "none"}`);
  for (const g of s.generations) {
    const extra = g.error ? `: ${g.error}` : "";
    out.push(`gen${g.generation} ${g.state}${g.state === "ready" ? `, up ${formatMs(g.uptimeMs)}` : ""}${g.startMs !== undefined ? `, started in ${formatMs(g.startMs)}` : ""}${extra}`);
    for (const w of g.workers) {
      const pid = w.pid !== null ? `pid ${w.pid}` : "no process";
      const up = w.uptimeMs !== null ? `, up ${formatMs(w.uptimeMs)}` : "";
      const restarts = w.restarts ? `, ${w.restarts} restart${w.restarts === 1 ? "" : "s"}` : "";
      const last = w.lastExit && w.state !== "ready" ? `, last: ${w.lastExit}` : "";
      const loop = w.recentCrashes >= CRASH_LOOP_COUNT ? `, CRASH LOOP (${w.recentCrashes} crashes in the last minute)` : "";
      const warning = w.warning ? `\n     WARNING: ${w.warning}` : "";
      out.push(`  w${w.worker} ${pid} ${w.state}${up}${restarts}${last}${loop}${warning}`);
    }
  }
  const o = s.output;
  if (o && (o.droppedBytes || o.readerGone || o.queuedBytes)) {
    out.push(`output: ${formatBytes(o.droppedBytes)} in ${o.droppedLines} lines dropped${o.readerGone ? " (no reader now)" : o.queuedBytes ? `, ${formatBytes(o.queuedBytes)} waiting for a slow reader` : ""}`);
  }
  if (s.reloads.length) {
    out.push("last reloads:");
    for (const r of s.reloads.slice(-10)) out.push(reloadLine(r));
  }
  return out.join("\n");
}
