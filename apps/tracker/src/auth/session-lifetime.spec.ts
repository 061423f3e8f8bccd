import { ErrorCode } from '@app/protocol';
import { Logger } from '@nestjs/common';
import { createHash } from 'node:crypto';
import { FakeClock } from '../testing/fake-clock';
import { fakeSession } from '../testing/fake-session';
import { inMemoryStores, plainHasher, TEST_CLUSTER_KEY, trackerConfig } from '../testing/sync-testing';
import { InMemoryUnitOfWork } from '../storage/in-memory-unit-of-work';
import { InMemoryOpLogStore } from '../sync/in-memory-oplog.store';
import { SyncService } from '../sync/sync.service';
import { SessionExpiredError, UnknownSessionError } from './auth.errors';
import { AuthService } from './auth.service';
import { InMemoryUserStore } from './in-memory-user.store';
import { SessionLifetime } from './session-lifetime';

const IDLE = 10_000;
const MAX_AGE = 100_000;
const PURGE_AFTER = 60 * 60_000; // DEFAULT_SESSION_LIFETIME.purgeAfterMs

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

interface Tracker {
  readonly sync: SyncService;
  readonly auth: AuthService;
  readonly users: InMemoryUserStore;
  readonly log: InMemoryOpLogStore;
  readonly work: InMemoryUnitOfWork;
}

/** Tracker `n` of two, on in-memory stores (kept across a `restart`), all on one fake clock. */
function tracker(n: number, clock: FakeClock, stores?: Pick<Tracker, 'users' | 'log' | 'work'>): Tracker {
  const { log, users, work } = stores ?? inMemoryStores();
  const config = trackerConfig({ trackerNumber: n, trackerCount: 2, sessionIdleMs: IDLE, sessionMaxAgeMs: MAX_AGE });
  const sync = new SyncService(log, work, config, TEST_CLUSTER_KEY, clock);
  const auth = new AuthService(users, plainHasher, sync, config, clock);
  return { sync, auth, users, log, work };
}

/** The process died and started again on the same database: new services, same stores; start-up hooks run. */
function restart(t: Tracker, n: number, clock: FakeClock): Tracker {
  const again = tracker(n, clock, t);
  again.auth.onApplicationBootstrap();
  again.auth.onApplicationShutdown(); // stops the sweep timer; the start-up work is done
  return again;
}

/** Hands `to` every change `from` holds that `to` lacks, as a peer link does. */
function deliver(from: Tracker, to: Tracker): void {
  for (const op of from.sync.opsAfter(to.sync.versionVector(), Number.MAX_SAFE_INTEGER)) to.sync.receive(op);
}

