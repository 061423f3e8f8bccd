import { constants } from 'node:fs';
import { FileHandle, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { DownloadError } from './download.errors';

const errorCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** The file a chunk record belongs to: a `.part` of any other file is not resumed. */
export interface RecordedFile {
  /** Hex SHA-1 of the whole file, lower case. */
  readonly fileHash: string;
  readonly fileSize: number;
  readonly chunkCount: number;
  readonly chunkSize: number;
}

const MAGIC = 'p2p-share-chunks';
const VERSION = 1;
/** A header longer than this is not one of ours (and the read of it stays small). */
const MAX_HEADER_BYTES = 256;

/** `<dest>.part` and `<dest>.part.chunks`: the record lives beside the `.part` it describes. */
export const recordPathOf = (destPath: string): string => `${destPath}.part.chunks`;

export const describeRecordedFile = (f: RecordedFile): string =>
  `SHA-1 ${f.fileHash}, ${f.fileSize} bytes, ${f.chunkCount} chunks of ${f.chunkSize}`;

export const sameRecordedFile = (a: RecordedFile, b: RecordedFile): boolean =>
  a.fileHash.toLowerCase() === b.fileHash.toLowerCase() &&
  a.fileSize === b.fileSize &&
  a.chunkCount === b.chunkCount &&
  a.chunkSize === b.chunkSize;

export interface RecordContents {
  readonly file: RecordedFile;
  /** Chunks listed, in the order they were recorded (duplicates possible: a chunk fetched again). */
  readonly chunks: readonly number[];
  /** Bytes of the record up to the end of its last whole entry: what follows is a torn write, cut off on append. */
  readonly validBytes: number;
}

/**
 * The crash-safe list of the chunks of a download that are verified and on
 * disk: `<dest>.part.chunks`, next to the `.part` it describes (so that it
 * moves, is found and is removed with it, by whichever client downloads to
 * that destination). An append-only text log:
 *
 *     p2p-share-chunks 1 <file sha1> <file size> <chunk count> <chunk size>\n
 *     <chunk index>\n
 *     ...
 *
 * The header is written and synced, with the folder, before the `.part`
 * exists. Entries are appended in batches, each one `write` followed by
 * `fdatasync`, and only for chunks whose bytes in the `.part` were synced
 * first (see `DurableChunks`). A crash can only tear the last batch: reading
 * stops at the first entry that is not a whole line of digits naming a chunk
 * of the file, and the next append first cuts that tail off. Whoever resumes
 * checks every listed chunk's SHA-1 against the `.part` anyway.
 */
export class ChunkRecord {
  private constructor(
    readonly path: string,
    private handle: FileHandle | undefined,
    private length: number,
  ) {}

  /** Creates the record (never replacing a file), with its header, synced to disk with its folder entry. */
  static async create(path: string, file: RecordedFile): Promise<ChunkRecord> {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644);
    } catch (err) {
      if (errorCode(err) === 'EEXIST') throw new DownloadError(`${path} already exists; not overwriting it`);
      throw new DownloadError(`cannot create ${path}: ${errorText(err)}`);
    }
    const header = Buffer.from(
      `${MAGIC} ${VERSION} ${file.fileHash.toLowerCase()} ${file.fileSize} ${file.chunkCount} ${file.chunkSize}\n`,
    );
    try {
      await writeAll(handle, header, 0);
      await handle.sync();
    } catch (err) {
      await handle.close().catch(() => undefined);
      await unlink(path).catch(() => undefined);
      throw new DownloadError(`cannot write ${path}: ${errorText(err)}`);
    }
    await syncDir(dirname(path));
    return new ChunkRecord(path, handle, header.length);
  }

  /**
   * Reads a record: undefined when there is none; a `DownloadError` when it
   * is not a chunk record (no whole header of ours).
   */
  static async read(path: string): Promise<RecordContents | undefined> {
    let text: string;
    try {
      const handle = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
      try {
        text = (await handle.readFile()).toString('latin1');
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (errorCode(err) === 'ENOENT') return undefined;
      throw new DownloadError(`cannot read ${path}: ${errorText(err)}`);
    }
    return parseRecord(path, text);
  }

  /** Opens an existing record to append to, first cutting off anything past `validBytes` (a torn last batch). */
  static async reopen(path: string, validBytes: number): Promise<ChunkRecord> {
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
      await handle.truncate(validBytes);
    } catch (err) {
      throw new DownloadError(`cannot open ${path}: ${errorText(err)}`);
    }
    return new ChunkRecord(path, handle, validBytes);
  }

  /** Appends the chunk indexes as one write, then syncs it. */
  async append(indexes: readonly number[]): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new DownloadError(`${this.path} is closed`);
    if (indexes.length === 0) return;
    const entries = Buffer.from(indexes.map((i) => `${i}\n`).join(''), 'latin1');
    await writeAll(handle, entries, this.length);
    this.length += entries.length;
    await handle.datasync();
  }

  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    await handle?.close().catch(() => undefined);
  }

  /** Closes and deletes the record; never throws. */
  async remove(): Promise<void> {
    await this.close();
    await unlink(this.path).catch(() => undefined);
  }
}

