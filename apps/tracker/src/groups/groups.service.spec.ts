import { decodeOpBody, encodeOpArgs, ErrorCode, StampedOp } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { DomainError, InvalidIdError } from '../common/domain.error';
import { GroupStore } from './group.store';
import {
  AlreadyMemberError,
  GroupExistsError,
  NoSuchRequestError,
  NotGroupOwnerError,
  NotMemberError,
  RequestPendingError,
  UnknownGroupError,
} from './groups.errors';
import { GroupsService } from './groups.service';
import { GROUP_STORE } from './groups.tokens';
import { InMemoryGroupStore } from './in-memory-group.store';
import { syncTestingProviders } from '../testing/sync-testing';
import { TempDatabases } from '../testing/temp-db';
import { SqliteOpLogStore } from '../sync/sqlite-oplog.store';
import { SqliteUnitOfWork } from '../storage/unit-of-work';
import { SqliteGroupStore } from './sqlite-group.store';
import { OpLogStore } from '../sync/oplog.store';
import { SyncService } from '../sync/sync.service';
import { OPLOG_STORE } from '../sync/sync.tokens';

/** Runs `work`, expecting it to throw an instance of `type` carrying `code`. */
function expectDomainError(work: () => unknown, type: new (...args: never[]) => DomainError, code: ErrorCode): void {
  let thrown: unknown;
  try {
    work();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(type);
  expect((thrown as DomainError).code).toBe(code);
}

describe(GroupsService.name, () => {
  let service: GroupsService;
  let store: GroupStore;
  let sync: SyncService;
  let opLog: OpLogStore;
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      providers: [GroupsService, { provide: GROUP_STORE, useClass: InMemoryGroupStore }, ...syncTestingProviders()],
    }).compile();
    service = moduleRef.get(GroupsService);
    store = moduleRef.get<GroupStore>(GROUP_STORE);
    sync = moduleRef.get(SyncService);
    opLog = moduleRef.get<OpLogStore>(OPLOG_STORE);
  });

  /** alice owns g1; bob and carol joined in that order. */
  function groupWithMembers(groupId = 'g1', owner = 'alice', members = ['bob', 'carol']): void {
    service.create(owner, groupId);
    for (const m of members) {
      service.join(m, groupId);
      service.accept(owner, groupId, m);
    }
  }

  describe('create', () => {
    it('creates a group whose owner is its only member', () => {
      service.create('alice', 'g1');
      expect(store.get('g1')?.owner).toBe('alice');
      expect(service.members('g1')).toEqual(['alice']);
      expect(() => service.assertMember('alice', 'g1')).not.toThrow();
    });

    it('refuses an id that is taken', () => {
      service.create('alice', 'g1');
      expectDomainError(() => service.create('bob', 'g1'), GroupExistsError, ErrorCode.GroupExists);
      expect(store.get('g1')?.owner).toBe('alice');
    });

    it.each(['', 'a b', '-g', 'g'.repeat(33), 'grüppe'])('refuses the invalid id %j', (id) => {
      expectDomainError(() => service.create('alice', id), InvalidIdError, ErrorCode.InvalidId);
      expect(store.list()).toEqual([]);
    });
  });

  describe('join', () => {
    beforeEach(() => service.create('alice', 'g1'));

    it('files a pending request without making the user a member', () => {
      service.join('bob', 'g1');
      expect(service.listRequests('alice', 'g1')).toEqual(['bob']);
      expect(service.members('g1')).toEqual(['alice']);
      expectDomainError(() => service.assertMember('bob', 'g1'), NotMemberError, ErrorCode.NotMember);
    });

    it('refuses to file the same request twice', () => {
      service.join('bob', 'g1');
      expectDomainError(() => service.join('bob', 'g1'), RequestPendingError, ErrorCode.RequestPending);
      expect(service.listRequests('alice', 'g1')).toEqual(['bob']);
    });

    it('refuses a member, including the owner', () => {
      groupWithMembers('g2', 'alice', ['bob']);
      expectDomainError(() => service.join('bob', 'g2'), AlreadyMemberError, ErrorCode.AlreadyMember);
      expectDomainError(() => service.join('alice', 'g1'), AlreadyMemberError, ErrorCode.AlreadyMember);
      expect(service.listRequests('alice', 'g2')).toEqual([]);
    });

    it('refuses an unknown group', () => {
      expectDomainError(() => service.join('bob', 'nope'), UnknownGroupError, ErrorCode.UnknownGroup);
      expect(store.requestsOf('bob')).toEqual([]);
    });

    it('refuses an invalid group id', () => {
      expectDomainError(() => service.join('bob', 'bad id'), InvalidIdError, ErrorCode.InvalidId);
    });
  });

  describe('listRequests', () => {
    beforeEach(() => groupWithMembers('g1', 'alice', ['bob']));

    it('lists pending requests oldest first for the owner', () => {
      service.join('dave', 'g1');
      service.join('carol', 'g1');
      expect(service.listRequests('alice', 'g1')).toEqual(['dave', 'carol']);
    });

    it('is refused to a member who is not the owner, and to an outsider', () => {
      service.join('carol', 'g1');
      expectDomainError(() => service.listRequests('bob', 'g1'), NotGroupOwnerError, ErrorCode.NotOwner);
      expectDomainError(() => service.listRequests('carol', 'g1'), NotGroupOwnerError, ErrorCode.NotOwner);
    });

    it('refuses an unknown group', () => {
      expectDomainError(() => service.listRequests('alice', 'nope'), UnknownGroupError, ErrorCode.UnknownGroup);
    });
  });

  describe('accept', () => {
    beforeEach(() => {
      groupWithMembers('g1', 'alice', ['bob']);
      service.join('carol', 'g1');
      service.join('dave', 'g1');
    });

    it('moves the requester to the end of the members and clears the request', () => {
      service.accept('alice', 'g1', 'carol');
      expect(service.members('g1')).toEqual(['alice', 'bob', 'carol']);
      expect(service.listRequests('alice', 'g1')).toEqual(['dave']);
      expect(() => service.assertMember('carol', 'g1')).not.toThrow();
    });

    it('is refused to a non-owner member and changes nothing', () => {
      expectDomainError(() => service.accept('bob', 'g1', 'carol'), NotGroupOwnerError, ErrorCode.NotOwner);
      expect(service.members('g1')).toEqual(['alice', 'bob']);
      expect(service.listRequests('alice', 'g1')).toEqual(['carol', 'dave']);
    });

    it('is refused to a requester accepting themselves', () => {
      expectDomainError(() => service.accept('carol', 'g1', 'carol'), NotGroupOwnerError, ErrorCode.NotOwner);
      expect(service.members('g1')).toEqual(['alice', 'bob']);
    });

    it('refuses a user who never asked', () => {
      expectDomainError(() => service.accept('alice', 'g1', 'erin'), NoSuchRequestError, ErrorCode.NoSuchRequest);
      expect(service.members('g1')).toEqual(['alice', 'bob']);
    });

    it('refuses accepting the same request twice', () => {
      service.accept('alice', 'g1', 'carol');
      expectDomainError(() => service.accept('alice', 'g1', 'carol'), AlreadyMemberError, ErrorCode.AlreadyMember);
    });

    it('refuses a user who is already a member', () => {
      expectDomainError(() => service.accept('alice', 'g1', 'bob'), AlreadyMemberError, ErrorCode.AlreadyMember);
    });

    it('refuses an unknown group and an invalid user id', () => {
      expectDomainError(() => service.accept('alice', 'nope', 'carol'), UnknownGroupError, ErrorCode.UnknownGroup);
      expectDomainError(() => service.accept('alice', 'g1', 'bad id'), InvalidIdError, ErrorCode.InvalidId);
    });
  });

  describe('leave', () => {
    it('lets a member leave', () => {
      groupWithMembers('g1', 'alice', ['bob', 'carol']);
      expect(service.leave('bob', 'g1')).toEqual({ kind: 'left' });
      expect(service.members('g1')).toEqual(['alice', 'carol']);
      expect(store.get('g1')?.owner).toBe('alice');
    });

    it('refuses a user who is neither member nor requester', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      expectDomainError(() => service.leave('carol', 'g1'), NotMemberError, ErrorCode.NotMember);
      expect(service.members('g1')).toEqual(['alice', 'bob']);
    });

    it('refuses an unknown group', () => {
      expectDomainError(() => service.leave('bob', 'nope'), UnknownGroupError, ErrorCode.UnknownGroup);
    });

    it('withdraws a pending request', () => {
      service.create('alice', 'g1');
      service.join('bob', 'g1');
      expect(service.leave('bob', 'g1')).toEqual({ kind: 'withdrew' });
      expect(service.listRequests('alice', 'g1')).toEqual([]);
      expect(service.members('g1')).toEqual(['alice']);
      expectDomainError(() => service.accept('alice', 'g1', 'bob'), NoSuchRequestError, ErrorCode.NoSuchRequest);
    });

    it('hands an owner’s group to the longest-standing remaining member', () => {
      // Join order is carol, bob, dave: alphabetical order would pick bob instead.
      groupWithMembers('g1', 'alice', ['carol', 'bob', 'dave']);
      expect(service.leave('alice', 'g1')).toEqual({ kind: 'left-owner', newOwner: 'carol' });
      expect(store.get('g1')?.owner).toBe('carol');
      expect(service.members('g1')).toEqual(['carol', 'bob', 'dave']);
      expectDomainError(() => service.listRequests('alice', 'g1'), NotGroupOwnerError, ErrorCode.NotOwner);
      expect(service.listRequests('carol', 'g1')).toEqual([]);

      expect(service.leave('carol', 'g1')).toEqual({ kind: 'left-owner', newOwner: 'bob' });
      expect(service.members('g1')).toEqual(['bob', 'dave']);
    });

    it('passes ownership by join order even when an earlier member left and came back', () => {
      groupWithMembers('g1', 'alice', ['bob', 'carol']);
      service.leave('bob', 'g1');
      service.join('bob', 'g1');
      service.accept('alice', 'g1', 'bob');
      expect(service.leave('alice', 'g1')).toEqual({ kind: 'left-owner', newOwner: 'carol' });
    });

    it('keeps pending requests when ownership passes on, for the new owner to handle', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      service.join('carol', 'g1');
      service.leave('alice', 'g1');
      expect(service.listRequests('bob', 'g1')).toEqual(['carol']);
      service.accept('bob', 'g1', 'carol');
      expect(service.members('g1')).toEqual(['bob', 'carol']);
    });

    it('deletes the group when its last member leaves, with its pending requests', () => {
      service.create('alice', 'g1');
      service.join('bob', 'g1');
      expect(service.leave('alice', 'g1')).toEqual({ kind: 'deleted' });
      expect(store.get('g1')).toBeUndefined();
      expect(store.requestsOf('bob')).toEqual([]);
      expect(service.list('bob')).toEqual([]);
      expectDomainError(() => service.members('g1'), UnknownGroupError, ErrorCode.UnknownGroup);
      // The id is free again.
      service.create('bob', 'g1');
      expect(service.members('g1')).toEqual(['bob']);
    });
  });

  describe('list', () => {
    it('is empty when there are no groups', () => {
      expect(service.list('alice')).toEqual([]);
    });

    it('shows every group with its owner, member count and the caller’s standing', () => {
      groupWithMembers('owned', 'alice', ['bob']);
      groupWithMembers('joined', 'carol', ['alice', 'bob']);
      service.create('dave', 'asked');
      service.join('alice', 'asked');
      service.create('erin', 'other');

      expect(service.list('alice')).toEqual([
        { groupId: 'asked', owner: 'dave', memberCount: 1, you: 'requested' },
        { groupId: 'joined', owner: 'carol', memberCount: 3, you: 'member' },
        { groupId: 'other', owner: 'erin', memberCount: 1, you: 'none' },
        { groupId: 'owned', owner: 'alice', memberCount: 2, you: 'owner' },
      ]);
      expect(service.list('bob').map((g) => g.you)).toEqual(['none', 'member', 'none', 'member']);
    });

    it('shows the new owner after ownership passes on', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      service.leave('alice', 'g1');
      expect(service.list('bob')).toEqual([{ groupId: 'g1', owner: 'bob', memberCount: 1, you: 'owner' }]);
      expect(service.list('alice')).toEqual([{ groupId: 'g1', owner: 'bob', memberCount: 1, you: 'none' }]);
    });
  });

  describe('assertMember and members', () => {
    it('refuses an unknown group and a non-member with their codes', () => {
      service.create('alice', 'g1');
      expectDomainError(() => service.assertMember('alice', 'nope'), UnknownGroupError, ErrorCode.UnknownGroup);
      expectDomainError(() => service.assertMember('bob', 'g1'), NotMemberError, ErrorCode.NotMember);
      expectDomainError(() => service.members('nope'), UnknownGroupError, ErrorCode.UnknownGroup);
    });
  });

  describe('replication', () => {
    const changes = () => [...opLog.all()].map((op) => [op.kind, op.actor, ...encodeOpArgs(op)]);
    let seq = 0;
    /** A change made on tracker 2, ordered after everything here. */
    const fromTracker2 = (kind: string, actor: string, ...args: string[]): StampedOp => {
      seq++;
      return { ...decodeOpBody(kind, args), actor, time: 5, requestId: '', origin: 2, seq, lamport: 1000 + seq };
    };
    beforeEach(() => (seq = 0));

    it('commits each change as one op naming who made it', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      service.join('carol', 'g1');
      service.leave('carol', 'g1');
      service.leave('alice', 'g1');
      expect(changes()).toEqual([
        ['create_group', 'alice', 'g1'],
        ['join_group', 'bob', 'g1'],
        ['accept_request', 'alice', 'g1', 'bob'],
        ['join_group', 'carol', 'g1'],
        ['leave_group', 'carol', 'g1'],
        ['leave_group', 'alice', 'g1'],
      ]);
      expect([...opLog.all()].map((op) => [op.origin, op.seq])).toEqual([1, 2, 3, 4, 5, 6].map((n) => [1, n]));
    });

    it('stamps the group with the time of its change', () => {
      service.create('alice', 'g1');
      expect(store.get('g1')?.createdAt).toBe([...opLog.all()][0].time);
    });

    it('commits nothing for a refused change', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      const before = opLog.count();
      for (const refused of [
        () => service.create('bob', 'g1'),
        () => service.create('bob', 'bad id'),
        () => service.join('bob', 'g1'),
        () => service.join('bob', 'nope'),
        () => service.accept('bob', 'g1', 'carol'),
        () => service.accept('alice', 'g1', 'carol'),
        () => service.leave('carol', 'g1'),
      ]) {
        expect(refused).toThrow(DomainError);
      }
      expect(opLog.count()).toBe(before);
    });

    it('applies a change from another tracker as if made here', () => {
      service.create('alice', 'g1');
      expect(sync.receive(fromTracker2('join_group', 'bob', 'g1'))).toBe('applied');
      expect(sync.receive(fromTracker2('accept_request', 'alice', 'g1', 'bob'))).toBe('applied');
      expect(sync.receive(fromTracker2('create_group', 'bob', 'g2'))).toBe('applied');
      expect(service.members('g1')).toEqual(['alice', 'bob']);
      expect(store.get('g2')).toEqual({ groupId: 'g2', owner: 'bob', createdAt: 5 });
    });

    it('ignores a change from another tracker that no longer fits, without failing', () => {
      groupWithMembers('g1', 'alice', ['bob']);
      service.join('carol', 'g1');
      service.leave('carol', 'g1'); // withdrawn here while tracker 2 accepted it
      for (const op of [
        fromTracker2('accept_request', 'alice', 'g1', 'carol'),
        fromTracker2('accept_request', 'bob', 'g1', 'dave'), // bob is no owner
        fromTracker2('join_group', 'bob', 'g1'), // already a member
        fromTracker2('join_group', 'erin', 'nope'),
        fromTracker2('leave_group', 'erin', 'g1'),
        fromTracker2('leave_group', 'erin', 'nope'),
        fromTracker2('create_group', 'erin', 'g1'), // the id is taken
      ]) {
        expect(sync.receive(op)).toBe('applied');
      }
      expect(store.get('g1')?.owner).toBe('alice');
      expect(service.members('g1')).toEqual(['alice', 'bob']);
      expect(service.listRequests('alice', 'g1')).toEqual([]);
      expect(service.allGroupIds()).toEqual(['g1']);
    });

    it('gives a group created on two trackers at once to the creation ordered first, whatever the arrival order', () => {
      service.create('alice', 'g1'); // lamport 1, tracker 1
      const rival: StampedOp = {
        kind: 'create_group',
        actor: 'bob',
        groupId: 'g1',
        time: 5,
        requestId: '',
        origin: 2,
        seq: 1,
        lamport: 1,
      };
      sync.receive(rival);
      expect(store.get('g1')?.owner).toBe('alice'); // (1, tracker 1) sorts before (1, tracker 2)
      expect(service.members('g1')).toEqual(['alice']);
    });
  });

  describe('onMemberLeft', () => {
    it('tells listeners who left which group and whether the group was deleted', () => {
      const listener = jest.fn();
      service.onMemberLeft(listener);
      groupWithMembers('g1', 'alice', ['bob']);
      service.leave('bob', 'g1');
      service.leave('alice', 'g1');
      expect(listener.mock.calls).toEqual([
        ['bob', 'g1', false],
        ['alice', 'g1', true],
      ]);
    });

    it('says nothing when a request is withdrawn or a leave is refused', () => {
      const listener = jest.fn();
      service.onMemberLeft(listener);
      service.create('alice', 'g1');
      service.join('bob', 'g1');
      service.leave('bob', 'g1');
      expect(() => service.leave('carol', 'g1')).toThrow(NotMemberError);
      expect(listener).not.toHaveBeenCalled();
    });

    it('undoes the leave, hand-over included, when a listener throws', async () => {
      // The op log and the stores share one SQLite transaction, as in the tracker.
      const db = dbs.open();
      const log = new SqliteOpLogStore(db);
      const moduleRef = await Test.createTestingModule({
        providers: [
          GroupsService,
          { provide: GROUP_STORE, useValue: new SqliteGroupStore(db) },
          ...syncTestingProviders({}, { opLog: log, work: new SqliteUnitOfWork(db) }),
        ],
      }).compile();
      service = moduleRef.get(GroupsService);
      store = moduleRef.get<GroupStore>(GROUP_STORE);
      groupWithMembers('g1', 'alice', ['bob', 'carol']);
      const changes = log.count();
      service.onMemberLeft(() => {
        throw new Error('listener broke');
      });
      expect(() => service.leave('alice', 'g1')).toThrow('listener broke');
      expect(store.get('g1')?.owner).toBe('alice');
      expect(service.members('g1')).toEqual(['alice', 'bob', 'carol']);
      expect(log.count()).toBe(changes);
    });

    it('stops calling a listener once it is removed', () => {
      const listener = jest.fn();
      service.onMemberLeft(listener)();
      groupWithMembers('g1', 'alice', ['bob']);
      service.leave('bob', 'g1');
      expect(listener).not.toHaveBeenCalled();
    });
  });
});
