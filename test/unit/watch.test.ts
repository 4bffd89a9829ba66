import { afterEach, describe, expect, spyOn, test } from "bun:test";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { noEventFilesystem, watch, type ChangeBatch, type WatchOptions, type Watcher } from "../../src/watch/watcher.ts";
import { watchLimitError, WatchLimitError } from "../../src/watch/limits.ts";
import { fsTypeFromMountinfo } from "../../src/watch/mounts.ts";

const QUIET = 300;
const TIMEOUT = 5000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let dirs: string[] = [];
let watchers: Watcher[] = [];

afterEach(() => {
  for (const w of watchers) {
    try {
      w.close();
    } catch {}
  }
  watchers = [];
  for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  dirs = [];
});

function tmp(): string {
  const d = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "hr-watch-")));
  dirs.push(d);
  return d;
}

function write(root: string, rel: string, content = "x"): void {
  const p = path.join(root, rel);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.writeFileSync(p, content);
}

/** Count real inotify watches held by this process (Linux; null elsewhere). */
function inotifyWatches(): number | null {
  try {
    let n = 0;
    for (const fd of fs.readdirSync("/proc/self/fd")) {
      let link = "";
      try {
        link = fs.readlinkSync(`/proc/self/fd/${fd}`);
      } catch {
        continue;
      }
      if (!link.includes("inotify")) continue;
      n += fs
        .readFileSync(`/proc/self/fdinfo/${fd}`, "utf8")
        .split("\n")
        .filter((l) => l.startsWith("inotify wd:")).length;
    }
    return n;
  } catch {
    return null;
  }
}

class Collector {
  batches: ChangeBatch[] = [];
  on = (b: ChangeBatch) => {
    this.batches.push(b);
  };
  get all(): string[] {
    return this.batches.flatMap((b) => b.paths);
  }
  async waitFor(pred: (c: Collector) => boolean, timeout = TIMEOUT): Promise<void> {
    const end = Date.now() + timeout;
    while (!pred(this)) {
      if (Date.now() > end) throw new Error(`timed out; batches: ${JSON.stringify(this.batches)}`);
      await sleep(10);
    }
  }
  /** Wait for at least one batch, then a quiet period; return the batches. */
  async settle(timeout = TIMEOUT): Promise<ChangeBatch[]> {
    await this.waitFor((c) => c.batches.length > 0, timeout);
    await sleep(QUIET);
    return this.batches;
  }
  reset(): void {
    this.batches = [];
  }
}

async function start(root: string, extra: Partial<WatchOptions> = {}): Promise<{ w: Watcher; c: Collector }> {
  const c = new Collector();
  const w = await watch(
    { root, paths: ["."], includeExt: [], include: [], exclude: [], gitignore: true, debounceMs: 50, ...extra },
    c.on,
  );
  watchers.push(w);
  await sleep(30); // let the kernel watches settle
  return { w, c };
}

