import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { FileHandle, link, lstat, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { isDirectWritable } from './aligned-memory';
import { DownloadError } from './download.errors';

const errorCode = (err: unknown): string | undefined => (err as NodeJS.ErrnoException | undefined)?.code;
const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Whether anything (a file, a folder, a link) is at `path`; any error but "no such file" is a DownloadError. */
export async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return false;
    throw new DownloadError(`cannot check ${path}: ${errorText(err)}`);
  }
}

const READ_BUFFER_BYTES = 1024 * 1024;

/**
 * Writes running at once. Two keep the disk busy while the next chunk is
 * hashed; more only queue on the file's lock in the kernel, where waiting
 * writers spin (measured: a fifth of the writing threads' time with eight).
 */
export const MAX_WRITES_IN_FLIGHT = 2;

/** `O_DIRECT` where the platform has it (Linux), else 0. */
const O_DIRECT = (constants as { O_DIRECT?: number }).O_DIRECT ?? 0;

export interface PartFileOptions {
  /**
   * Write whole aligned chunks with `O_DIRECT`, past the page cache, where the
   * file system takes it; the rest (a short last chunk, unaligned buffers)
   * goes through the page cache. Default true.
   */
  readonly directIo?: boolean;
}

/** Writes all of `data` at `offset` through `handle`. */
async function writeAll(handle: FileHandle, data: Buffer, offset: number): Promise<void> {
  for (let done = 0; done < data.length;) {
    const { bytesWritten } = await handle.write(data, done, data.length - done, offset + done);
    done += bytesWritten;
  }
}

/** Link errors that mean "this file system has no hard links", not "the name is taken". */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV', 'EMLINK']);

/**
 * The `<dest>.part` file a download writes into. Created exclusively and
 * sized up front; chunks land with positional writes; `commit` gives it the
 * destination name without ever replacing an existing file, `discard`
 * removes it and `close` keeps it for a later download to resume (`reopen`).
 * Never touches a file it did not create or was not told to resume.
 */
export class PartFile {
  private handle: FileHandle | undefined;
  /** A second handle on the same file, opened with `O_DIRECT`, while direct writes work. */
  private direct: FileHandle | undefined;
  private directBytes = 0;
  private writing = 0;
  /** Writes waiting for one of the `MAX_WRITES_IN_FLIGHT` slots, in the order they came. */
  private readonly waiting: (() => void)[] = [];

  private constructor(
    readonly destPath: string,
    readonly path: string,
    handle: FileHandle,
  ) {
    this.handle = handle;
  }

