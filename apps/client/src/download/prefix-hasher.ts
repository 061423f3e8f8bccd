import { Worker } from 'node:worker_threads';

/** Files smaller than this are hashed after the transfer, on this thread: a worker would cost more than it saves. */
export const PREFIX_HASHER_MIN_BYTES = 16 * 1024 * 1024;

/** The worker is told of new written bytes in steps of at least this much (and once at the end). */
const ADVANCE_STEP_BYTES = 4 * 1024 * 1024;

/**
 * The hashing thread: reads the `.part` file from its start up to the
 * written prefix it is told of, with one reused buffer, feeding one SHA-1.
 * Where the file system allows, it reads with `O_DIRECT` into page-aligned
 * memory (a `WebAssembly.Memory`): the chunks were written past the page
 * cache (see `PartFile`), and reading them back through it would fill fresh
 * pages for nothing. Reads then start and end on 4 KiB boundaries, and only
 * the bytes asked for are hashed. Should direct reads be refused, it reads
 * through the page cache.
 * Messages in: `{ upTo }` (bytes written from the start), `{ finish: size }`.
 * Messages out: `{ hashed }` now and then, `{ digest, size }` at the end, or
 * `{ error }`.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { openSync, readSync, closeSync, constants } = require('node:fs');
const READ_BYTES = 1024 * 1024;
const ALIGN = 4096;
const REPORT_BYTES = 32 * 1024 * 1024;
const fd = openSync(workerData.path, 'r');
let direct = -1;
let buf = Buffer.allocUnsafe(READ_BYTES);
if (constants.O_DIRECT && typeof WebAssembly !== 'undefined') {
  try {
    const aligned = Buffer.from(new WebAssembly.Memory({ initial: READ_BYTES / 65536 }).buffer, 0, READ_BYTES);
    direct = openSync(workerData.path, constants.O_RDONLY | constants.O_DIRECT);
    buf = aligned;
  } catch {}
}
const hash = createHash('sha1');
let hashed = 0;
let reported = 0;
/** Up to want bytes of the file from pos (want <= READ_BYTES - ALIGN), as a view of buf. */
function readAt(pos, want) {
  if (direct >= 0) {
    const from = pos - (pos % ALIGN);
    const length = Math.ceil((pos - from + want) / ALIGN) * ALIGN;
    try {
      const n = readSync(direct, buf, 0, length, from);
      return buf.subarray(pos - from, Math.max(pos - from, Math.min(n, pos - from + want)));
    } catch (err) {
      if (err.code !== 'EINVAL') throw err;
      closeSync(direct);
      direct = -1;
    }
  }
  const n = readSync(fd, buf, 0, want, pos);
  return buf.subarray(0, n);
}
function hashTo(upTo) {
  while (hashed < upTo) {
    const bytes = readAt(hashed, Math.min(READ_BYTES - ALIGN, upTo - hashed));
    if (bytes.length === 0) throw new Error('the file ended at byte ' + hashed + ', before byte ' + upTo);
    hash.update(bytes);
    hashed += bytes.length;
    if (hashed - reported >= REPORT_BYTES) {
      reported = hashed;
      parentPort.postMessage({ hashed });
    }
  }
}
parentPort.on('message', (m) => {
  try {
    if (m.upTo !== undefined) return hashTo(m.upTo);
    hashTo(m.finish);
    const extra = readAt(hashed, 1).length;
    closeSync(fd);
    if (direct >= 0) closeSync(direct);
    parentPort.postMessage({ digest: hash.digest('hex'), size: hashed + extra });
  } catch (err) {
    parentPort.postMessage({ error: err && err.message ? err.message : String(err) });
  }
});
`;

type WorkerMessage = { hashed: number } | { digest: string; size: number } | { error: string };

/**
 * The whole-file SHA-1 of a download, computed while it downloads: a worker
 * thread reads back the part of the file written so far from its start (the
 * page cache, mostly) and hashes it, so that when the last chunk lands only
 * the tail is left to hash instead of the whole file. What it hashes is what
 * is on disk, as a re-read at the end would.
 */
export class PrefixHasher {
  private readonly worker: Worker;
  private readonly written: Uint8Array;
  /** Chunks 0..prefix-1 are all written. */
  private prefix = 0;
  private announced = 0;
  private result: Promise<{ fileHash: string; size: number }>;
  private settle!: { resolve: (r: { fileHash: string; size: number }) => void; reject: (e: Error) => void };
  private closed = false;

  constructor(
    path: string,
    private readonly fileSize: number,
    private readonly chunkSize: number,
    private readonly onProgress?: (bytes: number) => void,
  ) {
    this.written = new Uint8Array(Math.ceil(fileSize / chunkSize));
    this.result = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined);
    this.worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { path } });
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', (err) => this.fail(err.message));
    this.worker.on('exit', () => this.fail('the hashing thread stopped'));
  }

  /** Chunk `index` is written in full. */
  chunkWritten(index: number): void {
    if (this.closed || this.written[index]) return;
    this.written[index] = 1;
    while (this.prefix < this.written.length && this.written[this.prefix]) this.prefix++;
    const upTo = Math.min(this.prefix * this.chunkSize, this.fileSize);
    if (upTo - this.announced >= ADVANCE_STEP_BYTES) {
      this.announced = upTo;
      this.worker.postMessage({ upTo });
    }
  }

  /** Once every chunk is written: the SHA-1 and size of the file as it lies on disk. */
  finish(): Promise<{ fileHash: string; size: number }> {
    if (!this.closed) this.worker.postMessage({ finish: this.fileSize });
    return this.result;
  }

  /** Stops the thread (a download that failed or was cancelled); `finish` then rejects. */
  close(): void {
    this.fail('the download stopped');
  }

  private onMessage(m: WorkerMessage): void {
    if ('hashed' in m) return this.onProgress?.(m.hashed);
    if ('error' in m) return this.fail(m.error);
    this.onProgress?.(m.size);
    this.end();
    this.settle.resolve({ fileHash: m.digest, size: m.size });
  }

  private fail(why: string): void {
    if (this.closed) return;
    this.end();
    this.settle.reject(new Error(why));
  }

  private end(): void {
    this.closed = true;
    void this.worker.terminate();
  }
}
