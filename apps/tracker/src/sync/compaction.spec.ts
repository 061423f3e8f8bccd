import { OpKind, StampedOp } from '@app/protocol';
import { createHash } from 'node:crypto';
import { AuthService } from '../auth/auth.service';
import { SqliteUserStore } from '../auth/sqlite-user.store';
import { FilesService } from '../files/files.service';
import { PresenceService } from '../files/presence.service';
import { SqliteFileStore } from '../files/sqlite-file.store';
import { GroupsService } from '../groups/groups.service';
import { SqliteGroupStore } from '../groups/sqlite-group.store';
import { stampedOp } from '../testing/factories';
import {
  inMemoryStores,
  keyValueState,
  plainHasher,
  replica,
  TEST_CLUSTER_KEY,
  testCapabilitySigner,
  trackerConfig,
} from '../testing/sync-testing';
import { FakeClock } from '../testing/fake-clock';
import { SqliteUnitOfWork } from '../storage/unit-of-work';
import { TempDatabases } from '../testing/temp-db';
import { compactionBlocker, SnapshotRefusedError } from './compaction';
import { OpLogStore } from './oplog.store';
import { SqliteOpLogStore } from './sqlite-oplog.store';
import { SyncService } from './sync.service';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const vv = (entries: Record<number, number>) => new Map(Object.entries(entries).map(([o, s]) => [Number(o), s]));

interface Tracker {
  readonly sync: SyncService;
  readonly auth: AuthService;
  readonly groups: GroupsService;
  readonly files: FilesService;
  readonly log: OpLogStore;
}

/** Hands `to` every change `from` holds in its log that `to` lacks, as a peer link does. */
function deliver(from: Tracker, to: Tracker): void {
  to.sync.receiveAll(from.sync.opsAfter(to.sync.versionVector(), Number.MAX_SAFE_INTEGER));
}

/** Hands `to` the snapshot of `from`, page by page as `sync_snapshot` does, and has it take it. */
function handSnapshot(from: Tracker, to: Tracker, pageBytes = 64): void {
  const cut = from.sync.snapshotCut()!;
  for (let after = 0; after < cut.rows;) {
    const page = from.sync.snapshotPage(after, pageBytes);
    to.sync.stageSnapshot(page, after === 0);
    after = page[page.length - 1].n;
  }
  to.sync.installSnapshot(cut);
}

/** A few users, groups, a file with seeders, a pending request and a departure, made on `t`. */
async function someState(t: Tracker, tag = ''): Promise<void> {
  await t.auth.createUser(`alice${tag}`, 'pw');
  await t.auth.createUser(`bob${tag}`, 'pw');
  t.groups.create(`alice${tag}`, `team${tag}`);
  t.groups.join(`bob${tag}`, `team${tag}`);
  t.groups.accept(`alice${tag}`, `team${tag}`, `bob${tag}`);
  t.groups.join(`carol${tag}`, `team${tag}`);
  t.groups.create(`bob${tag}`, `solo${tag}`);
  t.files.share(
    { userId: `alice${tag}`, connectionId: 1, address: { host: '10.0.0.1', port: 7001 } },
    {
      groupId: `team${tag}`,
      filePath: `/a/my file${tag}.bin`,
      fileSize: 512 * 1024 + 3,
      fileHash: sha1('f'),
      chunkHashes: [sha1('c1'), sha1('c2')],
    },
  );
}

/**
 * Has `t2` (holding changes of its own) take a snapshot of `t1` whose last row it cannot read: the unit of work
 * undoes the half-taken snapshot, so the state, the log and its snapshot stay as they were; then the whole
 * snapshot is taken.
 */
async function takesNothingOfAnUnreadableSnapshot(t1: Tracker, t2: Tracker): Promise<void> {
  await someState(t1);
  t1.sync.compactWith(new Map([[2, t1.sync.versionVector()]]));
  await someState(t2, '2');
  const digest = t2.sync.digest();
  const count = t2.log.count();

  const cut = t1.sync.snapshotCut()!;
  const rows = t1.sync.snapshotPage(0, Number.MAX_SAFE_INTEGER);
  const bad = rows.map((r, i) => (i === rows.length - 1 ? { ...r, row: ['seeder', 'team', 'nope', 'x', '/p'] } : r));
  t2.sync.stageSnapshot(bad, true);
  expect(() => t2.sync.installSnapshot(cut)).toThrow('before the file');
  expect(t2.sync.digest()).toBe(digest);
  expect(t2.log.count()).toBe(count);
  expect(t2.log.snapshot()).toBeUndefined();
  expect(t2.sync.snapshotCut()).toBeUndefined();
  expect([...t2.log.stagedSnapshotRows()]).toEqual([]);

  // the same snapshot, whole, is taken
  handSnapshot(t1, t2, 1);
  deliver(t2, t1);
  expect(t2.sync.digest()).toBe(t1.sync.digest());
}

