import Database from 'better-sqlite3';

/**
 * Answers of a store's hot reads, kept until the store writes anything.
 * Only committed state is cached: inside a transaction every read goes to
 * SQLite and nothing is kept, so a transaction that rolls back (after its
 * writes emptied the cache) can leave nothing wrong behind. Cached values are
 * frozen, so a caller cannot change what the next caller gets.
 */
export class ReadCache {
  private entries = new Map<string, unknown>();

  constructor(
    private readonly db: Database.Database,
    private readonly maxEntries = 50_000,
  ) {}

  get<T>(key: string, load: () => T): T {
    if (this.db.inTransaction) return load();
    const hit = this.entries.get(key);
    if (hit !== undefined || this.entries.has(key)) return hit as T;
    const value = deepFreeze(load());
    if (this.entries.size >= this.maxEntries) this.entries = new Map();
    this.entries.set(key, value);
    return value;
  }

  /** Every write calls this (after it ran): whatever it changed is read afresh. */
  invalidate(): void {
    if (this.entries.size > 0) this.entries = new Map();
  }

  get size(): number {
    return this.entries.size;
  }
}

/** Key parts joined by a character no id or file name may contain. */
export const cacheKey = (...parts: string[]): string => parts.join('\0');

function deepFreeze<T>(value: T): T {
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) deepFreeze(item);
    return Object.freeze(value);
  }
  if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) return Object.freeze(value);
  return value;
}
