import { Injectable, Optional } from '@nestjs/common';
import { Checkpointable, InMemoryUnitOfWork, Restore, restoringOnError } from '../storage/in-memory-unit-of-work';
import { SnapshotRow } from '../storage/snapshot-row';
import {
  compareNames,
  FileInfo,
  FileRecord,
  FileStore,
  FileSummary,
  fileRow,
  readFileRow,
  SeederRecord,
  seederRow,
} from './file.store';

interface FileState {
  readonly record: FileRecord;
  /** userId -> seeder; insertion order is seeding order. */
  seeders: Map<string, SeederRecord>;
}

const infoOf = (r: FileRecord): FileInfo => ({
  groupId: r.groupId,
  fileName: r.fileName,
  fileSize: r.fileSize,
  fileHash: r.fileHash,
  uploader: r.uploader,
  createdAt: r.createdAt,
});

@Injectable()
export class InMemoryFileStore implements FileStore, Checkpointable {
  /** groupId -> fileName -> file. */
  private groups = new Map<string, Map<string, FileState>>();

  /** Enlists with the in-memory unit of work when one is provided beside it, so that a failed change undoes it too. */
  constructor(@Optional() work?: InMemoryUnitOfWork) {
    work?.enlist(this);
  }

  transaction<T>(work: () => T): T {
    return restoringOnError(this, work);
  }

  checkpoint(): Restore {
    const snapshot = new Map(
      [...this.groups].map(([groupId, files]) => [
        groupId,
        new Map([...files].map(([name, f]) => [name, { record: f.record, seeders: new Map(f.seeders) }])),
      ]),
    );
    return () => {
      this.groups = snapshot;
    };
  }

  addFile(file: FileRecord): boolean {
    let files = this.groups.get(file.groupId);
    if (files?.has(file.fileName)) return false;
    if (!files) this.groups.set(file.groupId, (files = new Map<string, FileState>()));
    files.set(file.fileName, {
      record: { ...file, chunkHashes: Buffer.from(file.chunkHashes) },
      seeders: new Map<string, SeederRecord>(),
    });
    return true;
  }

  getFile(groupId: string, fileName: string): FileInfo | undefined {
    const f = this.file(groupId, fileName);
    return f && infoOf(f.record);
  }

  chunkHashes(groupId: string, fileName: string): Buffer | undefined {
    const f = this.file(groupId, fileName);
    return f && Buffer.from(f.record.chunkHashes);
  }

  listFiles(groupId: string): FileSummary[] {
    return [...(this.groups.get(groupId)?.values() ?? [])]
      .filter((f) => f.seeders.size > 0)
      .map((f) => ({ fileName: f.record.fileName, fileSize: f.record.fileSize }))
      .sort((a, b) => compareNames(a.fileName, b.fileName));
  }

  deleteFile(groupId: string, fileName: string): boolean {
    const files = this.groups.get(groupId);
    const deleted = files?.delete(fileName) ?? false;
    if (files?.size === 0) this.groups.delete(groupId);
    return deleted;
  }

  deleteGroupFiles(groupId: string): string[] {
    const names = [...(this.groups.get(groupId)?.keys() ?? [])].sort(compareNames);
    this.groups.delete(groupId);
    return names;
  }

  putSeeder(seeder: SeederRecord): boolean {
    const f = this.file(seeder.groupId, seeder.fileName);
    if (!f) return false;
    f.seeders.set(seeder.userId, { ...seeder });
    return true;
  }

  getSeeder(groupId: string, fileName: string, userId: string): SeederRecord | undefined {
    const s = this.file(groupId, fileName)?.seeders.get(userId);
    return s && { ...s };
  }

  seeders(groupId: string, fileName: string): SeederRecord[] {
    return [...(this.file(groupId, fileName)?.seeders.values() ?? [])].map((s) => ({ ...s }));
  }

  seederCount(groupId: string, fileName: string): number {
    return this.file(groupId, fileName)?.seeders.size ?? 0;
  }

  removeSeeder(groupId: string, fileName: string, userId: string): boolean {
    return this.file(groupId, fileName)?.seeders.delete(userId) ?? false;
  }

  removeSeedersOf(groupId: string, userId: string): string[] {
    const names: string[] = [];
    for (const f of this.groups.get(groupId)?.values() ?? []) {
      if (f.seeders.delete(userId)) names.push(f.record.fileName);
    }
    return names.sort(compareNames);
  }

  clear(): void {
    this.groups.clear();
  }

  *exportRows(): Iterable<SnapshotRow> {
    for (const groupId of [...this.groups.keys()].sort(compareNames)) {
      const files = [...this.groups.get(groupId)!.values()].sort((a, b) =>
        compareNames(a.record.fileName, b.record.fileName),
      );
      for (const f of files) {
        yield fileRow(infoOf(f.record), f.record.chunkHashes);
        for (const s of f.seeders.values()) yield seederRow(s);
      }
    }
  }

  importRow(row: SnapshotRow): void {
    const read = readFileRow(row, (groupId, fileName) => this.file(groupId, fileName) !== undefined);
    if ('file' in read) this.addFile(read.file);
    else this.putSeeder(read.seeder);
  }

  private file(groupId: string, fileName: string): FileState | undefined {
    return this.groups.get(groupId)?.get(fileName);
  }
}
