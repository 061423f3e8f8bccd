import { ErrorCode, okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { NotLoggedInError } from '../common/domain.error';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { PeerContext } from '../transport/peer.context';
import { GroupsController } from './groups.controller';
import { NotGroupOwnerError } from './groups.errors';
import { GroupsService, GroupView } from './groups.service';

describe(GroupsController.name, () => {
  let controller: GroupsController;
  const groups = {
    create: jest.fn(),
    join: jest.fn(),
    leave: jest.fn(),
    list: jest.fn(),
    listRequests: jest.fn(),
    accept: jest.fn(),
  };
  let alice: PeerContext;

  beforeEach(async () => {
    jest.resetAllMocks();
    const moduleRef = await Test.createTestingModule({ controllers: [GroupsController], providers: [GroupsService] })
      .overrideProvider(GroupsService)
      .useValue(groups)
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(GroupsController);
    alice = peerContext('alice');
  });

  it('create_group creates the group for the logged-in user', () => {
    expect(controller.create({ kind: 'create_group', groupId: 'g1' }, alice)).toEqual(
      okReply('group g1 created; you own it'),
    );
    expect(groups.create).toHaveBeenCalledWith('alice', 'g1');
  });

  it('join_group files a request for the logged-in user', () => {
    expect(controller.join({ kind: 'join_group', groupId: 'g1' }, alice)).toEqual(
      okReply('asked to join group g1; waiting for the owner to accept'),
    );
    expect(groups.join).toHaveBeenCalledWith('alice', 'g1');
  });

  it.each([
    [{ kind: 'left' }, 'left group g1'],
    [{ kind: 'left-owner', newOwner: 'bob' }, 'left group g1; bob owns it now'],
    [{ kind: 'deleted' }, 'left group g1; it had no members left and was deleted'],
    [{ kind: 'withdrew' }, 'withdrew your request to join group g1'],
  ])('leave_group describes the outcome %j', (outcome, message) => {
    groups.leave.mockReturnValue(outcome);
    expect(controller.leave({ kind: 'leave_group', groupId: 'g1' }, alice)).toEqual(okReply(message));
    expect(groups.leave).toHaveBeenCalledWith('alice', 'g1');
  });

  it('list_groups returns one line per group', () => {
    const views: GroupView[] = [
      { groupId: 'g1', owner: 'alice', memberCount: 2, you: 'owner' },
      { groupId: 'g2', owner: 'bob', memberCount: 1, you: 'requested' },
    ];
    groups.list.mockReturnValue(views);
    expect(controller.list(alice)).toEqual(
      okReply('2 groups', ['g1 owner=alice members=2 you=owner', 'g2 owner=bob members=1 you=requested']),
    );
    expect(groups.list).toHaveBeenCalledWith('alice');
  });

  it('list_groups says so when there are none, and uses the singular for one', () => {
    groups.list.mockReturnValue([]);
    expect(controller.list(alice)).toEqual(okReply('no groups yet'));
    groups.list.mockReturnValue([{ groupId: 'g1', owner: 'bob', memberCount: 1, you: 'none' }]);
    expect(controller.list(alice)).toEqual(okReply('1 group', ['g1 owner=bob members=1 you=none']));
  });

  it('list_requests returns the requesters as body lines', () => {
    groups.listRequests.mockReturnValue(['bob', 'carol']);
    expect(controller.listRequests({ kind: 'list_requests', groupId: 'g1' }, alice)).toEqual(
      okReply('2 pending requests for group g1', ['bob', 'carol']),
    );
    expect(groups.listRequests).toHaveBeenCalledWith('alice', 'g1');
    groups.listRequests.mockReturnValue(['bob']);
    expect(controller.listRequests({ kind: 'list_requests', groupId: 'g1' }, alice)).toEqual(
      okReply('1 pending request for group g1', ['bob']),
    );
    groups.listRequests.mockReturnValue([]);
    expect(controller.listRequests({ kind: 'list_requests', groupId: 'g1' }, alice)).toEqual(
      okReply('no pending requests for group g1'),
    );
  });

  it('accept_request lets the user in on behalf of the logged-in owner', () => {
    expect(controller.accept({ kind: 'accept_request', groupId: 'g1', userId: 'bob' }, alice)).toEqual(
      okReply('bob is now a member of group g1'),
    );
    expect(groups.accept).toHaveBeenCalledWith('alice', 'g1', 'bob');
  });

  it('passes a service refusal through unchanged', () => {
    const refusal = new NotGroupOwnerError('g1');
    groups.accept.mockImplementation(() => {
      throw refusal;
    });
    expect(() => controller.accept({ kind: 'accept_request', groupId: 'g1', userId: 'bob' }, alice)).toThrow(refusal);
  });

  describe('on a connection with nobody logged in', () => {
    const anonymous = () => peerContext();
    it.each<[string, (c: GroupsController) => unknown]>([
      ['create_group', (c) => c.create({ kind: 'create_group', groupId: 'g1' }, anonymous())],
      ['join_group', (c) => c.join({ kind: 'join_group', groupId: 'g1' }, anonymous())],
      ['leave_group', (c) => c.leave({ kind: 'leave_group', groupId: 'g1' }, anonymous())],
      ['list_groups', (c) => c.list(anonymous())],
      ['list_requests', (c) => c.listRequests({ kind: 'list_requests', groupId: 'g1' }, anonymous())],
      ['accept_request', (c) => c.accept({ kind: 'accept_request', groupId: 'g1', userId: 'bob' }, anonymous())],
    ])('%s throws NotLoggedInError without calling the service', (_name, call) => {
      let thrown: unknown;
      try {
        call(controller);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(NotLoggedInError);
      expect((thrown as NotLoggedInError).code).toBe(ErrorCode.NotLoggedIn);
      for (const fn of Object.values(groups)) expect(fn).not.toHaveBeenCalled();
    });
  });
});
