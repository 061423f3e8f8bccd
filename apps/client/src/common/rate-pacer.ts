/**
 * Paces bytes to a rate that can change at any time, shared fairly: callers
 * wait in turn by key (a connection, a download), one grant per key per round,
 * so a key with many requests queued gets no more than one with a single one.
 *
 * A grant lets `bytes` go at once and pushes the next grant back by
 * `bytes / rate`: the first request after a quiet spell is not delayed, and
 * over any stretch of time the bytes granted stay within the rate (plus one
 * grant). Rate 0 means no limit: every `take` resolves at once.
 */
export class RatePacer {
  private bytesPerSecond: number;
  /** When the next grant may be made (epoch ms of `now`). */
  private nextAt = 0;
  /** When the last grant was made: a rate change rescales the wait it set. */
  private lastAt = 0;
  /** Waiters by key, in the order the keys first queued; the round goes through them in that order. */
  private readonly queues = new Map<unknown, Waiter[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    bytesPerSecond = 0,
    private readonly now: () => number = Date.now,
  ) {
    this.bytesPerSecond = checkRate(bytesPerSecond);
  }

  /** Bytes per second; 0 means unlimited. */
  get rate(): number {
    return this.bytesPerSecond;
  }

  /** Requests waiting for their turn. */
  get waiting(): number {
    let n = 0;
    for (const q of this.queues.values()) n += q.length;
    return n;
  }

  /** Changes the rate (0: unlimited), for the waiters too: the wait set by the last grant is scaled to the new rate. */
  setRate(bytesPerSecond: number): void {
    const rate = checkRate(bytesPerSecond);
    const old = this.bytesPerSecond;
    this.bytesPerSecond = rate;
    if (rate === 0) this.nextAt = 0;
    else if (old > 0 && this.nextAt > this.lastAt)
      this.nextAt = this.lastAt + ((this.nextAt - this.lastAt) * old) / rate;
    else if (old === 0) this.nextAt = this.now();
    this.schedule();
  }

  /** Resolves when `bytes` may go; rejects with `cancelled` when `cancel(key)` is called first. */
  take(bytes: number, key: unknown): Promise<void> {
    if (this.bytesPerSecond === 0 && this.queues.size === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let queue = this.queues.get(key);
      if (!queue) this.queues.set(key, (queue = []));
      queue.push({ bytes, resolve, reject });
      this.schedule();
    });
  }

  /** Drops the waiters of `key` (its connection closed); their promises reject. */
  cancel(key: unknown): void {
    const queue = this.queues.get(key);
    if (!queue) return;
    this.queues.delete(key);
    for (const w of queue) w.reject(new Error('cancelled'));
    this.schedule();
  }

  /** Grants what may go now, in turn, and sets a timer for the next grant. */
  private schedule(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (;;) {
      const first = this.queues.entries().next();
      if (first.done) return;
      const now = this.now();
      if (this.bytesPerSecond > 0 && this.nextAt > now) {
        this.timer = setTimeout(() => this.schedule(), Math.max(1, Math.ceil(this.nextAt - now)));
        return;
      }
      const [key, queue] = first.value;
      const waiter = queue.shift()!;
      // the key goes to the back of the round, or leaves it when nothing else of it waits
      this.queues.delete(key);
      if (queue.length > 0) this.queues.set(key, queue);
      if (this.bytesPerSecond > 0) {
        const start = Math.max(now, this.nextAt);
        this.lastAt = start;
        this.nextAt = start + (waiter.bytes / this.bytesPerSecond) * 1000;
      }
      waiter.resolve();
    }
  }
}

interface Waiter {
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

function checkRate(bytesPerSecond: number): number {
  if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 0) throw new RangeError(`bad rate ${bytesPerSecond}`);
  return bytesPerSecond;
}