/** The contents of a record's text; see `ChunkRecord`. */
export function parseRecord(path: string, text: string): RecordContents {
  const headerEnd = text.indexOf('\n');
  if (headerEnd < 0 || headerEnd > MAX_HEADER_BYTES) {
    throw new DownloadError(`${path} is not a chunk record (no header line)`);
  }
  const m = /^(\S+) (\d+) ([0-9a-f]{40}) (\d+) (\d+) (\d+)$/.exec(text.slice(0, headerEnd));
  if (!m || m[1] !== MAGIC) throw new DownloadError(`${path} is not a chunk record (bad header)`);
  if (Number(m[2]) !== VERSION) throw new DownloadError(`${path} is a chunk record of unknown version ${m[2]}`);
  const file: RecordedFile = {
    fileHash: m[3],
    fileSize: Number(m[4]),
    chunkCount: Number(m[5]),
    chunkSize: Number(m[6]),
  };
  if (![file.fileSize, file.chunkCount, file.chunkSize].every(Number.isSafeInteger)) {
    throw new DownloadError(`${path} is not a chunk record (bad header)`);
  }
  const chunks: number[] = [];
  let at = headerEnd + 1;
  for (let end = text.indexOf('\n', at); end >= 0; end = text.indexOf('\n', at)) {
    const entry = text.slice(at, end);
    if (!/^\d{1,15}$/.test(entry) || Number(entry) >= file.chunkCount) break; // torn or garbled: the end
    chunks.push(Number(entry));
    at = end + 1;
  }
  return { file, chunks, validBytes: at };
}

/** Batches: chunks are recorded once this many are waiting, or this long after the first of them was written. */
export const DEFAULT_RECORD_EVERY_CHUNKS = 64;
export const DEFAULT_RECORD_EVERY_MS = 2_000;

export interface DurableChunksOptions {
  readonly everyChunks?: number;
  readonly everyMs?: number;
}

/**
 * Feeds a `ChunkRecord` with written chunks, batched: every `everyChunks`
 * chunks or `everyMs` after the first waiting one, it syncs the `.part`'s
 * data (`fdatasync` through its own handle, so it also works after the
 * download closed its own) and only then appends the batch. One batch at a
 * time. Should a sync or an append fail, nothing more is recorded (the
 * chunks after it are fetched again by a later resume) and `failure` says why.
 */
export class DurableChunks {
  private readonly everyChunks: number;
  private readonly everyMs: number;
  private waiting: number[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private failed: string | undefined;
  private recorded = 0;

  private constructor(
    private readonly record: ChunkRecord,
    private readonly part: FileHandle,
    options: DurableChunksOptions,
  ) {
    this.everyChunks = Math.max(1, options.everyChunks ?? DEFAULT_RECORD_EVERY_CHUNKS);
    this.everyMs = options.everyMs ?? DEFAULT_RECORD_EVERY_MS;
  }

  static async open(record: ChunkRecord, partPath: string, options: DurableChunksOptions = {}): Promise<DurableChunks> {
    let part: FileHandle;
    try {
      part = await open(partPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      throw new DownloadError(`cannot open ${partPath}: ${errorText(err)}`);
    }
    return new DurableChunks(record, part, options);
  }

  /** Chunks appended to the record so far. */
  get recordedCount(): number {
    return this.recorded;
  }

  /** Why recording stopped, if it did. */
  get failure(): string | undefined {
    return this.failed;
  }

  /** Chunk `index` is verified and written (not yet synced) into the `.part`. */
  written(index: number): void {
    if (this.failed) return;
    this.waiting.push(index);
    if (this.waiting.length >= this.everyChunks) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.everyMs).unref();
  }

  /** Records whatever is waiting now; resolves once it and every earlier batch are recorded (or failed). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.waiting;
    this.waiting = [];
    if (batch.length > 0) {
      this.running = this.running.then(async () => {
        if (this.failed) return;
        try {
          await this.part.datasync();
          await this.record.append(batch);
          this.recorded += batch.length;
        } catch (err) {
          this.failed = `cannot record chunks in ${this.record.path}: ${errorText(err)}`;
        }
      });
    }
    return this.running;
  }

  /** Records what is waiting and closes both handles (the record stays). */
  async close(): Promise<void> {
    await this.flush();
    await this.part.close().catch(() => undefined);
    await this.record.close();
  }
}

async function writeAll(handle: FileHandle, data: Buffer, offset: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

/** Makes a new folder entry durable; best effort (not every platform can open a folder). */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY);
    await handle.sync().finally(() => handle.close());
  } catch {
    // the record's contents are synced already
  }
}
