import { isDirectWritable } from './aligned-memory';
import { ChunkBufferPool } from './chunk-buffer.pool';

/** The same memory: one region, one offset. */
const sameMemory = (a: Buffer, b: Buffer) => a.buffer === b.buffer && a.byteOffset === b.byteOffset;

describe(ChunkBufferPool.name, () => {
  it('reuses released buffers, at the length asked for', () => {
    const pool = new ChunkBufferPool(1024);
    const a = pool.acquire(1024);
    a.fill(7);
    pool.release(a);
    expect(pool.freeCount).toBe(1);
    const b = pool.acquire(10);
    expect(b).toHaveLength(10);
    expect(sameMemory(a, b)).toBe(true);
    expect(pool.freeCount).toBe(0);
    expect(sameMemory(pool.acquire(1024), a)).toBe(false);
  });

  it('takes back only its own buffers, once each, and pools no more than its capacity', () => {
    const pool = new ChunkBufferPool(64, 2);
    pool.release(Buffer.alloc(64));
    expect(pool.freeCount).toBe(0);
    const [a, b, c] = [pool.acquire(64), pool.acquire(64), pool.acquire(64)];
    expect(c.buffer).not.toBe(a.buffer); // over capacity: a plain buffer
    pool.release(a);
    pool.release(a);
    expect(pool.freeCount).toBe(1);
    pool.release(b);
    pool.release(c);
    expect(pool.freeCount).toBe(2);
    pool.release(a.subarray(1)); // not a buffer it handed out
    expect(pool.freeCount).toBe(2);
    const x = pool.acquire(64);
    const y = pool.acquire(64);
    expect(sameMemory(x, y)).toBe(false);
    expect([x, y].every((buf) => sameMemory(buf, a) || sameMemory(buf, b))).toBe(true);
  });

  it('never hands out overlapping buffers', () => {
    const pool = new ChunkBufferPool(5000, 8);
    const bufs = Array.from({ length: 8 }, (_, i) => pool.acquire(5000).fill(i));
    bufs.forEach((buf, i) => expect(buf.every((byte) => byte === i)).toBe(true));
  });

  it('hands out page-aligned buffers a whole chunk can be written from directly', () => {
    const pool = new ChunkBufferPool(64 * 1024, 4);
    const full = pool.acquire(64 * 1024);
    expect(isDirectWritable(full, 0)).toBe(true);
    expect(isDirectWritable(pool.acquire(64 * 1024), 3 * 64 * 1024)).toBe(true);
    expect(isDirectWritable(full, 100)).toBe(false); // unaligned file offset
    expect(isDirectWritable(pool.acquire(1000), 0)).toBe(false); // a short last chunk
    expect(isDirectWritable(Buffer.alloc(64 * 1024), 0)).toBe(false); // memory of unknown alignment
  });

  it('allocates outside the pool for lengths over its buffer size', () => {
    const pool = new ChunkBufferPool(16);
    const big = pool.acquire(17);
    expect(big).toHaveLength(17);
    pool.release(big);
    expect(pool.freeCount).toBe(0);
  });
});
