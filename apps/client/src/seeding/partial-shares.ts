/*
 * Downloads in progress that serve the chunks they hold ("partial seeders").
 *
 * The download side opens a PartialShare when a download starts (or resumes,
 * with the chunks already verified in its `.part`), calls `held(i)` once chunk
 * i is verified AND written to the `.part`, and `close()` when the download
 * ends. The chunk server looks shares up here by what a capability names
 * (group, file SHA-1, seeder) when the ShareRegistry has no full share of the
 * file, serves held chunks from the `.part` and tells watching peers of every
 * chunk gained.
 *
 * The `.part` is opened once, read-only, when the share is opened: renaming it
 * to its final name at completion does not disturb chunks being served, and
 * nothing is looked up by path afterwards. `close()` takes the share out of
 * the lookup at once and closes the fd once the reads in progress have ended.
 */
import { chunkRange, ChunkPlan, planChunks } from '@app/chunking';
import { isSha1Hex } from '@app/protocol';
import { Injectable, Logger, OnApplicationShutdown } from '@nestjs/common';
import { closeSync, fstatSync, openSync, read } from 'node:fs';
import { isAbsolute } from 'node:path';
import { InvalidShareError, NotShareableError } from './seeding.errors';
import { OPEN_SHARED_FLAGS } from './shared-file';

/** What the download side knows of a download when it starts serving it. */
export interface PartialShareInit {
  readonly groupId: string;
  /** The user this client is logged in as: the seeder capabilities must name. */
  readonly userId: string;
  readonly fileName: string;
  /** Hex SHA-1 of the whole file, as the tracker has it. */
  readonly fileHash: string;
  readonly size: number;
  readonly chunkCount: number;
  /** Absolute path of the `.part` being written (it must exist). */
  readonly partPath: string;
  /** Chunks already verified in the `.part` (a resumed download). */
  readonly present?: Iterable<number>;
}

/** Why a chunk could not be read: the share was closed meanwhile, or the `.part` holds fewer bytes than the chunk. */
export type PartialRead = { readonly ok: true } | { readonly ok: false; readonly why: 'closed' | 'short' };

const contentKey = (groupId: string, fileHash: string, userId: string): string =>
  JSON.stringify([groupId, fileHash, userId]);

/** One download in progress, serving what it holds. */
export class PartialShare {
  readonly groupId: string;
  readonly userId: string;
  readonly fileName: string;
  readonly fileHash: string;
  readonly size: number;
  readonly chunkCount: number;
  readonly partPath: string;
  private readonly plan: ChunkPlan;
  /** One byte per chunk: 1 once held. */
  private readonly have: Uint8Array;
  private count = 0;
  private readonly listeners = new Set<(index: number) => void>();
  private fd: number | undefined;
  /** Reads of the `.part` in progress: the fd is closed once they end. */
  private reading = 0;
  private isClosed = false;
  private drainedReads: (() => void) | undefined;
  private closing: Promise<void> | undefined;

  /** Made by `PartialShares.open`. */
  constructor(
    init: PartialShareInit,
    fd: number,
    private readonly onClose: (share: PartialShare) => void,
    private readonly logger: Logger,
  ) {
    this.groupId = init.groupId;
    this.userId = init.userId;
    this.fileName = init.fileName;
    this.fileHash = init.fileHash.toLowerCase();
    this.size = init.size;
    this.chunkCount = init.chunkCount;
    this.partPath = init.partPath;
    this.plan = planChunks(init.size);
    this.have = new Uint8Array(init.chunkCount);
    this.fd = fd;
    for (const index of init.present ?? []) this.mark(index);
  }

  /** Key of what a capability names. */
  get key(): string {
    return contentKey(this.groupId, this.fileHash, this.userId);
  }

  /** Chunks held. */
  get heldCount(): number {
    return this.count;
  }

  get closed(): boolean {
    return this.isClosed;
  }

  /** True when chunk `index` is held (false for any index outside the file). */
  has(index: number): boolean {
    return this.have[index] === 1;
  }

  /** A copy of the have-list: one byte per chunk, 1 where held. */
  bits(): Uint8Array {
    return this.have.slice();
  }

  /**
   * Chunk `index` is verified and its bytes are in the `.part`: it is served
   * from now on, and every listener hears of it (once; holding it again is a
   * no-op). Ignored once the share is closed.
   */
  held(index: number): void {
    if (this.isClosed) return;
    if (!this.mark(index)) return;
    for (const listener of [...this.listeners]) {
      try {
        listener(index);
      } catch (err) {
        this.logger.error(`held-chunk listener failed: ${String(err)}`);
      }
    }
  }

  /** Calls `listener` with each chunk held from now on, until unsubscribed or the share is closed. */
  onHeld(listener: (index: number) => void): () => void {
    if (this.isClosed) return () => undefined;
    const own = (index: number) => listener(index);
    this.listeners.add(own);
    return () => this.listeners.delete(own);
  }

  /** Listeners subscribed now. */
  get listenerCount(): number {
    return this.listeners.size;
  }

