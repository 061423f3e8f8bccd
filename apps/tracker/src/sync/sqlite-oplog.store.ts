import { compareOps, StampedOp, VersionVector } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import Database from 'better-sqlite3';
import { SQLITE_DB } from '../storage/storage.tokens';
import { OpLogStore } from './oplog.store';

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

const toOp = (r: OpRow): StampedOp => ({
  origin: r.origin,
  seq: r.seq,
  lamport: r.lamport,
  time: r.time,
  kind: r.kind,
  actor: r.actor,
  requestId: r.request_id,
  args: JSON.parse(r.args) as string[],
});

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
        JSON.stringify(op.args),
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
    return this.sql.request.get(requestId, actor) !== undefined;
  }

  count(): number {
    return this.sql.count.get()?.n ?? 0;
  }
}