describe("native watcher", () => {
  test("new file detected", async () => {
    const root = tmp();
    write(root, "main.go");
    const { w, c } = await start(root);
    expect(w.mode).toBe("native");
    write(root, "new.go");
    const b = await c.settle();
    expect(b).toEqual([{ paths: ["new.go"] }]);
  });

  test("modify and delete reported", async () => {
    const root = tmp();
    write(root, "a.go");
    write(root, "b.go");
    const { c } = await start(root);
    write(root, "a.go", "changed");
    fs.rmSync(path.join(root, "b.go"));
    expect(await c.settle()).toEqual([{ paths: ["a.go", "b.go"] }]);
  });

  test("new subdirectory and files in it (created before its watch lands)", async () => {
    const root = tmp();
    const { w, c } = await start(root);
    const before = w.watchedDirs;
    // mkdir -p + writes in one synchronous burst: the files exist before any
    // watch on the new dirs can be registered.
    write(root, "pkg/deep/er/x.go");
    write(root, "pkg/y.go");
    expect(await c.settle()).toEqual([{ paths: ["pkg/deep/er/x.go", "pkg/y.go"] }]);
    expect(w.watchedDirs).toBe(before + 3);
    // and the new dirs are really watched
    c.reset();
    write(root, "pkg/deep/er/z.go");
    expect(await c.settle()).toEqual([{ paths: ["pkg/deep/er/z.go"] }]);
  });

  test("deleted dir handled, then recreated and watched again", async () => {
    const root = tmp();
    write(root, "sub/a.go");
    write(root, "sub/inner/b.go");
    const { w, c } = await start(root);
    expect(w.watchedDirs).toBe(3);
    fs.rmSync(path.join(root, "sub"), { recursive: true });
    expect(await c.settle()).toEqual([{ paths: ["sub/a.go", "sub/inner/b.go"] }]);
    expect(w.watchedDirs).toBe(1);
    c.reset();
    write(root, "sub/c.go");
    expect(await c.settle()).toEqual([{ paths: ["sub/c.go"] }]);
    expect(w.watchedDirs).toBe(2);
    c.reset();
    write(root, "sub/c.go", "again");
    expect(await c.settle()).toEqual([{ paths: ["sub/c.go"] }]);
  });

  test("a deleted and re-created watch root (watch.paths = [\"src\"]) is watched again, and said so", async () => {
    const root = tmp();
    write(root, "src/a.go");
    write(root, "other.go"); // outside the watched path: never reported
    const notices: string[] = [];
    const { w, c } = await start(root, { paths: ["src"], onNotice: (m) => notices.push(m) });
    fs.rmSync(path.join(root, "src"), { recursive: true });
    expect(await c.settle()).toEqual([{ paths: ["src/a.go"] }]);
    expect(notices).toEqual(["src was deleted: it is watched again as soon as it is re-created"]);
    c.reset();
    write(root, "src/b.go");
    expect(await c.settle()).toEqual([{ paths: ["src/b.go"] }]);
    expect(notices.at(-1)).toBe("src is back: watching it again");
    c.reset();
    write(root, "src/b.go", "edited");
    write(root, "other.go", "edited");
    expect(await c.settle()).toEqual([{ paths: ["src/b.go"] }]);
    // Replaced in one step (rename of a fresh copy over it): the new directory is watched.
    write(root, "src.new/c.go");
    fs.rmSync(path.join(root, "src"), { recursive: true });
    fs.renameSync(path.join(root, "src.new"), path.join(root, "src"));
    c.reset();
    await c.settle();
    c.reset();
    write(root, "src/c.go", "edited");
    expect(await c.settle()).toEqual([{ paths: ["src/c.go"] }]);
    expect(w.watchedDirs).toBe(2); // src + its parent, restricted to the name "src"
  });

  test("renamed dir: old paths and new paths reported, new location watched", async () => {
    const root = tmp();
    write(root, "old/a.go");
    const { w, c } = await start(root);
    fs.renameSync(path.join(root, "old"), path.join(root, "new"));
    expect(await c.settle()).toEqual([{ paths: ["new/a.go", "old/a.go"] }]);
    expect(w.watchedDirs).toBe(2);
    c.reset();
    write(root, "new/b.go");
    expect(await c.settle()).toEqual([{ paths: ["new/b.go"] }]);
  });

  test("excluded ext / glob / gitignored / editor temp → no batch", async () => {
    const root = tmp();
    write(root, ".gitignore", "*.log\nbuild/\n");
    write(root, "build/keep");
    const { c } = await start(root, { includeExt: ["go"], exclude: ["tmp/**", "**/*_test.go"] });
    write(root, "notes.txt");
    write(root, "x_test.go");
    write(root, "pkg/y_test.go");
    write(root, "tmp/z.go");
    write(root, "app.log");
    write(root, "build/out.go");
    write(root, ".main.go.swp");
    write(root, "main.go~");
    write(root, "4913");
    write(root, "node_modules/m/index.go");
    await sleep(QUIET + 100);
    expect(c.batches).toEqual([]);
    // sanity: the watcher is alive
    write(root, "pkg/ok.go");
    expect(await c.settle()).toEqual([{ paths: ["pkg/ok.go"] }]);
  });

  test("node_modules, .git, excluded and gitignored dirs register no watch", async () => {
    const root = tmp();
    for (let i = 0; i < 20; i++) write(root, `node_modules/p${i}/lib/index.js`);
    write(root, ".git/objects/ab/cd");
    write(root, ".gitignore", "dist/\n/coverage\n");
    write(root, "dist/a/b/c.js");
    write(root, "coverage/x/y.html");
    write(root, "tmp/cache/z");
    write(root, "src/app/main.go");
    write(root, "src/app/sub/.gitignore", "generated/\n");
    write(root, "src/app/sub/generated/g.go");
    const before = inotifyWatches();
    const { w } = await start(root, { exclude: ["tmp/**"] });
    // root, src, src/app, src/app/sub
    expect(w.watchedDirs).toBe(4);
    const after = inotifyWatches();
    if (before !== null && after !== null) expect(after - before).toBe(4);
  });

  test("1k-dir tree with a 500-dir node_modules: only source dirs are watched", async () => {
    const root = tmp();
    for (let a = 0; a < 20; a++) for (let b = 0; b < 25; b++) write(root, `src/a${a}/b${b}/m.go`);
    for (let p = 0; p < 100; p++) for (let q = 0; q < 5; q++) write(root, `node_modules/p${p}/l${q}/i.js`);
    const before = inotifyWatches();
    const t0 = performance.now();
    const { w, c } = await start(root);
    const setupMs = performance.now() - t0;
    // root + src + 20 + 500
    expect(w.watchedDirs).toBe(522);
    const after = inotifyWatches();
    if (before !== null && after !== null) expect(after - before).toBe(522);
    expect(setupMs).toBeLessThan(3000); // generous; ~40 ms on a 2-core box
    write(root, "node_modules/p1/l1/i.js", "changed");
    write(root, "src/a19/b24/m.go", "changed");
    expect(await c.settle()).toEqual([{ paths: ["src/a19/b24/m.go"] }]);
  });

  test("2,000 writes → exactly one batch", async () => {
    const root = tmp();
    fs.mkdirSync(path.join(root, "gen"));
    const { c } = await start(root);
    for (let i = 0; i < 2000; i++) fs.writeFileSync(path.join(root, "gen", `f${i}.go`), String(i));
    await c.settle(10_000);
    expect(c.batches.length).toBe(1);
    expect(c.batches[0]!.paths.length).toBe(2000);
  });

  test("atomic rename save → one batch, and the next save is still detected", async () => {
    const root = tmp();
    write(root, "file.go", "v1");
    const { c } = await start(root, { includeExt: ["go"] });
    const save = (v: string) => {
      fs.writeFileSync(path.join(root, "file.go.tmp"), v);
      fs.renameSync(path.join(root, "file.go.tmp"), path.join(root, "file.go"));
    };
    save("v2");
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
    c.reset();
    save("v3");
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
    c.reset();
    // swap-file style too: ".file.go.swp" scratch then rename
    fs.writeFileSync(path.join(root, ".file.go.swp"), "v4");
    fs.renameSync(path.join(root, ".file.go.swp"), path.join(root, "file.go"));
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
  });

  test("vim backup dance (file→file~, write new, delete file~) → one batch", async () => {
    const root = tmp();
    write(root, "file.go", "v1");
    const { c } = await start(root);
    const dance = (v: string) => {
      const f = path.join(root, "file.go");
      fs.writeFileSync(path.join(root, "4913"), ""); // vim's writability probe
      fs.rmSync(path.join(root, "4913"));
      fs.renameSync(f, `${f}~`);
      fs.writeFileSync(f, v);
      fs.rmSync(`${f}~`);
    };
    dance("v2");
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
    c.reset();
    dance("v3");
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
  });

  test("slow move-away save (a gap longer than the 10 ms quiet window) → one batch, no deletion in between", async () => {
    const root = tmp();
    write(root, "file.go", "v1");
    const { c } = await start(root, { debounceMs: 10 });
    const f = path.join(root, "file.go");
    fs.renameSync(f, `${f}~`);
    await sleep(30); // e.g. fsync of the new file before it is written in place
    fs.writeFileSync(f, "v2");
    fs.rmSync(`${f}~`);
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
    expect(fs.readFileSync(f, "utf8")).toBe("v2");
    // a real deletion is still reported (after the re-check)
    c.reset();
    fs.rmSync(f);
    expect(await c.settle()).toEqual([{ paths: ["file.go"] }]);
  });

  test("a file written every 5 ms without pause still yields batches (the debounce is capped)", async () => {
    const root = tmp();
    write(root, "gen.go", "0");
    const { c } = await start(root, { debounceMs: 10 });
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        fs.writeFileSync(path.join(root, "gen.go"), String(i));
        await sleep(5);
      }
    })();
    try {
      await c.waitFor((x) => x.batches.length > 0, 5000);
    } finally {
      stop = true;
      await writer;
    }
    expect(c.batches[0]).toEqual({ paths: ["gen.go"] });
  });

  test("symlink loop does not hang or crash", async () => {
    const root = tmp();
    write(root, "a/b/x.go");
    fs.symlinkSync(path.join(root, "a"), path.join(root, "a/b/loop"));
    fs.symlinkSync(root, path.join(root, "a/up"));
    fs.symlinkSync(path.join(root, "nowhere"), path.join(root, "dangling"));
    const { w, c } = await start(root);
    expect(w.watchedDirs).toBe(3); // root, a, a/b
    write(root, "a/b/y.go");
    expect(await c.settle()).toEqual([{ paths: ["a/b/y.go"] }]);
  });

  test("symlinked dir outside the tree is followed", async () => {
    const root = tmp();
    const outside = tmp();
    write(outside, "lib.go");
    fs.symlinkSync(outside, path.join(root, "vendored"));
    const { w, c } = await start(root);
    expect(w.watchedDirs).toBe(2);
    write(outside, "lib.go", "changed");
    expect(await c.settle()).toEqual([{ paths: ["vendored/lib.go"] }]);
  });

  test("file targets: a single file (even a filtered ext) and a not-yet-existing one", async () => {
    const root = tmp();
    write(root, "src/main.go");
    write(root, "other.txt");
    const { w, c } = await start(root, { paths: ["src", ".env", "config.yaml"], includeExt: ["go"] });
    expect(w.watchedDirs).toBe(2); // src + restricted root watch
    write(root, "other.txt", "ignored: root is only watched for .env/config.yaml");
    write(root, ".env", "A=1");
    expect(await c.settle()).toEqual([{ paths: [".env"] }]);
  });

  test("editing .gitignore re-scopes the watch", async () => {
    const root = tmp();
    write(root, "gen/a.go");
    const { w, c } = await start(root);
    expect(w.watchedDirs).toBe(2);
    write(root, ".gitignore", "gen/\n");
    expect(await c.settle()).toEqual([{ paths: [".gitignore"] }]);
    expect(w.watchedDirs).toBe(1);
    c.reset();
    write(root, "gen/a.go", "changed");
    await sleep(QUIET);
    expect(c.batches).toEqual([]);
    fs.writeFileSync(path.join(root, ".gitignore"), "");
    await c.settle();
    expect(w.watchedDirs).toBe(2);
  });

  test("a chatty ignored file (app log) does not starve real changes", async () => {
    const root = tmp();
    write(root, "app.log", "");
    write(root, "main.go");
    const { c } = await start(root, { includeExt: ["go"] });
    const log = path.join(root, "app.log");
    const timer = setInterval(() => fs.appendFileSync(log, "line\n"), 5);
    try {
      await sleep(100);
      write(root, "main.go", "changed");
      await c.waitFor((x) => x.batches.length > 0, 2000);
      expect(c.batches).toEqual([{ paths: ["main.go"] }]);
    } finally {
      clearInterval(timer);
    }
  });

  test("close stops events", async () => {
    const root = tmp();
    const { w, c } = await start(root);
    w.close();
    write(root, "a.go");
    await sleep(QUIET);
    expect(c.batches).toEqual([]);
  });
});

