import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { UserStore } from '../auth/user.store';
import { FileStore, packChunkHashes } from '../files/file.store';
import { GroupStore } from '../groups/group.store';
import { UnitOfWork } from '../storage/unit-of-work';
import { OpLogStore } from '../sync/oplog.store';
import { SyncService } from '../sync/sync.service';
import { stampedOp, userRecord } from './factories';
import { TEST_CLUSTER_KEY, trackerConfig } from './sync-testing';

/** A unit of work and every store that must roll back with it, all fresh. */
export interface UnitOfWorkStores {
  readonly work: UnitOfWork;
  readonly log: OpLogStore;
  readonly users: UserStore;
  readonly groups: GroupStore;
  readonly files: FileStore;
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const TOKEN = 'ab'.repeat(32);

/**
 * What every unit of work guarantees over every store (users, session tokens,
 * groups, members and requests, files and seeders, the op log): all kept when
 * the work returns, all undone when it throws, with the error reaching the
 * caller. Run against the SQLite and the in-memory implementation.
 */
export function unitOfWorkContract(harness: { create: () => UnitOfWorkStores; dispose?: () => void }): void {
  let s: UnitOfWorkStores;
  beforeEach(() => {
    s = harness.create();
    // some state before the work, so that undoing has something to keep and something to put back
    s.users.add(userRecord({ userId: 'alice' }));
    s.groups.create({ groupId: 'g1', owner: 'alice', createdAt: 1 });
    s.groups.addRequest('g1', 'bob');
    s.files.addFile({
      groupId: 'g1',
      fileName: 'a.bin',
      fileSize: 1,
      fileHash: sha1('a'),
      uploader: 'alice',
      createdAt: 1,
      chunkHashes: packChunkHashes([sha1('c')]),
    });
    s.files.putSeeder({ groupId: 'g1', fileName: 'a.bin', userId: 'alice', filePath: '/a/a.bin' });
    s.log.append(stampedOp({ origin: 2, seq: 1, lamport: 1 }));
  });
  afterEach(() => harness.dispose?.());

  /** Everything every store holds, as plain values. */
  const state = () => ({
    users: s.users.all(),
    tokens: s.users.tokens(),
    groups: s.groups.list(),
    members: s.groups.list().map((g) => [g.groupId, s.groups.members(g.groupId), s.groups.requests(g.groupId)]),
    files: ['g1', 'g2'].map((g) => s.files.listFiles(g)),
    fileInfo: [s.files.getFile('g1', 'a.bin'), s.files.getFile('g2', 'b.bin')],
    seeders: s.files.seeders('g1', 'a.bin'),
    log: [...s.log.all()],
    vv: s.log.versionVector(),
  });

  /** Writes to every store. */
  function writeEverywhere(): void {
    s.users.add(userRecord({ userId: 'carol' }));
    s.users.addToken({ tokenHash: TOKEN, userId: 'alice', createdAt: 2, heldBy: 1, seenAt: 2 });
    s.groups.removeRequest('g1', 'bob');
    s.groups.addMember('g1', 'bob');
    s.groups.setOwner('g1', 'bob');
    s.groups.create({ groupId: 'g2', owner: 'carol', createdAt: 2 });
    s.files.removeSeeder('g1', 'a.bin', 'alice');
    s.files.deleteFile('g1', 'a.bin');
    s.files.addFile({
      groupId: 'g2',
      fileName: 'b.bin',
      fileSize: 2,
      fileHash: sha1('b'),
      uploader: 'carol',
      createdAt: 2,
      chunkHashes: packChunkHashes([sha1('d')]),
    });
    s.log.append(stampedOp({ origin: 1, seq: 1, lamport: 2, groupId: 'g2', actor: 'carol' }));
  }

  it('keeps what the work wrote to every store and returns what it returned', () => {
    const before = state();
    expect(s.work.run(() => (writeEverywhere(), 'done'))).toBe('done');
    const after = state();
    for (const key of Object.keys(before) as (keyof typeof before)[]) expect(after[key]).not.toEqual(before[key]);
  });

  it('undoes every store, the op log included, when the work throws, and hands the error on', () => {
    const before = state();
    const failure = new Error('halfway');
    let thrown: unknown;
    try {
      s.work.run(() => {
        writeEverywhere();
        throw failure;
      });
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBe(failure);
    expect(state()).toEqual(before);
  });

  it('undoes only a nested run that throws when the outer run goes on', () => {
    s.work.run(() => {
      s.users.add(userRecord({ userId: 'dave' }));
      expect(() =>
        s.work.run(() => {
          writeEverywhere();
          throw new Error('inner');
        }),
      ).toThrow('inner');
    });
    expect(s.users.all().map((u) => u.userId)).toEqual(['alice', 'dave']);
    expect(s.groups.members('g1')).toEqual(['alice']);
    expect(s.files.getFile('g1', 'a.bin')).toBeDefined();
    expect(s.log.count()).toBe(1);
  });

  it('undoes an outer run that throws after a nested one returned', () => {
    const before = state();
    expect(() =>
      s.work.run(() => {
        s.work.run(() => writeEverywhere());
        throw new Error('outer');
      }),
    ).toThrow('outer');
    expect(state()).toEqual(before);
  });

  describe('under SyncService', () => {
    let sync: SyncService;
    beforeEach(() => {
      jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
      sync = new SyncService(s.log, s.work, trackerConfig({ trackerNumber: 1, trackerCount: 2 }), TEST_CLUSTER_KEY);
      // an applier that writes to two stores, then fails
      sync.register('create_group', ({ groupId, actor, time }) => {
        s.groups.create({ groupId, owner: actor, createdAt: time });
        s.users.addToken({ tokenHash: TOKEN, userId: actor, createdAt: time, heldBy: 1, seenAt: time });
        if (groupId.startsWith('bad')) throw new Error(`applier failed on ${groupId}`);
      });
    });
    afterEach(() => jest.restoreAllMocks());

    it('a commit whose applier throws halfway leaves every store and the op log as they were', () => {
      const before = state();
      expect(() => sync.commit({ kind: 'create_group', actor: 'carol', groupId: 'bad1' })).toThrow(
        'applier failed on bad1',
      );
      expect(state()).toEqual(before);
      // no seq was used up: the next change is this tracker's first
      const op = sync.commit({ kind: 'create_group', actor: 'carol', groupId: 'g2' });
      expect([op.origin, op.seq]).toEqual([1, 1]);
      expect(s.groups.get('g2')?.owner).toBe('carol');
      expect(s.users.tokenUser(TOKEN)).toBe('carol');
    });

    it('a received batch whose last change fails keeps none of its changes in any store', () => {
      const before = state();
      const good = stampedOp({ origin: 2, seq: 2, lamport: 5, groupId: 'g3', actor: 'carol' });
      const bad = stampedOp({ origin: 2, seq: 3, lamport: 6, groupId: 'bad2', actor: 'carol' });
      expect(() => sync.receiveAll([good, bad])).toThrow('applier failed on bad2');
      expect(state()).toEqual(before);
      expect(sync.versionVector()).toEqual(new Map([[2, 1]]));
    });
  });
}
