import { Test } from '@nestjs/testing';
import { SqliteUserStore } from '../auth/sqlite-user.store';
import { FilesService } from '../files/files.service';
import { SqliteFileStore } from '../files/sqlite-file.store';
import { GroupsService } from '../groups/groups.service';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { SqliteGroupStore } from '../groups/sqlite-group.store';
import { SqliteOpLogStore } from '../sync/sqlite-oplog.store';
import { SyncService } from '../sync/sync.service';
import { inMemoryServiceProviders, inMemoryStores, syncTestingProviders } from '../testing/sync-testing';
import { TempDatabases } from '../testing/temp-db';
import { unitOfWorkContract } from '../testing/unit-of-work-contract';
import { InMemoryUnitOfWork } from './in-memory-unit-of-work';
import { SqliteUnitOfWork, UNIT_OF_WORK, UnitOfWork } from './unit-of-work';

describe(SqliteUnitOfWork.name, () => {
  const dbs = new TempDatabases();
  unitOfWorkContract({
    create: () => {
      const db = dbs.open();
      return {
        work: new SqliteUnitOfWork(db),
        log: new SqliteOpLogStore(db),
        users: new SqliteUserStore(db),
        groups: new SqliteGroupStore(db),
        files: new SqliteFileStore(db),
      };
    },
    dispose: () => dbs.cleanup(),
  });
});

describe(InMemoryUnitOfWork.name, () => {
  unitOfWorkContract({ create: () => inMemoryStores() });

  it('rolls back only the stores enlisted with it', () => {
    const work = new InMemoryUnitOfWork();
    const enlisted = new InMemoryGroupStore(work);
    const alone = new InMemoryGroupStore();
    expect(() =>
      work.run(() => {
        for (const store of [enlisted, alone]) store.create({ groupId: 'g1', owner: 'alice', createdAt: 1 });
        throw new Error('undo');
      }),
    ).toThrow('undo');
    expect(enlisted.get('g1')).toBeUndefined();
    expect(alone.get('g1')).toBeDefined();
    expect(work.enlisted).toBe(1);
  });

  it('is the unit of work of a testing module on in-memory stores, with every store enlisted', async () => {
    const moduleRef = await Test.createTestingModule({
      providers: [...inMemoryServiceProviders(), ...syncTestingProviders()],
    }).compile();
    const work = moduleRef.get<UnitOfWork>(UNIT_OF_WORK);
    expect(work).toBeInstanceOf(InMemoryUnitOfWork);
    expect((work as InMemoryUnitOfWork).enlisted).toBe(4); // users and sessions, groups and requests, files, op log

    // a member-left listener that throws after the files module dropped the member's seeders: nothing is kept
    const groups = moduleRef.get(GroupsService);
    const files = moduleRef.get(FilesService);
    const sync = moduleRef.get(SyncService);
    groups.create('alice', 'g1');
    groups.join('bob', 'g1');
    groups.accept('alice', 'g1', 'bob');
    files.share(
      { userId: 'bob', connectionId: 1, address: { host: '10.0.0.2', port: 7002 } },
      { groupId: 'g1', filePath: '/b/f.bin', fileSize: 1, fileHash: 'a'.repeat(40), chunkHashes: ['b'.repeat(40)] },
    );
    const digest = sync.digest();
    const vv = sync.versionVector();
    groups.onMemberLeft(() => {
      throw new Error('listener failed');
    });
    expect(() => groups.leave('bob', 'g1')).toThrow('listener failed');
    expect(groups.members('g1')).toEqual(['alice', 'bob']);
    expect(files.list('alice', 'g1').map((f) => f.fileName)).toEqual(['f.bin']);
    expect(sync.digest()).toBe(digest);
    expect(sync.versionVector()).toEqual(vv);
  });
});
