import { groupSnapshotContract } from '../testing/snapshot-contracts';
import { TempDatabases } from '../testing/temp-db';
import { groupRecord } from '../testing/factories';
import { groupStoreContract } from '../testing/store-contracts';
import { InMemoryGroupStore } from './in-memory-group.store';
import { SqliteGroupStore } from './sqlite-group.store';

describe(InMemoryGroupStore.name, () => {
  groupStoreContract({ create: () => new InMemoryGroupStore() });
  groupSnapshotContract({ create: () => new InMemoryGroupStore() });
});

describe(SqliteGroupStore.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());
  groupStoreContract({ create: () => new SqliteGroupStore(dbs.open()) });
  groupSnapshotContract({ create: () => new SqliteGroupStore(dbs.open()) });

  it('keeps groups, member order, owners and requests after the database is closed and opened again', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const store = new SqliteGroupStore(first);
    store.create(groupRecord({ groupId: 'g1', owner: 'alice', createdAt: 7 }));
    store.create(groupRecord({ groupId: 'g2', owner: 'bob', createdAt: 8 }));
    store.addMember('g1', 'carol');
    store.addMember('g1', 'bob');
    store.setOwner('g1', 'carol');
    store.addRequest('g1', 'dave');
    store.addRequest('g1', 'erin');
    store.transaction(() => store.addMember('g2', 'alice'));
    first.close();

    const again = new SqliteGroupStore(dbs.open(dir));
    expect(again.get('g1')).toEqual({ groupId: 'g1', owner: 'carol', createdAt: 7 });
    expect(again.members('g1')).toEqual(['alice', 'carol', 'bob']);
    expect(again.requests('g1')).toEqual(['dave', 'erin']);
    expect(again.members('g2')).toEqual(['bob', 'alice']);
    expect(again.list().map((g) => [g.groupId, g.memberCount])).toEqual([
      ['g1', 3],
      ['g2', 2],
    ]);
    // New joins still go after the ones stored before the restart.
    again.addMember('g1', 'frank');
    expect(again.members('g1')).toEqual(['alice', 'carol', 'bob', 'frank']);
  });

  it('does not persist a transaction that threw', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const store = new SqliteGroupStore(first);
    store.create(groupRecord({ groupId: 'g1', owner: 'alice' }));
    expect(() =>
      store.transaction(() => {
        store.addMember('g1', 'bob');
        throw new Error('boom');
      }),
    ).toThrow('boom');
    first.close();

    expect(new SqliteGroupStore(dbs.open(dir)).members('g1')).toEqual(['alice']);
  });
});
