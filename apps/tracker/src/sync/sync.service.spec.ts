import { CHUNK_SIZE } from '@app/chunking';
import { compareOps, encodeOpArgs, Op, ProtocolError, SeederForm, StampedOp } from '@app/protocol';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { LoginFailedError } from '../auth/auth.errors';
import { DomainError } from '../common/domain.error';
import { requestContext } from '../common/request-context';
import { Session } from '../common/session';
import { stampedOp } from '../testing/factories';
import { fakeSession } from '../testing/fake-session';
import {
  plainHasher,
  Replica,
  replica,
  syncTestingProviders,
  TEST_CLUSTER_KEY,
  testCapabilitySigner,
  trackerConfig,
} from '../testing/sync-testing';
import { TempDatabases } from '../testing/temp-db';
import { AuthService } from '../auth/auth.service';
import { SqliteUserStore } from '../auth/sqlite-user.store';
import { FilesService } from '../files/files.service';
import { PresenceService } from '../files/presence.service';
import { SqliteFileStore } from '../files/sqlite-file.store';
import { GroupsService } from '../groups/groups.service';
import { SqliteGroupStore } from '../groups/sqlite-group.store';
import { InMemoryUnitOfWork } from '../storage/in-memory-unit-of-work';
import { SqliteUnitOfWork } from '../storage/unit-of-work';
import { SqliteOpLogStore } from './sqlite-oplog.store';
import { InMemoryOpLogStore } from './in-memory-oplog.store';
import { OpLogStore } from './oplog.store';
import { SyncService } from './sync.service';
import { OPLOG_STORE } from './sync.tokens';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');

/** Hands `to` every change `from` holds that `to` lacks, as a peer link does. */
function deliver(from: Replica, to: Replica): void {
  for (const op of from.sync.opsAfter(to.sync.versionVector(), Number.MAX_SAFE_INTEGER)) to.sync.receive(op);
}

/** A small seeded PRNG, so that a failing interleaving is reproduced from fast-check's seed. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The ops in a random merge of their origins' streams: each origin's ops stay in seq order, as a peer sends them. */
function interleave(ops: readonly StampedOp[], random: () => number): StampedOp[] {
  const queues = new Map<number, StampedOp[]>();
  for (const op of [...ops].sort((a, b) => a.seq - b.seq)) {
    if (!queues.has(op.origin)) queues.set(op.origin, []);
    queues.get(op.origin)!.push(op);
  }
  const out: StampedOp[] = [];
  for (let live = [...queues.values()]; live.length > 0; live = live.filter((q) => q.length > 0)) {
    out.push(live[Math.floor(random() * live.length)].shift()!);
  }
  return out;
}

