import { Cmd, okReply } from '@app/protocol';
import { CallHandler, ExecutionContext } from '@nestjs/common';
import { INTERCEPTORS_METADATA } from '@nestjs/common/constants';
import { PATTERN_METADATA } from '@nestjs/microservices/constants';
import { Test } from '@nestjs/testing';
import { lastValueFrom, Observable, of, throwError } from 'rxjs';
import { requestContext } from '../common/request-context';
import { peerContext } from '../testing/fake-session';
import { AuthController } from '../auth/auth.controller';
import { FilesController } from '../files/files.controller';
import { GroupsController } from '../groups/groups.controller';
import { PeerContext } from '../transport/peer.context';
import { TransportEvent } from '../transport/transport.events';
import { ReplicationInterceptor } from './replication.interceptor';
import { SyncService } from './sync.service';

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const flushMicrotasks = () => new Promise((r) => setImmediate(r));

/** The commands that change replicated state: a retry of one must not apply it twice. */
const CHANGE_COMMANDS = [
  Cmd.CreateUser,
  Cmd.CreateGroup,
  Cmd.JoinGroup,
  Cmd.LeaveGroup,
  Cmd.AcceptRequest,
  Cmd.UploadFile,
  Cmd.NewSeeder,
  Cmd.StopShare,
];

