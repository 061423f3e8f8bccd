import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it('never overwrites an existing destination or part file', async () => {
    writeFileSync(dest, 'mine');
    await expect(PartFile.create(dest, 10)).rejects.toThrow(/already exists; not overwriting it/);
    rmSync(dest);
    writeFileSync(`${dest}.part`, 'interrupted');
    await expect(PartFile.create(dest, 10)).rejects.toThrow(/\.part already exists/);
    expect(readFileSync(`${dest}.part`, 'utf8')).toBe('interrupted');
  });
});