describe("poll watcher", () => {
  test("detects create, modify, delete with the same filters; one batch per burst", async () => {
    const root = tmp();
    write(root, "a.go", "1");
    write(root, "b.go", "1");
    write(root, "node_modules/m/x.go");
    const { w, c } = await start(root, { pollMs: 50, includeExt: ["go"] });
    expect(w.mode).toBe("poll");
    expect(w.watchedDirs).toBe(1);
    write(root, "a.go", "22");
    write(root, "sub/c.go");
    fs.rmSync(path.join(root, "b.go"));
    write(root, "ignored.txt");
    write(root, "node_modules/m/y.go");
    expect(await c.settle()).toEqual([{ paths: ["a.go", "b.go", "sub/c.go"] }]);
    c.reset();
    fs.writeFileSync(path.join(root, "a.go.tmp"), "333");
    fs.renameSync(path.join(root, "a.go.tmp"), path.join(root, "a.go"));
    expect(await c.settle()).toEqual([{ paths: ["a.go"] }]);
  });

  test("ignored-only changes cause no batch", async () => {
    const root = tmp();
    write(root, ".gitignore", "out/\n");
    const { c } = await start(root, { pollMs: 30 });
    write(root, "out/bin");
    write(root, ".x.swp");
    await sleep(QUIET);
    expect(c.batches).toEqual([]);
  });
});

