import { ChunkHasher, CHUNK_SIZE, planChunks } from '@app/chunking';
import { FileMetadata } from '@app/protocol';
import { constants } from 'node:fs';
import { open, unlink } from 'node:fs/promises';
import {
  ChunkRecord,
  describeRecordedFile,
  DurableChunks,
  DurableChunksOptions,
  RecordContents,
  RecordedFile,
  recordPathOf,
  sameRecordedFile,
} from './chunk-record';
import { DownloadError } from './download.errors';
import { exists, PartFile, PartFileOptions } from './part-file';

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export interface PartResumeOptions extends DurableChunksOptions {
  readonly chunkSize?: number;
  readonly partFile?: PartFileOptions;
}

/** What `open` found: the `.part` to write into and the chunks in it that passed their SHA-1 again. */
export interface OpenedPart {
  readonly part: PartFile;
  readonly present: readonly number[];
}

/**
 * The `.part` and chunk record (`ChunkRecord`) of one download to one
 * destination. `prepare` decides, before anything is written, between a
 * fresh start and a resume, and refuses a `.part` it cannot vouch for: one
 * whose record names another file, one without a record, one whose record is
 * unreadable. `open` (run by the download job) then creates both, or reopens
 * them and re-reads every listed chunk from the `.part`, keeping only those
 * whose SHA-1 still matches; `written` feeds the record as chunks land, and
 * `end` records the last batch and removes the record once its `.part` is
 * gone (committed or discarded).
 */
export class PartResume {
  /** Chunks the record listed (distinct). */
  listedCount = 0;
  /** Listed chunks re-read so far. */
  checkedCount = 0;
  /** Listed chunks that passed their SHA-1 again: not fetched. */
  resumedCount = 0;
  private checking = false;
  private durable: DurableChunks | undefined;

  private constructor(
    readonly destPath: string,
    readonly file: RecordedFile,
    private readonly chunkHashes: readonly string[],
    private readonly hasher: ChunkHasher,
    private readonly options: PartResumeOptions,
    /** The record of the `.part` being resumed; undefined: a fresh start. */
    private readonly found: RecordContents | undefined,
    /** A record with no `.part` beside it (a crash before the `.part` was made, or after it was committed). */
    private readonly stale: boolean,
  ) {
    this.listedCount = found ? new Set(found.chunks).size : 0;
  }

  get partPath(): string {
    return `${this.destPath}.part`;
  }

  get recordPath(): string {
    return recordPathOf(this.destPath);
  }

  /** A `.part` with a matching record is there: chunks listed in it are not fetched again if they check out. */
  get resuming(): boolean {
    return this.found !== undefined;
  }

  /** The listed chunks are being re-read. */
  get isChecking(): boolean {
    return this.checking;
  }

  /** Why chunks stopped being recorded, if they did. */
  get recordFailure(): string | undefined {
    return this.durable?.failure;
  }

  /**
   * Looks at `<dest>.part` and `<dest>.part.chunks` without changing either; throws a `DownloadError` naming both
   * files when the `.part` cannot be resumed for this file.
   */
  static async prepare(
    destPath: string,
    metadata: FileMetadata,
    hasher: ChunkHasher,
    options: PartResumeOptions = {},
  ): Promise<PartResume> {
    const chunkSize = options.chunkSize ?? CHUNK_SIZE;
    const file: RecordedFile = {
      fileHash: metadata.fileHash.toLowerCase(),
      fileSize: metadata.fileSize,
      chunkCount: planChunks(metadata.fileSize, chunkSize).count,
      chunkSize,
    };
    const partPath = `${destPath}.part`;
    const recordPath = recordPathOf(destPath);
    const make = (found: RecordContents | undefined, stale: boolean) =>
      new PartResume(destPath, file, metadata.chunkHashes, hasher, options, found, stale);
    const keep = `not touching it: remove ${partPath} and ${recordPath}, or choose another destination`;
    if (!(await exists(partPath))) return make(undefined, await exists(recordPath));
    let found: RecordContents | undefined;
    try {
      found = await ChunkRecord.read(recordPath);
    } catch (err) {
      throw new DownloadError(`cannot tell what ${partPath} holds: ${errorText(err)}; ${keep}`);
    }
    if (!found) {
      throw new DownloadError(`${partPath} exists with no chunk record (${recordPath}); not touching it: remove it`);
    }
    if (!sameRecordedFile(found.file, file)) {
      throw new DownloadError(
        `${partPath} belongs to another file (${describeRecordedFile(found.file)}), ` +
          `not to ${metadata.fileName} (${describeRecordedFile(file)}); ${keep}`,
      );
    }
    return make(found, false);
  }