  /** Refuses when `destPath` or `destPath.part` already exists. */
  static async create(destPath: string, size: number, options: PartFileOptions = {}): Promise<PartFile> {
    const path = `${destPath}.part`;
    if (await exists(destPath)) throw new DownloadError(`${destPath} already exists; not overwriting it`);
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o644);
    } catch (err) {
      if (errorCode(err) === 'EEXIST') {
        throw new DownloadError(`${path} already exists (a download of it is running, or was interrupted: remove it)`);
      }
      throw new DownloadError(`cannot create ${path}: ${errorText(err)}`);
    }
    const part = new PartFile(destPath, path, handle);
    try {
      await handle.truncate(size);
    } catch (err) {
      await part.discard();
      throw new DownloadError(`cannot make ${path} ${size} bytes long: ${errorText(err)}`);
    }
    await part.openDirect(options);
    return part;
  }

  /**
   * Opens the `<destPath>.part` an earlier download of the same file left (a resumed download): never creates one,
   * never follows a symlink, and refuses when `destPath` exists or the `.part` is not a regular file of `size` bytes.
   */
  static async reopen(destPath: string, size: number, options: PartFileOptions = {}): Promise<PartFile> {
    const path = `${destPath}.part`;
    if (await exists(destPath)) throw new DownloadError(`${destPath} already exists; not overwriting it`);
    let handle: FileHandle;
    try {
      handle = await open(path, constants.O_RDWR | constants.O_NOFOLLOW);
    } catch (err) {
      throw new DownloadError(`cannot open ${path}: ${errorText(err)}`);
    }
    try {
      const st = await handle.stat();
      if (!st.isFile()) throw new DownloadError(`${path} is not a regular file`);
      if (st.size !== size) throw new DownloadError(`${path} is ${st.size} bytes, not ${size}: not this download's`);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err instanceof DownloadError ? err : new DownloadError(`cannot check ${path}: ${errorText(err)}`);
    }
    const part = new PartFile(destPath, path, handle);
    await part.openDirect(options);
    return part;
  }

  private async openDirect(options: PartFileOptions): Promise<void> {
    if ((options.directIo ?? true) && O_DIRECT !== 0) {
      // a file system without O_DIRECT refuses the open (EINVAL): every write then goes through the page cache
      this.direct = await open(this.path, constants.O_WRONLY | O_DIRECT).catch(() => undefined);
    }
  }

  /** Bytes written with `O_DIRECT` so far. */
  get bytesWrittenDirect(): number {
    return this.directBytes;
  }

  /**
   * Writes all of `data` at byte `offset`; waits its turn while
   * `MAX_WRITES_IN_FLIGHT` others run. Aligned chunks in aligned memory (see
   * `ChunkBufferPool`) go straight to disk with `O_DIRECT`: no copy into the
   * page cache, whose fresh pages were the largest single cost of a download.
   * Should a direct write fail (say EINVAL: the file system will not), that
   * write and all later ones go through the page cache. Resolves true when
   * the bytes went straight to disk, false when they went through the page
   * cache (and are for `flush` to write out).
   */
  async write(data: Buffer, offset: number): Promise<boolean> {
    if (this.writing < MAX_WRITES_IN_FLIGHT) this.writing++;
    else await new Promise<void>((go) => this.waiting.push(go)); // the slot is handed over, still counted
    try {
      const handle = this.handle;
      if (!handle) throw new DownloadError(`${this.path} is closed`);
      const direct = this.direct;
      if (direct && isDirectWritable(data, offset)) {
        try {
          await writeAll(direct, data, offset);
          this.directBytes += data.length;
          return true;
        } catch {
          // e.g. EINVAL from a file system that opens with O_DIRECT but will not write so: written again, whole,
          // through the page cache below, where a real disk error shows up again
          this.stopDirect();
        }
      }
      await writeAll(handle, data, offset);
      return false;
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.writing--;
    }
  }

  /**
   * Reads the whole file once, in order, and returns its hex SHA-1 and size.
   * Two reused buffers: the next read runs while the previous one is hashed.
   * (`ChunkHasher.hashFile` would also hash every chunk again: twice the work.)
   */
  async sha1(onProgress?: (bytes: number) => void): Promise<{ fileHash: string; size: number }> {
    const handle = this.handle;
    if (!handle) throw new DownloadError(`${this.path} is closed`);
    const hash = createHash('sha1');
    const buffers = [Buffer.allocUnsafe(READ_BUFFER_BYTES), Buffer.allocUnsafe(READ_BUFFER_BYTES)];
    let size = 0;
    let which = 0;
    let reading = handle.read(buffers[which], 0, READ_BUFFER_BYTES, 0);
    for (;;) {
      const { bytesRead } = await reading;
      if (bytesRead === 0) break;
      const buf = buffers[which];
      which ^= 1;
      reading = handle.read(buffers[which], 0, READ_BUFFER_BYTES, size + bytesRead);
      hash.update(bytesRead === buf.length ? buf : buf.subarray(0, bytesRead));
      size += bytesRead;
      onProgress?.(size);
    }
    return { fileHash: hash.digest('hex'), size };
  }

  /**
   * Writes the data written so far to disk (fdatasync) without closing the
   * file: started in the background while the download goes on, it leaves
   * less for `commit` to wait for. Never throws; `commit` syncs again anyway.
   */
  async flush(): Promise<void> {
    await this.handle?.datasync().catch(() => undefined);
  }

  /**
   * Flushes the data to disk, closes the file and links it under the
   * destination name, failing if that name appeared meanwhile; then removes
   * the `.part` name.
   */
  async commit(): Promise<void> {
    const handle = this.handle;
    if (!handle) throw new DownloadError(`${this.path} is closed`);
    this.stopDirect();
    await handle.sync();
    this.handle = undefined;
    await handle.close();
    const taken = () => new DownloadError(`${this.destPath} appeared during the download; not overwriting it`);
    try {
      await link(this.path, this.destPath);
    } catch (err) {
      if (errorCode(err) === 'EEXIST') throw taken();
      if (!NO_HARD_LINKS.has(errorCode(err) ?? '')) {
        throw new DownloadError(`cannot create ${this.destPath}: ${errorText(err)}`);
      }
      // No hard links here: check, then rename (a small window, but never a silent overwrite we could see).
      if (await exists(this.destPath)) throw taken();
      await rename(this.path, this.destPath);
      await syncDir(dirname(this.destPath));
      return;
    }
    await unlink(this.path).catch(() => undefined);
    await syncDir(dirname(this.destPath));
  }

  /** Closes the `.part` file and leaves it where it is, for a later download to resume; never throws. */
  async close(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.stopDirect();
    await handle?.close().catch(() => undefined);
  }

  /** Closes and deletes the `.part` file; never throws. */
  async discard(): Promise<void> {
    const handle = this.handle;
    this.handle = undefined;
    this.stopDirect();
    await handle?.close().catch(() => undefined);
    await unlink(this.path).catch(() => undefined);
  }

  /** No more direct writes; the handle closes once writes still using it are done. */
  private stopDirect(): void {
    const direct = this.direct;
    this.direct = undefined;
    void direct?.close().catch(() => undefined);
  }
}

/** Makes the new directory entry durable; best effort (not every platform can open a directory). */
async function syncDir(dir: string): Promise<void> {
  try {
    const handle = await open(dir, constants.O_RDONLY);
    await handle.sync().finally(() => handle.close());
  } catch {
    // the data itself is already synced
  }
}
