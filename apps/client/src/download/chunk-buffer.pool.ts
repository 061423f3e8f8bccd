/**
 * Hands out chunk-sized buffers and takes them back, so a download reuses a
 * few dozen buffers instead of allocating one per chunk. Only buffers it
 * handed out are taken back (once each); anything else is left to the GC.
 */
export class ChunkBufferPool {
  private readonly free: ArrayBuffer[] = [];
  private readonly isFree = new WeakSet<ArrayBuffer>();
  private readonly owned = new WeakSet<ArrayBuffer>();

  constructor(
    readonly bufferSize: number,
    /** Free buffers kept at most; more are dropped on release. */
    private readonly maxFree = 64,
  ) {}

  /** Free buffers held right now. */
  get freeCount(): number {
    return this.free.length;
  }

  /** A buffer of `length` bytes, of undefined content. */
  acquire(length: number): Buffer {
    if (length > this.bufferSize) return Buffer.allocUnsafeSlow(length);
    let backing = this.free.pop();
    if (backing) {
      this.isFree.delete(backing);
    } else {
      backing = Buffer.allocUnsafeSlow(this.bufferSize).buffer;
      this.owned.add(backing);
    }
    return Buffer.from(backing, 0, length);
  }

  /** Gives back a buffer from `acquire`; the caller must not use it afterwards. */
  release(buf: Buffer): void {
    const backing = buf.buffer as ArrayBuffer;
    if (!this.owned.has(backing) || this.isFree.has(backing) || this.free.length >= this.maxFree) return;
    this.isFree.add(backing);
    this.free.push(backing);
  }
}
