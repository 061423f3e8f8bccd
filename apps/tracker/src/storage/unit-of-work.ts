import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { SQLITE_DB } from './storage.tokens';

/** The unit of work every store write of one change runs in. */
export const UNIT_OF_WORK = Symbol('UNIT_OF_WORK');

/**
 * All or nothing over every store: what `work` wrote to any store is kept
 * when it returns and undone when it throws (the error then reaches the
 * caller). A run inside a run is a savepoint of the outer one: undone alone
 * when it throws, kept only if the outer run is.
 */
export interface UnitOfWork {
  run<T>(work: () => T): T;
}

/** One better-sqlite3 transaction over the handle every SQLite store shares (a savepoint when nested). */
@Injectable()
export class SqliteUnitOfWork implements UnitOfWork {
  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {}

  run<T>(work: () => T): T {
    return this.db.transaction(work)();
  }
}
