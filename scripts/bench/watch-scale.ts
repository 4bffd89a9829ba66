#!/usr/bin/env bun
/**
 * Watch scale: `hr dev` vs nodemon on generated trees of 10k and 100k source files,
 * each next to a 50k-file node_modules that must cost nothing.
 *
 *   bun scripts/bench/watch-scale.ts [--sizes 10000,100000] [--idle 30] [--changes 10]
 *
 * Per tool and tree: setup time (spawn → "watching N dirs" / "watching N files"),
 * RSS after setup (/proc/<pid>/status VmRSS, the watcher process only), CPU used while
 * idle for --idle seconds (/proc/<pid>/stat utime+stime), and change→event latency
 * (write a file → hr's "changed:" debug line / nodemon's "restarting due to changes",
 * median of --changes writes; hr's includes its 10 ms debounce, nodemon has none).
 * hr runs `dist/hr -v dev -- sleep 1000`, nodemon `nodemon -V -e js --exec "sleep 1000"`.
 * Trees live under a temp dir and are removed afterwards.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { npmPeerBin } from "./lib.ts";

const ROOT = join(import.meta.dir, "..", "..");
const HR = join(ROOT, "dist", "hr");
const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10000,100000" },
    idle: { type: "string", default: "30" },
    changes: { type: "string", default: "10" },
    out: { type: "string", default: join(ROOT, "bench/results/watch-scale.json") },
    docs: { type: "string", default: join(ROOT, "docs/benchmarks.md") },
  },
});
const SIZES = values.sizes!.split(",").map(Number);
const IDLE_S = Number(values.idle);
const CHANGES = Number(values.changes);
const NODE_MODULES_FILES = 50_000;
const PER_DIR = 50;
const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout.trim() || 100);

const nodemonBin = () => npmPeerBin("nodemon");

/** `files` .js files in dirs of 50 (two levels: src/dNNN/eNN/), plus node_modules/pkgNNNN/*.js. */
function generate(files: number): string {
  const dir = mkdtempSync(join(tmpdir(), `hr-watch-scale-${files}-`));
  const write = (base: string, n: number) => {
    for (let i = 0; i < n; i++) {
      const d = Math.floor(i / PER_DIR);
      const sub = join(dir, base, `d${Math.floor(d / 50)}`, `e${d % 50}`);
      if (i % PER_DIR === 0) mkdirSync(sub, { recursive: true });
      writeFileSync(join(sub, `f${i}.js`), `export const n = ${i};\n`);
    }
  };
  write("src", files);
  write("node_modules", NODE_MODULES_FILES);
  return dir;
}

function rssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) : NaN;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Tool {
  name: string;
  argv: string[];
  ready: RegExp;
  event: RegExp;
}

async function measure(tool: Tool, dir: string, files: number) {
  const proc = Bun.spawn(tool.argv, {
    cwd: dir,
    env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
    detached: true,
  });
  let out = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    const d = new TextDecoder();
    for await (const c of s) out += d.decode(c, { stream: true });
  };
  void pump(proc.stdout);
  void pump(proc.stderr);
  const waitFor = async (pred: () => boolean, ms: number, what: string) => {
    const until = performance.now() + ms;
    while (!pred()) {
      if (performance.now() > until) throw new Error(`${tool.name}: no ${what} within ${ms} ms; output:\n${out.slice(-2000)}`);
      if (proc.exitCode !== null) throw new Error(`${tool.name} exited (${proc.exitCode}); output:\n${out.slice(-2000)}`);
      await Bun.sleep(1);
    }
  };
  try {
    const t0 = performance.now();
    await waitFor(() => tool.ready.test(out), 600_000, "ready line");
    const setupMs = performance.now() - t0;
    const watched = tool.ready.exec(out)![1]!;
    await Bun.sleep(1000);
    const rss = rssKiB(proc.pid);
    const c0 = cpuTicks(proc.pid);
    await Bun.sleep(IDLE_S * 1000);
    const idleCpuPct = ((cpuTicks(proc.pid) - c0) / CLK_TCK / IDLE_S) * 100;
    const lat: number[] = [];
    for (let i = 0; i < CHANGES; i++) {
      const n = Math.floor(((i + 0.5) / CHANGES) * files);
      const d = Math.floor(n / PER_DIR);
      const file = join(dir, "src", `d${Math.floor(d / 50)}`, `e${d % 50}`, `f${n}.js`);
      const before = out.split("\n").filter((l) => tool.event.test(l)).length;
      const t = performance.now();
      writeFileSync(file, `export const n = ${n}; // ${i}\n`);
      await waitFor(() => out.split("\n").filter((l) => tool.event.test(l)).length > before, 20_000, "change event");
      lat.push(performance.now() - t);
      await Bun.sleep(1500); // nodemon restarts its child: let it settle
    }
    return { tool: tool.name, files, nodeModulesFiles: NODE_MODULES_FILES, watched, setupMs: Math.round(setupMs), rssMiB: Number((rss / 1024).toFixed(1)), idleCpuPct: Number(idleCpuPct.toFixed(2)), changeToEventMs: Math.round(median(lat)), changeToEventMaxMs: Math.round(Math.max(...lat)) };
  } finally {
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {}
    await proc.exited;
  }
}

