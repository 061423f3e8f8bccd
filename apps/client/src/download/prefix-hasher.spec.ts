import { createHash, randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrefixHasher } from './prefix-hasher';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

describe(PrefixHasher.name, () => {
  const CHUNK = 1024 * 1024;
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'prefix-hasher-'));
    path = join(dir, 'f.part');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes `data` chunk by chunk in `order`, telling the hasher after each write. */
  function writeInOrder(hasher: PrefixHasher, data: Buffer, order: number[]): void {
    const fd = openSync(path, 'r+');
    for (const i of order) {
      const part = data.subarray(i * CHUNK, (i + 1) * CHUNK);
      writeSync(fd, part, 0, part.length, i * CHUNK);
      hasher.chunkWritten(i);
    }
    closeSync(fd);
  }

  function sizedFile(size: number): void {
    const fd = openSync(path, 'w');
    if (size > 0) writeSync(fd, Buffer.alloc(1), 0, 1, size - 1);
    closeSync(fd);
  }

  it.each([
    ['in order', (n: number) => Array.from({ length: n }, (_, i) => i)],
    ['backwards', (n: number) => Array.from({ length: n }, (_, i) => n - 1 - i)],
    ['shuffled', (n: number) => Array.from({ length: n }, (_, i) => i).sort(() => Math.random() - 0.5)],
  ])('gives the SHA-1 of the whole file with chunks written %s', async (_how, order) => {
    const data = randomBytes(20 * CHUNK + 12_345);
    sizedFile(data.length);
    const progress: number[] = [];
    const hasher = new PrefixHasher(path, data.length, CHUNK, (b) => progress.push(b));
    writeInOrder(hasher, data, order(21));
    await expect(hasher.finish()).resolves.toEqual({ fileHash: sha1(data), size: data.length });
    expect(progress[progress.length - 1]).toBe(data.length);
  });

  it('hashes what is on disk: a chunk changed after it was written shows in the digest', async () => {
    const data = randomBytes(8 * CHUNK);
    sizedFile(data.length);
    const hasher = new PrefixHasher(path, data.length, CHUNK);
    writeInOrder(hasher, data, [0, 1, 2, 3, 4, 5, 6, 7]);
    const fd = openSync(path, 'r+');
    writeSync(fd, Buffer.from('x'), 0, 1, 7 * CHUNK + 5); // the tail is hashed after this
    closeSync(fd);
    const { fileHash } = await hasher.finish();
    expect(fileHash).not.toBe(sha1(data));
  });

  it('reports the real size of a file longer than expected', async () => {
    const data = randomBytes(6 * CHUNK);
    sizedFile(data.length + 10);
    const hasher = new PrefixHasher(path, data.length, CHUNK);
    writeInOrder(hasher, data, [0, 1, 2, 3, 4, 5]);
    expect((await hasher.finish()).size).toBe(data.length + 1);
  });

  it('rejects when the file is shorter than expected', async () => {
    sizedFile(3 * CHUNK);
    const hasher = new PrefixHasher(path, 6 * CHUNK, CHUNK);
    await expect(hasher.finish()).rejects.toThrow(/ended at byte/);
  });

  it('rejects when its file cannot be opened', async () => {
    const hasher = new PrefixHasher(join(dir, 'missing'), 6 * CHUNK, CHUNK);
    await expect(hasher.finish()).rejects.toThrow(/ENOENT/);
  });

  it('stops when closed: finish then rejects', async () => {
    sizedFile(4 * CHUNK);
    const hasher = new PrefixHasher(path, 4 * CHUNK, CHUNK);
    hasher.close();
    await expect(hasher.finish()).rejects.toThrow(/stopped/);
  });
});
