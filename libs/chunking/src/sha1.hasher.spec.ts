import { Test } from '@nestjs/testing';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { CHUNK_HASHER, ChunkHasher } from './chunk-hasher';
import { CHUNK_SIZE } from './chunk-plan';
import { ChunkingModule } from './chunking.module';
import { HashRole, HashWorkerPool } from './hash-worker.pool';
import { Sha1ChunkHasher, Sha1ChunkHasherOptions } from './sha1.hasher';

const EMPTY_SHA1 = 'da39a3ee5e6b4b0d3255bfef95601890afd80709';
const sha1sum = (path: string) => execFileSync('sha1sum', [path], { encoding: 'utf8' }).split(' ')[0];

describe(Sha1ChunkHasher.name, () => {
  let hasher: ChunkHasher;
  let dir: string;

  beforeAll(async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ChunkingModule] }).compile();
    hasher = moduleRef.get(CHUNK_HASHER);
    dir = mkdtempSync(join(tmpdir(), 'chunking-'));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const file = (name: string, data: Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  it('stops its hashing workers when the module closes', async () => {
    const destroy = jest.spyOn(Sha1ChunkHasher.prototype, 'onModuleDestroy');
    try {
      const moduleRef = await Test.createTestingModule({ imports: [ChunkingModule] }).compile();
      await moduleRef.close();
      expect(destroy).toHaveBeenCalledTimes(1);
    } finally {
      destroy.mockRestore();
    }
  });

  it('hashes known vectors', () => {
    expect(hasher.hashChunk(Buffer.alloc(0))).toBe(EMPTY_SHA1);
    expect(hasher.hashChunk(Buffer.from('abc'))).toBe('a9993e364706816aba3e25717850c26c9cd0d89d');
  });

  it('verifies a chunk against its hash, in either case, and rejects one flipped bit', () => {
    const buf = randomBytes(1000);
    const hash = hasher.hashChunk(buf);
    expect(hasher.verifyChunk(buf, hash)).toBe(true);
    expect(hasher.verifyChunk(buf, hash.toUpperCase())).toBe(true);
    buf[500] ^= 1;
    expect(hasher.verifyChunk(buf, hash)).toBe(false);
  });

  it('an empty file has no chunks', async () => {
    expect(await hasher.hashFile(file('empty', Buffer.alloc(0)))).toEqual({
      size: 0,
      fileHash: EMPTY_SHA1,
      chunkHashes: [],
    });
  });

  it('a file of exactly one chunk has one chunk hash equal to the file hash', async () => {
    const path = file('one', randomBytes(CHUNK_SIZE));
    const digest = await hasher.hashFile(path);
    expect(digest.size).toBe(CHUNK_SIZE);
    expect(digest.fileHash).toBe(sha1sum(path));
    expect(digest.chunkHashes).toEqual([digest.fileHash]);
  });

  it('one byte over a chunk makes a second chunk of one byte', async () => {
    const data = randomBytes(CHUNK_SIZE + 1);
    const digest = await hasher.hashFile(file('over', data));
    expect(digest.chunkHashes).toEqual([
      hasher.hashChunk(data.subarray(0, CHUNK_SIZE)),
      hasher.hashChunk(data.subarray(CHUNK_SIZE)),
    ]);
  });

  it('a multi-chunk file matches sha1sum of the file and of each part', async () => {
    const data = randomBytes(3 * CHUNK_SIZE + 12345);
    const path = file('multi', data);
    const progress: number[] = [];
    const digest = await hasher.hashFile(path, (n) => progress.push(n));
    expect(digest.size).toBe(data.length);
    expect(digest.fileHash).toBe(sha1sum(path));
    const parts = [0, 1, 2, 3].map((i) =>
      sha1sum(file(`part${i}`, data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))),
    );
    expect(digest.chunkHashes).toEqual(parts);
    expect(progress[progress.length - 1]).toBe(data.length);
  });

  it('cuts chunks right whatever size the reads come in', async () => {
    const data = randomBytes(10 * 1000 + 7);
    const path = file('small-chunks', data);
    const digest = await new Sha1ChunkHasher(1000).hashFile(path);
    expect(digest.chunkHashes).toHaveLength(11);
    expect(digest.chunkHashes[10]).toBe(hasher.hashChunk(data.subarray(10_000)));
  });

  describe('with hashing workers', () => {
    const inline = (chunkSize = CHUNK_SIZE) => new Sha1ChunkHasher(chunkSize, { workerThresholdBytes: Infinity });
    const started: Sha1ChunkHasher[] = [];
    const workers = (chunkSize = CHUNK_SIZE, options: Sha1ChunkHasherOptions = {}) => {
      const h = new Sha1ChunkHasher(chunkSize, { workerThresholdBytes: 0, ...options });
      started.push(h);
      return h;
    };

    afterAll(() => Promise.all(started.map((h) => h.onModuleDestroy())));

    /** Bytes a worker reads at once with 1000-byte chunks: as many whole chunks as fit in 512 KiB. */
    const READ = 524 * 1000;

    it('gives the same digest as hashing inline, and sha1sum, reporting progress to the end', async () => {
      const data = randomBytes(7 * CHUNK_SIZE + 4321);
      const path = file('workers', data);
      const progress: number[] = [];
      const digest = await workers().hashFile(path, (n) => progress.push(n));
      expect(digest).toEqual(await inline().hashFile(path));
      expect(digest.fileHash).toBe(sha1sum(path));
      expect(digest.chunkHashes).toHaveLength(8);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress[progress.length - 1]).toBe(data.length);
    });

    it('reports progress as the bytes both workers have hashed, rising to the size', async () => {
      const data = randomBytes(3 * READ + 7);
      const progress: number[] = [];
      const digest = await workers(1000, { progressBytes: 2000 }).hashFile(file('progress', data), (n) =>
        progress.push(n),
      );
      expect(digest.size).toBe(data.length);
      expect(progress.length).toBeGreaterThan(1);
      expect(new Set(progress).size).toBe(progress.length);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress[progress.length - 1]).toBe(data.length);
    });

    // sizes around both a chunk's and a read's edges, with workers started once for all of them
    const small = workers(1000);
    const big = workers();
    it.each([0, 1, 999, 1000, 1001, 2000, 3000, 10 * 1000 + 7, READ - 1, READ, READ + 1, 2 * READ + 999])(
      'gives the same digest as hashing inline for %i bytes in 1000-byte chunks',
      async (bytes) => {
        const data = randomBytes(bytes);
        const path = file(`workers-${bytes}`, data);
        const digest = await small.hashFile(path);
        expect(digest).toEqual(await inline(1000).hashFile(path));
        expect(digest.size).toBe(bytes);
        expect(digest.chunkHashes).toHaveLength(Math.ceil(bytes / 1000));
      },
    );

    it.each([CHUNK_SIZE - 1, 2 * CHUNK_SIZE, 2 * CHUNK_SIZE + 1])(
      'gives the same digest as hashing inline for %i bytes in 512 KiB chunks',
      async (bytes) => {
        const path = file(`workers-big-${bytes}`, randomBytes(bytes));
        expect(await big.hashFile(path)).toEqual(await inline().hashFile(path));
      },
    );

    it('hashes several files side by side', async () => {
      const h = workers(1000);
      const paths = [1, 2, 3].map((i) => file(`side-${i}`, randomBytes(i * 3000 + i)));
      const digests = await Promise.all(paths.map((p) => h.hashFile(p)));
      for (const [i, p] of paths.entries()) expect(digests[i]).toEqual(await inline(1000).hashFile(p));
    });

    it('does not keep the process alive once idle', async () => {
      const ports = () => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;
      const h = workers(1000);
      const before = ports();
      await h.hashFile(file('idle', randomBytes(5000)));
      expect(ports()).toBe(before);
    });

    it('rejects a path that does not exist', async () => {
      await expect(workers().hashFile(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
    });

    it('rejects an error from a worker with its code, and keeps working', async () => {
      const h = workers(1000);
      // a directory opens, so the size check passes; reading it fails in the workers
      const failure = h.hashFile(dir);
      await expect(failure).rejects.toThrow(/EISDIR/);
      await expect(failure).rejects.toHaveProperty('code', 'EISDIR');
      const path = file('after-error', randomBytes(4321));
      expect(await h.hashFile(path)).toEqual(await inline(1000).hashFile(path));
    });

    it('hashes again after it was closed', async () => {
      const h = workers(1000);
      const path = file('closing', randomBytes(3000));
      await h.hashFile(path);
      await h.onModuleDestroy();
      expect(await h.hashFile(path)).toEqual(await inline(1000).hashFile(path));
    });
  });

  describe(HashWorkerPool.name, () => {
    const pools: HashWorkerPool[] = [];
    const pool = () => {
      const p = new HashWorkerPool({ chunkSize: 1000, bufferBytes: 4000, progressBytes: 1e9 });
      pools.push(p);
      return p;
    };
    const workerOf = (p: HashWorkerPool, role: HashRole) =>
      (p as unknown as { workers: Map<HashRole, { worker: Worker }> }).workers.get(role)?.worker;

    afterAll(() => Promise.all(pools.map((p) => p.close())));

    it('gives the chunk digests as one buffer of 20-byte digests', async () => {
      const data = randomBytes(4500);
      const result = await pool().run('chunk', file('pool-digests', data));
      expect(result.size).toBe(4500);
      expect(result.chunkDigests!.toString('hex')).toBe(
        [0, 1, 2, 3, 4].map((i) => hasher.hashChunk(data.subarray(i * 1000, (i + 1) * 1000))).join(''),
      );
    });

    it('keeps one worker per role from one job to the next', async () => {
      const p = pool();
      const path = file('pool-reuse', randomBytes(10_000));
      await Promise.all([p.run('file', path), p.run('chunk', path)]);
      const first = [workerOf(p, 'file')!.threadId, workerOf(p, 'chunk')!.threadId];
      await Promise.all([p.run('file', path), p.run('chunk', path), p.run('chunk', path)]);
      expect([workerOf(p, 'file')!.threadId, workerOf(p, 'chunk')!.threadId]).toEqual(first);
      expect(new Set(first).size).toBe(2);
    });

    it('fails the jobs of a worker that broke, and starts a new one for the next job', async () => {
      const p = pool();
      const path = file('pool-broken', randomBytes(10_000));
      await p.run('chunk', path);
      const broken = workerOf(p, 'chunk')!;
      const job = p.run('chunk', path);
      broken.emit('error', new Error('boom'));
      await expect(job).rejects.toThrow('boom');
      await broken.terminate();
      expect((await p.run('chunk', path)).size).toBe(10_000);
      expect(workerOf(p, 'chunk')!.threadId).not.toBe(broken.threadId);
    });

    it('rejects the jobs still running when closed, and any later job', async () => {
      const p = pool();
      const path = file('pool-closed', randomBytes(10_000));
      const job = expect(p.run('file', path)).rejects.toThrow(/closed/);
      await p.close();
      await job;
      await expect(p.run('file', path)).rejects.toThrow(/closed/);
    });
  });

  it('rejects a path that does not exist', async () => {
    await expect(hasher.hashFile(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
  });
});
