import { Injectable, OnModuleDestroy } from '@nestjs/common';
import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { ChunkHasher, FileDigest } from './chunk-hasher';
import { CHUNK_SIZE } from './chunk-plan';
import { HashRole, HashWorkerPool } from './hash-worker.pool';

export interface Sha1ChunkHasherOptions {
  /**
   * Files of at least this many bytes are hashed off the main thread by two
   * worker threads, one for the whole-file SHA-1 and one for the chunk
   * SHA-1s, side by side, each reading the file itself. Smaller files are
   * hashed inline (handing them over costs more than it saves). Default
   * 16 MiB; `Infinity` never uses workers.
   */
  readonly workerThresholdBytes?: number;
  /** With workers, `onProgress` is called every time this many more bytes are hashed. Default 32 MiB. */
  readonly progressBytes?: number;
}

export const DEFAULT_WORKER_THRESHOLD_BYTES = 16 * 1024 * 1024;

/** Bytes a hashing worker reads at once: one 512 KiB chunk, like a plain read-and-hash loop. */
const READ_BYTES = 512 * 1024;
/** Bytes of one SHA-1 digest. */
const DIGEST_BYTES = 20;
/** A hashing worker reports progress every this many bytes, by default. */
const PROGRESS_BYTES = 32 * 1024 * 1024;

@Injectable()
export class Sha1ChunkHasher implements ChunkHasher, OnModuleDestroy {
  private readonly workerThreshold: number;
  private readonly progressBytes: number;
  private pool?: HashWorkerPool;

  constructor(
    private readonly chunkSize: number = CHUNK_SIZE,
    options: Sha1ChunkHasherOptions = {},
  ) {
    this.workerThreshold = options.workerThresholdBytes ?? DEFAULT_WORKER_THRESHOLD_BYTES;
    this.progressBytes = options.progressBytes ?? PROGRESS_BYTES;
  }

  /** Stops the hashing workers, if any were started. */
  async onModuleDestroy(): Promise<void> {
    const pool = this.pool;
    this.pool = undefined;
    await pool?.close();
  }

  hashChunk(buf: Buffer): string {
    return createHash('sha1').update(buf).digest('hex');
  }

  verifyChunk(buf: Buffer, expectedHash: string): boolean {
    return this.hashChunk(buf) === expectedHash.toLowerCase();
  }

  async hashFile(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest> {
    const handle = await open(path, 'r');
    let size: number;
    try {
      size = (await handle.stat()).size;
    } finally {
      await handle.close();
    }
    return size >= this.workerThreshold ? this.hashInWorkers(path, onProgress) : this.hashInline(path, onProgress);
  }

  /** One pass on this thread: each buffer read feeds the whole-file hash and its chunk's hash. */
  private async hashInline(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest> {
    const whole = createHash('sha1');
    const chunkHashes: string[] = [];
    let chunk: Hash | undefined;
    let inChunk = 0;
    let size = 0;
    const stream = createReadStream(path, { highWaterMark: this.chunkSize });
    for await (const data of stream as AsyncIterable<Buffer>) {
      whole.update(data);
      let at = 0;
      while (at < data.length) {
        const take = Math.min(this.chunkSize - inChunk, data.length - at);
        chunk ??= createHash('sha1');
        chunk.update(at === 0 && take === data.length ? data : data.subarray(at, at + take));
        inChunk += take;
        at += take;
        if (inChunk === this.chunkSize) {
          chunkHashes.push(chunk.digest('hex'));
          chunk = undefined;
          inChunk = 0;
        }
      }
      size += data.length;
      onProgress?.(size);
    }
    if (chunk) chunkHashes.push(chunk.digest('hex'));
    return { size, fileHash: whole.digest('hex'), chunkHashes };
  }

  /**
   * Two workers hash side by side, each reading the whole file itself: one
   * the whole-file SHA-1, one the chunk SHA-1s. SHA-1 is sequential, so the
   * whole-file hash alone sets the pace: the speed of one thread's plain
   * read-and-hash loop for both hashes, and this thread stays free for the
   * shell and for serving chunks. The workers read the file separately:
   * if it changes meanwhile, they may read different sizes (rejected here)
   * or different bytes, so callers compare the file before and after (as
   * the client's upload does).
   */
  private async hashInWorkers(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest> {
    this.pool ??= new HashWorkerPool({
      chunkSize: this.chunkSize,
      bufferBytes: this.chunkSize * Math.max(1, Math.floor(READ_BYTES / this.chunkSize)),
      progressBytes: this.progressBytes,
    });
    const done = { file: 0, chunk: 0 };
    let reported = 0;
    const progress = (role: HashRole) => (bytes: number) => {
      done[role] = bytes;
      const both = Math.min(done.file, done.chunk);
      if (both > reported) {
        reported = both;
        onProgress?.(both);
      }
    };
    const [file, chunks] = await settleBoth(
      this.pool.run('file', path, progress('file')),
      this.pool.run('chunk', path, progress('chunk')),
    );
    if (file.size !== chunks.size) throw new Error(`${path} changed while it was being hashed`);
    progress('file')(file.size);
    progress('chunk')(chunks.size);
    const digests = chunks.chunkDigests!;
    const chunkHashes: string[] = [];
    for (let at = 0; at < digests.length; at += DIGEST_BYTES) {
      chunkHashes.push(digests.toString('hex', at, at + DIGEST_BYTES));
    }
    return { size: file.size, fileHash: file.fileHash!, chunkHashes };
  }
}

/** Both results, or the first failure once both have settled (no job left running unobserved). */
async function settleBoth<A, B>(a: Promise<A>, b: Promise<B>): Promise<[A, B]> {
  const [ra, rb] = await Promise.allSettled([a, b]);
  if (ra.status === 'rejected') throw ra.reason;
  if (rb.status === 'rejected') throw rb.reason;
  return [ra.value, rb.value];
}
