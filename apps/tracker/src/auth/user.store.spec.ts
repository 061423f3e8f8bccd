import { TempDatabases } from '../testing/temp-db';
import { userRecord } from '../testing/factories';
import { userStoreContract } from '../testing/store-contracts';
import { InMemoryUserStore } from './in-memory-user.store';
import { SqliteUserStore } from './sqlite-user.store';

describe(InMemoryUserStore.name, () => {
  userStoreContract({ create: () => new InMemoryUserStore() });
});

describe(SqliteUserStore.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());
  userStoreContract({ create: () => new SqliteUserStore(dbs.open()) });

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
    store.addToken({ tokenHash: 'aa', userId: 'alice', createdAt: 3 });
    store.addToken({ tokenHash: 'bb', userId: 'alice', createdAt: 4 });
    store.removeToken('bb');
    first.close();

    const second = dbs.open(dir);
    const again = new SqliteUserStore(second);
    expect(again.tokens()).toEqual([{ tokenHash: 'aa', userId: 'alice', createdAt: 3 }]);
    again.clear();
    second.close();
    const third = new SqliteUserStore(dbs.open(dir));
    expect(third.count()).toBe(0);
    expect(third.tokens()).toEqual([]);
  });

  it('shares one table between two store instances on the same database', () => {
    const db = dbs.open();
    new SqliteUserStore(db).add(userRecord({ userId: 'bob' }));
    expect(new SqliteUserStore(db).get('bob')?.userId).toBe('bob');
  });
});
