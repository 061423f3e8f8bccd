import { ErrorCode, okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { NotLoggedInError } from '../common/domain.error';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { AuthController } from './auth.controller';
import { UnknownSessionError, UserExistsError, LoginFailedError } from './auth.errors';
import { AuthService } from './auth.service';
import { CapabilitySigner } from '../capability/capability.signer';
import { testCapabilitySigner } from '../testing/sync-testing';

describe(AuthController.name, () => {
  let controller: AuthController;
  const signer = testCapabilitySigner();
  const auth = {
    createUser: jest.fn(),
    login: jest.fn(),
    resume: jest.fn(),
    logout: jest.fn(),
    endSession: jest.fn(),
  };

  beforeEach(async () => {
    jest.resetAllMocks();
    const moduleRef = await Test.createTestingModule({
      controllers: [AuthController],
      providers: [AuthService, { provide: CapabilitySigner, useValue: signer }],
    })
      .overrideProvider(AuthService)
      .useValue(auth)
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(AuthController);
  });

  it('create_user creates the user and confirms it', async () => {
    auth.createUser.mockResolvedValue(undefined);
    await expect(
      controller.createUser({ kind: 'create_user', userId: 'alice', password: 'p w' }, peerContext()),
    ).resolves.toEqual(okReply('user alice created'));
    // the peer's address, without the port: it may hash only so many passwords at once
    expect(auth.createUser).toHaveBeenCalledWith('alice', 'p w', '127.0.0.1');
  });

  it('create_user passes a refusal through unchanged', async () => {
    const refusal = new UserExistsError('alice');
    auth.createUser.mockRejectedValue(refusal);
    await expect(
      controller.createUser({ kind: 'create_user', userId: 'alice', password: 'pw' }, peerContext()),
    ).rejects.toBe(refusal);
  });

  it('login logs the connection in and confirms it, with the session token and the capability key as body lines (extended form only)', async () => {
    const ctx = peerContext();
    const token = 'ab'.repeat(32);
    auth.login.mockResolvedValue(token);
    await expect(controller.login({ kind: 'login', userId: 'alice', password: 'pw' }, ctx)).resolves.toEqual(
      okReply(
        'logged in as alice',
        [`session_token:${token}`, `capability_key:${signer.publicKey.toString('base64url')}`],
        'message',
      ),
    );
    expect(auth.login).toHaveBeenCalledWith(ctx, 'alice', 'pw');
  });

  it('resume takes up the session of the token on this connection and names its user', () => {
    const ctx = peerContext();
    auth.resume.mockReturnValue('alice');
    expect(controller.resume({ kind: 'resume', sessionToken: 'cd'.repeat(32) }, ctx)).toEqual(
      okReply('resumed the session of alice'),
    );
    expect(auth.resume).toHaveBeenCalledWith(ctx, 'cd'.repeat(32));
  });

  it('resume passes a refusal through unchanged', () => {
    const refusal = new UnknownSessionError();
    auth.resume.mockImplementation(() => {
      throw refusal;
    });
    expect(() => controller.resume({ kind: 'resume', sessionToken: 'x' }, peerContext())).toThrow(refusal);
  });

  it('login passes a refusal through unchanged', async () => {
    const refusal = new LoginFailedError();
    auth.login.mockRejectedValue(refusal);
    await expect(controller.login({ kind: 'login', userId: 'alice', password: 'x' }, peerContext())).rejects.toBe(
      refusal,
    );
  });

  it('logout logs the connection’s user out and names them', () => {
    const ctx = peerContext('alice');
    expect(controller.logout(ctx)).toEqual(okReply('alice logged out'));
    expect(auth.logout).toHaveBeenCalledWith(ctx);
  });

  it('logout with nobody logged in throws NotLoggedInError without calling the service', () => {
    let thrown: unknown;
    try {
      controller.logout(peerContext());
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(NotLoggedInError);
    expect(thrown).toHaveProperty('code', ErrorCode.NotLoggedIn);
    expect(auth.logout).not.toHaveBeenCalled();
  });

  it('a closed connection ends its session', () => {
    const ctx = peerContext('alice');
    controller.closed(ctx);
    expect(auth.endSession).toHaveBeenCalledWith(ctx);
  });
});
