import { FileStore } from '../files/file.store';
import { GroupStore } from '../groups/group.store';
import { UserStore } from '../auth/user.store';
import { SnapshotRow, SnapshotRowError } from '../storage/snapshot-row';
import { OpLogStore, REQUEST_MEMORY_MS } from '../sync/oplog.store';
import { StoreHarness } from './store-contracts';
import { groupRecord, stampedOp, userRecord } from './factories';

/** What the replicated state of a store looks like from outside, for comparing two stores. */
type Observe<S> = (store: S) => unknown;

interface SnapshotCase<S> {
  /** Fills an empty store with a state that exercises every kind of row. */
  fill(store: S): void;
  observe: Observe<S>;
  /** Rows the store must refuse, each with a reason. */
  malformed: readonly (readonly [string, SnapshotRow])[];
  /** Fills a store with more rows than one page of a paged export. */
  many(store: S): void;
}

/**
 * Snapshot export and import every store must share: what one store exports, an empty store of either kind imports
 * into the same observable state, and a row it cannot read is refused.
 */
function snapshotContract<S extends { exportRows(): Iterable<SnapshotRow>; importRow(row: SnapshotRow): void }>(
  harness: StoreHarness<S>,
  c: SnapshotCase<S>,
): void {
  describe('snapshot rows', () => {
    afterEach(() => harness.dispose?.());

    it('imports what it exported into an empty store: the same state, and the same rows again', () => {
      const source = harness.create();
      c.fill(source);
      const rows = [...source.exportRows()];
      const target = harness.create();
      for (const row of rows) target.importRow(row);
      expect(c.observe(target)).toEqual(c.observe(source));
      expect([...target.exportRows()]).toEqual(rows);
    });

    it('exports nothing from an empty store', () => {
      expect([...harness.create().exportRows()]).toEqual([]);
    });

    it('pages through more rows than one page', () => {
      const source = harness.create();
      c.many(source);
      const rows = [...source.exportRows()];
      expect(rows.length).toBeGreaterThanOrEqual(600);
      const target = harness.create();
      for (const row of rows) target.importRow(row);
      expect(c.observe(target)).toEqual(c.observe(source));
    });

    it.each(c.malformed.map(([why, row]) => [why, row] as const))('refuses %s', (_why, row) => {
      const store = harness.create();
      c.fill(store);
      const before = c.observe(store);
      expect(() => store.importRow(row)).toThrow(SnapshotRowError);
      expect(c.observe(store)).toEqual(before);
    });
  });
}

export function userSnapshotContract(harness: StoreHarness<UserStore>): void {
  snapshotContract(harness, {
    fill: (s) => {
      s.add(userRecord({ userId: 'bob', passwordHash: 'scrypt$x$y', createdAt: 5 }));
      s.add(userRecord({ userId: 'alice' }));
      s.addToken({ tokenHash: 'ff', userId: 'alice', createdAt: 7, heldBy: 2, seenAt: 9 });
      s.addToken({ tokenHash: '0a', userId: 'bob', createdAt: 8, heldBy: 0, seenAt: 8 });
    },
    observe: (s) => ({ users: s.all(), tokens: s.tokens() }),
    many: (s) => {
      for (let i = 0; i < 400; i++) s.add(userRecord({ userId: `u${i}` }));
      for (let i = 0; i < 300; i++)
        s.addToken({ tokenHash: `t${i}`, userId: 'u1', createdAt: i, heldBy: 1, seenAt: i });
    },
    malformed: [
      ['an unknown kind', ['admin', 'x']],
      ['a user row with a field missing', ['user', 'carol', 'h']],
      ['a user row with a bad time', ['user', 'carol', 'h', '12x']],
      ['a token row with an empty hash', ['token', '', 'alice', '1', '0', '1']],
      ['an empty row', []],
    ],
  });
}

