import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { cacheKey, ReadCache } from '../storage/read-cache';
import { SQLITE_DB } from '../storage/storage.tokens';
import { SnapshotRow } from '../storage/snapshot-row';
import {
  FileInfo,
  FileRecord,
  FileStore,
  FileSummary,
  fileRow,
  readFileRow,
  SeederRecord,
  seederRow,
} from './file.store';

const EXPORT_PAGE = 256;

interface FileRow {
  group_id: string;
  file_name: string;
  file_size: number;
  file_hash: string;
  uploader: string;
  created_at: number;
}

interface SeederRow {
  group_id: string;
  file_name: string;
  user_id: string;
  file_path: string;
}

const toInfo = (r: FileRow): FileInfo => ({
  groupId: r.group_id,
  fileName: r.file_name,
  fileSize: r.file_size,
  fileHash: r.file_hash,
  uploader: r.uploader,
  createdAt: r.created_at,
});

const toSeeder = (r: SeederRow): SeederRecord => ({
  groupId: r.group_id,
  fileName: r.file_name,
  userId: r.user_id,
  filePath: r.file_path,
});

/** Chunk lists up to this size (3,276 chunks) are kept in the read cache. */
const MAX_CACHED_DIGEST_BYTES = 64 * 1024;

/**
 * Files and seeders in the tracker database. Chunk digests are one BLOB of raw
 * 20-byte digests, kept as the last column so that reading the other columns
 * never walks its overflow pages.
 */
@Injectable()
export class SqliteFileStore implements FileStore {
  private readonly sql: ReturnType<typeof prepare>;

  /** list_files and download_file read the same files and seeders again and again. */
  private readonly cache: ReadCache;

  clear(): void {
    this.db.exec('DELETE FROM file_seeders; DELETE FROM files;');
    this.cache.invalidate();
  }

  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {
    this.cache = new ReadCache(db);
    this.sql = prepare(db);
  }

  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  addFile(file: FileRecord): boolean {
    return this.changed(
      this.sql.insertFile.run(
        file.groupId,
        file.fileName,
        file.fileSize,
        file.fileHash,
        file.uploader,
        file.createdAt,
        file.chunkHashes,
      ).changes === 1,
    );
  }

  getFile(groupId: string, fileName: string): FileInfo | undefined {
    return this.cache.get(cacheKey('file', groupId, fileName), () => {
      const row = this.sql.selectFile.get(groupId, fileName);
      return row && toInfo(row);
    });
  }

  chunkHashes(groupId: string, fileName: string): Buffer | undefined {
    let read: Buffer | undefined;
    const cached = this.cache.get(cacheKey('chunks', groupId, fileName), () => {
      read = this.sql.selectChunks.pluck().get(groupId, fileName);
      // lists of files up to about 1.6 GB stay in memory; longer ones are read each time
      return read === undefined || read.length <= MAX_CACHED_DIGEST_BYTES ? read : null;
    });
    if (cached !== null) return cached && Buffer.from(cached);
    // too long to keep: the list just read (on a miss) or a fresh read, never both
    return read ?? this.sql.selectChunks.pluck().get(groupId, fileName);
  }

  listFiles(groupId: string): FileSummary[] {
    return this.cache.get(cacheKey('list', groupId), () =>
      this.sql.listFiles.all(groupId).map((r) => ({ fileName: r.file_name, fileSize: r.file_size })),
    );
  }

  deleteFile(groupId: string, fileName: string): boolean {
    return this.changed(this.sql.deleteFile.run(groupId, fileName).changes === 1);
  }

  deleteGroupFiles(groupId: string): string[] {
    return this.transaction(() => {
      const names = this.sql.groupFileNames.pluck().all(groupId);
      this.sql.deleteGroupFiles.run(groupId);
      return this.changed(names);
    });
  }

  putSeeder(seeder: SeederRecord): boolean {
    if (!this.sql.fileExists.get(seeder.groupId, seeder.fileName)) return false;
    this.sql.upsertSeeder.run(seeder.groupId, seeder.fileName, seeder.userId, seeder.filePath);
    return this.changed(true);
  }

  getSeeder(groupId: string, fileName: string, userId: string): SeederRecord | undefined {
    return this.cache.get(cacheKey('seeder', groupId, fileName, userId), () => {
      const row = this.sql.selectSeeder.get(groupId, fileName, userId);
      return row && toSeeder(row);
    });
  }

  seeders(groupId: string, fileName: string): SeederRecord[] {
    return this.cache.get(cacheKey('seeders', groupId, fileName), () =>
      this.sql.seeders.all(groupId, fileName).map(toSeeder),
    );
  }

  seederCount(groupId: string, fileName: string): number {
    return this.sql.seederCount.pluck().get(groupId, fileName) ?? 0;
  }

  removeSeeder(groupId: string, fileName: string, userId: string): boolean {
    return this.changed(this.sql.deleteSeeder.run(groupId, fileName, userId).changes === 1);
  }

