import { Sha1ChunkHasher } from '@app/chunking';
import { FileMetadata } from '@app/protocol';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkRecord } from './chunk-record';
import { DownloadError } from './download.errors';
import { PartResume } from './part-resume';

const CHUNK = 64 * 1024;
const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

function metadataFor(data: Buffer, fileName = 'movie.mkv'): FileMetadata {
  const chunkHashes: string[] = [];
  for (let at = 0; at < data.length; at += CHUNK) chunkHashes.push(sha1(data.subarray(at, at + CHUNK)));
  return { fileName, fileSize: data.length, fileHash: sha1(data), chunkHashes, seeders: [] };
}

describe(PartResume.name, () => {
  const hasher = new Sha1ChunkHasher();
  /** Six chunks, the last one short. */
  const data = randomBytes(CHUNK * 5 + 1000);
  const meta = metadataFor(data);
  const options = { chunkSize: CHUNK, everyChunks: 2, everyMs: 60_000, partFile: { directIo: false } };
  let dir: string;
  let dest: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'part-resume-'));
    dest = join(dir, 'movie.mkv');
  });

  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const chunk = (i: number) => data.subarray(i * CHUNK, (i + 1) * CHUNK);
  const files = () => readdirSync(dir).sort();

  /** A first download that wrote and recorded `chunks`, then stopped (its .part and record kept). */
  async function interrupted(chunks: number[]): Promise<void> {
    const first = await PartResume.prepare(dest, meta, hasher, options);
    expect(first.resuming).toBe(false);
    const { part, present } = await first.open();
    expect(present).toEqual([]);
    for (const i of chunks) {
      await part.write(chunk(i), i * CHUNK);
      first.written(i);
    }
    await part.close();
    await first.end();
  }

  it('starts fresh with a record beside the .part, and resumes the chunks it recorded', async () => {
    await interrupted([0, 1, 4]);
    expect(files()).toEqual(['movie.mkv.part', 'movie.mkv.part.chunks']);

    const again = await PartResume.prepare(dest, meta, hasher, options);
    expect([again.resuming, again.listedCount]).toEqual([true, 3]);
    const { part, present } = await again.open();
    expect(present).toEqual([0, 1, 4]);
    expect([again.checkedCount, again.resumedCount]).toEqual([3, 3]);
    for (const i of [2, 3, 5]) {
      await part.write(chunk(i), i * CHUNK);
      again.written(i);
    }
    await part.commit();
    await again.end();
    expect(readFileSync(dest).equals(data)).toBe(true);
    // the record goes with the .part
    expect(files()).toEqual(['movie.mkv']);
  });

  it('fetches again a recorded chunk whose bytes no longer match (a torn write)', async () => {
    await interrupted([0, 1, 2, 3]);
    const torn = readFileSync(`${dest}.part`);
    torn.fill(0, 2 * CHUNK + 100, 2 * CHUNK + 4096);
    writeFileSync(`${dest}.part`, torn);

    const again = await PartResume.prepare(dest, meta, hasher, options);
    const { part, present } = await again.open();
    expect(present).toEqual([0, 1, 3]);
    expect(again.resumedCount).toBe(3);
    await part.close();
    await again.end();
  });

  it('refuses a .part of another file, naming both, and changes nothing', async () => {
    await interrupted([0, 1]);
    const before = { part: readFileSync(`${dest}.part`), record: readFileSync(`${dest}.part.chunks`) };
    const other = metadataFor(randomBytes(CHUNK * 2), 'movie.mkv');
    const refusal = PartResume.prepare(dest, other, hasher, options);
    await expect(refusal).rejects.toThrow(DownloadError);
    await expect(refusal).rejects.toThrow(
      `${dest}.part belongs to another file (SHA-1 ${meta.fileHash}, ${data.length} bytes, 6 chunks of ${CHUNK}), ` +
        `not to movie.mkv (SHA-1 ${other.fileHash}, ${CHUNK * 2} bytes, 2 chunks of ${CHUNK}); not touching it`,
    );
    expect(readFileSync(`${dest}.part`).equals(before.part)).toBe(true);
    expect(readFileSync(`${dest}.part.chunks`).equals(before.record)).toBe(true);
  });

  it('refuses a .part with no record, or with a record that is not one, and changes nothing', async () => {
    writeFileSync(`${dest}.part`, 'someone else');
    await expect(PartResume.prepare(dest, meta, hasher, options)).rejects.toThrow(
      `${dest}.part exists with no chunk record (${dest}.part.chunks); not touching it: remove it`,
    );
    writeFileSync(`${dest}.part.chunks`, 'hello\n');
    await expect(PartResume.prepare(dest, meta, hasher, options)).rejects.toThrow(
      `cannot tell what ${dest}.part holds: ${dest}.part.chunks is not a chunk record (bad header)`,
    );
    expect(readFileSync(`${dest}.part`, 'utf8')).toBe('someone else');
    expect(readFileSync(`${dest}.part.chunks`, 'utf8')).toBe('hello\n');
  });

  it('replaces a record whose .part is gone (a crash before the .part was made)', async () => {
    const stale = { fileHash: 'a'.repeat(40), fileSize: 1, chunkCount: 1, chunkSize: CHUNK };
    await (await ChunkRecord.create(`${dest}.part.chunks`, stale)).close();
    const fresh = await PartResume.prepare(dest, meta, hasher, options);
    expect(fresh.resuming).toBe(false);
    const { part } = await fresh.open();
    await part.close();
    await fresh.end();
    expect((await ChunkRecord.read(`${dest}.part.chunks`))!.file.fileHash).toBe(meta.fileHash);
  });

  it('discard deletes the .part and its record', async () => {
    await interrupted([0]);
    const again = await PartResume.prepare(dest, meta, hasher, options);
    const { part } = await again.open();
    await part.close();
    await again.discard();
    expect(files()).toEqual([]);
    expect(existsSync(dest)).toBe(false);
  });
});