export function groupSnapshotContract(harness: StoreHarness<GroupStore>): void {
  snapshotContract(harness, {
    fill: (s) => {
      s.create(groupRecord({ groupId: 'team', owner: 'alice', createdAt: 3 }));
      s.addMember('team', 'carol');
      s.addMember('team', 'bob');
      s.addRequest('team', 'dave');
      s.addRequest('team', 'erin');
      s.create(groupRecord({ groupId: 'band', owner: 'bob', createdAt: 4 }));
      // the owner left: a group whose owner is no longer its first member
      s.addMember('band', 'alice');
      s.removeMember('band', 'bob');
      s.setOwner('band', 'alice');
    },
    observe: (s) => s.list().map((g) => ({ ...g, members: s.members(g.groupId), requests: s.requests(g.groupId) })),
    many: (s) => {
      for (let i = 0; i < 300; i++) s.create(groupRecord({ groupId: `g${i}`, owner: `u${i}` }));
      for (let i = 0; i < 300; i++) s.addMember('g1', `m${i}`);
      for (let i = 0; i < 300; i++) s.addRequest('g2', `r${i}`);
    },
    malformed: [
      ['a member of an unknown group', ['member', 'nope', 'bob']],
      ['a request of an unknown group', ['request', 'nope', 'bob']],
      ['a group twice', ['group', 'team', 'alice', '3']],
      ['a group row with a bad time', ['group', 'new', 'alice', 'soon']],
      ['a member row with a field too many', ['member', 'team', 'bob', 'x']],
    ],
  });
}

const digest = (n: number) => n.toString(16).padStart(40, '0');

export function fileSnapshotContract(harness: StoreHarness<FileStore>): void {
  const file = (groupId: string, fileName: string, chunks: number) => ({
    groupId,
    fileName,
    fileSize: chunks * 10,
    fileHash: digest(99),
    uploader: 'alice',
    createdAt: 11,
    chunkHashes: Buffer.from(Array.from({ length: chunks }, (_, i) => digest(i)).join(''), 'hex'),
  });
  snapshotContract(harness, {
    fill: (s) => {
      s.addFile(file('team', 'b file.txt', 3));
      s.addFile(file('team', 'a.txt', 1));
      s.addFile(file('band', 'x.bin', 0));
      s.putSeeder({ groupId: 'team', fileName: 'b file.txt', userId: 'carol', filePath: '/c/b file.txt' });
      s.putSeeder({ groupId: 'team', fileName: 'b file.txt', userId: 'alice', filePath: '/a/"b".txt' });
      s.putSeeder({ groupId: 'team', fileName: 'a.txt', userId: 'bob', filePath: '/b/a.txt' });
    },
    observe: (s) =>
      ['band', 'team'].flatMap((g) =>
        [...new Set(['a.txt', 'b file.txt', 'x.bin', ...s.listFiles(g).map((f) => f.fileName)])].map((name) => ({
          info: s.getFile(g, name),
          chunks: s.chunkHashes(g, name)?.toString('hex'),
          seeders: s.seeders(g, name),
        })),
      ),
    many: (s) => {
      for (let i = 0; i < 300; i++) s.addFile(file('team', `f${i}`, 2));
      for (let i = 0; i < 300; i++) s.putSeeder({ groupId: 'team', fileName: `f${i}`, userId: 'bob', filePath: '/p' });
    },
    malformed: [
      ['a seeder of an unknown file', ['seeder', 'team', 'nope.txt', 'bob', '/p']],
      ['a file twice', ['file', 'team', 'a.txt', '1', digest(1), 'alice', '1', digest(2)]],
      ['chunk digests that are not whole SHA-1s', ['file', 'team', 'c.txt', '1', digest(1), 'alice', '1', 'abc']],
      ['chunk digests that are not hex', ['file', 'team', 'c.txt', '1', digest(1), 'alice', '1', 'z'.repeat(40)]],
      ['a file row with a bad size', ['file', 'team', 'c.txt', '-x', digest(1), 'alice', '1', digest(2)]],
    ],
  });
}

