import { Worker } from 'node:worker_threads';

/** What a hashing worker does with a file: the whole-file SHA-1, or one SHA-1 per chunk. */
export type HashRole = 'file' | 'chunk';

export interface HashJobResult {
  /** Bytes read up to end of file. */
  readonly size: number;
  /** `file` role: hex SHA-1 of every byte read. */
  readonly fileHash?: string;
  /** `chunk` role: the chunks' digests, 20 bytes each, in order. */
  readonly chunkDigests?: Buffer;
}

/**
 * One hashing worker. It reads the file itself (positional reads into one
 * reused buffer: the page cache makes the second reader of a file cheap), so
 * no file data crosses threads. Jobs run one after the other, each
 * synchronously: the worker does nothing but read and hash. It answers a job
 * with progress every `progressBytes`, then once with the result (the chunk
 * digests as one transferred buffer) or the error.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const { closeSync, fstatSync, openSync, readSync } = require('node:fs');
const { chunkSize, bufferBytes, progressBytes } = workerData;
const buf = Buffer.allocUnsafe(bufferBytes);
const DIGEST = 20;

function run(path, role, id) {
  const fd = openSync(path, 'r');
  try {
    const whole = role === 'file' ? createHash('sha1') : undefined;
    let digests = whole ? undefined : Buffer.allocUnsafe(DIGEST * Math.max(1, Math.ceil(fstatSync(fd).size / chunkSize)));
    let count = 0;
    let size = 0;
    let reported = 0;
    for (;;) {
      let n = 0;
      while (n < bufferBytes) {
        const got = readSync(fd, buf, n, bufferBytes - n, size + n);
        if (got === 0) break;
        n += got;
      }
      if (n === 0) break;
      const data = n === bufferBytes ? buf : buf.subarray(0, n);
      if (whole) {
        whole.update(data);
      } else {
        for (let at = 0; at < n; at += chunkSize) {
          if ((count + 1) * DIGEST > digests.length) {
            const grown = Buffer.allocUnsafe(digests.length * 2);
            digests.copy(grown, 0, 0, count * DIGEST);
            digests = grown;
          }
          const chunk = at === 0 && n <= chunkSize ? data : data.subarray(at, Math.min(n, at + chunkSize));
          createHash('sha1').update(chunk).digest().copy(digests, count * DIGEST);
          count++;
        }
      }
      size += n;
      if (size - reported >= progressBytes) {
        reported = size;
        parentPort.postMessage({ id, progress: size });
      }
      if (n < bufferBytes) break;
    }
    if (whole) return parentPort.postMessage({ id, done: true, size, fileHash: whole.digest('hex') });
    const out = new Uint8Array(count * DIGEST);
    out.set(digests.subarray(0, count * DIGEST));
    parentPort.postMessage({ id, done: true, size, chunkDigests: out }, [out.buffer]);
  } finally {
    closeSync(fd);
  }
}

parentPort.on('message', ({ id, path, role }) => {
  try {
    run(path, role, id);
  } catch (err) {
    parentPort.postMessage({ id, error: { message: err.message, code: err.code, syscall: err.syscall, path: err.path } });
  }
});
`;

interface WorkerReply {
  readonly id: number;
  readonly progress?: number;
  readonly done?: boolean;
  readonly size?: number;
  readonly fileHash?: string;
  readonly chunkDigests?: Uint8Array;
  readonly error?: { message: string; code?: string; syscall?: string; path?: string };
}

interface PendingJob {
  readonly resolve: (result: HashJobResult) => void;
  readonly reject: (err: Error) => void;
  readonly onProgress?: (bytes: number) => void;
}

/** A started worker and the jobs it still owes an answer. */
interface PoolWorker {
  readonly worker: Worker;
  readonly pending: Map<number, PendingJob>;
}

export interface HashWorkerPoolOptions {
  readonly chunkSize: number;
  /** Bytes read at once; a multiple of `chunkSize`. */
  readonly bufferBytes: number;
  /** A job reports progress each time it has read this many more bytes. */
  readonly progressBytes: number;
}

/**
 * One worker per role, started at the first job and kept for the next ones
 * (thread start-up is paid once). An idle worker is unref'd, so it never keeps
 * the process alive; a worker that dies fails its jobs and is replaced at the
 * next job.
 */
export class HashWorkerPool {
  private readonly workers = new Map<HashRole, PoolWorker>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: HashWorkerPoolOptions) {}

  /** Hashes `path` from its first byte to its end in the worker of `role`. */
  run(role: HashRole, path: string, onProgress?: (bytes: number) => void): Promise<HashJobResult> {
    if (this.closed) return Promise.reject(new Error('the hashing workers are closed'));
    const entry = this.workerFor(role);
    const id = this.nextId++;
    return new Promise<HashJobResult>((resolve, reject) => {
      if (entry.pending.size === 0) entry.worker.ref();
      entry.pending.set(id, { resolve, reject, onProgress });
      entry.worker.postMessage({ id, path, role });
    });
  }

  /** Stops the workers; jobs still running are rejected. */
  async close(): Promise<void> {
    this.closed = true;
    const entries = [...this.workers.values()];
    this.workers.clear();
    for (const entry of entries) this.failAll(entry, new Error('the hashing workers are closed'));
    await Promise.all(entries.map((e) => e.worker.terminate()));
  }

  private workerFor(role: HashRole): PoolWorker {
    const existing = this.workers.get(role);
    if (existing) return existing;
    const { chunkSize, bufferBytes, progressBytes } = this.options;
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { chunkSize, bufferBytes, progressBytes } });
    const entry: PoolWorker = { worker, pending: new Map() };
    worker.unref();
    worker.on('message', (m: WorkerReply) => this.onReply(entry, m));
    const lost = (err: Error) => {
      if (this.workers.get(role) === entry) this.workers.delete(role);
      this.failAll(entry, err);
    };
    worker.on('error', lost);
    worker.on('exit', (code) => lost(new Error(`a hashing worker stopped (exit code ${code})`)));
    this.workers.set(role, entry);
    return entry;
  }

  private onReply(entry: PoolWorker, m: WorkerReply): void {
    const job = entry.pending.get(m.id);
    if (!job) return;
    if (m.progress !== undefined) {
      job.onProgress?.(m.progress);
      return;
    }
    entry.pending.delete(m.id);
    if (entry.pending.size === 0) entry.worker.unref();
    if (m.error) {
      job.reject(Object.assign(new Error(m.error.message), withoutUndefined(m.error)));
    } else {
      const digests = m.chunkDigests;
      job.resolve({
        size: m.size!,
        fileHash: m.fileHash,
        chunkDigests: digests && Buffer.from(digests.buffer, digests.byteOffset, digests.byteLength),
      });
    }
  }

  private failAll(entry: PoolWorker, err: Error): void {
    const jobs = [...entry.pending.values()];
    entry.pending.clear();
    for (const job of jobs) job.reject(err);
  }
}

function withoutUndefined(error: NonNullable<WorkerReply['error']>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of ['code', 'syscall', 'path'] as const) if (error[key] !== undefined) out[key] = error[key];
  return out;
}