  /**
   * Reads held chunk `index` into `into` (its length must be the chunk's).
   * No identity check: the file is being written; only that every byte of
   * the chunk was there. The caller checks `has(index)` first.
   */
  async read(index: number, into: Buffer): Promise<PartialRead> {
    if (this.fd === undefined || this.isClosed) return { ok: false, why: 'closed' };
    const { offset, length } = chunkRange(this.plan, index);
    if (into.length !== length) throw new RangeError(`chunk ${index} is ${length} bytes, not ${into.length}`);
    const fd = this.fd;
    this.reading++;
    try {
      let filled = 0;
      while (filled < length) {
        const bytesRead = await readAt(fd, into, filled, length - filled, offset + filled);
        if (bytesRead === 0) break;
        filled += bytesRead;
      }
      return filled === length ? { ok: true } : { ok: false, why: 'short' };
    } finally {
      if (--this.reading === 0) this.drainedReads?.();
    }
  }

  /**
   * The download ended: the share is no longer found nor served, listeners
   * are dropped, and the `.part` fd is closed once the reads in progress end.
   * Safe to call more than once.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.isClosed = true;
      this.listeners.clear();
      this.onClose(this);
      if (this.reading > 0) await new Promise<void>((resolve) => (this.drainedReads = resolve));
      const fd = this.fd;
      this.fd = undefined;
      if (fd !== undefined) closeSync(fd);
    })();
    return this.closing;
  }

  /** Marks `index` held; false when it already was. */
  private mark(index: number): boolean {
    if (!Number.isInteger(index) || index < 0 || index >= this.chunkCount) {
      throw new RangeError(`chunk ${index} is outside 0..${this.chunkCount - 1} of ${this.fileName}`);
    }
    if (this.have[index] === 1) return false;
    this.have[index] = 1;
    this.count++;
    return true;
  }
}

/** `fs.read` as a promise of the bytes read. */
function readAt(fd: number, buf: Buffer, at: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, at, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

function checkInit(init: PartialShareInit): void {
  for (const key of ['groupId', 'userId', 'fileName'] as const) {
    if (typeof init[key] !== 'string' || init[key] === '')
      throw new InvalidShareError(`${key} must be a non-empty string`);
  }
  if (typeof init.fileHash !== 'string' || !isSha1Hex(init.fileHash.toLowerCase())) {
    throw new InvalidShareError('fileHash must be a 40-digit hex SHA-1');
  }
  if (!Number.isSafeInteger(init.size) || init.size < 0) throw new InvalidShareError(`bad size ${init.size}`);
  const expected = planChunks(init.size).count;
  if (init.chunkCount !== expected) {
    throw new InvalidShareError(`a file of ${init.size} bytes has ${expected} chunks, not ${init.chunkCount}`);
  }
  if (typeof init.partPath !== 'string' || !isAbsolute(init.partPath)) {
    throw new InvalidShareError(`partPath must be absolute (got ${JSON.stringify(init.partPath)})`);
  }
}

/**
 * The downloads in progress this client serves chunks of, found by what a
 * capability names. Soft state: nothing is saved; a resumed download opens
 * its share again.
 */
@Injectable()
export class PartialShares implements OnApplicationShutdown {
  private readonly logger = new Logger(PartialShares.name);
  /** Open shares by content key, oldest first. */
  private readonly byKey = new Map<string, PartialShare[]>();

  /**
   * Starts serving a download in progress. Throws InvalidShareError for
   * arguments that cannot describe one (nothing is opened then), and
   * NotShareableError when the `.part` cannot be opened as a regular file.
   */
  open(init: PartialShareInit): PartialShare {
    checkInit(init);
    const present = [...(init.present ?? [])];
    for (const index of present) {
      if (!Number.isInteger(index) || index < 0 || index >= init.chunkCount) {
        throw new InvalidShareError(`present chunk ${index} is outside 0..${init.chunkCount - 1}`);
      }
    }
    let fd: number;
    try {
      fd = openSync(init.partPath, OPEN_SHARED_FLAGS);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new NotShareableError(`cannot open ${init.partPath} to serve it (${code})`);
    }
    try {
      if (!fstatSync(fd).isFile()) throw new NotShareableError(`${init.partPath} is not a regular file`);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    const share = new PartialShare({ ...init, present }, fd, (s) => this.forget(s), this.logger);
    const list = this.byKey.get(share.key);
    if (list) list.push(share);
    else this.byKey.set(share.key, [share]);
    return share;
  }

  /** The open share of the file a capability names (the oldest, should there be several); undefined if none. */
  find(groupId: string, fileHash: string, userId: string): PartialShare | undefined {
    return this.byKey.get(contentKey(groupId, fileHash.toLowerCase(), userId))?.[0];
  }

  /** Every open share, oldest first per file. */
  list(): PartialShare[] {
    return [...this.byKey.values()].flat();
  }

  /** Closes every share (the client is stopping). */
  async closeAll(): Promise<void> {
    await Promise.all(this.list().map((s) => s.close()));
  }

  onApplicationShutdown(): Promise<void> {
    return this.closeAll();
  }

  private forget(share: PartialShare): void {
    const list = this.byKey.get(share.key);
    if (!list) return;
    const left = list.filter((s) => s !== share);
    if (left.length > 0) this.byKey.set(share.key, left);
    else this.byKey.delete(share.key);
  }
}
