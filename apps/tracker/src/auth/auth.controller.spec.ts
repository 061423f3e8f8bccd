import { ErrorCode, okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { InvalidIdError, NotLoggedInError } from '../common/domain.error';
import { DEFAULT_TRACKER_LIMITS } from '../config/tracker.config';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { plainHasher, syncTestingProviders, testCapabilitySigner } from '../testing/sync-testing';
import { thrownBy } from '../testing/thrown';
import { OpLogStore } from '../sync/oplog.store';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { OPLOG_STORE } from '../sync/sync.tokens';
import { PeerContext } from '../transport/peer.context';
import { AuthController } from './auth.controller';
import {
  AlreadyLoggedInError,
  LoginFailedError,
  TryLaterError,
  UnknownSessionError,
  UserExistsError,
} from './auth.errors';
import { AuthService } from './auth.service';
import { PASSWORD_HASHER, USER_STORE } from './auth.tokens';
import { InMemoryUserStore } from './in-memory-user.store';
import { LoginThrottle } from './login-throttle';
import { UserStore } from './user.store';

describe(AuthController.name, () => {
  let controller: AuthController;
  let users: UserStore;
  let opLog: OpLogStore;
  let throttle: LoginThrottle;
  const capabilityKeyLine = `capability_key:${testCapabilitySigner().publicKey.toString('base64url')}`;

  beforeEach(async () => {
    throttle = new LoginThrottle({ ...DEFAULT_TRACKER_LIMITS, maxScryptPerIp: 1 });
    const moduleRef = await Test.createTestingModule({
      controllers: [AuthController],
      providers: [
        AuthService,
        { provide: USER_STORE, useClass: InMemoryUserStore },
        { provide: PASSWORD_HASHER, useValue: plainHasher },
        { provide: LoginThrottle, useValue: throttle },
        ...syncTestingProviders(),
      ],
    })
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(AuthController);
    users = moduleRef.get<UserStore>(USER_STORE);
    opLog = moduleRef.get<OpLogStore>(OPLOG_STORE);
  });

  const createUser = (userId: string, password: string, ctx: PeerContext = peerContext()) =>
    controller.createUser({ kind: 'create_user', userId, password }, ctx);
  const login = (ctx: PeerContext, userId = 'alice', password = 'pw') =>
    controller.login({ kind: 'login', userId, password }, ctx);
  const resume = (ctx: PeerContext, sessionToken: string) => controller.resume({ kind: 'resume', sessionToken }, ctx);

  /** Logs alice in on a fresh connection and returns it with the session token from the reply. */
  async function loggedIn(): Promise<{ ctx: PeerContext; token: string }> {
    const ctx = peerContext();
    const reply = await login(ctx);
    const token = reply.lines[0]?.replace(/^session_token:/, '') ?? '';
    return { ctx, token };
  }

  beforeEach(async () => {
    await createUser('alice', 'pw');
  });

  it('create_user stores the user with its hashed password and confirms it', async () => {
    await expect(createUser('bob', 'p w')).resolves.toEqual(okReply('user bob created'));
    expect(users.get('bob')?.passwordHash).toBe('plain$p w');
  });

  it('create_user refuses a taken or invalid id and stores nothing', async () => {
    const before = opLog.count();
    await expect(createUser('alice', 'other')).rejects.toBeInstanceOf(UserExistsError);
    await expect(createUser('alice', 'other')).rejects.toHaveProperty('code', ErrorCode.UserExists);
    await expect(createUser('no space', 'pw')).rejects.toBeInstanceOf(InvalidIdError);
    expect(users.get('alice')?.passwordHash).toBe('plain$pw');
    expect(users.count()).toBe(1);
    expect(opLog.count()).toBe(before);
  });

  it('create_user hashes on a turn of the peer’s address (without the port)', async () => {
    const release = throttle.startHashing('127.0.0.1'); // the one turn 127.0.0.1 has
    await expect(createUser('bob', 'pw', new PeerContext(1, '127.0.0.1:40001'))).rejects.toBeInstanceOf(TryLaterError);
    expect(users.get('bob')).toBeUndefined();
    await expect(createUser('bob', 'pw', new PeerContext(2, '10.0.0.2:40000'))).resolves.toEqual(
      okReply('user bob created'),
    );
    release?.();
  });

  it('login logs the connection in and replies with the session token and the capability key as body lines (extended form only)', async () => {
    const ctx = peerContext();
    const reply = await login(ctx);
    expect(reply).toEqual(
      okReply(
        'logged in as alice',
        [expect.stringMatching(/^session_token:[0-9a-f]{64}$/), capabilityKeyLine],
        'message',
      ),
    );
    expect(ctx.user).toBe('alice');
    expect(users.tokens().map((t) => t.userId)).toEqual(['alice']);
  });

  it('login with a wrong password is refused and leaves the connection logged out', async () => {
    const ctx = peerContext();
    await expect(login(ctx, 'alice', 'wrong')).rejects.toBeInstanceOf(LoginFailedError);
    await expect(login(ctx, 'nobody', 'pw')).rejects.toHaveProperty('code', ErrorCode.LoginFailed);
    expect(ctx.user).toBeUndefined();
    expect(users.tokens()).toEqual([]);
  });

  it('resume takes up the session of the token on another connection and names its user', async () => {
    const { ctx, token } = await loggedIn();
    controller.closed(ctx);
    const other = peerContext();
    expect(resume(other, token)).toEqual(okReply('resumed the session of alice'));
    expect(other.user).toBe('alice');
  });

  it('resume refuses an unknown token and a session that is live elsewhere', async () => {
    const anonymous = peerContext();
    const unknown = thrownBy(() => resume(anonymous, 'cd'.repeat(32)));
    expect(unknown).toBeInstanceOf(UnknownSessionError);
    expect(unknown).toHaveProperty('code', ErrorCode.UnknownSession);
    const { token } = await loggedIn();
    expect(thrownBy(() => resume(anonymous, token))).toBeInstanceOf(AlreadyLoggedInError);
    expect(anonymous.user).toBeUndefined();
  });

  it('logout logs the connection’s user out, names them and revokes the token', async () => {
    const { ctx, token } = await loggedIn();
    expect(controller.logout(ctx)).toEqual(okReply('alice logged out'));
    expect(ctx.user).toBeUndefined();
    expect(users.tokens()).toEqual([]);
    expect(thrownBy(() => resume(peerContext(), token))).toBeInstanceOf(UnknownSessionError);
  });

  it('logout with nobody logged in throws NotLoggedInError and changes nothing', async () => {
    await loggedIn();
    const before = opLog.count();
    const err = thrownBy(() => controller.logout(peerContext()));
    expect(err).toBeInstanceOf(NotLoggedInError);
    expect(err).toHaveProperty('code', ErrorCode.NotLoggedIn);
    expect(opLog.count()).toBe(before);
    expect(users.tokens().map((t) => t.userId)).toEqual(['alice']);
  });

  it('a closed connection ends its session but keeps its token: the user may log in elsewhere', async () => {
    const { ctx } = await loggedIn();
    await expect(login(peerContext())).rejects.toBeInstanceOf(AlreadyLoggedInError);
    controller.closed(ctx);
    expect(ctx.user).toBeUndefined();
    expect(users.tokens().map((t) => t.userId)).toEqual(['alice']);
    await expect(login(peerContext())).resolves.toMatchObject({ message: 'logged in as alice' });
  });
});
