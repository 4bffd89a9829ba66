/**
 * serve.watch: reload when one of a few named files changes (typically the
 * deployed binary). Each file's DIRECTORY is watched (fs.watch), events are
 * filtered by file name, and bursts are debounced (200 ms). Watching the
 * directory is what makes an atomic deploy (write tmp file, rename over the old
 * one) visible: a watch on the file itself would stay on the old inode.
 */
import { watch, type FSWatcher } from "node:fs";
import { basename, dirname, resolve } from "node:path";

export const WATCH_DEBOUNCE_MS = 200;

export interface FileWatch {
  close(): void;
}

export function watchFiles(paths: readonly string[], root: string, onChange: (changed: string[]) => void, opts: { debounceMs?: number; onError?: (msg: string) => void; label?: string } = {}): FileWatch {
  const debounceMs = opts.debounceMs ?? WATCH_DEBOUNCE_MS;
  const label = opts.label ?? "serve.watch";
  const byDir = new Map<string, Map<string, string>>();
  for (const p of paths) {
    const abs = resolve(root, p);
    const dir = dirname(abs);
    if (!byDir.has(dir)) byDir.set(dir, new Map());
    byDir.get(dir)!.set(basename(abs), p);
  }
  const watchers: FSWatcher[] = [];
  let timer: ReturnType<typeof setTimeout> | undefined;
  const pending = new Set<string>();
  for (const [dir, names] of byDir) {
    try {
      const w = watch(dir, { persistent: false }, (_event, filename) => {
        const name = filename?.toString();
        if (!name || !names.has(name)) return;
        pending.add(names.get(name)!);
        clearTimeout(timer);
        timer = setTimeout(() => {
          const changed = [...pending];
          pending.clear();
          onChange(changed);
        }, debounceMs);
      });
      w.on("error", (e) => opts.onError?.(`${label}: ${dir}: ${(e as Error).message}`));
      watchers.push(w);
    } catch (e) {
      opts.onError?.(`${label}: cannot watch ${dir}: ${(e as Error).message}`);
    }
  }
  return {
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
