import { userSnapshotContract } from '../testing/snapshot-contracts';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { TempDatabases } from '../testing/temp-db';
import { userRecord } from '../testing/factories';
import { userStoreContract } from '../testing/store-contracts';
import { InMemoryUserStore } from './in-memory-user.store';
import { SqliteUserStore } from './sqlite-user.store';

describe(InMemoryUserStore.name, () => {
  userStoreContract({ create: () => new InMemoryUserStore() });
  userSnapshotContract({ create: () => new InMemoryUserStore() });
});

describe(SqliteUserStore.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());
  userStoreContract({ create: () => new SqliteUserStore(dbs.open()) });
  userSnapshotContract({ create: () => new SqliteUserStore(dbs.open()) });

  it('keeps users after the database is closed and opened again', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const alice = userRecord({ userId: 'alice', passwordHash: 'scrypt$h', createdAt: 5 });
    new SqliteUserStore(first).add(alice);
    first.close();

    const again = new SqliteUserStore(dbs.open(dir));
    expect(again.get('alice')).toEqual(alice);
    expect(again.count()).toBe(1);
    expect(again.add(userRecord({ userId: 'alice' }))).toBe(false);
  });

  it('keeps session tokens after the database is closed and opened again, and clear() empties both tables', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const store = new SqliteUserStore(first);
    store.add(userRecord({ userId: 'alice' }));
    store.addToken({ tokenHash: 'aa', userId: 'alice', createdAt: 3, heldBy: 1, seenAt: 9 });
    store.addToken({ tokenHash: 'bb', userId: 'alice', createdAt: 4, heldBy: 0, seenAt: 4 });
    store.removeToken('bb');
    first.close();

    const second = dbs.open(dir);
    const again = new SqliteUserStore(second);
    expect(again.tokens()).toEqual([{ tokenHash: 'aa', userId: 'alice', createdAt: 3, heldBy: 1, seenAt: 9 }]);
    again.clear();
    second.close();
    const third = new SqliteUserStore(dbs.open(dir));
    expect(third.count()).toBe(0);
    expect(third.tokens()).toEqual([]);
  });

  it('adds the holder and last-seen columns to a token table written before sessions expired', () => {
    // the columns come with the schema's version 1 (storage/migrations.ts), run when the database opens
    const dir = dbs.newDir();
    const old = new Database(join(dir, 'tracker.db'));
    old.exec(`CREATE TABLE session_tokens (
      token_hash TEXT PRIMARY KEY,
      user_id TEXT NOT NULL,
      created_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    old.prepare("INSERT INTO session_tokens VALUES ('aa', 'alice', 5)").run();
    old.close();
    const db = dbs.open(dir);
    const store = new SqliteUserStore(db);
    // held by nobody, last seen when it was issued
    expect(store.tokens()).toEqual([{ tokenHash: 'aa', userId: 'alice', createdAt: 5, heldBy: 0, seenAt: 5 }]);
    expect(store.touchToken('aa', 2, 9)).toBe(true);
    expect(new SqliteUserStore(db).token('aa')).toEqual({
      tokenHash: 'aa',
      userId: 'alice',
      createdAt: 5,
      heldBy: 2,
      seenAt: 9,
    });
  });

  it('shares one table between two store instances on the same database', () => {
    const db = dbs.open();
    new SqliteUserStore(db).add(userRecord({ userId: 'bob' }));
    expect(new SqliteUserStore(db).get('bob')?.userId).toBe('bob');
  });
});
