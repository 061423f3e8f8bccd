import { CHUNK_SIZE, planChunks } from '@app/chunking';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { readdirSync, renameSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PartialShare, PartialShareInit, PartialShares } from './partial-shares';
import { InvalidShareError, NotShareableError } from './seeding.errors';
import { sha1, TempDirs } from './testing/seeding.fixtures';

const openFds = () => readdirSync('/proc/self/fd').length;

describe(PartialShares.name, () => {
  const temp = new TempDirs();
  let shares: PartialShares;
  let dir: string;
  /** The whole file: 2 full chunks and a short third. */
  let data: Buffer;
  let partPath: string;

  const init = (overrides: Partial<PartialShareInit> = {}): PartialShareInit => ({
    groupId: 'g1',
    userId: 'bob',
    fileName: 'big.bin',
    fileHash: sha1(data),
    size: data.length,
    chunkCount: planChunks(data.length).count,
    partPath,
    ...overrides,
  });
  const chunkOf = (i: number) => data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE);
  const read = async (share: PartialShare, i: number) => {
    const buf = Buffer.alloc(chunkOf(i).length);
    return { result: await share.read(i, buf), buf };
  };

  beforeEach(() => {
    shares = new PartialShares();
    dir = temp.make();
    data = randomBytes(2 * CHUNK_SIZE + 777);
    partPath = join(dir, 'big.bin.part');
    // a .part as a download writes it: full length, chunks not yet fetched left as zeros
    writeFileSync(partPath, Buffer.concat([chunkOf(0), Buffer.alloc(data.length - CHUNK_SIZE)]));
  });
  afterEach(async () => {
    jest.restoreAllMocks();
    await shares.closeAll();
    temp.cleanup();
  });

  it('finds an open share by what a capability names, and no more once it is closed', async () => {
    const share = shares.open(init({ fileHash: sha1(data).toUpperCase() }));
    expect(shares.find('g1', sha1(data), 'bob')).toBe(share);
    expect(shares.find('g1', sha1(data).toUpperCase(), 'bob')).toBe(share);
    expect(shares.find('g2', sha1(data), 'bob')).toBeUndefined();
    expect(shares.find('g1', sha1(data), 'alice')).toBeUndefined();
    expect(shares.find('g1', 'b'.repeat(40), 'bob')).toBeUndefined();
    expect(shares.list()).toEqual([share]);
    await share.close();
    expect(share.closed).toBe(true);
    expect(shares.find('g1', sha1(data), 'bob')).toBeUndefined();
    expect(shares.list()).toEqual([]);
  });

  it('keeps which chunks are held, starting from those present in a resumed .part', () => {
    const share = shares.open(init({ present: [2] }));
    expect([...share.bits()]).toEqual([0, 0, 1]);
    share.held(0);
    share.held(0);
    expect([...share.bits()]).toEqual([1, 0, 1]);
    expect(share.heldCount).toBe(2);
    expect(share.has(0) && !share.has(1) && share.has(2) && !share.has(3) && !share.has(-1)).toBe(true);
    // bits() is a copy
    share.bits()[1] = 1;
    expect(share.has(1)).toBe(false);
  });

  it('tells listeners of each chunk held once, until they unsubscribe', () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const share = shares.open(init());
    const heard: string[] = [];
    const stopA = share.onHeld((i) => heard.push(`a${i}`));
    share.onHeld((i) => heard.push(`b${i}`));
    share.onHeld(() => {
      throw new Error('a broken listener does not stop the others');
    });
    share.held(1);
    share.held(1);
    stopA();
    share.held(0);
    expect(heard).toEqual(['a1', 'b1', 'b0']);
    expect(logged).toHaveBeenCalledTimes(2);
  });

  it('drops every listener on close and ignores chunks held afterwards', async () => {
    const share = shares.open(init());
    const heard: number[] = [];
    share.onHeld((i) => heard.push(i));
    expect(share.listenerCount).toBe(1);
    await share.close();
    expect(share.listenerCount).toBe(0);
    share.held(1);
    share.onHeld((i) => heard.push(i));
    expect(share.listenerCount).toBe(0);
    expect(heard).toEqual([]);
  });

  it('reads a chunk from the .part, checks it is whole, and goes on reading after a rename', async () => {
    const share = shares.open(init({ present: [0] }));
    const first = await read(share, 0);
    expect(first.result).toEqual({ ok: true });
    expect(first.buf.equals(chunkOf(0))).toBe(true);

    // the download completes: the .part gets its final name, the last chunks written before
    writeFileSync(partPath, data);
    renameSync(partPath, join(dir, 'big.bin'));
    const last = await read(share, 2);
    expect(last.result).toEqual({ ok: true });
    expect(last.buf.equals(chunkOf(2))).toBe(true);
  });

  it('says when the .part holds fewer bytes than the chunk', async () => {
    writeFileSync(partPath, chunkOf(0).subarray(0, 1000));
    const share = shares.open(init());
    expect((await read(share, 0)).result).toEqual({ ok: false, why: 'short' });
    expect((await read(share, 2)).result).toEqual({ ok: false, why: 'short' });
  });

  it('closes the .part fd on close, only after the reads in progress end', async () => {
    const before = openFds();
    const share = shares.open(init({ present: [0, 1] }));
    expect(openFds()).toBe(before + 1);
    const reads = [read(share, 0), read(share, 1)];
    const closed = share.close();
    const [a, b] = await Promise.all(reads);
    expect(a.result).toEqual({ ok: true });
    expect(a.buf.equals(chunkOf(0))).toBe(true);
    expect(b.result).toEqual({ ok: true });
    await closed;
    expect(openFds()).toBe(before);
    expect((await read(share, 0)).result).toEqual({ ok: false, why: 'closed' });
    await share.close();
  });

  it('serves several downloads of one file, the oldest found first', async () => {
    const otherPart = join(dir, 'copy.bin.part');
    writeFileSync(otherPart, '');
    const first = shares.open(init());
    const second = shares.open(init({ fileName: 'copy.bin', partPath: otherPart }));
    expect(shares.find('g1', sha1(data), 'bob')).toBe(first);
    await first.close();
    expect(shares.find('g1', sha1(data), 'bob')).toBe(second);
  });

  it.each<[string, Partial<PartialShareInit>]>([
    ['an empty group', { groupId: '' }],
    ['an empty user', { userId: '' }],
    ['an empty file name', { fileName: '' }],
    ['a bad hash', { fileHash: 'xyz' }],
    ['a negative size', { size: -1 }],
    ['a chunk count that does not match the size', { chunkCount: 2 }],
    ['a relative .part path', { partPath: 'big.bin.part' }],
    ['a present chunk past the end', { present: [3] }],
    ['a present chunk that is no index', { present: [0.5] }],
  ])('refuses %s, opening nothing', (_, overrides) => {
    const before = openFds();
    expect(() => shares.open(init(overrides))).toThrow(InvalidShareError);
    expect(openFds()).toBe(before);
    expect(shares.list()).toEqual([]);
  });

  it('refuses a .part that is missing, a symlink or not a regular file', () => {
    const before = openFds();
    expect(() => shares.open(init({ partPath: join(dir, 'missing.part') }))).toThrow(
      new NotShareableError(`cannot open ${join(dir, 'missing.part')} to serve it (ENOENT)`),
    );
    const link = join(dir, 'link.part');
    symlinkSync(partPath, link);
    expect(() => shares.open(init({ partPath: link }))).toThrow(NotShareableError);
    expect(() => shares.open(init({ partPath: dir }))).toThrow(NotShareableError);
    const fifo = join(dir, 'fifo.part');
    execFileSync('mkfifo', [fifo]);
    expect(() => shares.open(init({ partPath: fifo }))).toThrow(`${fifo} is not a regular file`);
    unlinkSync(fifo);
    expect(openFds()).toBe(before);
    expect(shares.list()).toEqual([]);
  });

  it('refuses to hold a chunk outside the file', () => {
    const share = shares.open(init());
    expect(() => share.held(3)).toThrow(RangeError);
    expect(() => share.held(-1)).toThrow(RangeError);
    expect(share.heldCount).toBe(0);
  });

  it('is provided by Nest and closes every share on shutdown', async () => {
    const moduleRef = await Test.createTestingModule({ providers: [PartialShares] }).compile();
    const app = await moduleRef.init();
    const before = openFds();
    const share = app.get(PartialShares).open(init());
    await app.close();
    expect(share.closed).toBe(true);
    expect(openFds()).toBe(before);
  });
});
