import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { makePrivateDir, makePrivateFile, makePrivateIfExists } from '../common/private-files';
import { assertKnownSchema, migrate, storedSchemaVersion } from './migrations';
import { SQLITE_DB } from './storage.tokens';
import { SqliteUnitOfWork, UNIT_OF_WORK } from './unit-of-work';

/**
 * Opens `<dataDir>/tracker.db`: WAL journal, full fsync on commit, so an acknowledged change survives kill -9.
 * The folder is owner-only (0700) and the database owner-only (0600) before SQLite opens it; SQLite gives the
 * `-wal` and `-shm` files it creates the database file's mode, and any left by an older version are made 0600.
 * The schema is brought up to date (migrations.ts); a database written by a newer version is refused with
 * `NewerSchemaError` before anything in it is written.
 */
export function openDatabase(dataDir: string): Database.Database {
  makePrivateDir(dataDir);
  const path = join(dataDir, 'tracker.db');
  assertKnownSchema(storedSchemaVersion(path));
  makePrivateFile(path);
  makePrivateIfExists(`${path}-wal`);
  makePrivateIfExists(`${path}-shm`);
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  try {
    migrate(db);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

@Global()
@Module({})
export class StorageModule implements OnApplicationShutdown {
  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {}

  static forRoot(dataDir: string): DynamicModule {
    return {
      module: StorageModule,
      providers: [
        { provide: SQLITE_DB, useFactory: () => openDatabase(dataDir) },
        { provide: UNIT_OF_WORK, useClass: SqliteUnitOfWork },
      ],
      exports: [SQLITE_DB, UNIT_OF_WORK],
    };
  }

  onApplicationShutdown(): void {
    if (this.db.open) this.db.close();
  }
}