function refusal(work: () => unknown): Error & { code?: string } {
  try {
    work();
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a refusal');
}

describe(SessionLifetime.name, () => {
  let clock: FakeClock;
  let t1: Tracker;
  let t2: Tracker;

  beforeEach(async () => {
    jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    clock = new FakeClock();
    t1 = tracker(1, clock);
    t2 = tracker(2, clock);
    await t1.auth.createUser('alice', 'pw');
    deliver(t1, t2);
  });
  afterEach(() => jest.restoreAllMocks());

  /** Logs alice in on tracker `t`, then drops the connection without logout. */
  async function loginAndDrop(t: Tracker): Promise<string> {
    const s = fakeSession();
    const token = await t.auth.login(s, 'alice', 'pw');
    t.auth.endSession(s);
    return token;
  }

  function resumeAndDrop(t: Tracker, token: string): void {
    const s = fakeSession();
    t.auth.resume(s, token);
    t.auth.endSession(s);
  }

  describe('idle time', () => {
    it('resumes a dropped session within the idle time, then refuses it with SESSION_EXPIRED and forgets it', async () => {
      const token = await loginAndDrop(t1);
      clock.advance(IDLE - 1);
      resumeAndDrop(t1, token); // seen again: the idle time starts over
      clock.advance(IDLE - 1);
      resumeAndDrop(t1, token);
      clock.advance(IDLE);
      const err = refusal(() => t1.auth.resume(fakeSession(), token));
      expect(err).toBeInstanceOf(SessionExpiredError);
      expect(err.code).toBe(ErrorCode.SessionExpired);
      expect(err.message).toBe('that session has expired; log in again');
      // the token is gone here: asked again, it is unknown
      expect(t1.users.token(sha256(token))).toBeUndefined();
      expect(refusal(() => t1.auth.resume(fakeSession(), token))).toBeInstanceOf(UnknownSessionError);
    });

    it('gives every tracker that holds the same changes the same answer, also after both restarted', async () => {
      const token = await loginAndDrop(t1);
      deliver(t1, t2);
      clock.advance(IDLE - 1);
      t1 = restart(t1, 1, clock);
      t2 = restart(t2, 2, clock);
      // a restart is not a sighting: nobody held the session when the trackers stopped
      for (const t of [t1, t2]) expect([...t.log.all()].filter((op) => op.kind === 'session_seen')).toHaveLength(1);
      const s = fakeSession();
      expect(t2.auth.resume(s, token)).toBe('alice');
      t2.auth.endSession(s);
      deliver(t2, t1);
      clock.advance(IDLE);
      for (const t of [t1, t2]) {
        expect(refusal(() => t.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
      }
    });

    it('never expires a session while a connection of this tracker holds it', async () => {
      const s = fakeSession();
      const token = await t1.auth.login(s, 'alice', 'pw');
      const live = t1.sync.digest();
      clock.advance(5 * IDLE);
      t1 = sweep(t1);
      expect(t1.users.token(sha256(token))).toBeDefined();
      expect(t1.sync.digest()).toBe(live); // still a live token
      // dropped now: the idle time counts from the drop, not from the login
      t1.auth.endSession(s);
      clock.advance(IDLE - 1);
      expect(t1.auth.resume(fakeSession(), token)).toBe('alice');
    });

    it('releases, at start-up, the sessions this tracker held when it stopped: idle from the start', async () => {
      const token = await t1.auth.login(fakeSession(), 'alice', 'pw'); // held when the process dies
      clock.advance(5 * IDLE);
      t1 = restart(t1, 1, clock);
      expect(t1.users.token(sha256(token))).toMatchObject({ heldBy: 0, seenAt: clock.now() });
      clock.advance(IDLE - 1);
      resumeAndDrop(t1, token);
      clock.advance(IDLE);
      expect(refusal(() => t1.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
    });
  });

  describe('absolute age', () => {
    it('refuses a token past its age even when it was seen a moment ago', async () => {
      const loggedIn = clock.now();
      const token = await loginAndDrop(t1);
      while (clock.now() + IDLE / 2 < loggedIn + MAX_AGE) {
        clock.advance(IDLE / 2);
        resumeAndDrop(t1, token); // never idle for long
      }
      clock.advance(loggedIn + MAX_AGE - clock.now());
      expect(refusal(() => t1.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
    });

    it('counts the age from the session_open change, on every tracker', async () => {
      const s = fakeSession();
      const token = await t1.auth.login(s, 'alice', 'pw');
      deliver(t1, t2);
      clock.advance(MAX_AGE - 1);
      t1.auth.endSession(s);
      deliver(t1, t2);
      expect(t2.auth.resume(fakeSession(), token)).toBe('alice');
      clock.advance(1);
      expect(refusal(() => t1.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
    });
  });

  describe('a session held on another tracker', () => {
    it('does not idle while the link to the holder is up', async () => {
      const token = await t1.auth.login(fakeSession(), 'alice', 'pw');
      deliver(t1, t2);
      jest.spyOn(t2.sync, 'peerDownSince').mockReturnValue(undefined);
      clock.advance(5 * IDLE);
      expect(t2.auth.resume(fakeSession(), token)).toBe('alice');
    });

    it('idles from the moment the link to the holder dropped (the holder died with the client on it)', async () => {
      const token = await t1.auth.login(fakeSession(), 'alice', 'pw');
      deliver(t1, t2);
      clock.advance(5 * IDLE);
      const dropped = clock.now();
      jest.spyOn(t2.sync, 'peerDownSince').mockImplementation((n) => (n === 1 ? dropped : undefined));
      clock.advance(IDLE - 1);
      const s = fakeSession();
      expect(t2.auth.resume(s, token)).toBe('alice'); // the failover, within the idle time
      expect(t2.users.token(sha256(token))).toMatchObject({ heldBy: 2, seenAt: clock.now() });
      t2.auth.endSession(s);
      clock.advance(IDLE);
      expect(refusal(() => t2.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
    });

    it('refuses it once the link has been down for the idle time', async () => {
      const token = await t1.auth.login(fakeSession(), 'alice', 'pw');
      deliver(t1, t2);
      const dropped = clock.now() + 3 * IDLE;
      jest.spyOn(t2.sync, 'peerDownSince').mockReturnValue(dropped);
      clock.advance(4 * IDLE);
      expect(refusal(() => t2.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
    });

    it('lets only the holder release it: a late release from the tracker it left changes nothing', async () => {
      const s1 = fakeSession();
      const token = await t1.auth.login(s1, 'alice', 'pw');
      deliver(t1, t2);
      jest.spyOn(t2.sync, 'peerDownSince').mockReturnValue(clock.now());
      const s2 = fakeSession();
      t2.auth.resume(s2, token); // tracker 1 seemed gone; the client moved to tracker 2
      await t1.auth.createUser('bob', 'pw'); // tracker 1's clock runs ahead: its release sorts last
      t1.auth.endSession(s1);
      deliver(t1, t2);
      deliver(t2, t1);
      for (const t of [t1, t2]) expect(t.users.token(sha256(token))).toMatchObject({ heldBy: 2 });
      expect(t1.sync.digest()).toBe(t2.sync.digest());
    });
  });

  describe('purge', () => {
    it('keeps an expired token (answering SESSION_EXPIRED) for a while, then purges it everywhere', async () => {
      const token = await loginAndDrop(t1);
      deliver(t1, t2);
      clock.advance(IDLE);
      expect(refusal(() => t1.auth.resume(fakeSession(), token))).toBeInstanceOf(SessionExpiredError);
      // tracker 1 forgot it on the refusal; tracker 2 keeps it, and says so to a resume, until the purge
      expect(t1.users.tokens()).toEqual([]);
      expect(t2.users.tokens()).toHaveLength(1);
      // expired tokens are no part of the state the trackers compare
      expect(t1.sync.digest()).toBe(t2.sync.digest());
      clock.advance(PURGE_AFTER - 1);
      sweep(t2);
      expect(t2.users.tokens()).toHaveLength(1);
      clock.advance(1);
      sweep(t2);
      expect(t2.users.tokens()).toEqual([]);
      expect(refusal(() => t2.auth.resume(fakeSession(), token))).toBeInstanceOf(UnknownSessionError);
    });

    it('purges after a replay of the log brought expired tokens back', async () => {
      const token = await loginAndDrop(t1);
      clock.advance(IDLE + PURGE_AFTER);
      expect(t1.users.token(sha256(token))).toBeDefined();
      // a login of alice's on tracker 2 that sorts before everything applied shares her key with her later
      // changes, so tracker 1 replays its log (that token, as old, is purged with the other)
      const outcome = t1.sync.receive({
        kind: 'session_open',
        tokenHash: sha256('late'),
        actor: 'alice',
        time: 1,
        requestId: '',
        origin: 2,
        seq: 1,
        lamport: 1,
      });
      expect(outcome).toBe('replayed');
      expect(t1.users.tokens()).toEqual([]);
    });
  });

  it('replays an op log written before sessions expired (no session_resume or session_seen)', () => {
    const old = tracker(2, clock);
    old.sync.receiveAll([
      {
        kind: 'create_user',
        userId: 'carol',
        passwordHash: 'plain$pw',
        actor: '',
        time: clock.now(),
        requestId: '',
        origin: 1,
        seq: 1,
        lamport: 1,
      },
      {
        kind: 'session_open',
        tokenHash: sha256('a'.repeat(64)),
        actor: 'carol',
        time: clock.now(),
        requestId: '',
        origin: 1,
        seq: 2,
        lamport: 2,
      },
    ]);
    expect(old.users.tokenUser(sha256('a'.repeat(64)))).toBe('carol');
    jest.spyOn(old.sync, 'peerDownSince').mockReturnValue(clock.now());
    expect(old.auth.resume(fakeSession(), 'a'.repeat(64))).toBe('carol');
  });

  /** Runs the start-up work (release, purge) on a tracker's current services, as its sweep timer would. */
  function sweep(t: Tracker): Tracker {
    t.auth.onApplicationBootstrap();
    t.auth.onApplicationShutdown();
    return t;
  }
});

describe(`${SyncService.name}.peerDownSince`, () => {
  it('counts a peer never reached as down since it was first asked about, and this tracker as never down', () => {
    const clock = new FakeClock();
    const { log, work } = inMemoryStores();
    const sync = new SyncService(log, work, trackerConfig({ trackerCount: 2 }), TEST_CLUSTER_KEY, clock);
    const first = clock.now();
    expect(sync.peerDownSince(2)).toBe(first);
    clock.advance(5000);
    expect(sync.peerDownSince(2)).toBe(first);
    expect(sync.peerDownSince(1)).toBeUndefined();
  });
});
