import { Test } from '@nestjs/testing';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER, USER_STORE } from '../auth/auth.tokens';
import { InMemoryUserStore } from '../auth/in-memory-user.store';
import { PasswordHasher } from '../auth/password.hasher';
import { GroupsService } from '../groups/groups.service';
import { GROUP_STORE } from '../groups/groups.tokens';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { fakeSession } from '../testing/fake-session';
import { syncTestingProviders } from '../testing/sync-testing';
import { TempDatabases } from '../testing/temp-db';
import { SqliteOpLogStore } from '../sync/sqlite-oplog.store';
import { SqliteUnitOfWork } from '../storage/unit-of-work';
import { SqliteGroupStore } from '../groups/sqlite-group.store';

/** The hooks FilesService relies on: GroupsService.onMemberLeft and AuthService.onSessionEnded. */

const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain$${password}`),
  verify: (password, stored) => Promise.resolve(stored === `plain$${password}`),
};

describe('GroupsService.onMemberLeft', () => {
  let groups: GroupsService;
  const left = jest.fn();
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  beforeEach(async () => {
    left.mockReset();
    const moduleRef = await Test.createTestingModule({
      providers: [GroupsService, { provide: GROUP_STORE, useClass: InMemoryGroupStore }, ...syncTestingProviders()],
    }).compile();
    groups = moduleRef.get(GroupsService);
    groups.create('alice', 'g1');
    for (const u of ['bob', 'carol']) {
      groups.join(u, 'g1');
      groups.accept('alice', 'g1', u);
    }
    groups.onMemberLeft(left);
  });

  it('tells who left which group, and whether the group is gone', () => {
    groups.leave('bob', 'g1');
    groups.leave('alice', 'g1');
    groups.leave('carol', 'g1');
    expect(left.mock.calls).toEqual([
      ['bob', 'g1', false],
      ['alice', 'g1', false],
      ['carol', 'g1', true],
    ]);
  });

  it('is not called for a withdrawn request nor for a refused leave', () => {
    groups.join('dave', 'g1');
    groups.leave('dave', 'g1');
    expect(() => groups.leave('erin', 'g1')).toThrow();
    expect(() => groups.leave('bob', 'nope')).toThrow();
    expect(left).not.toHaveBeenCalled();
  });

  it('runs after the member is out and the group handed on', () => {
    left.mockImplementation(() => {
      expect(() => groups.assertMember('alice', 'g1')).toThrow();
      expect(groups.list('x')[0].owner).toBe('bob');
    });
    expect(groups.leave('alice', 'g1')).toEqual({ kind: 'left-owner', newOwner: 'bob' });
    expect(left).toHaveBeenCalledTimes(1);
  });

  it('runs inside the leave transaction: a listener that throws undoes the leave', async () => {
    // One SQLite database holds the op log and the groups, as in the tracker, so that one transaction covers both.
    const db = dbs.open();
    const moduleRef = await Test.createTestingModule({
      providers: [
        GroupsService,
        { provide: GROUP_STORE, useValue: new SqliteGroupStore(db) },
        ...syncTestingProviders({}, { opLog: new SqliteOpLogStore(db), work: new SqliteUnitOfWork(db) }),
      ],
    }).compile();
    groups = moduleRef.get(GroupsService);
    groups.create('alice', 'g1');
    for (const u of ['bob', 'carol']) {
      groups.join(u, 'g1');
      groups.accept('alice', 'g1', u);
    }
    groups.onMemberLeft(left);
    const boom = new Error('boom');
    left.mockImplementation(() => {
      throw boom;
    });
    expect(() => groups.leave('alice', 'g1')).toThrow(boom);
    expect(groups.members('g1')).toEqual(['alice', 'bob', 'carol']);
    expect(groups.list('alice')[0]).toMatchObject({ owner: 'alice', you: 'owner' });
  });

  it('stops calling a listener once removed', () => {
    const other = jest.fn();
    const off = groups.onMemberLeft(other);
    off();
    off();
    groups.leave('bob', 'g1');
    expect(other).not.toHaveBeenCalled();
    expect(left).toHaveBeenCalledTimes(1);
  });
});

describe('AuthService.onSessionEnded', () => {
  let auth: AuthService;
  const ended = jest.fn();

  beforeEach(async () => {
    ended.mockReset();
    const moduleRef = await Test.createTestingModule({
      providers: [
        AuthService,
        { provide: USER_STORE, useClass: InMemoryUserStore },
        { provide: PASSWORD_HASHER, useValue: plainHasher },
        ...syncTestingProviders(),
      ],
    }).compile();
    auth = moduleRef.get(AuthService);
    await auth.createUser('alice', 'pw');
    auth.onSessionEnded(ended);
  });

  it('tells whose session ended on which connection, on logout and on close', async () => {
    const first = fakeSession(7);
    await auth.login(first, 'alice', 'pw');
    auth.logout(first);
    const second = fakeSession(8);
    await auth.login(second, 'alice', 'pw');
    auth.endSession(second);
    expect(ended.mock.calls).toEqual([
      ['alice', 7],
      ['alice', 8],
    ]);
  });

  it('runs after the user is logged out, so the listener sees the session gone', async () => {
    const session = fakeSession();
    await auth.login(session, 'alice', 'pw');
    ended.mockImplementation(() => {
      expect(auth.isOnline('alice')).toBe(false);
      expect(session.user).toBeUndefined();
    });
    auth.endSession(session);
    expect(ended).toHaveBeenCalledTimes(1);
  });

  it('is not called when a connection nobody logged in on closes', () => {
    auth.endSession(fakeSession());
    expect(ended).not.toHaveBeenCalled();
  });

  it('keeps ending the session, and calling the other listeners, when one throws', async () => {
    const after = jest.fn();
    ended.mockImplementation(() => {
      throw new Error('boom');
    });
    auth.onSessionEnded(after);
    const session = fakeSession();
    await auth.login(session, 'alice', 'pw');
    jest.spyOn(console, 'error').mockImplementation(() => undefined);
    jest.spyOn(process.stderr, 'write').mockImplementation(() => true);
    expect(auth.logout(session)).toBe('alice');
    jest.restoreAllMocks();
    expect(after).toHaveBeenCalledWith('alice', session.connectionId);
    expect(auth.isOnline('alice')).toBe(false);
  });

  it('stops calling a listener once removed', async () => {
    const other = jest.fn();
    auth.onSessionEnded(other)();
    const session = fakeSession();
    await auth.login(session, 'alice', 'pw');
    auth.logout(session);
    expect(other).not.toHaveBeenCalled();
  });
});