describe(compactionBlocker.name, () => {
  const mine = vv({ 1: 10, 2: 4 });

  it('lets a tracker compact when every other tracker holds what it holds, and it holds what they made', () => {
    expect(
      compactionBlocker(
        mine,
        [2, 3],
        new Map([
          [2, vv({ 1: 10, 2: 4 })],
          [3, vv({ 1: 12, 2: 4 })],
        ]),
      ),
    ).toBe(undefined);
    expect(compactionBlocker(mine, [], new Map())).toBe(undefined);
  });

  it('is held back by a tracker that is not linked', () => {
    expect(compactionBlocker(mine, [2, 3], new Map([[2, vv({ 1: 10, 2: 4 })]]))).toBe('tracker 3 is not linked');
  });

  it('is held back by a tracker that lacks changes this one would fold into the snapshot', () => {
    expect(compactionBlocker(mine, [2], new Map([[2, vv({ 1: 9, 2: 4 })]]))).toBe(
      'tracker 2 holds 9 of the 10 changes of tracker 1',
    );
    expect(compactionBlocker(vv({ 1: 10, 3: 1 }), [2], new Map([[2, vv({ 1: 10 })]]))).toBe(
      'tracker 2 holds 0 of the 1 changes of tracker 3',
    );
  });

  it('is held back by a tracker that made changes not received here: they could sort before the cut', () => {
    expect(compactionBlocker(mine, [2], new Map([[2, vv({ 1: 10, 2: 5 })]]))).toBe(
      'tracker 2 made changes this tracker has not received',
    );
  });
});