  /** Creates or reopens the `.part` and the record; for a resume, re-reads and checks every listed chunk. */
  async open(): Promise<OpenedPart> {
    if (!this.found) return this.openFresh();
    const part = await PartFile.reopen(this.destPath, this.file.fileSize, this.options.partFile);
    try {
      const present = await this.check();
      const record = await ChunkRecord.reopen(this.recordPath, this.found.validBytes);
      this.durable = await DurableChunks.open(record, this.partPath, this.options).catch(async (err: unknown) => {
        await record.close();
        throw err;
      });
      return { part, present };
    } catch (err) {
      await part.close();
      throw err;
    }
  }

  /** Chunk `index` is verified and written into the `.part`: it is recorded once its bytes are synced. */
  written(index: number): void {
    this.durable?.written(index);
  }

  /**
   * The download is over: records what is waiting and closes the record; removes it when its `.part` is gone
   * (the file got its name, or the `.part` was discarded).
   */
  async end(): Promise<void> {
    await this.durable?.close();
    if (!(await exists(this.partPath).catch(() => true))) await unlink(this.recordPath).catch(() => undefined);
  }

  /** Deletes the `.part` and its record (the user asked to discard them); never throws. */
  async discard(): Promise<void> {
    await this.durable?.close();
    await unlink(this.partPath).catch(() => undefined);
    await unlink(this.recordPath).catch(() => undefined);
  }

  private async openFresh(): Promise<OpenedPart> {
    // a record with no .part names nothing on disk: it is replaced
    if (this.stale) await unlink(this.recordPath).catch(() => undefined);
    const record = await ChunkRecord.create(this.recordPath, this.file);
    let part: PartFile;
    try {
      part = await PartFile.create(this.destPath, this.file.fileSize, this.options.partFile);
    } catch (err) {
      await record.remove();
      throw err;
    }
    try {
      this.durable = await DurableChunks.open(record, this.partPath, this.options);
    } catch (err) {
      await part.discard();
      await record.remove();
      throw err;
    }
    return { part, present: [] };
  }

  /** The listed chunks whose bytes in the `.part` still match their SHA-1, read in file order with one buffer. */
  private async check(): Promise<number[]> {
    const listed = [...new Set(this.found!.chunks)].sort((a, b) => a - b);
    const { chunkSize, fileSize } = this.file;
    const present: number[] = [];
    this.checking = true;
    let handle;
    try {
      handle = await open(this.partPath, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (err) {
      this.checking = false;
      throw new DownloadError(`cannot read ${this.partPath}: ${errorText(err)}`);
    }
    try {
      const buf = Buffer.allocUnsafe(Math.min(chunkSize, Math.max(fileSize, 1)));
      for (const index of listed) {
        const offset = index * chunkSize;
        const length = Math.min(chunkSize, fileSize - offset);
        let got = 0;
        while (got < length) {
          const { bytesRead } = await handle.read(buf, got, length - got, offset + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got === length && this.hasher.verifyChunk(buf.subarray(0, length), this.chunkHashes[index])) {
          present.push(index);
        }
        this.checkedCount++;
      }
    } catch (err) {
      throw new DownloadError(`cannot read ${this.partPath}: ${errorText(err)}`);
    } finally {
      this.checking = false;
      await handle.close().catch(() => undefined);
    }
    this.resumedCount = present.length;
    return present;
  }
}