describe(ReplicationInterceptor.name, () => {
  let interceptor: ReplicationInterceptor;
  let ready: ReturnType<typeof deferred>;
  const sync = { ready: Promise.resolve(), hasRequest: jest.fn(), flush: jest.fn() };
  const handler = { handle: jest.fn() };

  beforeEach(async () => {
    jest.resetAllMocks();
    ready = deferred();
    sync.ready = ready.promise;
    sync.hasRequest.mockReturnValue(false);
    sync.flush.mockResolvedValue(undefined);
    handler.handle.mockReturnValue(of(okReply('handled')));
    const moduleRef = await Test.createTestingModule({ providers: [ReplicationInterceptor, SyncService] })
      .overrideProvider(SyncService)
      .useValue(sync)
      .compile();
    interceptor = moduleRef.get(ReplicationInterceptor);
  });

  const context = (data: unknown, ctx: PeerContext): ExecutionContext =>
    ({ switchToRpc: () => ({ getContext: () => ctx, getData: () => data }) }) as unknown as ExecutionContext;

  /** Runs the interceptor for `command` as the transport does: inside the request's context. */
  function intercept(command: { kind: string }, requestId = '', ctx = peerContext('alice')): Observable<unknown> {
    return requestContext.run({ requestId }, () =>
      interceptor.intercept(context(command, ctx), handler as CallHandler),
    );
  }

  it('holds client requests until start-up catch-up is over', async () => {
    let reply: unknown;
    void lastValueFrom(intercept({ kind: Cmd.ListGroups })).then((r) => (reply = r));
    await flushMicrotasks();
    expect(handler.handle).not.toHaveBeenCalled();
    ready.resolve();
    await flushMicrotasks();
    expect(handler.handle).toHaveBeenCalledTimes(1);
    expect(reply).toEqual(okReply('handled'));
  });

  it('answers only once the peers hold the changes made (flush)', async () => {
    ready.resolve();
    const flushed = deferred();
    sync.flush.mockReturnValue(flushed.promise);
    let reply: unknown;
    void lastValueFrom(intercept({ kind: Cmd.CreateGroup }, 'c1-1')).then((r) => (reply = r));
    await flushMicrotasks();
    expect(handler.handle).toHaveBeenCalledTimes(1);
    expect(reply).toBeUndefined();
    flushed.resolve();
    await flushMicrotasks();
    expect(reply).toEqual(okReply('handled'));
  });

  it.each(CHANGE_COMMANDS)(
    'answers a retried %s whose request id is in the log as done, without running it',
    async (kind) => {
      ready.resolve();
      sync.hasRequest.mockImplementation((id: string) => id === 'c1-7');
      await expect(lastValueFrom(intercept({ kind }, 'c1-7'))).resolves.toEqual(
        okReply('done (request #c1-7 had already been applied)'),
      );
      expect(handler.handle).not.toHaveBeenCalled();
      expect(sync.hasRequest).toHaveBeenCalledWith('c1-7', 'alice');
    },
  );

  describe('request id scope', () => {
    it('looks the id up for the logged-in user who sent it, so another user’s id never matches', async () => {
      ready.resolve();
      sync.hasRequest.mockImplementation((id: string, user: string) => id === 'x1' && user === 'mallory');
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateGroup }, 'x1', peerContext('bob')))).resolves.toEqual(
        okReply('handled'),
      );
      expect(sync.hasRequest).toHaveBeenCalledWith('x1', 'bob');
      expect(handler.handle).toHaveBeenCalledTimes(1);
    });

    it('keeps an id used before login to its connection: the same connection’s retry is done, another’s runs', async () => {
      ready.resolve();
      const a = peerContext();
      const b = peerContext();
      await lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', a));
      expect(handler.handle).toHaveBeenCalledTimes(1);
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', a))).resolves.toEqual(
        okReply('done (request #x1 had already been applied)'),
      );
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', b))).resolves.toEqual(okReply('handled'));
      expect(handler.handle).toHaveBeenCalledTimes(2);
      // the log is never asked on behalf of nobody
      expect(sync.hasRequest).not.toHaveBeenCalled();
    });

    it('does not remember the id of a change that failed before login', async () => {
      ready.resolve();
      const a = peerContext();
      handler.handle.mockReturnValueOnce(throwError(() => new Error('user exists')));
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', a))).rejects.toThrow('user exists');
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', a))).resolves.toEqual(okReply('handled'));
    });

    it('keeps an id used before login away from the user the connection then logs in as', async () => {
      ready.resolve();
      const a = peerContext();
      await lastValueFrom(intercept({ kind: Cmd.CreateUser }, 'x1', a));
      a.setUser('mallory');
      await expect(lastValueFrom(intercept({ kind: Cmd.CreateGroup }, 'x1', a))).resolves.toEqual(okReply('handled'));
      expect(sync.hasRequest).toHaveBeenCalledWith('x1', 'mallory');
    });
  });

  it.each([Cmd.ListGroups, Cmd.Login, Cmd.Logout, Cmd.DownloadFile, Cmd.ListFiles])(
    'runs %s even when its request id is in the log: only changes are deduplicated',
    async (kind) => {
      ready.resolve();
      sync.hasRequest.mockReturnValue(true);
      await expect(lastValueFrom(intercept({ kind }, 'c1-7'))).resolves.toEqual(okReply('handled'));
      expect(handler.handle).toHaveBeenCalledTimes(1);
    },
  );

  it('runs a change whose request id is new', async () => {
    ready.resolve();
    await expect(lastValueFrom(intercept({ kind: Cmd.JoinGroup }, 'c1-8'))).resolves.toEqual(okReply('handled'));
    expect(sync.hasRequest).toHaveBeenCalledWith('c1-8', 'alice');
  });

  it('lets an event the transport raises itself (a closed connection, no command) straight through, even before ready', async () => {
    const events = [undefined, {}];
    for (const data of events) {
      const out = requestContext.run({ requestId: '' }, () =>
        interceptor.intercept(context(data, peerContext('alice')), handler as CallHandler),
      );
      await expect(lastValueFrom(out)).resolves.toEqual(okReply('handled'));
    }
    expect(handler.handle).toHaveBeenCalledTimes(2);
    expect(sync.flush).not.toHaveBeenCalled();
  });

  it('lets lines of an authenticated tracker straight through: no wait, no lookup, no flush', async () => {
    const tracker = peerContext();
    tracker.trackerNumber = 2;
    sync.hasRequest.mockReturnValue(true);
    await expect(lastValueFrom(intercept({ kind: Cmd.CreateGroup }, '', tracker))).resolves.toEqual(okReply('handled'));
    expect(sync.hasRequest).not.toHaveBeenCalled();
    expect(sync.flush).not.toHaveBeenCalled();
  });

  it('sits on exactly the handlers that commit changes, and on no read', () => {
    const replicated: string[] = [];
    const plain: string[] = [];
    for (const controller of [AuthController, GroupsController, FilesController]) {
      const proto = controller.prototype as unknown as Record<string, object>;
      for (const name of Object.getOwnPropertyNames(proto)) {
        const patterns = Reflect.getMetadata(PATTERN_METADATA, proto[name]) as string[] | undefined;
        if (!patterns) continue;
        const interceptors = (Reflect.getMetadata(INTERCEPTORS_METADATA, proto[name]) ?? []) as unknown[];
        (interceptors.includes(ReplicationInterceptor) ? replicated : plain).push(...patterns.map(String));
      }
    }
    // login and logout commit session changes, but a retried one is run again rather than deduplicated
    expect(replicated.sort()).toEqual([...CHANGE_COMMANDS, Cmd.Login, Cmd.Logout].sort());
    expect(plain.sort()).toEqual(
      [
        Cmd.ListGroups,
        Cmd.ListRequests,
        Cmd.ListFiles,
        Cmd.DownloadFile,
        Cmd.Resume,
        TransportEvent.PeerClosed,
        // soft state, never in the log
        Cmd.PartialSeeder,
        Cmd.StopPartial,
        Cmd.ListSeeders,
      ].sort(),
    );
  });
});
