import { allocAligned, DIRECT_IO_ALIGNMENT } from './aligned-memory';

/**
 * Hands out chunk-sized buffers and takes them back, so a download reuses a
 * fixed set of buffers instead of allocating one per chunk. The pooled
 * buffers are slots of one region, mapped on first use, each starting on a
 * page boundary where the platform allows (`allocAligned`): a chunk can then
 * go to disk straight from the buffer it was received into (see `PartFile`).
 * Beyond `capacity` buffers at once, and for lengths over `bufferSize`, it
 * allocates plain buffers and does not keep them. Only slots it handed out
 * are taken back, once each.
 */
export class ChunkBufferPool {
  /** Bytes from one slot to the next: `bufferSize` rounded up to the alignment. */
  private readonly stride: number;
  private region: ArrayBuffer | undefined;
  /** Slots handed out at least once; slots from here on have never been used. */
  private used = 0;
  private readonly free: number[] = [];
  private readonly inUse: Uint8Array;

  constructor(
    readonly bufferSize: number,
    /** Pooled buffers at most. */
    capacity = 64,
  ) {
    this.stride = Math.ceil(bufferSize / DIRECT_IO_ALIGNMENT) * DIRECT_IO_ALIGNMENT;
    this.inUse = new Uint8Array(bufferSize > 0 ? capacity : 0);
  }

  /** Buffers given back and ready for reuse. */
  get freeCount(): number {
    return this.free.length;
  }

  /** A buffer of `length` bytes, of undefined content. */
  acquire(length: number): Buffer {
    if (length > this.bufferSize) return Buffer.allocUnsafeSlow(length);
    let slot = this.free.pop();
    if (slot === undefined) {
      if (this.used >= this.inUse.length) return Buffer.allocUnsafeSlow(length);
      slot = this.used++;
    }
    this.region ??= allocAligned(this.inUse.length * this.stride) ?? new ArrayBuffer(this.inUse.length * this.stride);
    this.inUse[slot] = 1;
    return Buffer.from(this.region, slot * this.stride, length);
  }

  /** Gives back a buffer from `acquire`; the caller must not use it afterwards. */
  release(buf: Buffer): void {
    if (buf.buffer !== this.region || buf.byteOffset % this.stride !== 0) return;
    const slot = buf.byteOffset / this.stride;
    if (!this.inUse[slot]) return;
    this.inUse[slot] = 0;
    this.free.push(slot);
  }
}
