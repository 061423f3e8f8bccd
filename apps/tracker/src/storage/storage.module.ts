import { DynamicModule, Global, Inject, Module, OnApplicationShutdown } from '@nestjs/common';
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { SQLITE_DB } from './storage.tokens';

/** Opens `<dataDir>/tracker.db`: WAL journal, full fsync on commit, so an acknowledged change survives kill -9. */
export function openDatabase(dataDir: string): Database.Database {
  mkdirSync(dataDir, { recursive: true });
  const db = new Database(join(dataDir, 'tracker.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  return db;
}

@Global()
@Module({})
export class StorageModule implements OnApplicationShutdown {
  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {}

  static forRoot(dataDir: string): DynamicModule {
    return {
      module: StorageModule,
      providers: [{ provide: SQLITE_DB, useFactory: () => openDatabase(dataDir) }],
      exports: [SQLITE_DB],
    };
  }

  onApplicationShutdown(): void {
    if (this.db.open) this.db.close();
  }
}