describe('SyncService compaction', () => {
  it('folds the log into a snapshot: same digest and version vector, an empty log, the same clocks', async () => {
    const t = replica(1, 1);
    await someState(t);
    const digest = t.sync.digest();
    const before = t.sync.versionVector();
    const ops = t.log.count();
    const result = t.sync.compactWith(new Map());
    expect(result).toEqual(expect.objectContaining({ compacted: true, ops }));
    expect(t.log.count()).toBe(0);
    expect(t.sync.logLength()).toBe(0);
    expect(t.sync.digest()).toBe(digest);
    expect(t.sync.versionVector()).toEqual(before);
    expect(t.sync.snapshotCut()).toEqual(expect.objectContaining({ versionVector: before, opCount: ops }));
    // the next change continues the seq and the clock
    const next = t.sync.commit({ kind: 'create_group', actor: 'alice', groupId: 'later' });
    expect([next.seq, next.lamport]).toEqual([ops + 1, ops + 1]);
    expect(t.sync.compactWith(new Map())).toEqual(expect.objectContaining({ compacted: true, ops: 1 }));
    expect(t.sync.snapshotCut()?.opCount).toBe(ops + 1);
  });

  it('does not compact while another tracker is not linked or behind, nor an empty log', async () => {
    const t = replica(1, 2);
    expect(t.sync.compactWith(new Map([[2, vv({})]]))).toEqual({
      compacted: false,
      reason: 'no change past the last snapshot',
    });
    await someState(t);
    const n = t.log.count();
    expect(t.sync.compactWith(new Map())).toEqual({ compacted: false, reason: 'tracker 2 is not linked' });
    expect(t.sync.compactWith(new Map([[2, vv({ 1: n - 1 })]]))).toEqual({
      compacted: false,
      reason: `tracker 2 holds ${n - 1} of the ${n} changes of tracker 1`,
    });
    expect(t.log.count()).toBe(n);
    expect(t.sync.snapshotCut()).toBeUndefined();
    expect(t.sync.compactWith(new Map([[2, vv({ 1: n })]])).compacted).toBe(true);
  });

  it('takes a change it holds in the snapshot only as a duplicate', async () => {
    const t = replica(1, 2);
    const other = replica(2, 2);
    await someState(other, '2');
    deliver(other, t);
    const first = [...t.log.all()][0];
    t.sync.compactWith(new Map([[2, t.sync.versionVector()]]));
    const digest = t.sync.digest();
    expect(t.sync.receive(first)).toBe('duplicate');
    expect(t.log.count()).toBe(0);
    expect(t.sync.digest()).toBe(digest);
  });

  it('replays from the snapshot, not from nothing, when a late change sorts before what is applied', async () => {
    const compacted = replica(1, 3);
    const whole = replica(3, 3);
    await someState(compacted);
    deliver(compacted, whole);
    const held = compacted.sync.versionVector();
    compacted.sync.compactWith(
      new Map([
        [2, held],
        [3, held],
      ]),
    );
    const base = compacted.sync.snapshotCut()!.lamport;
    compacted.sync.commit({ kind: 'join_group', actor: 'dave', groupId: 'team' }); // base+1
    compacted.sync.commit({ kind: 'accept_request', actor: 'alice', groupId: 'team', candidate: 'dave' }); // base+2
    deliver(compacted, whole);
    // tracker 2's leave sorts between the two (same group: no commuting), so both replay
    const late: StampedOp = stampedOp({
      kind: 'leave_group',
      actor: 'bob',
      groupId: 'team',
      origin: 2,
      seq: 1,
      lamport: base + 1,
    });
    expect(compacted.sync.receive(late)).toBe('replayed');
    expect(whole.sync.receive(late)).toBe('replayed');
    expect(compacted.sync.digest()).toBe(whole.sync.digest());
    expect(compacted.groups.members('team')).toEqual(['alice', 'dave']);
    expect(compacted.auth.exists('alice')).toBe(true);
    expect(compacted.files.list('alice', 'team')).toEqual([expect.objectContaining({ fileName: 'my file.bin' })]);
  });

  it('brings a new tracker up from the snapshot and the log after it, to the same digest, and on from there', async () => {
    const t1 = replica(1, 2);
    const t2 = replica(2, 2);
    await someState(t1);
    t1.sync.compactWith(new Map([[2, t1.sync.versionVector()]]));
    t1.groups.create('alice', 'after');
    expect(t2.sync.needsSnapshot(t2.sync.versionVector())).toBe(false);
    expect(t1.sync.needsSnapshot(t2.sync.versionVector())).toBe(true);

    handSnapshot(t1, t2);
    expect(t1.sync.needsSnapshot(t2.sync.versionVector())).toBe(false);
    deliver(t1, t2);
    expect(t2.sync.digest()).toBe(t1.sync.digest());
    expect(t2.sync.versionVector()).toEqual(t1.sync.versionVector());
    expect(t2.log.count()).toBe(1);

    t2.groups.join('bob', 'after');
    deliver(t2, t1);
    expect(t1.groups.listRequests('alice', 'after')).toEqual(['bob']);
    expect(t2.sync.digest()).toBe(t1.sync.digest());
  });

  it('keeps the changes a tracker made that the snapshot it takes lacks, and applies them on top', async () => {
    const t1 = replica(1, 2);
    const t2 = replica(2, 2);
    await someState(t1);
    t1.sync.compactWith(new Map([[2, t1.sync.versionVector()]]));
    await t2.auth.createUser('zed', 'pw');
    handSnapshot(t1, t2);
    expect(t2.auth.exists('zed')).toBe(true);
    expect(t2.auth.exists('alice')).toBe(true);
    deliver(t2, t1);
    expect(t2.sync.digest()).toBe(t1.sync.digest());
  });

  it('keeps the log whole when a part of the state fails to write its rows, and compacts later', async () => {
    const t = replica(1, 1);
    await someState(t);
    const ops = [...t.log.all()];
    const digest = t.sync.digest();
    let full = true;
    t.sync.participate({
      name: 'disk',
      reset: () => undefined,
      describe: () => [],
      exportRows: () => {
        if (full) throw new Error('disk full');
        return [];
      },
      importRow: () => undefined,
    });
    expect(() => t.sync.compactWith(new Map())).toThrow('disk full');
    expect([...t.log.all()]).toEqual(ops);
    expect(t.log.snapshot()).toBeUndefined();
    expect(t.sync.snapshotCut()).toBeUndefined();
    expect(t.sync.digest()).toBe(digest);
    full = false;
    expect(t.sync.compactWith(new Map())).toEqual(expect.objectContaining({ compacted: true, ops: ops.length }));
  });

  it('takes a snapshot whose row it cannot read not at all: state, log and snapshot stay as they were', () =>
    takesNothingOfAnUnreadableSnapshot(replica(1, 2), replica(2, 2)));

  it('refuses a snapshot that lacks changes it has compacted itself', async () => {
    const t1 = replica(1, 2);
    const t2 = replica(2, 2);
    await someState(t1);
    t1.sync.compactWith(new Map([[2, t1.sync.versionVector()]]));
    await someState(t2, '2');
    t2.sync.compactWith(new Map([[1, t2.sync.versionVector()]]));
    const digest = t2.sync.digest();
    expect(() => handSnapshot(t1, t2)).toThrow(SnapshotRefusedError);
    expect(t2.sync.digest()).toBe(digest);
  });
});

