import { Injectable } from '@nestjs/common';
import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { ChunkHasher, FileDigest } from './chunk-hasher';
import { CHUNK_SIZE } from './chunk-plan';

export interface Sha1ChunkHasherOptions {
  /**
   * Files of at least this many bytes are hashed off the main thread by two
   * worker threads, one for the whole-file SHA-1 and one for the chunk
   * SHA-1s, side by side. Smaller files are hashed inline (starting workers
   * costs more than it saves). Default 16 MiB; `Infinity` never uses workers.
   */
  readonly workerThresholdBytes?: number;
  /** Memory for reads ahead of the slower worker. Default 8 MiB. */
  readonly readAheadBytes?: number;
}

export const DEFAULT_WORKER_THRESHOLD_BYTES = 16 * 1024 * 1024;

/**
 * The two hashing workers. Each gets the same chunks, in order, as slots of
 * shared memory, and answers every slot once it is done with it: the `file`
 * worker feeds the whole-file hash (and gives its digest at the end), the
 * `chunk` worker answers each slot with that chunk's digest.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { role, slots, chunkSize } = workerData;
const views = slots.map((s) => new Uint8Array(s));
const whole = role === 'file' ? createHash('sha1') : undefined;
parentPort.on('message', (m) => {
  if (m.end) {
    parentPort.postMessage({ end: true, hash: whole ? whole.digest('hex') : undefined });
    return;
  }
  const data = views[m.slot].subarray(0, m.length);
  if (whole) {
    whole.update(data);
    parentPort.postMessage({ slot: m.slot });
  } else {
    const hashes = [];
    for (let at = 0; at < data.length; at += chunkSize) {
      hashes.push(createHash('sha1').update(data.subarray(at, at + chunkSize)).digest('hex'));
    }
    parentPort.postMessage({ slot: m.slot, hashes });
  }
});
`;

interface WorkerReply {
  readonly end?: boolean;
  readonly slot?: number;
  readonly hash?: string;
  readonly hashes?: string[];
}

/** Bytes read at once (and handed to the workers as one slot): a few chunks, to keep messages few. */
const SLOT_BYTES = 2 * 1024 * 1024;

@Injectable()
export class Sha1ChunkHasher implements ChunkHasher {
  private readonly workerThreshold: number;
  private readonly slotBytes: number;
  private readonly slotCount: number;

  constructor(
    private readonly chunkSize: number = CHUNK_SIZE,
    options: Sha1ChunkHasherOptions = {},
  ) {
    this.workerThreshold = options.workerThresholdBytes ?? DEFAULT_WORKER_THRESHOLD_BYTES;
    // a slot holds whole chunks
    this.slotBytes = chunkSize * Math.max(1, Math.floor(SLOT_BYTES / chunkSize));
    this.slotCount = Math.max(2, Math.floor((options.readAheadBytes ?? 8 * 1024 * 1024) / this.slotBytes));
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
   * This thread reads the file a few chunks at a time into slots of shared
   * memory and hands each to both workers; a slot is reused once both are
   * done with it. SHA-1 is sequential, so the whole-file hash alone sets the
   * pace: about one core's hashing speed for both hashes, and this thread
   * stays free for the shell and for serving chunks.
   */
  private async hashInWorkers(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest> {
    const slots = Array.from({ length: this.slotCount }, () => new SharedArrayBuffer(this.slotBytes));
    const buffers = slots.map((s) => Buffer.from(s));
    const lengths = new Array<number>(slots.length).fill(0);
    /** Workers still to answer each slot (0: free). */
    const busy = new Array<number>(slots.length).fill(0);
    const free: number[] = slots.map((_, i) => i);
    const chunkHashes: string[] = [];
    let hashedBytes = 0;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const poke = () => {
      const w = wake;
      wake = undefined;
      w?.();
    };
    let fileHash: string | undefined;
    const workers = (['file', 'chunk'] as const).map((role) => {
      const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { role, slots, chunkSize: this.chunkSize } });
      worker.on('message', (m: WorkerReply) => {
        if (m.end) {
          fileHash ??= m.hash;
          return poke();
        }
        const slot = m.slot!;
        if (role === 'chunk') chunkHashes.push(...m.hashes!);
        if (--busy[slot] === 0) {
          hashedBytes += lengths[slot];
          free.push(slot);
          onProgress?.(hashedBytes);
        }
        poke();
      });
      worker.on('error', (err) => {
        failure ??= err;
        poke();
      });
      worker.on('exit', (code) => {
        if (code !== 0 || fileHash === undefined) failure ??= new Error(`a hashing worker stopped (exit code ${code})`);
        poke();
      });
      return worker;
    });
    const throwIfFailed = (): void => {
      if (failure) throw failure;
    };
    /** Resolves at the next message, error or exit of a worker. */
    const next = () => new Promise<void>((resolve) => (wake = resolve));

    const handle = await open(path, 'r');
    let size = 0;
    try {
      for (;;) {
        while (free.length === 0 && !failure) await next();
        throwIfFailed();
        const slot = free.shift()!;
        const buf = buffers[slot];
        let n = 0;
        while (n < this.slotBytes) {
          const { bytesRead } = await handle.read(buf, n, this.slotBytes - n, size + n);
          if (bytesRead === 0) break;
          n += bytesRead;
        }
        if (n === 0) {
          free.unshift(slot);
          break;
        }
        lengths[slot] = n;
        busy[slot] = 2;
        for (const w of workers) w.postMessage({ slot, length: n });
        size += n;
        if (n < this.slotBytes) break;
      }
      workers[0].postMessage({ end: true });
      while (fileHash === undefined && !failure) await next();
      throwIfFailed();
      while (chunkHashes.length * this.chunkSize < size && !failure) await next();
      throwIfFailed();
      return { size, fileHash: fileHash!, chunkHashes };
    } finally {
      await handle.close();
      fileHash ??= ''; // the exits below are expected now
      await Promise.all(workers.map((w) => w.terminate()));
    }
  }
}
