import { createHash, Hash } from 'node:crypto';

/** Early chunks kept waiting for the ones before them, at most: 8 MiB of 512 KiB chunks. */
export const DEFAULT_MAX_HELD_CHUNKS = 16;

/**
 * The whole-file SHA-1 of a download, fed from the verified chunks
 * themselves, in file order, so that the file need not be read back from
 * disk. A chunk that comes early is kept until those before it are hashed
 * (the scheduler asks for chunks in file order, so few ever wait). One early
 * chunk more than `maxHeld` and it gives up: every kept chunk is let go and
 * the file must be hashed from disk instead (`gaveUp`).
 *
 * `letGo(data)` is called exactly once for every chunk given to `add`: at
 * once, or when it has been hashed, given up or cleared.
 */
export class InOrderHasher {
  private readonly hash: Hash = createHash('sha1');
  private readonly held = new Map<number, Buffer>();
  /** Chunks 0..next-1 are hashed. */
  private next = 0;
  private bytes = 0;
  private abandoned = false;
  private digested: string | undefined;

  constructor(
    private readonly chunkCount: number,
    private readonly letGo: (data: Buffer) => void,
    private readonly maxHeld = DEFAULT_MAX_HELD_CHUNKS,
  ) {}

  /** It could not follow; the file has to be hashed from disk. */
  get gaveUp(): boolean {
    return this.abandoned;
  }

  /** Every chunk is hashed: `digest()` is the file's SHA-1. */
  get isComplete(): boolean {
    return !this.abandoned && this.next === this.chunkCount;
  }

  get hashedBytes(): number {
    return this.bytes;
  }

  /** Chunks kept waiting right now. */
  get heldCount(): number {
    return this.held.size;
  }

  /** Verified chunk `index`. */
  add(index: number, data: Buffer): void {
    if (this.abandoned || index < this.next || index >= this.chunkCount || this.held.has(index)) {
      return this.letGo(data);
    }
    if (index > this.next) {
      if (this.held.size < this.maxHeld) {
        this.held.set(index, data);
        return;
      }
      this.giveUp();
      return this.letGo(data);
    }
    this.feed(data);
    for (let waiting = this.held.get(this.next); waiting; waiting = this.held.get(this.next)) {
      this.held.delete(this.next);
      this.feed(waiting);
    }
  }

  /** The file's hex SHA-1, once complete. */
  digest(): string {
    if (!this.isComplete) throw new Error('not every chunk is hashed');
    this.digested ??= this.hash.digest('hex');
    return this.digested;
  }

  /** Lets every kept chunk go (the download failed or was cancelled); nothing is hashed after this. */
  clear(): void {
    this.giveUp();
  }

  private feed(data: Buffer): void {
    this.hash.update(data);
    this.next++;
    this.bytes += data.length;
    this.letGo(data);
  }

  private giveUp(): void {
    this.abandoned = true;
    const kept = [...this.held.values()];
    this.held.clear();
    for (const data of kept) this.letGo(data);
  }
}