/** The snapshot an `OpLogStore` keeps besides its ops, for the SQLite and in-memory logs alike. */
export function opLogSnapshotContract(harness: StoreHarness<OpLogStore>): void {
  describe('snapshot', () => {
    let log: OpLogStore;
    beforeEach(() => {
      log = harness.create();
      for (const [origin, seq, lamport] of [
        [1, 1, 1],
        [2, 1, 2],
        [1, 2, 3],
        [2, 2, 4],
        [1, 3, 5],
      ])
        log.append(stampedOp({ origin, seq, lamport }));
    });
    afterEach(() => harness.dispose?.());

    const rows = [
      { part: 'auth', row: ['user', 'alice', 'h', '1'] },
      { part: 'groups', row: ['group', 'g "1"', 'alice', '2'] },
      { part: 'files', row: [] },
    ];
    const cut = {
      versionVector: new Map([
        [1, 2],
        [2, 1],
      ]),
      lamport: 3,
      origin: 1,
      seq: 2,
      takenAt: 99,
    };

    it('has none at first', () => {
      expect(log.snapshot()).toBeUndefined();
      expect([...log.snapshotRows()]).toEqual([]);
    });

    it('deletes the ops the cut covers, keeps the rest, and numbers its rows from 1', () => {
      expect(log.transaction(() => log.replaceSnapshot(cut, rows))).toBe(3);
      expect([...log.all()].map((op) => `${op.origin}/${op.seq}`)).toEqual(['2/2', '1/3']);
      expect(log.count()).toBe(2);
      expect(log.snapshot()).toEqual({ ...cut, opCount: 3, rows: 3 });
      expect([...log.snapshotRows()]).toEqual(rows.map((r, i) => ({ ...r, n: i + 1 })));
      expect([...log.snapshotRows(2)]).toEqual([{ ...rows[2], n: 3 }]);
    });

    it('replaces the rows with the next snapshot and counts the ops of both', () => {
      log.transaction(() => log.replaceSnapshot(cut, rows));
      const next = {
        ...cut,
        versionVector: new Map([
          [1, 3],
          [2, 2],
        ]),
        lamport: 5,
        seq: 3,
      };
      expect(log.transaction(() => log.replaceSnapshot(next, rows.slice(0, 1)))).toBe(2);
      expect(log.count()).toBe(0);
      expect(log.snapshot()).toEqual({ ...next, opCount: 5, rows: 1 });
      expect([...log.snapshotRows()]).toEqual([{ ...rows[0], n: 1 }]);
    });

    it('keeps nothing of a snapshot whose transaction failed', () => {
      expect(() =>
        log.transaction(() => {
          log.replaceSnapshot(cut, rows);
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(log.snapshot()).toBeUndefined();
      expect([...log.snapshotRows()]).toEqual([]);
      expect(log.count()).toBe(5);
    });

    it('still knows the request ids of compacted ops for REQUEST_MEMORY_MS, then forgets them', () => {
      const now = 1_700_000_000_000;
      const fresh = harness.create();
      fresh.append(stampedOp({ origin: 1, seq: 1, lamport: 1, requestId: 'c1-1', actor: 'alice', time: now }));
      fresh.append(
        stampedOp({
          origin: 1,
          seq: 2,
          lamport: 2,
          requestId: 'c1-2',
          actor: 'bob',
          time: now - 2 * REQUEST_MEMORY_MS,
        }),
      );
      fresh.append(stampedOp({ origin: 1, seq: 3, lamport: 3, requestId: 'c1-3', actor: 'alice', time: now }));
      const at = (seq: number, takenAt: number) => ({
        ...cut,
        versionVector: new Map([[1, seq]]),
        seq,
        lamport: seq,
        takenAt,
      });
      fresh.transaction(() => fresh.replaceSnapshot(at(2, now), []));
      expect(fresh.count()).toBe(1);
      expect(fresh.hasRequest('c1-1', 'alice')).toBe(true);
      expect(fresh.hasRequest('c1-1', 'bob')).toBe(false);
      expect(fresh.hasRequest('c1-2', 'bob')).toBe(false);
      expect(fresh.hasRequest('c1-3', 'alice')).toBe(true);
      fresh.transaction(() => fresh.replaceSnapshot(at(3, now + REQUEST_MEMORY_MS + 1), []));
      expect(fresh.hasRequest('c1-1', 'alice')).toBe(false);
      expect(fresh.hasRequest('c1-3', 'alice')).toBe(false);
    });

    it('stages incoming rows until cleared; a fresh first page forgets earlier ones', () => {
      log.stageSnapshotRows(rows.slice(0, 1), true);
      log.stageSnapshotRows(rows.slice(1), false);
      expect([...log.stagedSnapshotRows()]).toEqual(rows);
      log.stageSnapshotRows(rows.slice(2), true);
      expect([...log.stagedSnapshotRows()]).toEqual(rows.slice(2));
      log.transaction(() => log.replaceSnapshot(cut, log.stagedSnapshotRows()));
      expect([...log.snapshotRows()]).toEqual([{ ...rows[2], n: 1 }]);
      log.clearStagedSnapshot();
      expect([...log.stagedSnapshotRows()]).toEqual([]);
    });
  });
}