if (!existsSync(HR)) spawnSync(process.execPath, [join(ROOT, "scripts/build.ts")], { stdio: "inherit" });
const nodemon = nodemonBin();
const tools: Tool[] = [
  { name: "hr dev", argv: [HR, "-v", "dev", "--", "sleep", "1000"], ready: /watching (\d+) dirs?/, event: /^hr debug changed: / },
  { name: "nodemon", argv: [nodemon, "-V", "-e", "js", "--exec", "sleep 1000"], ready: /watching (\d+) files?/, event: /restarting due to changes/ },
];
const results: (Awaited<ReturnType<typeof measure>> | { tool: string; files: number; error: string })[] = [];
for (const files of SIZES) {
  process.stderr.write(`generating ${files} files + ${NODE_MODULES_FILES} in node_modules … `);
  const dir = generate(files);
  process.stderr.write("done\n");
  try {
    for (const tool of tools) {
      process.stderr.write(`${tool.name} on ${files} files … `);
      try {
        const r = await measure(tool, dir, files);
        results.push(r);
        process.stderr.write(`${JSON.stringify(r)}\n`);
      } catch (e) {
        process.stderr.write(`failed: ${(e as Error).message.split("\n")[0]}\n`);
        results.push({ tool: tool.name, files, error: (e as Error).message.split("\n")[0]! });
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const versions = {
  node: spawnSync("node", ["--version"], { encoding: "utf8" }).stdout.trim(),
  nodemon: spawnSync(nodemon, ["--version"], { encoding: "utf8" }).stdout.trim(),
  hr: spawnSync(HR, ["--version"], { encoding: "utf8" }).stdout.trim(),
};
const meta = {
  date: new Date().toISOString(),
  machine: `${spawnSync("nproc", { encoding: "utf8" }).stdout.trim()} cores, ${spawnSync("uname", ["-sr"], { encoding: "utf8" }).stdout.trim()}`,
  idleSeconds: IDLE_S,
  changes: CHANGES,
  versions,
};
mkdirSync(join(values.out!, ".."), { recursive: true });
writeFileSync(values.out!, `${JSON.stringify({ ...meta, results }, null, 2)}\n`);

const fmt = (n: number) => n.toLocaleString("en-US");
const rows = results.map((r) =>
  "error" in r
    ? `| ${fmt(r.files)} | ${r.tool} | failed: ${r.error} | | | | |`
    : `| ${fmt(r.files)} | ${r.tool} | ${r.tool === "hr dev" ? `${fmt(Number(r.watched))} dirs` : `${fmt(Number(r.watched))} files`} | ${fmt(r.setupMs)} | ${r.rssMiB} | ${r.idleCpuPct} | ${r.changeToEventMs} (max ${r.changeToEventMaxMs}) |`,
);
const section = `<!-- dev:watch-scale:start (generated by scripts/bench/watch-scale.ts) -->
## hr dev: watching large trees

Generated trees of *N* \`.js\` source files (50 per directory) next to a ${fmt(NODE_MODULES_FILES)}-file \`node_modules\`,
${meta.machine}, ${meta.date.slice(0, 10)}; node ${versions.node}, nodemon ${versions.nodemon}, ${versions.hr}.
hr: \`hr -v dev -- sleep 1000\`; nodemon: \`nodemon -V -e js --exec "sleep 1000"\` (both ignore node_modules by default).
*Setup*: spawn → the "watching …" line. *RSS*: the watcher process after setup (VmRSS). *Idle CPU*: utime+stime over
${IDLE_S} s with no changes. *Change → event*: write one file → hr's \`changed:\` line (includes the 10 ms debounce) /
nodemon's "restarting due to changes", median of ${CHANGES}. Raw numbers:
[bench/results/watch-scale.json](../bench/results/watch-scale.json). Reproduce: \`bun scripts/bench/watch-scale.ts\`.

| source files | tool | watching | setup ms | RSS MiB | idle CPU % | change → event ms |
|---|---|---|---|---|---|---|
${rows.join("\n")}
<!-- dev:watch-scale:end -->`;

const docs = values.docs!;
let text = existsSync(docs) ? readFileSync(docs, "utf8") : "# Benchmarks\n";
const re = /<!-- dev:watch-scale:start[\s\S]*?<!-- dev:watch-scale:end -->/;
text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}\n`;
writeFileSync(docs, text);
console.log(section);
