/**
 * `npm run release` → dist/release/:
 *   hr-<version>-<target>.tar.gz   for every target below, each holding hr, LICENSE and README.md
 *   SHA256SUMS                     `sha256sum -c SHA256SUMS` accepts it (install.sh checks against it)
 *   npm/*.tgz                      the npm channel: hr-reloader (a tiny launcher, npm/launcher.cjs) and
 *                                  one @hr-reloader/<target> package per target, selected by os/cpu/libc
 * Every binary comes from scripts/build.ts compile() (same flags as dist/hr); Bun fetches the other
 * targets' runtimes from the npm registry once and caches them, so a fresh clone builds offline after.
 * Archives are reproducible: sorted names, owner 0, mtime of the commit, gzip without a timestamp.
 *
 * npm tarballs are written like the archives (tar of package/…, gzip -n), not by `npm pack`: the same
 * reproducible path, and npm publish/install take any such tarball.
 *
 * Flags: --out DIR (default dist/release), --targets a,b (default all), --no-npm,
 *   --fast  gzip -1 instead of -6 (the test suite: same files, ~2.5x less CPU, ~7% larger archives),
 *   --xz    also measure each binary under xz -6 (slow, ~1 min a target on 2 cores, so only on
 *           request; nothing is shipped as .xz).
 */
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, chmodSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { buildInfo, compile } from "./build.ts";

const root = resolve(import.meta.dir, "..");

export interface Target {
  /** Asset and npm package suffix, e.g. "linux-arm64-musl". */
  name: string;
  /** bun build --target */
  bun: string;
  /** npm's os / cpu / libc fields */
  cpu: "x64" | "arm64";
  libc: "glibc" | "musl";
}

export const TARGETS: readonly Target[] = [
  { name: "linux-x64", bun: "bun-linux-x64-modern", cpu: "x64", libc: "glibc" },
  { name: "linux-x64-baseline", bun: "bun-linux-x64-baseline", cpu: "x64", libc: "glibc" },
  { name: "linux-arm64", bun: "bun-linux-arm64", cpu: "arm64", libc: "glibc" },
  { name: "linux-x64-musl", bun: "bun-linux-x64-musl", cpu: "x64", libc: "musl" },
  { name: "linux-arm64-musl", bun: "bun-linux-arm64-musl", cpu: "arm64", libc: "musl" },
];

/** npm names: the package users install, and the scope of the per-target packages. */
export const NPM_MAIN = "hr-reloader";
export const NPM_SCOPE = "@hr-reloader";

export const assetName = (version: string, target: string) => `hr-${version}-${target}.tar.gz`;

const MiB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;

function parseArgs(argv: string[]) {
  const opts = { out: join(root, "dist", "release"), targets: TARGETS.map((t) => t.name), npm: true, xz: false, level: 6 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--out") opts.out = resolve(argv[++i] ?? "");
    else if (arg === "--targets") opts.targets = (argv[++i] ?? "").split(",").filter(Boolean);
    else if (arg === "--no-npm") opts.npm = false;
    else if (arg === "--xz") opts.xz = true;
    else if (arg === "--fast") opts.level = 1;
    else throw new Error(`release: unknown argument ${arg} (--out DIR, --targets a,b, --no-npm, --fast, --xz)`);
  }
  const unknown = opts.targets.filter((t) => !TARGETS.some((x) => x.name === t));
  if (unknown.length) throw new Error(`release: unknown target ${unknown.join(", ")}; known: ${TARGETS.map((t) => t.name).join(", ")}`);
  return opts;
}

/** Runs a command to completion (async, so two archives compress on two cores); throws on failure. */
function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string>; stdout?: string } = {}): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", fail);
    child.on("close", (code) => (code === 0 ? done(out) : fail(new Error(`${cmd} ${args.join(" ")} failed (exit ${code}): ${err.trim()}`))));
  });
}

/** At most `limit` jobs at a time. */
async function pool<T>(items: readonly T[], limit: number, job: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, async () => {
    for (let item = queue.shift(); item !== undefined; item = queue.shift()) await job(item);
  }));
}

/** tar + gzip -n with fixed metadata: the same tree gives the same bytes. */
async function reproducibleTarGz(dir: string, files: string[], out: string, mtime: number, level: number): Promise<void> {
  const script = 'set -o pipefail 2>/dev/null || true; tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$1" --format=ustar -cf - -C "$2" $3 | gzip -"$5" -n > "$4"';
  await run("bash", ["-c", script, "sh", String(mtime), dir, files.join(" "), out, String(level)]);
}

function sha256(file: string): string {
  return new Bun.CryptoHasher("sha256").update(readFileSync(file)).digest("hex");
}

function commitTime(): number {
  const r = spawnSync("git", ["log", "-1", "--format=%ct"], { cwd: root, encoding: "utf8" });
  const t = Number(r.stdout?.trim());
  return r.status === 0 && Number.isFinite(t) && t > 0 ? t : 0;
}

