/** What `RepeatThrottle.admit` decides for one event: log it (with how many like it were left out before), or not. */
export type ThrottleVerdict = { readonly log: true; readonly suppressed: number } | { readonly log: false };

/**
 * Keeps a flood of like events (the same limit refused to the same address) from becoming a flood of log lines:
 * the first `burst` of a key in a window of `windowMs` are logged, the next ones in it only counted, and the first
 * after the window is logged with that count. Holds at most `maxKeys` keys (past that it starts afresh: a few repeats more get
 * logged, memory stays bounded).
 */
export class RepeatThrottle {
  private readonly seen = new Map<string, { since: number; logged: number; suppressed: number }>();

  constructor(
    private readonly burst = 1,
    private readonly windowMs = 10_000,
    private readonly maxKeys = 4096,
    private readonly now: () => number = Date.now,
  ) {}

  admit(key: string): ThrottleVerdict {
    const now = this.now();
    const entry = this.seen.get(key);
    if (entry && now - entry.since < this.windowMs) {
      if (entry.logged < this.burst) {
        entry.logged++;
        return { log: true, suppressed: 0 };
      }
      entry.suppressed++;
      return { log: false };
    }
    if (!entry && this.seen.size >= this.maxKeys) this.seen.clear();
    this.seen.set(key, { since: now, logged: 1, suppressed: 0 });
    return { log: true, suppressed: entry?.suppressed ?? 0 };
  }
}
