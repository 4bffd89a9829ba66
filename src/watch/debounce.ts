// Trailing debounce with a cap: fire `ms` after the LAST poke, but never later
// than `maxMs` after the FIRST poke of a batch (so a file written every few ms
// forever still produces a batch now and then). Items poked in between are
// collected into one set and handed over together.
//
// add() queues an item WITHOUT extending the quiet period (it only arms the
// timer if none is running): used for events that are worth re-checking but
// can never produce a change by themselves, e.g. a log file the app appends to
// every few ms. Those must not starve real changes of their batch.

/** The cap for a quiet window of `ms`: 1 s, or 20 windows when that is longer. */
export function defaultMaxWait(ms: number): number {
  return Math.max(1000, 20 * ms);
}

export class Trailing<T> {
  private timer: ReturnType<typeof setTimeout> | null = null;
  /** Items by key (`key` in the constructor; the item itself by default): one per key per batch. */
  private items = new Map<unknown, T>();
  private closed = false;
  private isHot = false;
  /** When the current batch's first poke arrived (performance.now()), or null. */
  private firstPoke: number | null = null;

  constructor(
    private readonly ms: number,
    private readonly fire: (items: Set<T>) => void,
    private readonly maxMs: number = defaultMaxWait(ms),
    private readonly key: (item: T) => unknown = (item) => item,
  ) {}

  /** Record items (possibly none) and restart the quiet-period timer (up to the cap). */
  poke(...items: T[]): void {
    if (this.closed) return;
    for (const it of items) this.items.set(this.key(it), it);
    this.isHot = true;
    const now = performance.now();
    this.firstPoke ??= now;
    const capLeft = this.firstPoke + this.maxMs - now;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), Math.max(0, Math.min(this.ms, capLeft)));
  }

  /** Queue items without restarting a running quiet period. */
  add(...items: T[]): void {
    if (this.closed) return;
    for (const it of items) this.items.set(this.key(it), it);
    if (!this.timer) this.timer = setTimeout(() => this.flush(), Math.max(0, this.ms));
  }

  /** Has poke() been called since the last fire? (a quiet period is running for real events) */
  get hot(): boolean {
    return this.isHot;
  }

  /** Is a fire scheduled (an event arrived and the quiet period is running)? */
  get pending(): boolean {
    return this.timer !== null;
  }

  private flush(): void {
    this.timer = null;
    this.isHot = false;
    this.firstPoke = null;
    const items = new Set(this.items.values());
    this.items = new Map();
    this.fire(items);
  }

  cancel(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.items.clear();
  }
}
