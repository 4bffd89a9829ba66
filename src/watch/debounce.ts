// Trailing debounce: fire `ms` after the LAST poke. Items poked in between are
// collected into one set and handed over together.

export class Trailing<T> {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private items = new Set<T>();
  private closed = false;

  constructor(
    private readonly ms: number,
    private readonly fire: (items: Set<T>) => void,
  ) {}

  /** Record items (possibly none) and restart the quiet-period timer. */
  poke(...items: T[]): void {
    if (this.closed) return;
    for (const it of items) this.items.add(it);
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), Math.max(0, this.ms));
  }

  /** Is a fire scheduled (an event arrived and the quiet period is running)? */
  get pending(): boolean {
    return this.timer !== null;
  }

  private flush(): void {
    this.timer = null;
    const items = this.items;
    this.items = new Set();
    this.fire(items);
  }

  cancel(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.items.clear();
  }
}
