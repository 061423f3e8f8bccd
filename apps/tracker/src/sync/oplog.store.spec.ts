import { compareOps, ProtocolError } from '@app/protocol';
import Database from 'better-sqlite3';
import { opLogSnapshotContract } from '../testing/snapshot-contracts';
import { opLogStoreContract } from '../testing/store-contracts';
import { stampedOp } from '../testing/factories';
import { TempDatabases } from '../testing/temp-db';
import { InMemoryOpLogStore } from './in-memory-oplog.store';
import { SqliteOpLogStore } from './sqlite-oplog.store';

describe(InMemoryOpLogStore.name, () => {
  opLogStoreContract({ create: () => new InMemoryOpLogStore() });
  opLogSnapshotContract({ create: () => new InMemoryOpLogStore() });
});

describe(SqliteOpLogStore.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());
  opLogStoreContract({ create: () => new SqliteOpLogStore(dbs.open()) });
  opLogSnapshotContract({ create: () => new SqliteOpLogStore(dbs.open()) });

  it('keeps every change after the database is closed and opened again', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const store = new SqliteOpLogStore(first);
    const ops = [
      stampedOp({ origin: 1, seq: 1, lamport: 1, requestId: 'c1-1' }),
      stampedOp({
        origin: 2,
        seq: 1,
        lamport: 1,
        kind: 'create_user',
        userId: 'bob',
        passwordHash: 'plain$pw',
        actor: '',
      }),
      stampedOp({
        origin: 1,
        seq: 2,
        lamport: 3,
        kind: 'new_seeder',
        groupId: 'g2',
        fileName: 'a "2".bin',
        filePath: '/x/a "2".bin',
      }),
    ];
    for (const op of ops) store.append(op);
    store.transaction(() => store.append(stampedOp({ origin: 2, seq: 2, lamport: 4 })));
    expect(() =>
      store.transaction(() => {
        store.append(stampedOp({ origin: 2, seq: 3, lamport: 5 }));
        throw new Error('boom');
      }),
    ).toThrow('boom');
    first.close();

    const again = new SqliteOpLogStore(dbs.open(dir));
    expect([...again.all()]).toEqual([ops[0], ops[1], ops[2], stampedOp({ origin: 2, seq: 2, lamport: 4 })]);
    expect(again.versionVector()).toEqual(
      new Map([
        [1, 2],
        [2, 2],
      ]),
    );
    expect(again.maxLamport()).toBe(4);
    expect(again.last()).toEqual(stampedOp({ origin: 2, seq: 2, lamport: 4 }));
    expect(again.hasRequest('c1-1', 'alice')).toBe(true);
    expect(again.append(ops[0])).toBe(false);
  });

  describe('the oplog table, a persisted format', () => {
    const H = (c: string) => c.repeat(40);
    const row = (db: Database.Database, origin: number, seq: number) =>
      db.prepare('SELECT kind, actor, request_id, args FROM oplog WHERE origin = ? AND seq = ?').get(origin, seq);
    const insertRaw = (db: Database.Database, seq: number, kind: string, args: string) =>
      db
        .prepare(
          "INSERT INTO oplog (origin, seq, lamport, time, kind, actor, request_id, args) VALUES (3, ?, ?, 5, ?, 'bob', '', ?)",
        )
        .run(seq, seq, kind, args);

    it('stores a typed change as its kind and a JSON array of its positional args, as before the kinds were typed', () => {
      const db = dbs.open();
      const store = new SqliteOpLogStore(db);
      store.append(
        stampedOp({
          origin: 1,
          seq: 1,
          kind: 'upload_file',
          groupId: 'g1',
          filePath: '/a b/"q".bin',
          fileSize: 524_289,
          fileHash: H('a'),
          chunkHashList: `${H('b')},${H('c')}`,
          actor: 'bob',
          requestId: 'c1-1',
        }),
      );
      store.append(stampedOp({ origin: 1, seq: 2, kind: 'accept_request', groupId: 'g1', candidate: 'carol' }));
      expect(row(db, 1, 1)).toEqual({
        kind: 'upload_file',
        actor: 'bob',
        request_id: 'c1-1',
        args: `["g1","/a b/\\"q\\".bin","524289","${H('a')}","${H('b')},${H('c')}"]`,
      });
      expect(row(db, 1, 2)).toEqual({ kind: 'accept_request', actor: 'alice', request_id: '', args: '["g1","carol"]' });
    });

    it('reads rows written before the kinds were typed as typed changes', () => {
      const db = dbs.open();
      const store = new SqliteOpLogStore(db);
      insertRaw(db, 1, 'create_user', '["bob","scrypt$16384$8$1$c2FsdA==$a2V5"]');
      insertRaw(db, 2, 'new_seeder', '["g1","f.bin","/home/bob/f.bin"]');
      expect([...store.all()]).toEqual([
        expect.objectContaining({ kind: 'create_user', userId: 'bob', passwordHash: 'scrypt$16384$8$1$c2FsdA==$a2V5' }),
        expect.objectContaining({ kind: 'new_seeder', groupId: 'g1', fileName: 'f.bin', filePath: '/home/bob/f.bin' }),
      ]);
    });

    it.each([
      ['an unknown kind', 'drop_table', '["g1"]', /stored change 3\/1: unknown change kind 'drop_table'/],
      ['args that are not JSON', 'create_group', '["g1"', /stored change 3\/1: its args are not a JSON array/],
      ['args that are not strings', 'create_group', '[1]', /its args are not a JSON array of strings/],
      ['a wrong arg count', 'create_group', '["g1","g2"]', /stored change 3\/1: bad create_group change: takes 1/],
      ['a bad token', 'upload_file', `["g1","/f","1","${H('a')}","xyz"]`, /chunk_hashes is not a list/],
    ])('refuses a row with %s, naming it, when it is read', (_, kind, args, why) => {
      const db = dbs.open();
      const store = new SqliteOpLogStore(db);
      insertRaw(db, 1, kind, args);
      expect(() => [...store.all()]).toThrow(why);
      expect(() => store.last()).toThrow(ProtocolError);
    });
  });

  it('shares the log with the other stores’ transaction on the same database', () => {
    const db = dbs.open();
    const store = new SqliteOpLogStore(db);
    db.exec('CREATE TABLE other (x INTEGER)');
    expect(() =>
      store.transaction(() => {
        store.append(stampedOp());
        db.prepare('INSERT INTO other VALUES (1)').run();
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(store.count()).toBe(0);
    expect(db.prepare('SELECT count(*) AS n FROM other').get()).toEqual({ n: 0 });
  });

  it('lets the caller write to the database while it iterates a log of several pages (as a replay does)', () => {
    const db = dbs.open();
    const store = new SqliteOpLogStore(db);
    db.exec('CREATE TABLE applied (origin INTEGER, seq INTEGER)');
    const insert = db.prepare('INSERT INTO applied VALUES (?, ?)');
    const ops = Array.from({ length: 1000 }, (_, i) =>
      stampedOp({ origin: 1 + (i % 3), seq: 1 + Math.floor(i / 3), lamport: 1 + Math.floor(i / 2) }),
    );
    for (const op of ops) store.append(op);
    const seen: string[] = [];
    store.transaction(() => {
      for (const op of store.all()) {
        insert.run(op.origin, op.seq);
        seen.push(`${op.lamport}/${op.origin}/${op.seq}`);
      }
    });
    expect(seen).toEqual([...ops].sort(compareOps).map((op) => `${op.lamport}/${op.origin}/${op.seq}`));
    expect(db.prepare('SELECT count(*) AS n FROM applied').get()).toEqual({ n: 1000 });
  });

  it('finds a request id by index, not by scanning the whole log', () => {
    // hasRequest runs for every change a client sends; the log only grows.
    const db = dbs.open();
    const statements: string[] = [];
    const recording = new Proxy(db, {
      get(target, prop) {
        if (prop === 'prepare') {
          return (sql: string) => {
            statements.push(sql);
            return target.prepare(sql);
          };
        }
        const value: unknown = Reflect.get(target, prop);
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
    new SqliteOpLogStore(recording);
    const lookup = statements.find((sql) => /request_id\s*=\s*\?/.test(sql) && /^\s*SELECT/i.test(sql));
    expect(lookup).toBeDefined();
    const plan = (db.prepare(`EXPLAIN QUERY PLAN ${lookup!}`).all('c1-1', 'alice') as { detail: string }[])
      .map((r) => r.detail)
      .join('; ');
    expect(plan).toMatch(/USING (COVERING )?INDEX/);
    expect(plan).not.toMatch(/^SCAN oplog$/);
  });
});
