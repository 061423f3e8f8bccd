import {
  compareOps,
  decodeOpBody,
  ErrorCode,
  encodeOpArgs,
  formatVersionVector,
  parseVersionVector,
  ProtocolError,
  StampedOp,
  VersionVector,
} from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { SQLITE_DB } from '../storage/storage.tokens';
import { SnapshotRow } from '../storage/snapshot-row';
import { OpLogStore, REQUEST_MEMORY_MS, SnapshotCut, SnapshotEntry } from './oplog.store';

interface SnapshotMetaRow {
  version_vector: string;
  lamport: number;
  origin: number;
  seq: number;
  op_count: number;
  row_count: number;
  taken_at: number;
}

interface SnapshotRowRow {
  n: number;
  part: string;
  row: string;
}

/** Snapshot rows are read this many at a time: a row may hold a chunk list of megabytes. */
const SNAPSHOT_PAGE = 4;

interface OpRow {
  origin: number;
  seq: number;
  lamport: number;
  time: number;
  kind: string;
  actor: string;
  request_id: string;
  args: string;
}

const PAGE = 256;

/** A stored row as a typed change; a row that is not a valid change (a corrupt database) is named in the error. */
function toOp(r: OpRow): StampedOp {
  let args: unknown;
  try {
    args = JSON.parse(r.args);
  } catch {
    args = undefined;
  }
  const where = `stored change ${r.origin}/${r.seq}`;
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) {
    throw new ProtocolError(ErrorCode.BadArguments, `${where}: its args are not a JSON array of strings`);
  }
  let body;
  try {
    body = decodeOpBody(r.kind, args);
  } catch (err) {
    if (err instanceof ProtocolError) throw new ProtocolError(err.code, `${where}: ${err.message}`);
    throw err;
  }
  // onto the fresh body, not a spread of it (see decodeOpTokens)
  return Object.assign(body, {
    origin: r.origin,
    seq: r.seq,
    lamport: r.lamport,
    time: r.time,
    actor: r.actor,
    requestId: r.request_id,
  });
}

@Injectable()
export class SqliteOpLogStore implements OpLogStore {
  private readonly sql;

  constructor(@Inject(SQLITE_DB) private readonly db: Database.Database) {
    this.sql = {
      insert: db.prepare<[number, number, number, number, string, string, string, string]>(
        'INSERT OR IGNORE INTO oplog (origin, seq, lamport, time, kind, actor, request_id, args) VALUES (?, ?, ?, ?, ?, ?, ?, ?)',
      ),
      page: db.prepare<[number, number, number, number, number, number], OpRow>(
        `SELECT * FROM oplog WHERE lamport > ? OR (lamport = ? AND (origin > ? OR (origin = ? AND seq > ?)))
         ORDER BY lamport, origin, seq LIMIT ?`,
      ),
      fromOrigin: db.prepare<[number, number, number], OpRow>(
        'SELECT * FROM oplog WHERE origin = ? AND seq > ? ORDER BY seq LIMIT ?',
      ),
      origins: db.prepare<[], { origin: number; seq: number }>(
        'SELECT origin, max(seq) AS seq FROM oplog GROUP BY origin',
      ),
      last: db.prepare<[], OpRow>('SELECT * FROM oplog ORDER BY lamport DESC, origin DESC, seq DESC LIMIT 1'),
      maxLamport: db.prepare<[], { n: number | null }>('SELECT max(lamport) AS n FROM oplog'),
      request: db.prepare<[string, string], { one: number }>(
        "SELECT 1 AS one FROM oplog WHERE request_id = ? AND actor = ? AND request_id != '' AND actor != '' LIMIT 1",
      ),
      count: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM oplog'),
      snapshot: db.prepare<[], SnapshotMetaRow>('SELECT * FROM snapshot WHERE id = 1'),
      putSnapshot: db.prepare<[string, number, number, number, number, number, number]>(
        `INSERT OR REPLACE INTO snapshot (id, version_vector, lamport, origin, seq, op_count, row_count, taken_at)
         VALUES (1, ?, ?, ?, ?, ?, ?, ?)`,
      ),
      clearSnapshotRows: db.prepare('DELETE FROM snapshot_rows'),
      addSnapshotRow: db.prepare<[string, string]>('INSERT INTO snapshot_rows (part, row) VALUES (?, ?)'),
      snapshotPage: db.prepare<[number, number], SnapshotRowRow>(
        'SELECT n, part, row FROM snapshot_rows WHERE n > ? ORDER BY n LIMIT ?',
      ),
      deleteThrough: db.prepare<[number, number]>('DELETE FROM oplog WHERE origin = ? AND seq <= ?'),
      keepRequests: db.prepare<[number, number, number]>(
        `INSERT OR IGNORE INTO compacted_requests (request_id, actor, time)
         SELECT request_id, actor, time FROM oplog
         WHERE origin = ? AND seq <= ? AND request_id != '' AND actor != '' AND time >= ?`,
      ),
      forgetRequests: db.prepare<[number]>('DELETE FROM compacted_requests WHERE time < ?'),
      compactedRequest: db.prepare<[string, string], { one: number }>(
        'SELECT 1 AS one FROM compacted_requests WHERE request_id = ? AND actor = ?',
      ),
      clearIncoming: db.prepare('DELETE FROM snapshot_incoming'),
      addIncoming: db.prepare<[string, string]>('INSERT INTO snapshot_incoming (part, row) VALUES (?, ?)'),
      incomingPage: db.prepare<[number, number], SnapshotRowRow>(
        'SELECT n, part, row FROM snapshot_incoming WHERE n > ? ORDER BY n LIMIT ?',
      ),
    };
  }