describe('SyncService compaction with --compact-offline-after', () => {
  const HOUR = 3_600_000;

  function tracker(config: { compactOfflineAfterMs?: number }) {
    const clock = new FakeClock();
    const { log, work } = inMemoryStores();
    const sync = new SyncService(
      log,
      work,
      trackerConfig({ trackerNumber: 1, trackerCount: 3, ...config }),
      TEST_CLUSTER_KEY,
      clock,
    );
    const values = keyValueState(sync);
    // start-up counts as the links going down
    sync.peerDownSince(2);
    sync.peerDownSince(3);
    for (let i = 0; i < 5; i++) {
      sync.commit({ kind: OpKind.CreateUser, actor: 'a', userId: `k${i}`, passwordHash: 'v' });
    }
    return { sync, clock, values };
  }

  it('holds compaction back for an offline tracker without the flag, however long it is gone', async () => {
    const { sync, clock } = tracker({});
    clock.advance(1000 * HOUR);
    expect(await sync.compact()).toEqual({ compacted: false, reason: 'tracker 2 is not linked' });
  });

  it('leaves out a tracker offline longer than the flag says, and takes its late changes after the snapshot', async () => {
    const { sync, clock, values } = tracker({ compactOfflineAfterMs: 2 * HOUR });
    clock.advance(HOUR);
    expect(await sync.compact()).toEqual({ compacted: false, reason: 'tracker 2 is not linked' });
    clock.advance(HOUR);
    expect(await sync.compact()).toEqual(expect.objectContaining({ compacted: true, ops: 5 }));
    // tracker 3 comes back with a change it made before the cut: it is kept, applied after the snapshot
    const late = stampedOp({
      kind: OpKind.CreateUser,
      userId: 'k0',
      passwordHash: 'from 3',
      origin: 3,
      seq: 1,
      lamport: 1,
    });
    expect(sync.receive(late)).not.toBe('duplicate');
    expect(values.get('k0')).toBe('from 3');
    expect(sync.versionVector()).toEqual(vv({ 1: 5, 3: 1 }));
  });
});

describe('SyncService compaction on the SQLite stores', () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  function sqliteTracker(trackerNumber: number, dir = dbs.newDir()): Tracker & { close(): void } {
    const db = dbs.open(dir);
    const log = new SqliteOpLogStore(db);
    const sync = new SyncService(
      log,
      new SqliteUnitOfWork(db),
      trackerConfig({ trackerNumber, trackerCount: 2 }),
      TEST_CLUSTER_KEY,
    );
    const auth = new AuthService(new SqliteUserStore(db), plainHasher, sync);
    const groups = new GroupsService(new SqliteGroupStore(db), sync);
    const files = new FilesService(
      new SqliteFileStore(db),
      groups,
      auth,
      sync,
      testCapabilitySigner(),
      new PresenceService(sync),
    );
    return { sync, auth, groups, files, log, close: () => db.close() };
  }

  it('holds the same digest after a restart, from the snapshot and the log after it', async () => {
    const dir = dbs.newDir();
    const t = sqliteTracker(1, dir);
    await someState(t);
    t.sync.compactWith(new Map([[2, t.sync.versionVector()]]));
    t.groups.create('alice', 'after');
    const digest = t.sync.digest();
    const vvBefore = t.sync.versionVector();
    t.close();

    const again = sqliteTracker(1, dir);
    expect(again.sync.digest()).toBe(digest);
    expect(again.sync.versionVector()).toEqual(vvBefore);
    expect(again.log.count()).toBe(1);
    expect(again.sync.commit({ kind: 'create_group', actor: 'bob', groupId: 'x' }).seq).toBe(vvBefore.get(1)! + 1);
  });

  it('takes a snapshot whose row it cannot read not at all: state, log and snapshot stay as they were', () =>
    takesNothingOfAnUnreadableSnapshot(sqliteTracker(1), sqliteTracker(2)));
});
