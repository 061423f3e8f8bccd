import Database from 'better-sqlite3';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { thrownBy } from '../testing/thrown';
import { TempDatabases } from '../testing/temp-db';
import {
  migrate,
  MIGRATIONS,
  NewerSchemaError,
  SCHEMA_VERSION,
  schemaVersion,
  storedSchemaVersion,
} from './migrations';
import { openDatabase } from './storage.module';

/** The tables exactly as the stores created them before the database had a schema version. */
const UNVERSIONED_DDL = `
  CREATE TABLE IF NOT EXISTS users (
      user_id TEXT PRIMARY KEY,
      password_hash TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS session_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      created_at INTEGER NOT NULL,
      held_by INTEGER NOT NULL DEFAULT 0,
      seen_at INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
  CREATE TABLE IF NOT EXISTS groups (
        group_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );
  CREATE TABLE IF NOT EXISTS group_members (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        UNIQUE (group_id, user_id)
      );
  CREATE INDEX IF NOT EXISTS group_members_user ON group_members(user_id);
  CREATE TABLE IF NOT EXISTS join_requests (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id TEXT NOT NULL REFERENCES groups(group_id) ON DELETE CASCADE,
        user_id TEXT NOT NULL,
        UNIQUE (group_id, user_id)
      );
  CREATE INDEX IF NOT EXISTS join_requests_user ON join_requests(user_id);
  CREATE TABLE IF NOT EXISTS files (
        group_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        file_size INTEGER NOT NULL,
        file_hash TEXT NOT NULL,
        uploader TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        chunk_hashes BLOB NOT NULL,
        PRIMARY KEY (group_id, file_name)
      );
  CREATE TABLE IF NOT EXISTS file_seeders (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        group_id TEXT NOT NULL,
        file_name TEXT NOT NULL,
        user_id TEXT NOT NULL,
        file_path TEXT NOT NULL,
        UNIQUE (group_id, file_name, user_id),
        FOREIGN KEY (group_id, file_name) REFERENCES files(group_id, file_name) ON DELETE CASCADE
      );
  CREATE INDEX IF NOT EXISTS file_seeders_user ON file_seeders(group_id, user_id);
  CREATE TABLE IF NOT EXISTS oplog (
        origin INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        lamport INTEGER NOT NULL,
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        request_id TEXT NOT NULL,
        args TEXT NOT NULL,
        PRIMARY KEY (origin, seq)
      ) WITHOUT ROWID;
  CREATE INDEX IF NOT EXISTS oplog_order ON oplog(lamport, origin, seq);
  CREATE INDEX IF NOT EXISTS oplog_request ON oplog(request_id) WHERE request_id != '';
`;

const ROWS = `
  INSERT INTO users VALUES ('alice', 'plain$a', 10), ('bob', 'plain$b', 11);
  INSERT INTO groups VALUES ('team', 'alice', 12);
  INSERT INTO group_members (group_id, user_id) VALUES ('team', 'alice'), ('team', 'bob');
  INSERT INTO join_requests (group_id, user_id) VALUES ('team', 'carol');
  INSERT INTO files VALUES ('team', 'a.txt', 5, 'abc', 'alice', 13, x'00112233445566778899aabbccddeeff00112233');
  INSERT INTO file_seeders (group_id, file_name, user_id, file_path) VALUES ('team', 'a.txt', 'alice', '/x/a.txt');
  INSERT INTO oplog VALUES (1, 1, 1, 10, 'create_user', '', 'c1-1', '["alice","plain$a"]');
`;

const TABLES = [
  'users',
  'session_tokens',
  'groups',
  'group_members',
  'join_requests',
  'files',
  'file_seeders',
  'oplog',
];

/** Every row of every table of today's state, in key order, so that two databases can be compared. */
function dump(db: Database.Database): Record<string, unknown[]> {
  return Object.fromEntries(TABLES.map((t) => [t, db.prepare(`SELECT * FROM ${t} ORDER BY 1, 2`).all()]));
}

const schemaOf = (db: Database.Database, names: readonly string[]) =>
  db
    .prepare<[], { name: string; sql: string }>(
      'SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name',
    )
    .all()
    .filter((r) => names.includes(r.name));