  removeSeedersOf(groupId: string, userId: string): string[] {
    return this.transaction(() => {
      const names = this.sql.seededBy.pluck().all(groupId, userId);
      this.sql.deleteSeedersOf.run(groupId, userId);
      return this.changed(names);
    });
  }

  /** A page at a time, without chunk lists, then each file's list on its own: one long list in memory at most. */
  *exportRows(): Iterable<SnapshotRow> {
    for (let after = { group_id: '', file_name: '' }; ;) {
      const files = this.sql.filePage.all(after.group_id, after.group_id, after.file_name, EXPORT_PAGE);
      for (const f of files) {
        yield fileRow(toInfo(f), this.sql.selectChunks.pluck().get(f.group_id, f.file_name) ?? Buffer.alloc(0));
      }
      if (files.length < EXPORT_PAGE) break;
      after = files[files.length - 1];
    }
    for (let after = 0; ;) {
      const seeders = this.sql.seederPage.all(after, EXPORT_PAGE);
      for (const s of seeders) yield seederRow(toSeeder(s));
      if (seeders.length < EXPORT_PAGE) break;
      after = seeders[seeders.length - 1].seq;
    }
  }

  importRow(row: SnapshotRow): void {
    const read = readFileRow(row, (groupId, fileName) => this.sql.fileExists.get(groupId, fileName) !== undefined);
    if ('file' in read) this.addFile(read.file);
    else this.putSeeder(read.seeder);
  }

  /** Every write ends here: the cached reads are dropped once the write has run. */
  private changed<T>(result: T): T {
    this.cache.invalidate();
    return result;
  }
}

function prepare(db: Database.Database) {
  return {
    insertFile: db.prepare<[string, string, number, string, string, number, Buffer]>(
      `INSERT OR IGNORE INTO files (group_id, file_name, file_size, file_hash, uploader, created_at, chunk_hashes)
       VALUES (?, ?, ?, ?, ?, ?, ?)`,
    ),
    selectFile: db.prepare<[string, string], FileRow>(
      `SELECT group_id, file_name, file_size, file_hash, uploader, created_at
       FROM files WHERE group_id = ? AND file_name = ?`,
    ),
    fileExists: db.prepare<[string, string], { one: number }>(
      'SELECT 1 AS one FROM files WHERE group_id = ? AND file_name = ?',
    ),
    selectChunks: db.prepare<[string, string], Buffer>(
      'SELECT chunk_hashes FROM files WHERE group_id = ? AND file_name = ?',
    ),
    listFiles: db.prepare<[string], { file_name: string; file_size: number }>(
      `SELECT f.file_name, f.file_size FROM files f
       WHERE f.group_id = ?
         AND EXISTS (SELECT 1 FROM file_seeders s WHERE s.group_id = f.group_id AND s.file_name = f.file_name)
       ORDER BY f.file_name`,
    ),
    deleteFile: db.prepare<[string, string]>('DELETE FROM files WHERE group_id = ? AND file_name = ?'),
    groupFileNames: db.prepare<[string], string>('SELECT file_name FROM files WHERE group_id = ? ORDER BY file_name'),
    deleteGroupFiles: db.prepare<[string]>('DELETE FROM files WHERE group_id = ?'),
    upsertSeeder: db.prepare<[string, string, string, string]>(
      `INSERT INTO file_seeders (group_id, file_name, user_id, file_path) VALUES (?, ?, ?, ?)
       ON CONFLICT (group_id, file_name, user_id) DO UPDATE SET file_path = excluded.file_path`,
    ),
    selectSeeder: db.prepare<[string, string, string], SeederRow>(
      `SELECT group_id, file_name, user_id, file_path FROM file_seeders
       WHERE group_id = ? AND file_name = ? AND user_id = ?`,
    ),
    seeders: db.prepare<[string, string], SeederRow>(
      `SELECT group_id, file_name, user_id, file_path FROM file_seeders
       WHERE group_id = ? AND file_name = ? ORDER BY seq`,
    ),
    seederCount: db.prepare<[string, string], number>(
      'SELECT count(*) FROM file_seeders WHERE group_id = ? AND file_name = ?',
    ),
    deleteSeeder: db.prepare<[string, string, string]>(
      'DELETE FROM file_seeders WHERE group_id = ? AND file_name = ? AND user_id = ?',
    ),
    seededBy: db.prepare<[string, string], string>(
      'SELECT file_name FROM file_seeders WHERE group_id = ? AND user_id = ? ORDER BY file_name',
    ),
    deleteSeedersOf: db.prepare<[string, string]>('DELETE FROM file_seeders WHERE group_id = ? AND user_id = ?'),
    filePage: db.prepare<[string, string, string, number], FileRow>(
      `SELECT group_id, file_name, file_size, file_hash, uploader, created_at FROM files
       WHERE group_id > ? OR (group_id = ? AND file_name > ?) ORDER BY group_id, file_name LIMIT ?`,
    ),
    seederPage: db.prepare<[number, number], SeederRow & { seq: number }>(
      'SELECT seq, group_id, file_name, user_id, file_path FROM file_seeders WHERE seq > ? ORDER BY seq LIMIT ?',
    ),
  };
}
