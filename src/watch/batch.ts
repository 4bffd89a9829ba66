// What both watch modes share: the change batches they emit (root-relative
// paths), the raw events the native watcher debounces, and the Emitter that
// turns accepted paths into sorted batches.

export interface ChangeBatch {
  /** relative to root, sorted, unique */
  paths: string[];
}

/** When a batch's events happened (performance.now()), for latency tracing. */
export interface BatchTrace {
  /** The first raw event behind this batch. */
  firstEventAt?: number;
  /** The debounce fired. */
  debouncedAt?: number;
}

export interface Watcher {
  close(): void;
  /** native: fs.watch registrations (= inotify watches); poll: directories walked per pass */
  readonly watchedDirs: number;
  readonly mode: "native" | "poll";
}

/**
 * A raw event of the native watcher: `name` changed in the watched directory `dir`
 * (root-relative). name null: the kernel did not say which entry (rescan `dir`).
 */
export interface FsEvent {
  readonly dir: string;
  readonly name: string | null;
}

/** One debounce slot per (dir, name). */
export function eventKey(e: FsEvent): string {
  return `${e.dir}\0${e.name ?? ""}`;
}

export function joinRel(dir: string, name: string): string {
  return dir === "" ? name : `${dir}/${name}`;
}

/** Accumulates accepted paths and hands out sorted batches. */
export class Emitter {
  changes = new Set<string>();
  closed = false;
  /** First raw event / debounce fire since the last batch (latency tracing). */
  firstAt: number | null = null;
  firedAt: number | null = null;
  constructor(
    private readonly onBatch: (b: ChangeBatch, trace: BatchTrace) => void,
    private readonly onError: (e: Error) => void,
  ) {}
  emit(): void {
    if (this.closed) return;
    if (this.changes.size === 0) {
      this.firstAt = this.firedAt = null;
      return;
    }
    const paths = [...this.changes].sort();
    this.changes.clear();
    const firstEventAt = this.firstAt ?? undefined;
    const debouncedAt = this.firedAt ?? undefined;
    this.firstAt = this.firedAt = null;
    try {
      this.onBatch({ paths }, { firstEventAt, debouncedAt });
    } catch (e) {
      this.onError(e instanceof Error ? e : new Error(String(e)));
    }
  }
}

