import { trackerConfig } from '../testing/sync-testing';
import { INestMicroservice, Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { join } from 'node:path';
import { PASSWORD_HASHER } from '../auth/auth.tokens';
import { PasswordHasher } from '../auth/password.hasher';
import { DEFAULT_TRACKER_LIMITS } from '../config/tracker.config';
import { LineSocket } from '../testing/line-socket';
import { TempDatabases } from '../testing/temp-db';
import { waitUntil } from '../testing/wait-until';
import { TrackerModule } from '../tracker.module';
import { ConnectionPolicy } from '../transport/connection.policy';
import { TextLineServer } from '../transport/text-line.server';
import { TrackerLogger } from './tracker.logger';

const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain$${password}`),
  verify: (password, stored) => Promise.resolve(stored === `plain$${password}`),
};

type Line = Record<string, unknown> & { level: string; context?: string; message: string };

/** The whole tracker in-process, logging JSON lines (as with stdout a pipe) that the test reads back. */
describe('tracker log lines over the wire', () => {
  const dbs = new TempDatabases();
  let app: INestMicroservice;
  let port: number;
  let written = '';
  const sockets: LineSocket[] = [];
  const lines = (): Line[] =>
    written
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as Line);

  beforeEach(async () => {
    written = '';
    for (const name of ['stdout', 'stderr'] as const) {
      jest.spyOn(process[name], 'write').mockImplementation((chunk: string | Uint8Array) => {
        written += String(chunk);
        return true;
      });
    }
    const dataDir = dbs.newDir();
    const limits = { ...DEFAULT_TRACKER_LIMITS, maxConnsPerIp: 2 };
    const moduleRef = await Test.createTestingModule({
      imports: [TrackerModule.forRoot(trackerConfig({ dataDir, keyFile: join(dataDir, 'network.key'), limits }))],
    })
      .overrideProvider(PASSWORD_HASHER)
      .useValue(plainHasher)
      .compile();
    const server = new TextLineServer({ host: '127.0.0.1', port: 0, policy: new ConnectionPolicy(limits) });
    app = moduleRef.createNestMicroservice({
      strategy: server,
      logger: new TrackerLogger('info', { json: true, colors: false }),
    });
    await app.listen();
    port = server.address().port;
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await app.close();
    dbs.cleanup();
    Logger.overrideLogger(false);
    jest.restoreAllMocks();
  });

  async function open(): Promise<LineSocket> {
    const conn = await LineSocket.open(port);
    sockets.push(conn);
    return conn;
  }

  it('logs a login with the user and address, never the password or the session token', async () => {
    const conn = await open();
    await conn.request('create_user alice s3cret-pw');
    const reply = await conn.request('login alice s3cret-pw', 3);
    const token = reply[1].slice('session_token:'.length);
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    await waitUntil(() => lines().some((l) => l.message === 'alice logged in'), 'the login line');
    const login = lines().find((l) => l.message === 'alice logged in')!;
    expect(login).toMatchObject({ level: 'info', context: 'AuthController', user: 'alice' });
    expect(login.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(written).not.toContain('s3cret-pw');
    expect(written).not.toContain(token);
    expect(written).not.toContain(reply[2].slice('capability_key:'.length));

    await conn.request('logout');
    await waitUntil(() => lines().some((l) => l.message === 'alice logged out'), 'the logout line');
  });

  it('logs each error answered with its code, reason, and the request id: the client #id or one it assigns', async () => {
    const conn = await open();
    await conn.request('create_user bob pw');
    await conn.request('login bob pw', 3);
    expect(await conn.request('#r42 join_group nowhere')).toEqual([expect.stringMatching(/^ERR UNKNOWN_GROUP /)]);
    expect(await conn.request('list_files nowhere')).toEqual([expect.stringMatching(/^ERR /)]);
    await waitUntil(() => lines().filter((l) => typeof l.code === 'string').length >= 2, 'two error lines');
    const [named, assigned] = lines().filter((l) => typeof l.code === 'string');
    expect(named).toMatchObject({ level: 'info', code: 'UNKNOWN_GROUP', requestId: 'r42', user: 'bob' });
    expect(named.message).toMatch(/^answered ERR UNKNOWN_GROUP: /);
    expect(assigned.requestId).toMatch(/^c\d+-\d+$/);
  });

  it('logs a group change and a refusal of a limit as a warning naming the limit and the address', async () => {
    const conn = await open();
    await conn.request('create_user carol pw');
    await conn.request('login carol pw', 3);
    await conn.request('create_group team');
    await open();
    // past --max-conns-per-ip 2: refused with one line
    await expect(LineSocket.open(port)).rejects.toThrow(/ERR TOO_MANY_CONNECTIONS at most 2 connections/);
    await waitUntil(() => lines().some((l) => l.limit === 'TOO_MANY_CONNECTIONS'), 'the limit line');
    expect(lines().find((l) => l.message === 'carol created group team')).toMatchObject({
      user: 'carol',
      group: 'team',
    });
    const refusal = lines().find((l) => l.limit === 'TOO_MANY_CONNECTIONS')!;
    expect(refusal.level).toBe('warn');
    expect(refusal.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});
