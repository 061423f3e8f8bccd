import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { DownloadError } from './download.errors';
import { MAX_WRITES_IN_FLIGHT, PartFile } from './part-file';

const CHUNK = 64 * 1024;

describe(PartFile.name, () => {
  let dir: string;
  let dest: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'part-file-'));
    dest = join(dir, 'movie.mkv');
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Counts `FileHandle.write` calls, and those running at once (every FileHandle shares one prototype); the calls
   * numbered in `failing` (from 1) fail with EIO instead.
   */
  async function spyOnWrites(failing: number[] = []): Promise<{ peak: () => number; calls: () => number }> {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the handle as `this`
    const original = proto.write;
    let running = 0;
    let peak = 0;
    let calls = 0;
    jest.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      const call = ++calls;
      peak = Math.max(peak, ++running);
      try {
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (failing.includes(call)) throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
        return await (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
      } finally {
        running--;
      }
    } as typeof proto.write);
    return { peak: () => peak, calls: () => calls };
  }

  it(`runs at most ${MAX_WRITES_IN_FLIGHT} writes at once and lands every one at its offset`, async () => {
    const data = randomBytes(CHUNK * 12 + 1234);
    const part = await PartFile.create(dest, data.length);
    const writes = await spyOnWrites();
    // all twelve chunks and the short last one at once, out of order
    const order = [5, 0, 12, 3, 11, 1, 7, 2, 9, 4, 10, 6, 8];
    await Promise.all(order.map((i) => part.write(data.subarray(i * CHUNK, (i + 1) * CHUNK), i * CHUNK)));
    expect(writes.calls()).toBe(order.length);
    expect(writes.peak()).toBe(MAX_WRITES_IN_FLIGHT);
    await part.commit();
    expect(readFileSync(dest).equals(data)).toBe(true);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('a failed write gives its slot to the next one', async () => {
    const data = randomBytes(CHUNK * 4);
    const part = await PartFile.create(dest, data.length);
    const writes = await spyOnWrites([1, 2]);
    const results = await Promise.allSettled(
      [0, 1, 2, 3].map((i) => part.write(data.subarray(i * CHUNK, (i + 1) * CHUNK), i * CHUNK)),
    );
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'fulfilled', 'fulfilled']);
    expect(writes.calls()).toBe(4);
    expect(writes.peak()).toBe(MAX_WRITES_IN_FLIGHT);
    await part.discard();
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('writes queued behind a discard fail as closed and leave nothing behind', async () => {
    const part = await PartFile.create(dest, CHUNK * 4);
    const chunk = randomBytes(CHUNK);
    const settled = Promise.allSettled([0, 1, 2, 3].map((i) => part.write(chunk, i * CHUNK)));
    await part.discard();
    const results = await settled;
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(Error);
    expect(results.some((r) => r.status === 'rejected' && r.reason instanceof DownloadError)).toBe(true);
    expect(existsSync(`${dest}.part`)).toBe(false);
    expect(existsSync(dest)).toBe(false);
  });

  /** Whether files in `dir` can be opened with O_DIRECT here (Linux, and a file system that takes it). */
  function directIoWorks(): boolean {
    const O_DIRECT = (constants as { O_DIRECT?: number }).O_DIRECT;
    if (!O_DIRECT) return false;
    try {
      closeSync(openSync(join(dir, 'probe-direct'), constants.O_WRONLY | constants.O_CREAT | O_DIRECT, 0o644));
      return true;
    } catch {
      return false;
    } finally {
      rmSync(join(dir, 'probe-direct'), { force: true });
    }
  }

  /** `data` cut into CHUNK-sized pieces, each copied into a buffer from `pool`. */
  const pooled = (pool: ChunkBufferPool, data: Buffer) =>
    Array.from({ length: Math.ceil(data.length / CHUNK) }, (_, i) => {
      const piece = data.subarray(i * CHUNK, (i + 1) * CHUNK);
      const buf = pool.acquire(piece.length);
      piece.copy(buf);
      return buf;
    });

  it('writes whole chunks in aligned memory straight to disk, a short last chunk through the page cache', async () => {
    const data = randomBytes(CHUNK * 5 + 1234);
    const part = await PartFile.create(dest, data.length);
    const bufs = pooled(new ChunkBufferPool(CHUNK, 8), data);
    const direct = await Promise.all([3, 0, 5, 1, 4, 2].map((i) => part.write(bufs[i], i * CHUNK)));
    const expected = directIoWorks();
    expect(direct).toEqual([3, 0, 5, 1, 4, 2].map((i) => expected && i < 5));
    expect(part.bytesWrittenDirect).toBe(expected ? CHUNK * 5 : 0);
    await part.commit();
    expect(readFileSync(dest).equals(data)).toBe(true);
  });

  it('with direct I/O off, every write goes through the page cache', async () => {
    const data = randomBytes(CHUNK * 3);
    const part = await PartFile.create(dest, data.length, { directIo: false });
    const bufs = pooled(new ChunkBufferPool(CHUNK, 8), data);
    expect(await Promise.all(bufs.map((buf, i) => part.write(buf, i * CHUNK)))).toEqual([false, false, false]);
    expect(part.bytesWrittenDirect).toBe(0);
    await part.commit();
    expect(readFileSync(dest).equals(data)).toBe(true);
  });

  it('a direct write that fails (EINVAL) is written through the page cache, and so is every later one', async () => {
    const data = randomBytes(CHUNK * 4);
    const part = await PartFile.create(dest, data.length);
    const bufs = pooled(new ChunkBufferPool(CHUNK, 8), data);
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    // eslint-disable-next-line @typescript-eslint/unbound-method -- called below with the handle as `this`
    const original = proto.write;
    let calls = 0;
    jest.spyOn(proto, 'write').mockImplementation(async function (this: FileHandle, ...args: unknown[]) {
      if (++calls === 1) throw Object.assign(new Error('EINVAL: invalid argument, write'), { code: 'EINVAL' });
      return (original as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    } as typeof proto.write);
    const results = [];
    for (const [i, buf] of bufs.entries()) results.push(await part.write(buf, i * CHUNK));
    expect(results).toEqual([false, false, false, false]);
    expect(part.bytesWrittenDirect).toBe(0);
    expect(calls).toBe(directIoWorks() ? 5 : 4); // the refused direct write, then each chunk once
    await part.commit();
    expect(readFileSync(dest).equals(data)).toBe(true);
  });

  it('never overwrites an existing destination or part file', async () => {
    writeFileSync(dest, 'mine');
    await expect(PartFile.create(dest, 10)).rejects.toThrow(/already exists; not overwriting it/);
    rmSync(dest);
    writeFileSync(`${dest}.part`, 'interrupted');
    await expect(PartFile.create(dest, 10)).rejects.toThrow(/\.part already exists/);
    expect(readFileSync(`${dest}.part`, 'utf8')).toBe('interrupted');
  });

  it('close keeps the .part; reopen continues it and commits the whole file', async () => {
    const data = randomBytes(CHUNK * 4);
    const first = await PartFile.create(dest, data.length);
    await first.write(data.subarray(0, CHUNK * 2), 0);
    await first.close();
    expect(
      readFileSync(`${dest}.part`)
        .subarray(0, CHUNK * 2)
        .equals(data.subarray(0, CHUNK * 2)),
    ).toBe(true);

    const again = await PartFile.reopen(dest, data.length);
    await again.write(data.subarray(CHUNK * 2), CHUNK * 2);
    expect((await again.sha1()).size).toBe(data.length);
    await again.commit();
    expect(readFileSync(dest).equals(data)).toBe(true);
    expect(existsSync(`${dest}.part`)).toBe(false);
  });

  it('reopens only a regular .part of the right size, never creating one or replacing the destination', async () => {
    await expect(PartFile.reopen(dest, 10)).rejects.toThrow(/cannot open .*movie\.mkv\.part/);
    expect(existsSync(`${dest}.part`)).toBe(false);
    writeFileSync(`${dest}.part`, 'short');
    await expect(PartFile.reopen(dest, 10)).rejects.toThrow(/movie\.mkv\.part is 5 bytes, not 10: not this download's/);
    expect(readFileSync(`${dest}.part`, 'utf8')).toBe('short');
    rmSync(`${dest}.part`);
    symlinkSync(join(dir, 'elsewhere'), `${dest}.part`);
    await expect(PartFile.reopen(dest, 10)).rejects.toThrow(/cannot open/);
    rmSync(`${dest}.part`);
    writeFileSync(`${dest}.part`, Buffer.alloc(10));
    writeFileSync(dest, 'mine');
    await expect(PartFile.reopen(dest, 10)).rejects.toThrow(/already exists; not overwriting it/);
    expect(readFileSync(dest, 'utf8')).toBe('mine');
  });
});