describe("WatchLimitError", () => {
  test("ENOSPC from fs.watch rejects watch() with the fix and leaks no watches", async () => {
    const root = tmp();
    for (let i = 0; i < 10; i++) write(root, `d${i}/a.go`);
    const before = inotifyWatches();
    const real = fs.watch;
    let calls = 0;
    const spy = spyOn(fs, "watch").mockImplementation(((...args: Parameters<typeof fs.watch>) => {
      if (++calls > 5) throw Object.assign(new Error("ENOSPC: System limit for number of file watchers reached"), { code: "ENOSPC" });
      return real(...args);
    }) as typeof fs.watch);
    try {
      const p = watch({ root, paths: ["."], includeExt: [], include: [], exclude: [], gitignore: false, debounceMs: 50 }, () => {});
      await expect(p).rejects.toBeInstanceOf(WatchLimitError);
      await expect(p).rejects.toThrow(/inotify watch limit reached .* while watching 6 directories: raise it with `sudo sysctl fs.inotify.max_user_watches=524288`/);
    } finally {
      spy.mockRestore();
    }
    const after = inotifyWatches();
    if (before !== null && after !== null) expect(after).toBe(before);
  });

  test("ENOSPC message names the sysctl, its current value and the alternatives", () => {
    const e = watchLimitError("ENOSPC", 8193);
    expect(e).toBeInstanceOf(WatchLimitError);
    expect(e.message).toContain("inotify watch limit reached (fs.inotify.max_user_watches=");
    expect(e.message).toContain("while watching 8,193 directories");
    expect(e.message).toContain("sudo sysctl fs.inotify.max_user_watches=524288");
    expect(e.message).toContain("/etc/sysctl.d/");
    expect(e.message).toContain('watch.poll = "500ms"');
    if (fs.existsSync("/proc/sys/fs/inotify/max_user_watches")) {
      const lim = fs.readFileSync("/proc/sys/fs/inotify/max_user_watches", "utf8").trim();
      expect(e.message).toContain(`max_user_watches=${lim})`);
    }
  });

  test("EMFILE message names max_user_instances and ulimit -n", () => {
    const e = watchLimitError("EMFILE", 10);
    expect(e.code).toBe("EMFILE");
    expect(e.message).toContain("fs.inotify.max_user_instances=");
    expect(e.message).toContain("ulimit -n");
  });
});

describe("network filesystem detection", () => {
  const info = [
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
    "40 27 0:50 / /mnt/share rw,relatime - nfs4 srv:/export rw",
    "41 27 0:51 / /mnt/c rw,relatime - 9p drvfs rw",
    "42 40 0:52 / /mnt/share/local rw,relatime - ext4 /dev/vdb rw",
    "43 27 0:53 / /mnt/with\\040space rw - cifs //h/s rw",
  ].join("\n");
  test("longest mount point prefix wins", () => {
    expect(fsTypeFromMountinfo(info, "/home/u/app")).toBe("ext4");
    expect(fsTypeFromMountinfo(info, "/mnt/share/app")).toBe("nfs4");
    expect(fsTypeFromMountinfo(info, "/mnt/shared")).toBe("ext4");
    expect(fsTypeFromMountinfo(info, "/mnt/share/local/app")).toBe("ext4");
    expect(fsTypeFromMountinfo(info, "/mnt/c/Users/x")).toBe("9p");
    expect(fsTypeFromMountinfo(info, "/mnt/with space/p")).toBe("cifs");
  });
  test("a local temp dir is not a no-event filesystem", () => {
    expect(noEventFilesystem(os.tmpdir())).toBeNull();
  });
});
