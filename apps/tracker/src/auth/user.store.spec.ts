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

  it('shares one table between two store instances on the same database', () => {
    const db = dbs.open();
    new SqliteUserStore(db).add(userRecord({ userId: 'bob' }));
    expect(new SqliteUserStore(db).get('bob')?.userId).toBe('bob');
  });
});
