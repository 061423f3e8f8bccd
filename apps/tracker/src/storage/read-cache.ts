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
  /** A rough count of the memory the entries hold. */
  private bytes = 0;

  constructor(
    private readonly db: Database.Database,
    private readonly maxBytes = DEFAULT_MAX_BYTES,
  ) {}

  get<T>(key: string, load: () => T): T {
    if (this.db.inTransaction) return load();
    const hit = this.entries.get(key);
    if (hit !== undefined || this.entries.has(key)) return hit as T;
    const value = deepFreeze(load());
    const weight = key.length + weigh(value);
    // past the budget the cache starts afresh: simple, and a full cache is rare (writes empty it all the time)
    if (this.bytes + weight > this.maxBytes) this.invalidate();
    if (weight <= this.maxBytes) {
      this.entries.set(key, value);
      this.bytes += weight;
    }
    return value;
  }

  /** Every write calls this (after it ran): whatever it changed is read afresh. */
  invalidate(): void {
    if (this.entries.size > 0) this.entries = new Map();
    this.bytes = 0;
  }

  get size(): number {
    return this.entries.size;
  }

  get weight(): number {
    return this.bytes;
  }
}

/** Memory a store's read cache may hold, roughly. */
const DEFAULT_MAX_BYTES = 32 * 1024 * 1024;

/** A rough size in bytes: buffers by length, strings by length, records by their fields. */
function weigh(value: unknown): number {
  if (typeof value === 'string') return 16 + 2 * value.length;
  if (Buffer.isBuffer(value)) return 64 + value.length;
  if (Array.isArray(value)) return (value as unknown[]).reduce<number>((n, item) => n + 8 + weigh(item), 32);
  if (value !== null && typeof value === 'object') {
    return Object.values(value as Record<string, unknown>).reduce<number>((n, v) => n + 8 + weigh(v), 32);
  }
  return 8;
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