/** Any order at all, some ops twice. */
function scramble(ops: readonly StampedOp[], random: () => number): StampedOp[] {
  const out = [...ops, ...ops.filter(() => random() < 0.2)];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe(SyncService.name, () => {
  let sync: SyncService;
  let log: OpLogStore;
  const applied: Op[] = [];
  const reset = jest.fn();

  async function setup(trackerNumber = 2, opLog?: InMemoryOpLogStore): Promise<void> {
    const work = new InMemoryUnitOfWork();
    if (opLog) work.enlist(opLog);
    const moduleRef = await Test.createTestingModule({
      providers: syncTestingProviders({ trackerNumber, trackerCount: 3 }, opLog && { opLog, work }),
    }).compile();
    sync = moduleRef.get(SyncService);
    log = moduleRef.get<OpLogStore>(OPLOG_STORE);
    // this SyncService alone: two kinds of change recorded as they are applied, no module's appliers
    sync.register('create_group', (op) => applied.push(op));
    sync.register('accept_request', (op) => applied.push(op));
    sync.participate({
      name: 'test',
      reset,
      describe: () => applied.map((op) => `${op.kind} ${encodeOpArgs(op).join(',')}`),
    });
  }

  beforeEach(async () => {
    applied.length = 0;
    reset.mockReset().mockImplementation(() => (applied.length = 0));
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    await setup();
  });
  afterEach(() => jest.restoreAllMocks());

  const stamp = (op: StampedOp) => `${op.origin}/${op.seq}/${op.lamport}`;
  /** The first arg of each applied change: the group id of a `create_group`. */
  const kinds = () => applied.map((op) => encodeOpArgs(op)[0]);

  describe('commit', () => {
    it('stamps changes with this tracker’s number, seq 1, 2, 3... and a rising Lamport clock', () => {
      const ops = ['x', 'y', 'z'].map((arg) => sync.commit({ kind: 'create_group', actor: 'alice', groupId: arg }));
      expect(ops.map(stamp)).toEqual(['2/1/1', '2/2/2', '2/3/3']);
      expect([...log.all()]).toEqual(ops);
      expect(sync.versionVector()).toEqual(new Map([[2, 3]]));
    });

    it('applies the change through the applier registered for its kind, once, and returns it', () => {
      const op = sync.commit({ kind: 'accept_request', actor: 'bob', groupId: 'g1', candidate: 'carol', time: 1234 });
      expect(applied).toEqual([op]);
      expect(op).toMatchObject({
        kind: 'accept_request',
        actor: 'bob',
        groupId: 'g1',
        candidate: 'carol',
        time: 1234,
        requestId: '',
      });
    });

    it('dates a change now unless told otherwise', () => {
      const before = Date.now();
      const op = sync.commit({ kind: 'create_group', actor: '', groupId: 'g' });
      expect(op.time).toBeGreaterThanOrEqual(before);
      expect(op.time).toBeLessThanOrEqual(Date.now());
    });

    it('records the client’s request id of the request being handled', () => {
      const op = requestContext.run({ requestId: 'c9-1' }, () =>
        sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' }),
      );
      expect(op.requestId).toBe('c9-1');
      expect(sync.hasRequest('c9-1', 'a')).toBe(true);
      expect(sync.hasRequest('c9-2', 'a')).toBe(false);
    });

    it('scopes request ids to the user who made the change', () => {
      requestContext.run({ requestId: 'x1' }, () => sync.commit({ kind: 'create_group', actor: 'bob', groupId: 'g' }));
      requestContext.run({ requestId: 'x2' }, () =>
        sync.commit({ kind: 'create_user', actor: '', userId: 'm', passwordHash: 'plain$m' }),
      );
      expect(sync.hasRequest('x1', 'bob')).toBe(true);
      expect(sync.hasRequest('x1', 'alice')).toBe(false);
      // made before login: no user's id
      expect(sync.hasRequest('x2', 'alice')).toBe(false);
      expect(sync.hasRequest('x2', '')).toBe(false);
    });

    it('never matches the empty request id of a request without #id', () => {
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' });
      expect(sync.hasRequest('', 'a')).toBe(false);
    });

    it('runs its clock above every change it has received', () => {
      sync.receive(stampedOp({ origin: 3, seq: 1, lamport: 41 }));
      expect(stamp(sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' }))).toBe('2/1/42');
    });

    it('stores nothing and uses up no seq when the applier throws', () => {
      sync.register('leave_group', () => {
        throw new Error('applier broke');
      });
      expect(() => sync.commit({ kind: 'leave_group', actor: 'a', groupId: 'g' })).toThrow('applier broke');
      expect(log.count()).toBe(0);
      expect(stamp(sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' }))).toBe('2/1/1');
    });

    it('refuses a change its kind’s codec refuses, storing nothing and using up no seq', () => {
      const bad = () => sync.commit({ kind: 'create_group', actor: 'a', groupId: 'not an id' });
      expect(bad).toThrow(ProtocolError);
      expect(bad).toThrow(/bad create_group change: group_id 'not an id'/);
      expect(log.count()).toBe(0);
      expect(applied).toEqual([]);
      expect(stamp(sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' }))).toBe('2/1/1');
    });

    it('logs and skips a change of a kind no module registered an applier for, keeping it in the log', () => {
      const warn = jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
      sync.commit({ kind: 'stop_share', actor: 'a', groupId: 'g', fileName: 'f' });
      expect(warn).toHaveBeenCalledWith(expect.stringContaining('stop_share'));
      expect(applied).toEqual([]);
      expect(log.count()).toBe(1);
    });

    it('refuses a second applier for the same kind', () => {
      expect(() => sync.register('create_group', () => undefined)).toThrow(/registered twice/);
    });

    it('continues the stored log after a restart: next seq and a higher clock', async () => {
      const stored = new InMemoryOpLogStore();
      stored.append(stampedOp({ origin: 2, seq: 1, lamport: 1 }));
      stored.append(stampedOp({ origin: 2, seq: 2, lamport: 5 }));
      stored.append(stampedOp({ origin: 1, seq: 1, lamport: 9 }));
      await setup(2, stored);
      expect(stamp(sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' }))).toBe('2/3/10');
    });
  });

  describe('receive', () => {
    const from = (origin: number, seq: number, lamport: number, groupId = `${origin}-${seq}`) =>
      stampedOp({ origin, seq, lamport, groupId });

    it('stores and applies changes that come in order', () => {
      expect(sync.receive(from(1, 1, 1))).toBe('applied');
      expect(sync.receive(from(3, 1, 2))).toBe('applied');
      expect(sync.receive(from(1, 2, 3))).toBe('applied');
      expect(kinds()).toEqual(['1-1', '3-1', '1-2']);
      expect(reset).not.toHaveBeenCalled();
      expect(sync.versionVector()).toEqual(
        new Map([
          [1, 2],
          [3, 1],
        ]),
      );
    });

    it('takes a batch of changes in one go, in the order given, skipping those it holds', () => {
      sync.receive(from(1, 1, 1));
      sync.receiveAll([from(1, 1, 1), from(3, 1, 2), from(1, 2, 3)]);
      expect(kinds()).toEqual(['1-1', '3-1', '1-2']);
      expect(log.count()).toBe(3);
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'mine' });
      expect(stamp([...log.all()].pop()!)).toBe('2/1/4');
    });

    it('keeps none of a batch when one of its changes fails, and its clock as it was', () => {
      sync.register('leave_group', () => {
        throw new Error('applier failed');
      });
      const bad = stampedOp({ kind: 'leave_group', groupId: 'g', origin: 3, seq: 1, lamport: 50 });
      expect(() => sync.receiveAll([from(1, 1, 1), bad])).toThrow('applier failed');
      expect(log.count()).toBe(0);
      expect(sync.versionVector()).toEqual(new Map());
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'mine' });
      expect(stamp([...log.all()][0])).toBe('2/1/1');
    });

    it('ignores a change it holds already', () => {
      sync.receive(from(1, 1, 1));
      expect(sync.receive(from(1, 1, 1))).toBe('duplicate');
      expect(sync.receive(from(1, 1, 1, 'other'))).toBe('duplicate');
      expect(kinds()).toEqual(['1-1']);
      expect(log.count()).toBe(1);
    });

    it('ignores its own changes coming back', () => {
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'mine' });
      const [mine] = [...log.all()];
      expect(sync.receive(mine)).toBe('duplicate');
      expect(sync.receive({ ...mine, lamport: 99 })).toBe('duplicate');
      expect(kinds()).toEqual(['mine']);
    });

    it('replays the whole log in the total order when a change sorts before what is applied', () => {
      sync.receive(from(1, 1, 1));
      sync.receive(from(1, 2, 5));
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'mine' }); // 2/1/6
      expect(sync.receive(from(3, 1, 2))).toBe('replayed');
      expect(reset).toHaveBeenCalledTimes(1);
      expect(kinds()).toEqual(['1-1', '3-1', '1-2', 'mine']);
      // the clock stays above everything: the next change still sorts last
      expect(stamp(sync.commit({ kind: 'create_group', actor: 'a', groupId: 'next' }))).toBe('2/2/7');
      expect(kinds()).toEqual(['1-1', '3-1', '1-2', 'mine', 'next']);
    });

    it('breaks a tie of Lamport clocks by origin, then seq', () => {
      expect(sync.receive(from(3, 1, 4))).toBe('applied');
      expect(sync.receive(from(1, 1, 4))).toBe('replayed');
      expect(kinds()).toEqual(['1-1', '3-1']);
    });

    it('does not replay for a change that sorts after everything applied', () => {
      sync.receive(from(1, 1, 1));
      sync.receive(from(3, 1, 3));
      sync.receive(from(1, 2, 4));
      expect(reset).not.toHaveBeenCalled();
    });

    describe('a late change that touches nothing changed after it', () => {
      /** `join_group` here appends its actor to the list under its group id; its footprint is that id alone. */
      const lists = new Map<string, string[]>();
      const keyed = (origin: number, seq: number, lamport: number, key: string) =>
        stampedOp({ kind: 'join_group', origin, seq, lamport, actor: `${origin}-${seq}`, groupId: key });
      const state = () => [...lists].sort(([a], [b]) => (a < b ? -1 : 1));
      beforeEach(() => {
        lists.clear();
        reset.mockImplementation(() => {
          applied.length = 0;
          lists.clear();
        });
        sync.register(
          'join_group',
          ({ actor, groupId }) => lists.set(groupId, [...(lists.get(groupId) ?? []), actor]),
          ({ groupId }) => [groupId],
        );
      });

      it('is applied in place, without replaying the log, to the state a replay builds', async () => {
        const ops = [keyed(1, 1, 1, 'x'), keyed(3, 1, 3, 'y'), keyed(3, 2, 4, 'x'), keyed(1, 2, 2, 'z')];
        for (const op of ops) expect(sync.receive(op)).toBe('applied');
        expect(reset).not.toHaveBeenCalled();
        const inPlace = state();
        lists.clear();
        await setup();
        sync.register(
          'join_group',
          ({ actor, groupId }) => lists.set(groupId, [...(lists.get(groupId) ?? []), actor]),
          ({ groupId }) => [groupId],
        );
        for (const op of [...ops].sort(compareOps)) sync.receive(op);
        expect(state()).toEqual(inPlace);
        expect(inPlace).toEqual([
          ['x', ['1-1', '3-2']],
          ['y', ['3-1']],
          ['z', ['1-2']],
        ]);
      });

      it('replays when a change applied after it shares a key', () => {
        sync.receive(keyed(1, 1, 1, 'x'));
        sync.receive(keyed(3, 1, 3, 'x'));
        expect(sync.receive(keyed(1, 2, 2, 'x'))).toBe('replayed');
        expect(state()).toEqual([['x', ['1-1', '1-2', '3-1']]]);
      });

      it('replays when a change applied after it declares no footprint, or its own kind declares none', () => {
        sync.receive(keyed(1, 1, 1, 'x'));
        sync.receive(from(3, 1, 3));
        expect(sync.receive(keyed(1, 2, 2, 'y'))).toBe('replayed');
        expect(sync.receive(from(1, 3, 2))).toBe('replayed');
        expect(reset).toHaveBeenCalledTimes(2);
      });

      it('replays when more than 64 changes sort after it', () => {
        for (let i = 1; i <= 65; i++) sync.receive(keyed(3, i, 10 + i, `k${i}`));
        expect(sync.receive(keyed(1, 1, 1, 'x'))).toBe('replayed');
        for (let i = 1; i <= 64; i++) sync.receive(keyed(4, i, 100 + i, `m${i}`));
        expect(sync.receive(keyed(1, 2, 100, 'y'))).toBe('applied');
        expect(reset).toHaveBeenCalledTimes(1);
      });
    });

    it('reaches the same state, and digest, from the same changes in any order', async () => {
      const ops = [from(1, 1, 1), from(3, 1, 1), from(1, 2, 2), from(3, 2, 4), from(1, 3, 3)];
      for (const op of ops) sync.receive(op);
      const first = { kinds: kinds(), digest: sync.digest() };
      applied.length = 0;
      await setup();
      for (const op of [...ops].reverse()) sync.receive(op);
      expect(kinds()).toEqual(first.kinds);
      expect(kinds()).toEqual([...ops].sort(compareOps).map((op) => encodeOpArgs(op)[0]));
      expect(sync.digest()).toBe(first.digest);
    });
  });

  describe('digest', () => {
    it('is the same for the same state and changes with it', () => {
      const empty = sync.digest();
      expect(empty).toMatch(/^[0-9a-f]{40}$/);
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'x' });
      const one = sync.digest();
      expect(one).not.toBe(empty);
      expect(sync.digest()).toBe(one);
    });
  });

  describe('flush', () => {
    it('returns at once without peers, with or without changes', async () => {
      const settled = (p: Promise<void>) =>
        Promise.race([p.then(() => 'flushed'), new Promise((r) => setTimeout(() => r('waited'), 100))]);
      await expect(settled(sync.flush())).resolves.toBe('flushed');
      sync.commit({ kind: 'create_group', actor: 'a', groupId: 'g' });
      sync.configure({ replicationWaitMs: 60_000 });
      await expect(settled(sync.flush())).resolves.toBe('flushed');
    });
  });

  describe('ready', () => {
    it('resolves at bootstrap for a tracker with no peers', async () => {
      const moduleRef = await Test.createTestingModule({ providers: syncTestingProviders() }).compile();
      const service = moduleRef.get(SyncService);
      let ready = false;
      void service.ready.then(() => (ready = true));
      await Promise.resolve();
      expect(ready).toBe(false);
      await moduleRef.init();
      await service.ready;
      await moduleRef.close();
    });
  });

  describe('presence', () => {
    it('gathers this tracker’s presence from its sources and hands remote presence to listeners', () => {
      const entry = {
        userId: 'alice',
        address: '10.0.0.1:7001',
        groupId: 'g1',
        fileName: 'f',
        filePath: '/f',
        form: SeederForm.Extended,
      };
      sync.addPresenceSource(() => [entry]);
      sync.addPresenceSource(() => []);
      expect(sync.localPresence()).toEqual([entry]);
      const listener = jest.fn();
      sync.onRemotePresence(listener);
      sync.remotePresence(3, { on: true, entry });
      sync.remotePresence(3, 'reset');
      expect(listener.mock.calls).toEqual([
        [3, { on: true, entry }],
        [3, 'reset'],
      ]);
      expect(() => sync.presenceChanged({ on: false, entry })).not.toThrow(); // no peer to tell
    });
  });
});

