/** A fixed-size ring: the newest `size` items, oldest first; `seq` numbers every item ever pushed. */
export class Ring<T> {
  private readonly items: T[] = [];
  private head = 0;
  seq = 0;

  constructor(private readonly size: number) {}

  push(item: T): void {
    if (this.items.length < this.size) this.items.push(item);
    else {
      this.items[this.head] = item;
      this.head = (this.head + 1) % this.size;
    }
    this.seq++;
  }

  /** Oldest first. */
  toArray(): T[] {
    return this.items.length < this.size ? this.items.slice() : [...this.items.slice(this.head), ...this.items.slice(0, this.head)];
  }

  /** The items pushed after `seq` (as many as are still held), oldest first. */
  since(seq: number): T[] {
    const n = Math.min(this.seq - seq, this.items.length);
    return n <= 0 ? [] : this.toArray().slice(-n);
  }
}
