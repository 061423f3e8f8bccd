import { ChunkBufferPool } from './chunk-buffer.pool';

describe(ChunkBufferPool.name, () => {
  it('reuses released buffers, at the length asked for', () => {
    const pool = new ChunkBufferPool(1024);
    const a = pool.acquire(1024);
    a.fill(7);
    pool.release(a);
    expect(pool.freeCount).toBe(1);
    const b = pool.acquire(10);
    expect(b).toHaveLength(10);
    expect(b.buffer).toBe(a.buffer);
    expect(pool.freeCount).toBe(0);
    expect(pool.acquire(1024).buffer).not.toBe(a.buffer);
  });

  it('takes back only its own buffers, once each, up to its limit', () => {
    const pool = new ChunkBufferPool(64, 2);
    pool.release(Buffer.alloc(64));
    expect(pool.freeCount).toBe(0);
    const [a, b, c] = [pool.acquire(64), pool.acquire(64), pool.acquire(64)];
    pool.release(a);
    pool.release(a);
    expect(pool.freeCount).toBe(1);
    pool.release(b);
    pool.release(c);
    expect(pool.freeCount).toBe(2);
    const x = pool.acquire(64);
    const y = pool.acquire(64);
    expect(x.buffer).not.toBe(y.buffer);
  });

  it('allocates outside the pool for lengths over its buffer size', () => {
    const pool = new ChunkBufferPool(16);
    const big = pool.acquire(17);
    expect(big).toHaveLength(17);
    pool.release(big);
    expect(pool.freeCount).toBe(0);
  });
});
