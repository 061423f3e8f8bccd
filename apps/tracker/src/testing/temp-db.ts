import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../storage/storage.module';

/** Opens tracker databases the way the tracker does, each in a fresh temp folder; `cleanup` closes and removes them all. */
export class TempDatabases {
  private readonly dirs: string[] = [];
  private readonly dbs: Database.Database[] = [];

  newDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'tracker-spec-'));
    this.dirs.push(dir);
    return dir;
  }

  open(dir = this.newDir()): Database.Database {
    const db = openDatabase(dir);
    this.dbs.push(db);
    return db;
  }

  cleanup(): void {
    for (const db of this.dbs.splice(0)) if (db.open) db.close();
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}