  transaction<T>(work: () => T): T {
    return this.db.transaction(work)();
  }

  append(op: StampedOp): boolean {
    return (
      this.sql.insert.run(
        op.origin,
        op.seq,
        op.lamport,
        op.time,
        op.kind,
        op.actor,
        op.requestId,
        // the args column is the kind's positional args as a JSON array, exactly as before the ops were typed
        JSON.stringify(encodeOpArgs(op)),
      ).changes === 1
    );
  }

  /** Pages through the log, so that the caller may write to the database between pages. */
  *all(): Iterable<StampedOp> {
    let after = { lamport: 0, origin: 0, seq: 0 };
    for (;;) {
      const { lamport, origin, seq } = after;
      const rows = this.sql.page.all(lamport, lamport, origin, origin, seq, PAGE);
      for (const row of rows) yield toOp(row);
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1];
    }
  }

  after(vv: VersionVector, limit: number): StampedOp[] {
    const ops: StampedOp[] = [];
    for (const { origin } of this.sql.origins.all()) {
      ops.push(...this.sql.fromOrigin.all(origin, vv.get(origin) ?? 0, limit).map(toOp));
    }
    return ops.sort(compareOps).slice(0, limit);
  }

  following(op: StampedOp, limit: number): StampedOp[] {
    return this.sql.page.all(op.lamport, op.lamport, op.origin, op.origin, op.seq, limit).map(toOp);
  }

  versionVector(): Map<number, number> {
    return new Map(this.sql.origins.all().map((r) => [r.origin, r.seq]));
  }

  last(): StampedOp | undefined {
    const row = this.sql.last.get();
    return row && toOp(row);
  }

  maxLamport(): number {
    return this.sql.maxLamport.get()?.n ?? 0;
  }

  hasRequest(requestId: string, actor: string): boolean {
    return (
      this.sql.request.get(requestId, actor) !== undefined ||
      (requestId !== '' && actor !== '' && this.sql.compactedRequest.get(requestId, actor) !== undefined)
    );
  }

  count(): number {
    return this.sql.count.get()?.n ?? 0;
  }

  snapshot(): SnapshotCut | undefined {
    const r = this.sql.snapshot.get();
    return (
      r && {
        versionVector: parseVersionVector(r.version_vector),
        lamport: r.lamport,
        origin: r.origin,
        seq: r.seq,
        opCount: r.op_count,
        rows: r.row_count,
        takenAt: r.taken_at,
      }
    );
  }

  *snapshotRows(after = 0): Iterable<SnapshotEntry & { readonly n: number }> {
    yield* pages(this.sql.snapshotPage, after);
  }

  replaceSnapshot(cut: Omit<SnapshotCut, 'opCount' | 'rows'>, rows: Iterable<SnapshotEntry>): number {
    let deleted = 0;
    const since = cut.takenAt - REQUEST_MEMORY_MS;
    this.sql.forgetRequests.run(since);
    for (const [origin, seq] of cut.versionVector) {
      this.sql.keepRequests.run(origin, seq, since);
      deleted += this.sql.deleteThrough.run(origin, seq).changes;
    }
    const opCount = (this.snapshot()?.opCount ?? 0) + deleted;
    this.sql.clearSnapshotRows.run();
    let count = 0;
    for (const { part, row } of rows) {
      this.sql.addSnapshotRow.run(part, JSON.stringify(row));
      count++;
    }
    const { lamport, origin, seq, takenAt } = cut;
    const vv = formatVersionVector(cut.versionVector);
    this.sql.putSnapshot.run(vv, lamport, origin, seq, opCount, count, takenAt);
    return deleted;
  }

  stageSnapshotRows(rows: readonly SnapshotEntry[], fresh: boolean): void {
    this.transaction(() => {
      if (fresh) this.sql.clearIncoming.run();
      for (const { part, row } of rows) this.sql.addIncoming.run(part, JSON.stringify(row));
    });
  }

  *stagedSnapshotRows(): Iterable<SnapshotEntry> {
    for (const { part, row } of pages(this.sql.incomingPage, 0)) yield { part, row };
  }

  clearStagedSnapshot(): void {
    this.sql.clearIncoming.run();
  }
}

/** Reads snapshot rows a page at a time, so that the caller may write to the database between pages. */
function* pages(
  page: Database.Statement<[number, number], SnapshotRowRow>,
  after: number,
): Iterable<SnapshotEntry & { readonly n: number }> {
  for (;;) {
    const rows = page.all(after, SNAPSHOT_PAGE);
    for (const r of rows) yield { n: r.n, part: r.part, row: JSON.parse(r.row) as SnapshotRow };
    if (rows.length < SNAPSHOT_PAGE) return;
    after = rows[rows.length - 1].n;
  }
}
