import { opLogSnapshotContract } from '../testing/snapshot-contracts';
import { compareOps } from '@app/protocol';
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
      stampedOp({ origin: 2, seq: 1, lamport: 1, kind: 'create_user', args: ['bob', 'plain$pw'], actor: '' }),
      stampedOp({ origin: 1, seq: 2, lamport: 3, args: ['g "2"', ''] }),
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
