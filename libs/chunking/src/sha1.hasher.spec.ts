import { Test } from '@nestjs/testing';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CHUNK_HASHER, ChunkHasher } from './chunk-hasher';
import { CHUNK_SIZE } from './chunk-plan';
import { ChunkingModule } from './chunking.module';
import { Sha1ChunkHasher } from './sha1.hasher';

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
    const inline = new Sha1ChunkHasher(CHUNK_SIZE, { workerThresholdBytes: Infinity });
    const workers = (chunkSize = CHUNK_SIZE) =>
      new Sha1ChunkHasher(chunkSize, { workerThresholdBytes: 0, readAheadBytes: 0 });

    it('gives the same digest as hashing inline, and sha1sum, reporting progress to the end', async () => {
      const data = randomBytes(7 * CHUNK_SIZE + 4321);
      const path = file('workers', data);
      const progress: number[] = [];
      const digest = await workers().hashFile(path, (n) => progress.push(n));
      expect(digest).toEqual(await inline.hashFile(path));
      expect(digest.fileHash).toBe(sha1sum(path));
      expect(digest.chunkHashes).toHaveLength(8);
      expect(progress).toEqual([...progress].sort((a, b) => a - b));
      expect(progress[progress.length - 1]).toBe(data.length);
    });

    it.each([
      ['empty', 0],
      ['one byte', 1],
      ['exactly three chunks', 3000],
      ['many small chunks', 10 * 1000 + 7],
    ])('cuts chunks right: %s', async (_name, bytes) => {
      const data = randomBytes(bytes);
      const path = file(`workers-${bytes}`, data);
      const digest = await workers(1000).hashFile(path);
      expect(digest).toEqual(await new Sha1ChunkHasher(1000, { workerThresholdBytes: Infinity }).hashFile(path));
      expect(digest.size).toBe(bytes);
      expect(digest.chunkHashes).toHaveLength(Math.ceil(bytes / 1000));
    });

    it('rejects a path that does not exist', async () => {
      await expect(workers().hashFile(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
    });
  });

  it('rejects a path that does not exist', async () => {
    await expect(hasher.hashFile(join(dir, 'nope'))).rejects.toThrow(/ENOENT/);
  });
});
