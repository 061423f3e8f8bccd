import { encodeOpArgs, ErrorCode, StampedOp } from '@app/protocol';
import { createHash } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { InvalidIdError } from '../common/domain.error';
import { Session } from '../common/session';
import { fakeSession } from '../testing/fake-session';
import { replica, syncTestingProviders } from '../testing/sync-testing';
import { requestContext } from '../common/request-context';
import { OpLogStore } from '../sync/oplog.store';
import { SyncService } from '../sync/sync.service';
import { OPLOG_STORE } from '../sync/sync.tokens';
import {
  AlreadyLoggedInError,
  InvalidPasswordError,
  LoginFailedError,
  TryLaterError,
  UnknownSessionError,
  UserExistsError,
} from './auth.errors';
import { LoginThrottle } from './login-throttle';
import { AuthService } from './auth.service';
import { PASSWORD_HASHER, USER_STORE } from './auth.tokens';
import { InMemoryUserStore } from './in-memory-user.store';
import { PasswordHasher, ScryptPasswordHasher } from './password.hasher';
import { UserStore } from './user.store';

const hasher = new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 });

async function setup(passwordHasher: PasswordHasher = hasher, throttle?: LoginThrottle) {
  const moduleRef = await Test.createTestingModule({
    providers: [
      AuthService,
      ...(throttle ? [{ provide: LoginThrottle, useValue: throttle }] : []),
      { provide: USER_STORE, useClass: InMemoryUserStore },
      { provide: PASSWORD_HASHER, useValue: passwordHasher },
      ...syncTestingProviders(),
    ],
  }).compile();
  return {
    service: moduleRef.get(AuthService),
    store: moduleRef.get<UserStore>(USER_STORE),
    log: moduleRef.get<OpLogStore>(OPLOG_STORE),
    sync: moduleRef.get(SyncService),
  };
}

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Awaits `promise` and returns what it rejected with; fails if it resolved. */
async function rejection(promise: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await promise;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

describe(AuthService.name, () => {
  let service: AuthService;
  let store: UserStore;
  let log: OpLogStore;
  let sync: SyncService;

  beforeEach(async () => {
    ({ service, store, log, sync } = await setup());
  });

  /** The replicated changes made so far, as kind and arguments. */
  const changes = () => [...log.all()].map((op) => [op.kind, op.actor, ...encodeOpArgs(op)]);
  afterEach(() => jest.restoreAllMocks());

  describe('createUser', () => {
    it('stores a new user', async () => {
      await service.createUser('alice', 'pw');
      expect(service.exists('alice')).toBe(true);
      expect(store.count()).toBe(1);
      expect(store.get('alice')?.createdAt).toEqual(expect.any(Number));
    });

    it.each(['a', 'Alice_2', 'x.y-z', '9lives', 'a'.repeat(32)])('accepts the id %j', async (id) => {
      await service.createUser(id, 'pw');
      expect(service.exists(id)).toBe(true);
    });

    it.each([
      ['empty', ''],
      ['33 characters', 'a'.repeat(33)],
      ['with a space', 'al ice'],
      ['with a tab', 'al\tice'],
      ['starting with -', '-alice'],
      ['starting with .', '.alice'],
      ['starting with _', '_alice'],
      ['non-ASCII', 'alicé'],
      ['emoji', 'bob😀'],
      ['with a slash', 'a/b'],
      ['with a colon', 'a:b'],
    ])('refuses an id that is %s', async (_what, id) => {
      const err = await rejection(service.createUser(id, 'pw'));
      expect(err).toBeInstanceOf(InvalidIdError);
      expect(err.code).toBe(ErrorCode.InvalidId);
      expect(store.count()).toBe(0);
    });

    it.each([
      ['empty', ''],
      ['129 characters', 'p'.repeat(129)],
    ])('refuses a password that is %s', async (_what, password) => {
      const err = await rejection(service.createUser('alice', password));
      expect(err).toBeInstanceOf(InvalidPasswordError);
      expect(err.code).toBe(ErrorCode.InvalidPassword);
      expect(service.exists('alice')).toBe(false);
    });

    it('accepts a 128-character password with spaces', async () => {
      const password = 'a b '.repeat(32);
      await service.createUser('alice', password);
      await service.login(fakeSession(), 'alice', password);
    });

    it('refuses a user id that is taken, keeping the first password', async () => {
      await service.createUser('alice', 'first');
      const err = await rejection(service.createUser('alice', 'second'));
      expect(err).toBeInstanceOf(UserExistsError);
      expect(err.code).toBe(ErrorCode.UserExists);
      await expect(service.login(fakeSession(), 'alice', 'first')).resolves.toMatch(/^[0-9a-f]{64}$/);
    });

    it('lets exactly one of two concurrent creations of the same id win', async () => {
      const results = await Promise.allSettled([
        service.createUser('alice', 'one'),
        service.createUser('alice', 'two'),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected')!;
      expect(failed.reason).toBeInstanceOf(UserExistsError);
      expect(store.count()).toBe(1);
    });

    it('commits one create_user change carrying the hash, by nobody, and nothing when refused', async () => {
      await service.createUser('alice', 'secret-pw');
      await expect(service.createUser('alice', 'other')).rejects.toBeInstanceOf(UserExistsError);
      await expect(service.createUser('bad id', 'pw')).rejects.toBeInstanceOf(InvalidIdError);
      expect(changes()).toEqual([['create_user', '', 'alice', store.get('alice')!.passwordHash]]);
      expect(JSON.stringify([...log.all()])).not.toContain('secret-pw');
      expect(store.get('alice')!.createdAt).toBe([...log.all()][0].time);
    });

    it('stores a salted scrypt hash, never the password', async () => {
      await service.createUser('alice', 'secret-pw');
      const stored = store.get('alice')!.passwordHash;
      expect(stored).not.toContain('secret-pw');
      expect(stored).toMatch(/^scrypt\$1024\$8\$1\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+$/);
      await expect(hasher.verify('secret-pw', stored)).resolves.toBe(true);
      await expect(hasher.verify('secret-pX', stored)).resolves.toBe(false);
    });

    it('gives two users with the same password different hashes', async () => {
      await service.createUser('alice', 'same');
      await service.createUser('bob', 'same');
      const a = store.get('alice')!.passwordHash;
      const b = store.get('bob')!.passwordHash;
      expect(a).not.toBe(b);
      expect(a.split('$')[4]).not.toBe(b.split('$')[4]);
      await expect(hasher.verify('same', a)).resolves.toBe(true);
      await expect(hasher.verify('same', b)).resolves.toBe(true);
    });

    it('hashes through the injected hasher and checks input before hashing', async () => {
      const fake = { hash: jest.fn((p: string) => Promise.resolve(`fake:${p}`)), verify: jest.fn() };
      const { service: svc, store: users } = await setup(fake);
      await svc.createUser('alice', 'pw');
      expect(fake.hash).toHaveBeenCalledWith('pw');
      expect(users.get('alice')?.passwordHash).toBe('fake:pw');
      await expect(svc.createUser('bad id', 'pw')).rejects.toBeInstanceOf(InvalidIdError);
      await expect(svc.createUser('alice', 'pw')).rejects.toBeInstanceOf(UserExistsError);
      expect(fake.hash).toHaveBeenCalledTimes(1);
    });
  });

  describe('login', () => {
    let s1: Session;
    let s2: Session;

    beforeEach(async () => {
      await service.createUser('alice', 'pw-a');
      await service.createUser('bob', 'pw-b');
      s1 = fakeSession(1);
      s2 = fakeSession(2);
    });

    it('sets the user on the session and marks them online', async () => {
      expect(service.isOnline('alice')).toBe(false);
      await service.login(s1, 'alice', 'pw-a');
      expect(s1.user).toBe('alice');
      expect(service.isOnline('alice')).toBe(true);
      expect(service.isOnline('bob')).toBe(false);
    });

    it("files the session's op under the logout's request id but not the login's (sent before there was a user)", async () => {
      await requestContext.run({ requestId: 'r1' }, () => service.login(s1, 'alice', 'pw-a'));
      requestContext.run({ requestId: 'r2' }, () => service.logout(s1));
      // a later change of alice's with the login's id is hers to make; one with the logout's id is a retry
      expect(sync.hasRequest('r1', 'alice')).toBe(false);
      expect(sync.hasRequest('r2', 'alice')).toBe(true);
      expect(changes().map(([kind]) => kind)).toEqual(expect.arrayContaining(['session_open', 'session_close']));
    });

    it('refuses an unknown user and a wrong password with one and the same error', async () => {
      const unknown = await rejection(service.login(s1, 'nobody', 'pw'));
      const wrong = await rejection(service.login(s1, 'alice', 'pw-b'));
      for (const err of [unknown, wrong]) {
        expect(err).toBeInstanceOf(LoginFailedError);
        expect(err.code).toBe(ErrorCode.LoginFailed);
        expect(err.message).toBe('wrong user id or password');
      }
      expect(s1.user).toBeUndefined();
      expect(service.isOnline('alice')).toBe(false);
    });

    it('checks a password for an unknown user too, against a hash of the same cost', async () => {
      const verify = jest.spyOn(hasher, 'verify');
      await rejection(service.login(s1, 'nobody', 'pw'));
      expect(verify).toHaveBeenCalledTimes(1);
      expect(verify.mock.calls[0][1]).toMatch(/^scrypt\$1024\$8\$1\$/);
    });

    it('refuses a password that differs only in case or trailing space', async () => {
      await expect(service.login(s1, 'alice', 'PW-A')).rejects.toBeInstanceOf(LoginFailedError);
      await expect(service.login(s1, 'alice', 'pw-a ')).rejects.toBeInstanceOf(LoginFailedError);
    });

    it('refuses a second login on the same session, as the same or another user', async () => {
      await service.login(s1, 'alice', 'pw-a');
      for (const [user, pw] of [
        ['alice', 'pw-a'],
        ['bob', 'pw-b'],
      ]) {
        const err = await rejection(service.login(s1, user, pw));
        expect(err).toBeInstanceOf(AlreadyLoggedInError);
        expect(err.code).toBe(ErrorCode.AlreadyLoggedIn);
      }
      expect(s1.user).toBe('alice');
      expect(service.isOnline('bob')).toBe(false);
    });

    it('refuses the same user on a second session until the first logs out', async () => {
      await service.login(s1, 'alice', 'pw-a');
      const err = await rejection(service.login(s2, 'alice', 'pw-a'));
      expect(err).toBeInstanceOf(AlreadyLoggedInError);
      expect(err.code).toBe(ErrorCode.AlreadyLoggedIn);
      expect(s2.user).toBeUndefined();
      expect(s1.user).toBe('alice');

      expect(service.logout(s1)).toBe('alice');
      await service.login(s2, 'alice', 'pw-a');
      expect(s2.user).toBe('alice');
    });

    it('frees the user when the first session ends (connection dropped)', async () => {
      await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1);
      expect(s1.user).toBeUndefined();
      expect(service.isOnline('alice')).toBe(false);
      await service.login(s2, 'alice', 'pw-a');
      expect(service.isOnline('alice')).toBe(true);
    });

    it('lets two users be online on two sessions at once', async () => {
      await service.login(s1, 'alice', 'pw-a');
      await service.login(s2, 'bob', 'pw-b');
      expect([s1.user, s2.user]).toEqual(['alice', 'bob']);
    });

    it('lets only one of two concurrent logins of the same user on two sessions win', async () => {
      const results = await Promise.allSettled([
        service.login(s1, 'alice', 'pw-a'),
        service.login(s2, 'alice', 'pw-a'),
      ]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      expect((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toBeInstanceOf(
        AlreadyLoggedInError,
      );
      expect([s1.user, s2.user].filter(Boolean)).toEqual(['alice']);
    });

    it('lets only one of two concurrent logins on the same session win', async () => {
      const results = await Promise.allSettled([service.login(s1, 'alice', 'pw-a'), service.login(s1, 'bob', 'pw-b')]);
      expect(results.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
      const winner = results[0].status === 'fulfilled' ? 'alice' : 'bob';
      const loser = winner === 'alice' ? 'bob' : 'alice';
      expect(s1.user).toBe(winner);
      expect(service.isOnline(winner)).toBe(true);
      expect(service.isOnline(loser)).toBe(false);
    });
  });

  describe('login backoff', () => {
    let now: number;
    const from = (remoteHost: string) => Object.assign(fakeSession(), { remoteHost });

    beforeEach(async () => {
      now = 0;
      const throttle = new LoginThrottle(
        { loginBackoffAfter: 3, loginBackoffMaxMs: 60_000, maxScryptPerIp: 2 },
        () => now,
      );
      ({ service } = await setup(hasher, throttle));
      await service.createUser('alice', 'pw-a');
    });

    it('refuses logins from an address with TRY_LATER after a few failures, without checking the password', async () => {
      for (let i = 0; i < 3; i++)
        await expect(service.login(from('10.0.0.2'), 'alice', 'guess')).rejects.toThrow(LoginFailedError);
      const verify = jest.spyOn(hasher, 'verify');
      const err = await rejection(service.login(from('10.0.0.2'), 'alice', 'pw-a'));
      expect(err).toBeInstanceOf(TryLaterError);
      expect(err.message).toBe('too many failed logins; try again in 1 s');
      expect(verify).not.toHaveBeenCalled();
      now += 1000;
      await expect(service.login(from('10.0.0.2'), 'alice', 'pw-a')).resolves.toMatch(/^[0-9a-f]{64}$/);
    });

    it('lets the owner log in at once from another address while one address is held back', async () => {
      for (let i = 0; i < 3; i++) await rejection(service.login(from('10.0.0.2'), 'alice', 'guess'));
      await expect(service.login(from('10.0.0.2'), 'alice', 'x')).rejects.toThrow(TryLaterError);
      await expect(service.login(from('127.0.0.1'), 'alice', 'pw-a')).resolves.toMatch(/^[0-9a-f]{64}$/);
    });

    it('lets one address hash two passwords at once; a third login or create_user from it gets TRY_LATER', async () => {
      const slow: PasswordHasher = {
        hash: (pw) => new Promise((resolve) => setTimeout(() => resolve(`h:${pw}`), 50)),
        verify: () => new Promise((resolve) => setTimeout(() => resolve(false), 50)),
      };
      ({ service } = await setup(
        slow,
        new LoginThrottle({ loginBackoffAfter: 100, loginBackoffMaxMs: 1000, maxScryptPerIp: 2 }),
      ));
      await service.createUser('u1', 'pw');
      const running = [service.login(from('10.0.0.5'), 'u1', 'x'), service.createUser('u2', 'pw', '10.0.0.5')];
      await expect(service.createUser('u3', 'pw', '10.0.0.5')).rejects.toThrow(
        'too many password checks from your address at once; try again in 1 s',
      );
      await expect(service.login(from('10.0.0.5'), 'u1', 'x')).rejects.toThrow(TryLaterError);
      await expect(service.createUser('u4', 'pw', '10.0.0.6')).resolves.toBeUndefined();
      await Promise.allSettled(running);
      await expect(service.createUser('u5', 'pw', '10.0.0.5')).resolves.toBeUndefined();
    });

    it('counts unknown users like wrong passwords, so backoff shows nothing about who exists', async () => {
      for (let i = 0; i < 3; i++) await rejection(service.login(from('10.0.0.3'), `nobody${i}`, 'guess'));
      await expect(service.login(from('10.0.0.3'), 'nobody9', 'x')).rejects.toThrow(TryLaterError);
      await expect(service.login(from('10.0.0.3'), 'alice', 'x')).rejects.toThrow(TryLaterError);
    });
  });

  describe('logout and endSession', () => {
    let s1: Session;

    beforeEach(async () => {
      await service.createUser('alice', 'pw');
      s1 = fakeSession(1);
    });

    it('logout clears the session, returns who it was, and allows a new login', async () => {
      await service.login(s1, 'alice', 'pw');
      expect(service.logout(s1)).toBe('alice');
      expect(s1.user).toBeUndefined();
      expect(service.isOnline('alice')).toBe(false);
      await service.login(s1, 'alice', 'pw');
      expect(s1.user).toBe('alice');
    });

    it('logout of a session with nobody logged in returns undefined and changes nothing', async () => {
      const s2 = fakeSession(2);
      await service.login(s2, 'alice', 'pw');
      expect(service.logout(s1)).toBeUndefined();
      expect(service.isOnline('alice')).toBe(true);
    });

    it('ending a stale session does not log out the user from a newer session', async () => {
      // Session 1 logged in as alice, then the user state of session 1 is stale (e.g. a duplicate close).
      await service.login(s1, 'alice', 'pw');
      service.endSession(s1);
      const s2 = fakeSession(2);
      await service.login(s2, 'alice', 'pw');
      const stale = fakeSession(1);
      stale.setUser('alice');
      service.endSession(stale);
      expect(service.isOnline('alice')).toBe(true);
      await expect(service.login(fakeSession(3), 'alice', 'pw')).rejects.toBeInstanceOf(AlreadyLoggedInError);
    });
  });

  describe('session tokens (login, resume, logout)', () => {
    let s1: Session;
    let s2: Session;

    beforeEach(async () => {
      await service.createUser('alice', 'pw-a');
      await service.createUser('bob', 'pw-b');
      s1 = fakeSession(1);
      s2 = fakeSession(2);
    });

    it('login returns a fresh random token and replicates only its SHA-256 (session_open)', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      expect(token).toMatch(/^[0-9a-f]{64}$/);
      expect(s1.tokenHash).toBe(sha256(token));
      expect(changes().slice(2)).toEqual([['session_open', 'alice', sha256(token)]]);
      expect(JSON.stringify([...log.all()])).not.toContain(token);
      expect(store.tokenUser(sha256(token))).toBe('alice');
      service.logout(s1);
      expect(await service.login(s1, 'alice', 'pw-a')).not.toBe(token);
    });

    it('a refused login commits nothing and issues no token', async () => {
      await expect(service.login(s1, 'alice', 'wrong')).rejects.toBeInstanceOf(LoginFailedError);
      await expect(service.login(s1, 'nobody', 'pw')).rejects.toBeInstanceOf(LoginFailedError);
      await service.login(s2, 'alice', 'pw-a');
      await expect(service.login(s1, 'alice', 'pw-a')).rejects.toBeInstanceOf(AlreadyLoggedInError);
      expect(changes().filter(([kind]) => kind === 'session_open')).toHaveLength(1);
      expect(store.tokens()).toHaveLength(1);
      expect(s1.tokenHash).toBeUndefined();
    });

    it('resume takes up the session on another connection once the first dropped', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1); // the connection dropped: the token stays valid
      expect(service.resume(s2, token)).toBe('alice');
      expect(s2.user).toBe('alice');
      expect(s2.tokenHash).toBe(sha256(token));
      expect(service.isOnline('alice')).toBe(true);
      // the drop and the resume are replicated (who holds the session, since when), once each
      expect(changes().map(([kind]) => kind)).toEqual([
        'create_user',
        'create_user',
        'session_open',
        'session_seen',
        'session_resume',
      ]);
    });

    it('resume is refused while the user is logged in on another connection', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      const err = (() => {
        try {
          service.resume(s2, token);
        } catch (e) {
          return e as Error & { code?: string };
        }
        throw new Error('expected a refusal');
      })();
      expect(err).toBeInstanceOf(AlreadyLoggedInError);
      expect(s2.user).toBeUndefined();
      expect(s1.user).toBe('alice');
    });

    it('resume is refused on a connection that is already logged in', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1);
      await service.login(s2, 'bob', 'pw-b');
      expect(() => service.resume(s2, token)).toThrow(AlreadyLoggedInError);
      expect(s2.user).toBe('bob');
      expect(service.isOnline('alice')).toBe(false);
    });

    it.each([
      ['an unknown token', 'ab'.repeat(32)],
      ['a token hash instead of the token', 'hash'],
      ['a malformed token', 'not-a-token'],
      ['an uppercase token', 'upper'],
      ['an empty token', ''],
    ])('resume with %s is refused with UNKNOWN_SESSION', async (_what, given) => {
      const token = await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1);
      const value = given === 'hash' ? sha256(token) : given === 'upper' ? token.toUpperCase() : given;
      let thrown: unknown;
      try {
        service.resume(s2, value);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(UnknownSessionError);
      expect(thrown).toHaveProperty('code', ErrorCode.UnknownSession);
      expect(s2.user).toBeUndefined();
      expect(service.isOnline('alice')).toBe(false);
    });

    it('logout revokes the token (session_close), so it can no longer be resumed', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      expect(service.logout(s1)).toBe('alice');
      expect(changes().slice(-1)).toEqual([['session_close', 'alice', sha256(token)]]);
      expect(store.tokenUser(sha256(token))).toBeUndefined();
      expect(() => service.resume(s2, token)).toThrow(UnknownSessionError);
    });

    it('logout after a resume revokes the resumed token', async () => {
      const token = await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1);
      service.resume(s2, token);
      service.logout(s2);
      expect(store.tokens()).toEqual([]);
      expect(() => service.resume(fakeSession(3), token)).toThrow(UnknownSessionError);
    });

    it('logout revokes only its own session’s token', async () => {
      const a = await service.login(s1, 'alice', 'pw-a');
      const b = await service.login(s2, 'bob', 'pw-b');
      service.endSession(s1);
      service.logout(s2);
      expect(store.tokens().map((t) => t.userId)).toEqual(['alice']);
      expect(service.resume(fakeSession(3), a)).toBe('alice');
      expect(() => service.resume(fakeSession(4), b)).toThrow(UnknownSessionError);
    });

    it('a dropped connection, and a logout with nobody logged in, revoke nothing', async () => {
      await service.login(s1, 'alice', 'pw-a');
      service.endSession(s1);
      expect(service.logout(s1)).toBeUndefined();
      expect(service.logout(s2)).toBeUndefined();
      expect(changes().filter(([kind]) => kind === 'session_close')).toEqual([]);
      expect(store.tokens()).toHaveLength(1);
    });

    it('a token issued on one tracker resumes on another, and a logout there revokes it on both', async () => {
      const [one, two] = [replica(1, 2), replica(2, 2)];
      const deliver = (from: typeof one, to: typeof one) => {
        for (const op of from.sync.opsAfter(to.sync.versionVector(), 1000)) to.sync.receive(op);
      };
      await one.auth.createUser('alice', 'pw');
      const first = fakeSession();
      const token = await one.auth.login(first, 'alice', 'pw');
      deliver(one, two);
      one.auth.endSession(first); // tracker 1 went away for this client
      const moved = fakeSession();
      expect(two.auth.resume(moved, token)).toBe('alice');
      two.auth.logout(moved);
      deliver(two, one);
      expect(() => one.auth.resume(fakeSession(), token)).toThrow(UnknownSessionError);
      expect(() => two.auth.resume(fakeSession(), token)).toThrow(UnknownSessionError);
      expect(one.sync.digest()).toBe(two.sync.digest());
    });

    it('a token survives a replay of the log, and a revoked one stays revoked', async () => {
      const a = await service.login(s1, 'alice', 'pw-a');
      const b = await service.login(s2, 'bob', 'pw-b');
      service.logout(s2);
      service.endSession(s1);
      // a login of alice's on tracker 2 that sorts before everything here shares her key with her later
      // changes, so tracker 1 rebuilds its state
      const late: StampedOp = {
        kind: 'session_open',
        tokenHash: sha256('late'),
        actor: 'alice',
        time: 1,
        requestId: '',
        origin: 2,
        seq: 1,
        lamport: 1,
      };
      expect(sync.receive(late)).toBe('replayed');
      expect(service.resume(fakeSession(), a)).toBe('alice');
      expect(() => service.resume(fakeSession(), b)).toThrow(UnknownSessionError);
    });
  });

  describe('onSessionEnded', () => {
    beforeEach(async () => {
      await service.createUser('alice', 'pw');
    });

    it('tells listeners who logged out and on which connection', async () => {
      const listener = jest.fn();
      service.onSessionEnded(listener);
      const s = fakeSession(7);
      await service.login(s, 'alice', 'pw');
      expect(listener).not.toHaveBeenCalled();
      service.logout(s);
      expect(listener).toHaveBeenCalledTimes(1);
      expect(listener).toHaveBeenCalledWith('alice', 7);
    });

    it('tells listeners when a logged-in connection closes, and says nothing for an anonymous one', async () => {
      const listener = jest.fn();
      service.onSessionEnded(listener);
      service.endSession(fakeSession(8));
      expect(listener).not.toHaveBeenCalled();
      const s = fakeSession(9);
      await service.login(s, 'alice', 'pw');
      service.endSession(s);
      service.endSession(s);
      expect(listener.mock.calls).toEqual([['alice', 9]]);
    });

    it('logs a listener that throws, keeps calling the others, and still ends the session', async () => {
      const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
      const after = jest.fn();
      service.onSessionEnded(() => {
        throw new Error('listener broke');
      });
      service.onSessionEnded(after);
      const s = fakeSession(10);
      await service.login(s, 'alice', 'pw');
      expect(() => service.logout(s)).not.toThrow();
      expect(after).toHaveBeenCalledWith('alice', 10);
      expect(service.isOnline('alice')).toBe(false);
      expect(logged).toHaveBeenCalledWith(expect.stringContaining('listener broke'));
    });

    it('stops calling a listener once it is removed', async () => {
      const listener = jest.fn();
      const remove = service.onSessionEnded(listener);
      remove();
      const s = fakeSession(11);
      await service.login(s, 'alice', 'pw');
      service.logout(s);
      expect(listener).not.toHaveBeenCalled();
    });
  });
});
