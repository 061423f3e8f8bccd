import { idField, intField, rowFields, SnapshotRow, SnapshotRowError } from '../storage/snapshot-row';

/** What the group knows of a shared file, without its chunk list. */
export interface FileInfo {
  readonly groupId: string;
  /** The file's name in the group: the basename of the first uploader's path. */
  readonly fileName: string;
  readonly fileSize: number;
  /** Lowercase hex SHA-1 of the whole file. */
  readonly fileHash: string;
  readonly uploader: string;
  readonly createdAt: number;
}

export interface FileRecord extends FileInfo {
  /** The chunks' SHA-1 digests, raw, 20 bytes each, in chunk order (see `packChunkHashes`). */
  readonly chunkHashes: Buffer;
}

/** A user who shares a file, and where the file lies on that user's machine. */
export interface SeederRecord {
  readonly groupId: string;
  readonly fileName: string;
  readonly userId: string;
  readonly filePath: string;
}

/** One line of `list_files`: a file that has at least one seeder. */
export interface FileSummary {
  readonly fileName: string;
  readonly fileSize: number;
}

/**
 * Shared files per group and the users who seed them. A seeder row needs its
 * file; deleting a file deletes its seeder rows. Every method is synchronous;
 * `transaction` makes a sequence of them atomic.
 */
export interface FileStore {
  transaction<T>(work: () => T): T;
  /** Adds the file; false when the group already has a file of that name. */
  addFile(file: FileRecord): boolean;
  getFile(groupId: string, fileName: string): FileInfo | undefined;
  /** The raw chunk digests of a file (see `unpackChunkHashes`). */
  chunkHashes(groupId: string, fileName: string): Buffer | undefined;
  /** Files of the group that have at least one seeder, ordered by name (code point order). */
  listFiles(groupId: string): FileSummary[];
  /** Removes the file with its seeder rows; false when there was none. */
  deleteFile(groupId: string, fileName: string): boolean;
  /** Removes every file of the group with their seeder rows; returns the names removed, ordered by name. */
  deleteGroupFiles(groupId: string): string[];
  /** Adds the seeder, or updates the path of an existing one (keeping its place); false when the file is unknown. */
  putSeeder(seeder: SeederRecord): boolean;
  getSeeder(groupId: string, fileName: string, userId: string): SeederRecord | undefined;
  /** Seeders of a file, longest-standing first. */
  seeders(groupId: string, fileName: string): SeederRecord[];
  seederCount(groupId: string, fileName: string): number;
  /** False when the user did not seed the file. */
  removeSeeder(groupId: string, fileName: string, userId: string): boolean;
  /** Removes every seeder row of the user in the group; returns the file names concerned, ordered by name. */
  removeSeedersOf(groupId: string, userId: string): string[];
  /** Forgets every file and seeder (before the state is rebuilt from the change log). */
  clear(): void;
  /**
   * Every file and seeder as snapshot rows (`fileRow`, `seederRow`), a file before its seeders, seeders in their
   * order; read a page at a time, one chunk list at a time.
   */
  exportRows(): Iterable<SnapshotRow>;
  /** Adds one row of a snapshot; throws SnapshotRowError on one it cannot read. */
  importRow(row: SnapshotRow): void;
}

/** `file <group> <name> <size> <sha1> <uploader> <created> <chunk digests as one hex string>` */
export const fileRow = (f: FileInfo, chunkHashes: Buffer): SnapshotRow => [
  'file',
  f.groupId,
  f.fileName,
  String(f.fileSize),
  f.fileHash,
  f.uploader,
  String(f.createdAt),
  chunkHashes.toString('hex'),
];

/** `seeder <group> <name> <user> <path>` */
export const seederRow = (s: SeederRecord): SnapshotRow => ['seeder', s.groupId, s.fileName, s.userId, s.filePath];

/** Reads a row `exportRows` wrote; a seeder of a file `known` does not hold is refused. */
export function readFileRow(
  row: SnapshotRow,
  known: (groupId: string, fileName: string) => boolean,
): { file: FileRecord } | { seeder: SeederRecord } {
  const fields = rowFields(row, { file: 7, seeder: 4 });
  if (row[0] === 'file') {
    const [groupId, fileName, fileSize, fileHash, uploader, createdAt, chunks] = fields;
    if (chunks.length % (DIGEST_BYTES * 2) !== 0 || !/^[0-9a-f]*$/.test(chunks)) {
      throw new SnapshotRowError('the chunk digests of a snapshot file row are not 40-digit hex SHA-1s');
    }
    if (known(groupId, fileName)) throw new SnapshotRowError(`file ${fileName.slice(0, 40)} twice in a snapshot`);
    return {
      file: {
        groupId: idField(groupId, 'group id'),
        fileName: idField(fileName, 'file name'),
        fileSize: intField(fileSize, 'file size'),
        fileHash: idField(fileHash, 'file hash'),
        uploader: idField(uploader, 'user id'),
        createdAt: intField(createdAt, 'time'),
        chunkHashes: Buffer.from(chunks, 'hex'),
      },
    };
  }
  const [groupId, fileName, userId, filePath] = fields;
  if (!known(groupId, fileName)) {
    throw new SnapshotRowError(`a snapshot seeder of file ${fileName.slice(0, 40)} before the file`);
  }
  return { seeder: { groupId, fileName, userId: idField(userId, 'user id'), filePath: idField(filePath, 'path') } };
}

const DIGEST_BYTES = 20;

/** Lowercase 40-digit hex SHA-1s into one buffer of raw 20-byte digests. */
export function packChunkHashes(hashes: readonly string[]): Buffer {
  const hex = hashes.join('');
  if (hex.length !== hashes.length * DIGEST_BYTES * 2 || !/^[0-9a-fA-F]*$/.test(hex)) {
    throw new RangeError('chunk hashes must be 40-digit hex SHA-1s');
  }
  return Buffer.from(hex, 'hex');
}

/** Inverse of `packChunkHashes`: lowercase hex, one string per chunk. */
export function unpackChunkHashes(packed: Buffer): string[] {
  if (packed.length % DIGEST_BYTES !== 0)
    throw new RangeError(`${packed.length} bytes is not a whole number of digests`);
  const hex = packed.toString('hex');
  const hashes = new Array<string>(packed.length / DIGEST_BYTES);
  for (let i = 0; i < hashes.length; i++) hashes[i] = hex.slice(i * 2 * DIGEST_BYTES, (i + 1) * 2 * DIGEST_BYTES);
  return hashes;
}

/** Orders names as SQLite's BINARY collation does for UTF-8 text: by code point. */
export function compareNames(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.codePointAt(i)!;
    const y = b.codePointAt(i)!;
    if (x !== y) return x - y;
    if (x > 0xffff) i++;
  }
  return a.length - b.length;
}
