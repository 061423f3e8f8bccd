import Database from 'better-sqlite3';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/** One step of the tracker database's schema; `up` runs inside the transaction that opens the database. */
export interface Migration {
  readonly version: number;
  readonly description: string;
  up(db: Database.Database): void;
}

/**
 * Version 1: the schema every store created for itself before the database had a version. A database with those
 * tables and `user_version` 0 gets nothing new from it (every statement is `IF NOT EXISTS`), apart from the
 * session columns that a database older still lacks.
 */
const V1_TABLES = `
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

/**
 * Version 2: compaction. `snapshot` is the one cut the op log was compacted at (the version vector and the last
 * op in the total order it covers); `snapshot_rows` the replicated state at that cut, one row of one part of the
 * state each (`part` is the participant's name, `row` a JSON array of strings), in the order it was exported;
 * `snapshot_incoming` the rows of a snapshot another tracker is sending, until all of them are here;
 * `compacted_requests` the request ids of compacted ops for a while, so that a retried request is still applied once.
 */
const V2_SNAPSHOT = `
  CREATE TABLE snapshot (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    version_vector TEXT NOT NULL,
    lamport INTEGER NOT NULL,
    origin INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    op_count INTEGER NOT NULL,
    row_count INTEGER NOT NULL,
    taken_at INTEGER NOT NULL
  );
  CREATE TABLE snapshot_rows (
    n INTEGER PRIMARY KEY,
    part TEXT NOT NULL,
    row TEXT NOT NULL
  );
  CREATE TABLE snapshot_incoming (
    n INTEGER PRIMARY KEY,
    part TEXT NOT NULL,
    row TEXT NOT NULL
  );
  CREATE TABLE compacted_requests (
    request_id TEXT NOT NULL,
    actor TEXT NOT NULL,
    time INTEGER NOT NULL,
    PRIMARY KEY (request_id, actor)
  ) WITHOUT ROWID;
  CREATE INDEX compacted_requests_time ON compacted_requests(time);
`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'the tables of users, sessions, groups, files and the op log',
    up: (db) => {
      db.exec(V1_TABLES);
      addSessionColumns(db);
    },
  },
  { version: 2, description: 'op log snapshots (compaction)', up: (db) => db.exec(V2_SNAPSHOT) },
];

/** The schema version this build writes. */
export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1].version;

/** A database whose schema this build does not know: starting would misread or damage it. */
export class NewerSchemaError extends Error {
  override readonly name = 'NewerSchemaError';
  constructor(
    readonly found: number,
    readonly known: number,
  ) {
    super(
      `tracker.db was written by a newer version (schema ${found}; this build knows up to ${known}); refusing to start`,
    );
  }
}

export function schemaVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/** Throws NewerSchemaError when `version` is past what this build knows. */
export function assertKnownSchema(version: number, known = SCHEMA_VERSION): void {
  if (version > known) throw new NewerSchemaError(version, known);
}

/**
 * Brings the database up to `SCHEMA_VERSION` in one transaction: every migration past its `user_version` runs,
 * then the version is set. All or nothing. A database marked newer is refused before anything is written.
 * Returns the version it had.
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = MIGRATIONS): number {
  const from = schemaVersion(db);
  const to = migrations[migrations.length - 1].version;
  assertKnownSchema(from, to);
  if (from === to) return from;
  db.transaction(() => {
    for (const m of migrations) if (m.version > from) m.up(db);
    db.pragma(`user_version = ${to}`);
  })();
  return from;
}

/**
 * The `user_version` of the database file at `path`, read without writing anything (0 when there is none yet):
 * from the file's header, or, when a write-ahead log holds changes not yet in the file, through a read-only
 * connection.
 */
export function storedSchemaVersion(path: string): number {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  if (size < 100) return 0;
  let walSize = 0;
  try {
    walSize = statSync(`${path}-wal`).size;
  } catch {
    // no write-ahead log: the header is current
  }
  if (walSize > 0) {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    try {
      return schemaVersion(db);
    } finally {
      db.close();
    }
  }
  const header = Buffer.alloc(100);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, header, 0, 100, 0);
  } finally {
    closeSync(fd);
  }
  return header.readUInt32BE(60);
}

/**
 * Databases written before sessions expired have no `held_by`/`seen_at`: add them in place. Such tokens count as
 * held by nobody and last seen when they were issued, so they run out after the idle time.
 */
function addSessionColumns(db: Database.Database): void {
  const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('session_tokens')").all();
  if (columns.some((c) => c.name === 'seen_at')) return;
  db.exec('ALTER TABLE session_tokens ADD COLUMN held_by INTEGER NOT NULL DEFAULT 0');
  db.exec('ALTER TABLE session_tokens ADD COLUMN seen_at INTEGER NOT NULL DEFAULT 0');
  db.exec('UPDATE session_tokens SET seen_at = created_at');
}