describe(`${SyncService.name} with the real services`, () => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  const network = () => [replica(1, 4), replica(2, 4), replica(3, 4)];
  const fullSync = (trackers: Replica[]) => {
    for (let round = 0; round < 2; round++)
      for (const a of trackers) for (const b of trackers) if (a !== b) deliver(a, b);
  };

  /** Tries the passwords the scenarios use; the one of the winning create_user works. */
  async function loginAny(r: Replica, session: Session, userId: string): Promise<void> {
    for (const pw of ['pw1', 'pw2', 'pw3']) {
      try {
        await r.auth.login(session, userId, pw);
        return;
      } catch (err) {
        if (!(err instanceof LoginFailedError)) throw err;
      }
    }
  }

  it('settles a user created on two trackers at once on the creation ordered first, everywhere', async () => {
    const [t1, t2, t3] = network();
    await t2.auth.createUser('u1', 'pw2');
    await t1.auth.createUser('u1', 'pw1'); // same clock (1): tracker 1 sorts first
    deliver(t2, t3);
    deliver(t1, t3);
    fullSync([t1, t2, t3]);
    expect(new Set([t1, t2, t3].map((t) => t.sync.digest())).size).toBe(1);
    for (const t of [t1, t2, t3]) {
      await expect(t.auth.login(fakeSession(), 'u1', 'pw2')).rejects.toBeInstanceOf(LoginFailedError);
      await expect(t.auth.login(fakeSession(), 'u1', 'pw1')).resolves.toMatch(/^[0-9a-f]{64}$/);
    }
  });

  it('applies changes made at once on two trackers in place, without replaying a log that holds a big file', async () => {
    const [t1, t2, t3] = network();
    const hashes = Array.from({ length: 20_000 }, (_, i) => sha1(`chunk ${i}`));
    await t1.auth.createUser('alice', 'pw1');
    t1.groups.create('alice', 'g1');
    t1.files.share(
      { userId: 'alice', connectionId: 1, address: { host: '10.0.0.1', port: 7001 } },
      {
        groupId: 'g1',
        filePath: '/a/big.img',
        fileSize: hashes.length * CHUNK_SIZE,
        fileHash: sha1('big'),
        chunkHashes: hashes,
      },
    );
    // meanwhile on tracker 2, with the same clocks: each of its changes sorts before some of tracker 1's
    await t2.auth.createUser('bob', 'pw2');
    t2.groups.create('bob', 'g2');
    t2.groups.create('bob', 'g3');
    const replays = [t1, t2].map((t) => jest.spyOn(t.sync as unknown as { replay(): void }, 'replay'));
    const outcomes = [
      ...t2.sync.opsAfter(t1.sync.versionVector(), 100).map((op) => t1.sync.receive(op)),
      ...t1.sync.opsAfter(t2.sync.versionVector(), 100).map((op) => t2.sync.receive(op)),
    ];
    expect(outcomes).toEqual(Array(6).fill('applied'));
    for (const spy of replays) expect(spy).not.toHaveBeenCalled();
    // the state a tracker builds from the whole log in order
    for (const op of [...t1.log.all()]) t3.sync.receive(op);
    expect(t1.sync.digest()).toBe(t3.sync.digest());
    expect(t2.sync.digest()).toBe(t3.sync.digest());
  });

  it('makes two accepts of one request, on two trackers, one membership', () => {
    const [t1, t2, t3] = network();
    t1.groups.create('alice', 'g1');
    fullSync([t1, t2, t3]);
    t3.groups.join('bob', 'g1');
    fullSync([t1, t2, t3]);
    t1.groups.accept('alice', 'g1', 'bob');
    t2.groups.accept('alice', 'g1', 'bob');
    fullSync([t1, t2, t3]);
    for (const t of [t1, t2, t3]) {
      expect(t.groups.members('g1')).toEqual(['alice', 'bob']);
      expect(t.groups.listRequests('alice', 'g1')).toEqual([]);
    }
    expect([...t1.log.all()].filter((op) => op.kind === 'accept_request')).toHaveLength(2);
    expect(new Set([t1, t2, t3].map((t) => t.sync.digest())).size).toBe(1);
  });

  it('replays on the SQLite stores too, through a log of several pages, to the state an in-memory tracker reaches', async () => {
    const dbs = new TempDatabases();
    try {
      const db = dbs.open();
      const log = new SqliteOpLogStore(db);
      const sync = new SyncService(
        log,
        new SqliteUnitOfWork(db),
        trackerConfig({ trackerNumber: 1, trackerCount: 4 }),
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
      const memory = replica(1, 4);
      for (const t of [{ auth, groups, files }, memory]) {
        await t.auth.createUser('alice', 'pw');
        for (let i = 0; i < 200; i++) {
          t.groups.create('alice', `g${i}`);
          t.groups.join('bob', `g${i}`);
        }
        t.files.share(
          { userId: 'alice', connectionId: 1, address: { host: '10.0.0.1', port: 7001 } },
          { groupId: 'g7', filePath: '/a/f.bin', fileSize: 1, fileHash: sha1('f'), chunkHashes: [sha1('c')] },
        );
        t.groups.leave('alice', 'g7');
      }
      const late = stampedOp({
        kind: 'create_user',
        actor: '',
        userId: 'zed',
        passwordHash: 'plain$z',
        origin: 2,
        seq: 1,
        lamport: 1,
      });
      expect(log.count()).toBeGreaterThan(400);
      expect(sync.receive(late)).toBe('replayed');
      expect(memory.sync.receive(late)).toBe('replayed');
      expect(auth.exists('zed')).toBe(true);
      const state = (t: { groups: GroupsService }) =>
        t.groups.allGroupIds().map((g) => [g, t.groups.members(g), t.groups.listRequests('alice', g)]);
      expect(state({ groups })).toHaveLength(199);
      expect(state({ groups })).toEqual(state(memory));
      expect(state({ groups })[0]).toEqual(['g0', ['alice'], ['bob']]);
      expect(groups.allGroupIds()).not.toContain('g7');
      expect(files.list('alice', 'g6')).toEqual([]);
    } finally {
      dbs.cleanup();
    }
  });

  type Action =
    | { t: 'user' | 'login' | 'logout'; at: number; user: string }
    | { t: 'create' | 'join' | 'accept' | 'leave'; at: number; user: string; group: string }
    | { t: 'upload'; at: number; user: string; group: string; name: string; variant: number }
    | { t: 'seed' | 'stop'; at: number; user: string; group: string; name: string }
    | { t: 'sync'; from: number; to: number };

  const at = fc.integer({ min: 1, max: 3 });
  const user = fc.constantFrom('u1', 'u2', 'u3');
  const group = fc.constantFrom('g1', 'g2');
  const name = fc.constantFrom('a.bin', 'b.bin');
  const action: fc.Arbitrary<Action> = fc.oneof(
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constantFrom('user' as const, 'login' as const, 'logout' as const), at, user }),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        t: fc.constantFrom('create' as const, 'join' as const, 'accept' as const, 'leave' as const),
        at,
        user,
        group,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ t: fc.constant('upload' as const), at, user, group, name, variant: fc.nat(1) }),
    },
    {
      weight: 3,
      arbitrary: fc.record({ t: fc.constantFrom('seed' as const, 'stop' as const), at, user, group, name }),
    },
    { weight: 3, arbitrary: fc.record({ t: fc.constant('sync' as const), from: at, to: at }) },
  );

  /** Runs one client action on its tracker; a refusal is part of the game. */
  async function run(trackers: Replica[], sessions: Map<string, Session>[], a: Action): Promise<void> {
    if (a.t === 'sync') {
      if (a.from !== a.to) deliver(trackers[a.from - 1], trackers[a.to - 1]);
      return;
    }
    const r = trackers[a.at - 1];
    const mine = sessions[a.at - 1];
    const by = () => ({
      userId: a.user,
      connectionId: mine.get(a.user)?.connectionId ?? 0,
      address: { host: '10.0.0.1', port: 7000 + a.at },
    });
    try {
      switch (a.t) {
        case 'user':
          return await r.auth.createUser(a.user, `pw${a.at}`);
        case 'login': {
          const session = fakeSession();
          await loginAny(r, session, a.user);
          if (session.user) mine.set(a.user, session);
          return;
        }
        case 'logout': {
          const session = mine.get(a.user);
          if (session) r.auth.logout(session);
          mine.delete(a.user);
          return;
        }
        case 'create':
          return r.groups.create(a.user, a.group);
        case 'join':
          return r.groups.join(a.user, a.group);
        case 'accept': {
          const owner = r.groups.list(a.user).find((g) => g.groupId === a.group)?.owner;
          if (owner) r.groups.accept(owner, a.group, a.user);
          return;
        }
        case 'leave':
          r.groups.leave(a.user, a.group);
          return;
        case 'upload':
          r.files.share(by(), {
            groupId: a.group,
            filePath: `/${a.user}/${a.name}`,
            fileSize: 1,
            fileHash: sha1(`${a.name}${a.variant}`),
            chunkHashes: [sha1(`chunk ${a.name}${a.variant}`)],
          });
          return;
        case 'seed':
          return r.files.addSeeder(by(), a.group, a.name, `/${a.user}/copy/${a.name}`);
        case 'stop':
          r.files.stopShare(a.user, a.group, a.name);
          return;
      }
    } catch (err) {
      if (!(err instanceof DomainError)) throw err;
    }
  }

  /** Every run starts with the clashes: u1 created on trackers 1 and 2 at once, and bob's request accepted on both. */
  const preamble: Action[] = [
    { t: 'user', at: 1, user: 'u1' },
    { t: 'user', at: 2, user: 'u1' },
    { t: 'user', at: 3, user: 'u2' },
    { t: 'create', at: 1, user: 'u1', group: 'g1' },
    { t: 'sync', from: 1, to: 3 },
    { t: 'join', at: 3, user: 'u2', group: 'g1' },
    { t: 'sync', from: 3, to: 1 },
    { t: 'sync', from: 3, to: 2 },
    { t: 'sync', from: 1, to: 2 },
    { t: 'accept', at: 1, user: 'u2', group: 'g1' },
    { t: 'accept', at: 2, user: 'u2', group: 'g1' },
  ];

  it('converges: trackers fed the same changes in different orders reach the same digest', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(action, { minLength: 30, maxLength: 80 }), fc.integer(), async (actions, seed) => {
        const origins = network();
        const sessions = origins.map(() => new Map<string, Session>());
        for (const a of [...preamble, ...actions]) await run(origins, sessions, a);
        fullSync(origins);
        const digest = origins[0].sync.digest();
        expect(origins.map((t) => t.sync.digest())).toEqual([digest, digest, digest]);

        const ops = [...origins[0].log.all()];
        expect(ops.filter((op) => op.kind === 'create_user' && op.userId === 'u1')).toHaveLength(2);
        expect(ops.filter((op) => op.kind === 'accept_request')).not.toHaveLength(0);
        const random = prng(seed);
        const [merged, scrambled] = [replica(4, 4), replica(4, 4)];
        for (const op of interleave(ops, random)) merged.sync.receive(op);
        for (const op of scramble(ops, random)) scrambled.sync.receive(op);
        expect(merged.sync.digest()).toBe(digest);
        expect(scrambled.sync.digest()).toBe(digest);
        expect(scrambled.log.count()).toBe(ops.length);
      }),
      { numRuns: 100 },
    );
  });
});