export async function release(argv: string[]): Promise<void> {
  const opts = parseArgs(argv);
  const info = buildInfo();
  const rootPkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string; description: string; license: string; repository?: { url: string } };
  const mtime = commitTime();
  const targets = TARGETS.filter((t) => opts.targets.includes(t.name));
  const stage = join(opts.out, ".stage");
  rmSync(opts.out, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  const started = performance.now();

  // 1. Compile (sequential: each bun build already uses both cores).
  const rows: { target: Target; bytes: number; gz: number; xz?: number; ms: number }[] = [];
  for (const target of targets) {
    const dir = join(stage, target.name);
    mkdirSync(dir, { recursive: true });
    const { ms, bytes } = compile({ outfile: join(dir, "hr"), target: target.bun, info });
    copyFileSync(join(root, "LICENSE"), join(dir, "LICENSE"));
    copyFileSync(join(root, "README.md"), join(dir, "README.md"));
    rows.push({ target, bytes, gz: 0, ms });
    console.log(`compiled ${target.name} (${MiB(bytes)}) in ${ms} ms`);
  }

  const digest = (t: string) => (rows.some((r) => r.target.name === t) ? sha256(join(stage, t, "hr")) : t);
  if (digest("linux-x64") === digest("linux-x64-baseline")) {
    console.warn("warning: linux-x64 and linux-x64-baseline are byte-identical: the registry's @oven/bun-linux-x64-baseline runtime is the same file as the x64 one Bun used");
  }

  // 2. Archives, two at a time.
  await pool(rows, 2, async (row) => {
    const file = join(opts.out, assetName(info.version, row.target.name));
    await reproducibleTarGz(join(stage, row.target.name), ["LICENSE", "README.md", "hr"], file, mtime, opts.level);
    row.gz = statSync(file).size;
  });
  const assets = rows.map((r) => assetName(info.version, r.target.name));
  writeFileSync(join(opts.out, "SHA256SUMS"), assets.map((a) => `${sha256(join(opts.out, a))}  ${a}\n`).join(""));

  // 3. npm packages.
  if (opts.npm) {
    const npmOut = join(opts.out, "npm");
    mkdirSync(npmOut, { recursive: true });
    const common = {
      version: info.version,
      license: rootPkg.license,
      repository: rootPkg.repository,
      homepage: rootPkg.repository?.url.replace(/^git\+/, "").replace(/\.git$/, ""),
    };
    const packs: { dir: string; file: string }[] = [];
    for (const row of rows) {
      const dir = join(stage, "npm", row.target.name, "package");
      mkdirSync(join(dir, "bin"), { recursive: true });
      copyFileSync(join(stage, row.target.name, "hr"), join(dir, "bin", "hr"));
      chmodSync(join(dir, "bin", "hr"), 0o755);
      copyFileSync(join(root, "LICENSE"), join(dir, "LICENSE"));
      writeFileSync(join(dir, "README.md"), `# ${NPM_SCOPE}/${row.target.name}\n\nThe ${row.target.name} binary of hr, installed by \`${NPM_MAIN}\` (npm picks it by os/cpu/libc). Install \`${NPM_MAIN}\`, not this.\n`);
      writeJson(join(dir, "package.json"), {
        name: `${NPM_SCOPE}/${row.target.name}`,
        ...common,
        description: `The ${row.target.name} binary of hr (installed by ${NPM_MAIN}).`,
        os: ["linux"],
        cpu: [row.target.cpu],
        libc: [row.target.libc],
        files: ["bin/hr"],
        preferUnplugged: true,
      });
      packs.push({ dir, file: `${NPM_SCOPE.slice(1)}-${row.target.name}-${info.version}.tgz` });
    }
    const main = join(stage, "npm", "main", "package");
    mkdirSync(join(main, "bin"), { recursive: true });
    copyFileSync(join(root, "npm", "launcher.cjs"), join(main, "bin", "hr.cjs"));
    chmodSync(join(main, "bin", "hr.cjs"), 0o755);
    copyFileSync(join(root, "LICENSE"), join(main, "LICENSE"));
    copyFileSync(join(root, "README.md"), join(main, "README.md"));
    writeJson(join(main, "package.json"), {
      name: NPM_MAIN,
      ...common,
      description: rootPkg.description,
      bin: { hr: "bin/hr.cjs" },
      files: ["bin/hr.cjs"],
      os: ["linux"],
      cpu: [...new Set(TARGETS.map((t) => t.cpu))],
      engines: { node: ">=18" },
      optionalDependencies: Object.fromEntries(TARGETS.map((t) => [`${NPM_SCOPE}/${t.name}`, info.version])),
    });
    packs.push({ dir: main, file: `${NPM_MAIN}-${info.version}.tgz` });
    // What `npm pack` makes: package/… in a gzipped tar. Two at a time.
    await pool(packs, 2, async ({ dir, file }) => {
      await reproducibleTarGz(join(dir, ".."), ["package"], join(npmOut, file), mtime, opts.level);
    });
    console.log(`npm: ${readdirSync(npmOut).sort().join(", ")}`);
  }

  if (opts.xz) {
    for (const row of rows) {
      const out = await run("sh", ["-c", 'xz -T2 -6 -c "$1" | wc -c', "sh", join(stage, row.target.name, "hr")]);
      row.xz = Number(out.trim());
    }
  }
  rmSync(stage, { recursive: true, force: true });

  console.log(`\nhr ${info.version} (${info.commit}) → ${opts.out} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log(["target".padEnd(20), "binary".padStart(10), "tar.gz".padStart(10), ...(opts.xz ? ["xz -6".padStart(10)] : [])].join(" "));
  for (const r of rows) {
    console.log([r.target.name.padEnd(20), MiB(r.bytes).padStart(10), MiB(r.gz).padStart(10), ...(opts.xz ? [MiB(r.xz ?? 0).padStart(10)] : [])].join(" "));
  }
  if (!opts.xz) console.log("(xz sizes: npm run release -- --xz; the assets are tar.gz)");
}

function writeJson(file: string, value: unknown) {
  writeFileSync(file, `${JSON.stringify(value, null, 2)}\n`);
}

if (import.meta.main) {
  try {
    await release(process.argv.slice(2));
  } catch (error) {
    console.error((error as Error).message);
    process.exit(1);
  }
}