describe('tracker database migrations', () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  /** A tracker.db as a tracker without schema versions left it: today's tables, user_version 0. */
  function unversioned(dir: string, ddl = UNVERSIONED_DDL): void {
    const db = new Database(join(dir, 'tracker.db'));
    db.pragma('journal_mode = WAL');
    db.exec(ddl);
    db.exec(ROWS);
    db.close();
  }

  it('creates every table of the current schema in a new database and marks it current', () => {
    const db = dbs.open();
    expect(SCHEMA_VERSION).toBe(2);
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    const tables = db.prepare<[], string>("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all();
    expect(tables).toEqual(expect.arrayContaining([...TABLES, 'snapshot', 'snapshot_rows', 'snapshot_incoming']));
  });

  it('takes an unversioned database to the current version, its tables and rows as they were', () => {
    const dir = dbs.newDir();
    unversioned(dir);
    const before = new Database(join(dir, 'tracker.db'));
    const rows = dump(before);
    const schema = schemaOf(before, TABLES);
    before.close();
    expect(storedSchemaVersion(join(dir, 'tracker.db'))).toBe(0);

    const db = dbs.open(dir);
    expect(schemaVersion(db)).toBe(SCHEMA_VERSION);
    expect(dump(db)).toEqual(rows);
    expect(schemaOf(db, TABLES)).toEqual(schema);
    expect(db.prepare('SELECT count(*) AS n FROM snapshot').get()).toEqual({ n: 0 });
    db.close();
    expect(storedSchemaVersion(join(dir, 'tracker.db'))).toBe(SCHEMA_VERSION);
  });

  it('adds the session columns to a database older than session expiry', () => {
    const dir = dbs.newDir();
    unversioned(dir, UNVERSIONED_DDL.replace(/,\s*held_by[^,]*,\s*seen_at INTEGER NOT NULL DEFAULT 0/, ''));
    const old = new Database(join(dir, 'tracker.db'));
    old.exec("INSERT INTO session_tokens VALUES ('t1', 'alice', 500)");
    old.close();

    const db = dbs.open(dir);
    expect(db.prepare('SELECT * FROM session_tokens').all()).toEqual([
      { token_hash: 't1', user_id: 'alice', created_at: 500, held_by: 0, seen_at: 500 },
    ]);
  });

  it('runs the steps in one transaction: one that fails leaves the version and the tables as they were', () => {
    const db = new Database(':memory:');
    const failing = [MIGRATIONS[0], { version: 2, description: 'broken', up: () => thrownNow() }];
    expect(() => migrate(db, failing)).toThrow('broken step');
    expect(schemaVersion(db)).toBe(0);
    expect(db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name = 'users'").get()).toEqual({ n: 0 });
    expect(migrate(db, MIGRATIONS.slice(0, 1))).toBe(0);
    expect(schemaVersion(db)).toBe(1);
    expect(migrate(db)).toBe(1);
    expect(schemaVersion(db)).toBe(2);
    db.close();
  });

  it('refuses a database marked newer than this build knows, and leaves its file byte for byte as it was', () => {
    const dir = dbs.newDir();
    unversioned(dir);
    const path = join(dir, 'tracker.db');
    const marked = new Database(path);
    marked.pragma('user_version = 7');
    marked.close();
    const bytes = readFileSync(path);

    const err = thrownBy(() => openDatabase(dir));
    expect(err).toBeInstanceOf(NewerSchemaError);
    expect((err as Error).message).toBe(
      'tracker.db was written by a newer version (schema 7; this build knows up to 2); refusing to start',
    );
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('reads the version of a database whose newest changes are still in its write-ahead log', () => {
    const dir = dbs.newDir();
    const path = join(dir, 'tracker.db');
    const writer = new Database(path);
    writer.pragma('journal_mode = WAL');
    writer.pragma('wal_autocheckpoint = 0');
    writer.exec('CREATE TABLE t (x)');
    writer.pragma('user_version = 9');
    // still open: the change is in tracker.db-wal only
    expect(storedSchemaVersion(path)).toBe(9);
    expect(() => openDatabase(dir)).toThrow(NewerSchemaError);
    writer.close();
  });

  it('reads 0 for a missing or empty file', () => {
    const dir = dbs.newDir();
    expect(storedSchemaVersion(join(dir, 'tracker.db'))).toBe(0);
    writeFileSync(join(dir, 'tracker.db'), '');
    expect(storedSchemaVersion(join(dir, 'tracker.db'))).toBe(0);
  });
});

function thrownNow(): never {
  throw new Error('broken step');
}
