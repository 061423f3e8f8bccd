import { ErrorCode, okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { NotLoggedInError } from '../common/domain.error';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { syncTestingProviders } from '../testing/sync-testing';
import { thrownBy } from '../testing/thrown';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { OpLogStore } from '../sync/oplog.store';
import { OPLOG_STORE } from '../sync/sync.tokens';
import { PeerContext } from '../transport/peer.context';
import { GroupStore } from './group.store';
import { GroupsController } from './groups.controller';
import {
  AlreadyMemberError,
  GroupExistsError,
  NoSuchRequestError,
  NotGroupOwnerError,
  UnknownGroupError,
} from './groups.errors';
import { GroupsService } from './groups.service';
import { GROUP_STORE } from './groups.tokens';
import { InMemoryGroupStore } from './in-memory-group.store';

describe(GroupsController.name, () => {
  let controller: GroupsController;
  let store: GroupStore;
  let opLog: OpLogStore;
  let alice: PeerContext;
  let bob: PeerContext;
  let carol: PeerContext;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      controllers: [GroupsController],
      providers: [GroupsService, { provide: GROUP_STORE, useClass: InMemoryGroupStore }, ...syncTestingProviders()],
    })
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(GroupsController);
    store = moduleRef.get<GroupStore>(GROUP_STORE);
    opLog = moduleRef.get<OpLogStore>(OPLOG_STORE);
    alice = peerContext('alice');
    bob = peerContext('bob');
    carol = peerContext('carol');
  });

  const create = (ctx: PeerContext, groupId = 'g1') => controller.create({ kind: 'create_group', groupId }, ctx);
  const join = (ctx: PeerContext, groupId = 'g1') => controller.join({ kind: 'join_group', groupId }, ctx);
  const leave = (ctx: PeerContext, groupId = 'g1') => controller.leave({ kind: 'leave_group', groupId }, ctx);
  const accept = (ctx: PeerContext, userId: string, groupId = 'g1') =>
    controller.accept({ kind: 'accept_request', groupId, userId }, ctx);
  const requests = (ctx: PeerContext, groupId = 'g1') =>
    controller.listRequests({ kind: 'list_requests', groupId }, ctx);

  it('create_group creates the group owned by the logged-in user', () => {
    expect(create(alice)).toEqual(okReply('group g1 created; you own it'));
    expect(store.get('g1')).toMatchObject({ groupId: 'g1', owner: 'alice' });
    expect(store.members('g1')).toEqual(['alice']);
  });

  it('join_group files a request for the logged-in user, who is not yet a member', () => {
    create(alice);
    expect(join(bob)).toEqual(okReply('asked to join group g1; waiting for the owner to accept'));
    expect(store.hasRequest('g1', 'bob')).toBe(true);
    expect(store.isMember('g1', 'bob')).toBe(false);
  });

  it('accept_request lets the requester in on behalf of the logged-in owner', () => {
    create(alice);
    join(bob);
    expect(accept(alice, 'bob')).toEqual(okReply('bob is now a member of group g1'));
    expect(store.isMember('g1', 'bob')).toBe(true);
    expect(store.hasRequest('g1', 'bob')).toBe(false);
  });

  describe('leave_group describes what happened', () => {
    it('a member leaves', () => {
      create(alice);
      join(bob);
      accept(alice, 'bob');
      expect(leave(bob)).toEqual(okReply('left group g1'));
      expect(store.isMember('g1', 'bob')).toBe(false);
      expect(store.get('g1')?.owner).toBe('alice');
    });

    it('the owner leaves and hands the group on', () => {
      create(alice);
      join(bob);
      accept(alice, 'bob');
      expect(leave(alice)).toEqual(okReply('left group g1; bob owns it now'));
      expect(store.get('g1')?.owner).toBe('bob');
      expect(store.members('g1')).toEqual(['bob']);
    });

    it('the last member leaves and the group is deleted', () => {
      create(alice);
      expect(leave(alice)).toEqual(okReply('left group g1; it had no members left and was deleted'));
      expect(store.get('g1')).toBeUndefined();
    });

    it('a requester withdraws the request', () => {
      create(alice);
      join(bob);
      expect(leave(bob)).toEqual(okReply('withdrew your request to join group g1'));
      expect(store.hasRequest('g1', 'bob')).toBe(false);
    });
  });

  it('list_groups returns one line per group with the caller’s standing, and says so when there are none', () => {
    expect(controller.list(alice)).toEqual(okReply('no groups yet'));
    create(alice, 'g1');
    expect(controller.list(bob)).toEqual(okReply('1 group', ['g1 owner=alice members=1 you=none']));
    create(bob, 'g2');
    join(bob, 'g1');
    accept(alice, 'bob', 'g1');
    join(alice, 'g2');
    expect(controller.list(alice)).toEqual(
      okReply('2 groups', ['g1 owner=alice members=2 you=owner', 'g2 owner=bob members=1 you=requested']),
    );
    expect(controller.list(bob)).toEqual(
      okReply('2 groups', ['g1 owner=alice members=2 you=member', 'g2 owner=bob members=1 you=owner']),
    );
  });

  it('list_requests returns the requesters as body lines, singular and plural', () => {
    create(alice);
    expect(requests(alice)).toEqual(okReply('no pending requests for group g1'));
    join(bob);
    expect(requests(alice)).toEqual(okReply('1 pending request for group g1', ['bob']));
    join(carol);
    expect(requests(alice)).toEqual(okReply('2 pending requests for group g1', ['bob', 'carol']));
  });

  describe('a refusal reaches the caller as its domain error and changes nothing', () => {
    it('create_group of a taken id', () => {
      create(alice);
      const count = opLog.count();
      const err = thrownBy(() => create(bob));
      expect(err).toBeInstanceOf(GroupExistsError);
      expect(err).toHaveProperty('code', ErrorCode.GroupExists);
      expect(store.get('g1')?.owner).toBe('alice');
      expect(opLog.count()).toBe(count);
    });

    it('join_group of an unknown group', () => {
      const err = thrownBy(() => join(bob, 'nope'));
      expect(err).toBeInstanceOf(UnknownGroupError);
      expect(err).toHaveProperty('code', ErrorCode.UnknownGroup);
      expect(store.hasRequest('nope', 'bob')).toBe(false);
    });

    it('accept_request by someone who does not own the group', () => {
      create(alice);
      join(bob);
      join(carol);
      const err = thrownBy(() => accept(carol, 'bob'));
      expect(err).toBeInstanceOf(NotGroupOwnerError);
      expect(err).toHaveProperty('code', ErrorCode.NotOwner);
      expect(store.isMember('g1', 'bob')).toBe(false);
      expect(store.hasRequest('g1', 'bob')).toBe(true);
    });

    it('accept_request with no request, and of a member', () => {
      create(alice);
      expect(thrownBy(() => accept(alice, 'bob'))).toBeInstanceOf(NoSuchRequestError);
      expect(store.isMember('g1', 'bob')).toBe(false);
      join(bob);
      accept(alice, 'bob');
      expect(thrownBy(() => accept(alice, 'bob'))).toBeInstanceOf(AlreadyMemberError);
    });

    it('list_requests by someone who does not own the group', () => {
      create(alice);
      join(bob);
      expect(thrownBy(() => requests(bob))).toBeInstanceOf(NotGroupOwnerError);
    });
  });

  describe('on a connection with nobody logged in', () => {
    const anonymous = () => peerContext();
    it.each<[string, (c: GroupsController) => unknown]>([
      ['create_group', (c) => c.create({ kind: 'create_group', groupId: 'g9' }, anonymous())],
      ['join_group', (c) => c.join({ kind: 'join_group', groupId: 'g1' }, anonymous())],
      ['leave_group', (c) => c.leave({ kind: 'leave_group', groupId: 'g1' }, anonymous())],
      ['list_groups', (c) => c.list(anonymous())],
      ['list_requests', (c) => c.listRequests({ kind: 'list_requests', groupId: 'g1' }, anonymous())],
      ['accept_request', (c) => c.accept({ kind: 'accept_request', groupId: 'g1', userId: 'bob' }, anonymous())],
    ])('%s throws NotLoggedInError and changes nothing', (_name, call) => {
      create(alice);
      join(bob);
      const count = opLog.count();
      const err = thrownBy(() => call(controller));
      expect(err).toBeInstanceOf(NotLoggedInError);
      expect(err).toHaveProperty('code', ErrorCode.NotLoggedIn);
      expect(opLog.count()).toBe(count);
      expect(store.get('g9')).toBeUndefined();
      expect(store.members('g1')).toEqual(['alice']);
      expect(store.requests('g1')).toEqual(['bob']);
    });
  });
});
