import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { FileHandle, open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkRecord, DurableChunks, parseRecord, RecordedFile } from './chunk-record';
import { DownloadError } from './download.errors';

const FILE: RecordedFile = { fileHash: 'ab'.repeat(20), fileSize: 5_000_000, chunkCount: 10, chunkSize: 524_288 };
const HEADER = `p2p-share-chunks 1 ${'ab'.repeat(20)} 5000000 10 524288\n`;

/** Resolves once `check` holds (polled), failing after `timeoutMs`. */
async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

describe(ChunkRecord.name, () => {
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'chunk-record-'));
    path = join(dir, 'movie.mkv.part.chunks');
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('writes a header naming the file, appends entries and reads them back', async () => {
    await expect(ChunkRecord.read(path)).resolves.toBeUndefined();
    const record = await ChunkRecord.create(path, { ...FILE, fileHash: FILE.fileHash.toUpperCase() });
    expect(readFileSync(path, 'latin1')).toBe(HEADER);
    await record.append([3, 0, 9]);
    await record.append([]);
    await record.append([4]);
    await record.close();
    expect(readFileSync(path, 'latin1')).toBe(`${HEADER}3\n0\n9\n4\n`);
    await expect(ChunkRecord.read(path)).resolves.toEqual({
      file: FILE,
      chunks: [3, 0, 9, 4],
      validBytes: HEADER.length + 8,
    });
  });

  it('never replaces an existing file', async () => {
    writeFileSync(path, 'mine');
    await expect(ChunkRecord.create(path, FILE)).rejects.toThrow(
      new DownloadError(`${path} already exists; not overwriting it`),
    );
    expect(readFileSync(path, 'utf8')).toBe('mine');
  });

  it.each([
    ['a torn last entry', '5\n7\n1'],
    ['a torn entry then zeros (a crash after the file grew)', '5\n7\n1\0\0\0\0'],
    ['garbage', '5\n7\nx9\n2\n'],
    ['an index outside the file', '5\n7\n10\n2\n'],
    ['an empty line', '5\n7\n\n2\n'],
  ])('reads up to %s, and the next append cuts it off', async (_, tail) => {
    writeFileSync(path, HEADER + tail, 'latin1');
    const found = (await ChunkRecord.read(path))!;
    expect(found.chunks).toEqual([5, 7]);
    expect(found.validBytes).toBe(HEADER.length + 4);

    const record = await ChunkRecord.reopen(path, found.validBytes);
    await record.append([8]);
    await record.close();
    expect(readFileSync(path, 'latin1')).toBe(`${HEADER}5\n7\n8\n`);
    expect((await ChunkRecord.read(path))!.chunks).toEqual([5, 7, 8]);
  });

  it.each([
    ['an empty file', '', 'no header line'],
    ['a torn header', HEADER.slice(0, 30), 'no header line'],
    ['a huge first line', 'p'.repeat(1000) + '\n', 'no header line'],
    ['another magic', HEADER.replace('p2p-share-chunks', 'something-else'), 'bad header'],
    ['a hash that is not SHA-1', HEADER.replace('ab'.repeat(20), 'xyz'), 'bad header'],
  ])('refuses %s as not a chunk record', (_, text, why) => {
    expect(() => parseRecord(path, text)).toThrow(new DownloadError(`${path} is not a chunk record (${why})`));
  });

  it('refuses a record of an unknown version', () => {
    expect(() => parseRecord(path, HEADER.replace(' 1 ', ' 2 '))).toThrow(/of unknown version 2/);
  });
});

describe(DurableChunks.name, () => {
  let dir: string;
  let partPath: string;
  let recordPath: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'durable-chunks-'));
    partPath = join(dir, 'movie.mkv.part');
    recordPath = `${partPath}.chunks`;
    writeFileSync(partPath, Buffer.alloc(1000));
  });

  afterEach(() => {
    jest.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  const listed = () => parseRecord(recordPath, readFileSync(recordPath, 'latin1')).chunks;

  /** Logs every datasync and write of every FileHandle (they share one prototype), in order. */
  async function spyOnDisk(failSync = false): Promise<string[]> {
    const probe = await open(join(dir, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as FileHandle;
    await probe.close();
    const log: string[] = [];
    /* eslint-disable @typescript-eslint/unbound-method -- called below with the handle as `this` */
    const datasync = proto.datasync;
    const write = proto.write;
    /* eslint-enable @typescript-eslint/unbound-method */
    jest.spyOn(proto, 'datasync').mockImplementation(function (this: FileHandle) {
      log.push('datasync');
      if (failSync) return Promise.reject(Object.assign(new Error('EIO: i/o error, fsync'), { code: 'EIO' }));
      return datasync.call(this);
    });
    jest.spyOn(proto, 'write').mockImplementation(function (this: FileHandle, ...args: unknown[]) {
      log.push('write');
      return (write as (...a: unknown[]) => Promise<unknown>).apply(this, args);
    } as typeof proto.write);
    return log;
  }

  it('records a batch once it is full, syncing the .part first, and the rest on close', async () => {
    const durable = await DurableChunks.open(await ChunkRecord.create(recordPath, FILE), partPath, {
      everyChunks: 3,
      everyMs: 60_000,
    });
    const log = await spyOnDisk();
    durable.written(4);
    durable.written(1);
    // two of three: nothing is even scheduled yet
    expect([durable.recordedCount, listed()]).toEqual([0, []]);
    durable.written(7);
    await eventually(() => durable.recordedCount === 3);
    expect(listed()).toEqual([4, 1, 7]);
    // the .part's data is synced before the record says anything about it; then the record itself
    expect(log).toEqual(['datasync', 'write', 'datasync']);

    durable.written(2);
    await durable.close();
    expect(listed()).toEqual([4, 1, 7, 2]);
    expect(durable.failure).toBeUndefined();
  });

  it('records a batch that is not full after everyMs', async () => {
    const durable = await DurableChunks.open(await ChunkRecord.create(recordPath, FILE), partPath, {
      everyChunks: 100,
      everyMs: 10,
    });
    durable.written(5);
    await eventually(() => durable.recordedCount === 1);
    expect(listed()).toEqual([5]);
    await durable.close();
  });

  it('records nothing more once syncing the .part fails, and says why', async () => {
    const durable = await DurableChunks.open(await ChunkRecord.create(recordPath, FILE), partPath, {
      everyChunks: 1,
    });
    await spyOnDisk(true);
    durable.written(3);
    await durable.flush();
    jest.restoreAllMocks();
    durable.written(4);
    await durable.close();
    expect(listed()).toEqual([]);
    expect(durable.failure).toMatch(/^cannot record chunks in .*movie\.mkv\.part\.chunks: EIO/);
  });

  it('keeps recording after the download closed the .part, through its own handle', async () => {
    const durable = await DurableChunks.open(await ChunkRecord.create(recordPath, FILE), partPath);
    durable.written(0);
    appendFileSync(partPath, 'x'); // the writer is elsewhere; this handle is ours
    await durable.close();
    expect(listed()).toEqual([0]);
  });
});
