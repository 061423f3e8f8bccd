import { planChunks } from '@app/chunking';
import { isSha1Hex } from '@app/protocol';
import { constants, Stats } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { InvalidShareError, NotShareableError } from './seeding.errors';

/** What identifies the bytes of a shared file without reading them: which inode, how big, last written when. */
export interface FileIdentity {
  /** Absolute realpath (symlinks resolved) of the file. */
  readonly path: string;
  readonly size: number;
  readonly mtimeMs: number;
  readonly dev: number;
  readonly ino: number;
}

/** One file this client seeds in one group for one user. */
export interface SharedFile extends FileIdentity {
  readonly groupId: string;
  readonly fileName: string;
  readonly userId: string;
  /** Hex SHA-1 of the whole file, as registered with the tracker. */
  readonly fileHash: string;
  readonly chunkCount: number;
  /** Epoch milliseconds. */
  readonly sharedAt: number;
}

/**
 * Open flags for every read of a shared file: a path swapped for a symlink is
 * refused (ELOOP); O_NONBLOCK keeps a path swapped for a FIFO from hanging the
 * open (it has no effect on regular files, and the fstat that follows refuses
 * anything else).
 */
export const OPEN_SHARED_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

export const identityFromStats = (path: string, st: Stats): FileIdentity => ({
  path,
  size: st.size,
  mtimeMs: st.mtimeMs,
  dev: st.dev,
  ino: st.ino,
});

/** Same inode, same size, same modification time. */
export function sameIdentity(a: Omit<FileIdentity, 'path'>, b: Omit<FileIdentity, 'path'>): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeMs === b.mtimeMs;
}

/**
 * Resolves `filePath` to its realpath and stats the regular file found there,
 * through an fd opened without following a final symlink. Meant for the
 * upload flow: take the identity, hash the file, take it again and compare.
 */
export async function fileIdentity(filePath: string): Promise<FileIdentity> {
  const real = await realpath(filePath);
  const handle = await open(real, OPEN_SHARED_FLAGS);
  try {
    const st = await handle.stat();
    if (!st.isFile()) throw new NotShareableError(`${real} is not a regular file`);
    return identityFromStats(real, st);
  } finally {
    await handle.close();
  }
}

const STRING_FIELDS = ['groupId', 'fileName', 'userId'] as const;
const NUMBER_FIELDS = ['size', 'mtimeMs', 'dev', 'ino', 'chunkCount', 'sharedAt'] as const;

/**
 * Checks that `value` is a well-formed share and returns a frozen copy of it
 * holding only the known fields; throws InvalidShareError naming the first
 * bad field. Used both for `ShareRegistry.add` and for the state file.
 */
export function toSharedFile(value: unknown): SharedFile {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new InvalidShareError('a share must be an object');
  }
  const v = value as Record<string, unknown>;
  for (const key of STRING_FIELDS) {
    if (typeof v[key] !== 'string' || v[key] === '') throw new InvalidShareError(`${key} must be a non-empty string`);
  }
  for (const key of NUMBER_FIELDS) {
    if (typeof v[key] !== 'number' || !Number.isFinite(v[key])) throw new InvalidShareError(`${key} must be a number`);
  }
  const n = v as Record<(typeof NUMBER_FIELDS)[number], number>;
  if (typeof v.path !== 'string' || !isAbsolute(v.path) || resolve(v.path) !== v.path) {
    throw new InvalidShareError(`path must be an absolute, normalised realpath (got ${JSON.stringify(v.path)})`);
  }
  if (typeof v.fileHash !== 'string' || !isSha1Hex(v.fileHash.toLowerCase())) {
    throw new InvalidShareError('fileHash must be a 40-digit hex SHA-1');
  }
  if (!Number.isSafeInteger(n.size) || n.size < 0) throw new InvalidShareError(`bad size ${n.size}`);
  for (const key of ['dev', 'ino'] as const) {
    if (!Number.isInteger(n[key]) || n[key] < 0) throw new InvalidShareError(`bad ${key} ${n[key]}`);
  }
  const expected = planChunks(n.size).count;
  if (n.chunkCount !== expected) {
    throw new InvalidShareError(`a file of ${n.size} bytes has ${expected} chunks, not ${n.chunkCount}`);
  }
  return Object.freeze({
    groupId: v.groupId as string,
    fileName: v.fileName as string,
    userId: v.userId as string,
    path: v.path,
    size: n.size,
    mtimeMs: n.mtimeMs,
    dev: n.dev,
    ino: n.ino,
    fileHash: v.fileHash.toLowerCase(),
    chunkCount: n.chunkCount,
    sharedAt: n.sharedAt,
  });
}
