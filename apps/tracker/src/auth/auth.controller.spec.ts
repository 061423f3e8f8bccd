import { ErrorCode, okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { NotLoggedInError } from '../common/domain.error';
import { peerContext } from '../testing/fake-session';
import { AuthController } from './auth.controller';
import { UserExistsError, WrongPasswordError } from './auth.errors';
import { AuthService } from './auth.service';

describe(AuthController.name, () => {
  let controller: AuthController;
  const auth = {
    createUser: jest.fn(),
    login: jest.fn(),
    logout: jest.fn(),
    endSession: jest.fn(),
  };

  beforeEach(async () => {
    jest.resetAllMocks();
    const moduleRef = await Test.createTestingModule({ controllers: [AuthController], providers: [AuthService] })
      .overrideProvider(AuthService)
      .useValue(auth)
      .compile();
    controller = moduleRef.get(AuthController);
  });

  it('create_user creates the user and confirms it', async () => {
    auth.createUser.mockResolvedValue(undefined);
    await expect(controller.createUser({ kind: 'create_user', userId: 'alice', password: 'p w' })).resolves.toEqual(
      okReply('user alice created'),
    );
    expect(auth.createUser).toHaveBeenCalledWith('alice', 'p w');
  });

  it('create_user passes a refusal through unchanged', async () => {
    const refusal = new UserExistsError('alice');
    auth.createUser.mockRejectedValue(refusal);
    await expect(controller.createUser({ kind: 'create_user', userId: 'alice', password: 'pw' })).rejects.toBe(refusal);
  });

  it('login logs the connection in and confirms it', async () => {
    const ctx = peerContext();
    auth.login.mockResolvedValue(undefined);
    await expect(controller.login({ kind: 'login', userId: 'alice', password: 'pw' }, ctx)).resolves.toEqual(
      okReply('logged in as alice'),
    );
    expect(auth.login).toHaveBeenCalledWith(ctx, 'alice', 'pw');
  });

  it('login passes a refusal through unchanged', async () => {
    const refusal = new WrongPasswordError('alice');
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
