import { OpKind, SeederForm } from '@app/protocol';
import { INestMicroservice, Logger } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import { acceptTls, Identity, loadOrCreateIdentity, peerFingerprint, serverContext, sniffStartTls } from '@app/tls';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  inMemoryStores,
  keyValueState,
  trackerConfig,
  syncTestingProviders,
  TEST_CLUSTER_KEY,
} from '../testing/sync-testing';
import { testIdentity } from '../testing/test-identity';
import { PassThroughExceptionFilter } from '../transport/pass-through.filter';
import { TextLineServer } from '../transport/text-line.server';
import { DEFAULT_LINK_TIMINGS, PeerLinkTimings, PeerTrackerClient, presenceLine } from './peer-tracker.client';
import { SyncController } from './sync.controller';
import { SyncService } from './sync.service';
import { CLUSTER_KEY } from './sync.tokens';

const OTHER_KEY = Buffer.alloc(32, 8);
const FAST: PeerLinkTimings = {
  connectTimeoutMs: 1000,
  handshakeTimeoutMs: 300,
  startupHandshakeWaitMs: 100,
  retryMs: 50,
  maxRetryMs: 200,
};

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Tracker 2 of 2, listening on a free port with the real transport and sync controller. */
async function listener(key: Buffer): Promise<{ app: INestMicroservice; sync: SyncService; port: number }> {
  const moduleRef = await Test.createTestingModule({
    controllers: [SyncController],
    providers: [
      ...syncTestingProviders({ trackerNumber: 2, trackerCount: 2 }),
      // as in the tracker: refusals reach the transport, which writes their code
      { provide: APP_FILTER, useClass: PassThroughExceptionFilter },
    ],
  })
    .overrideProvider(CLUSTER_KEY)
    .useValue(key)
    .compile();
  const server = new TextLineServer({ host: '127.0.0.1', port: 0, identity: testIdentity('p2p-share tracker 2') });
  const app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
  await app.listen();
  return { app, sync: moduleRef.get(SyncService), port: server.address().port };
}

/**
 * A process at a tracker's address that does not hold the key: records what it was sent, answers as told. With
 * an identity it takes STARTTLS (asking for the dialer's certificate, kept in `clientFingerprints`) and records
 * and answers the lines inside TLS; without one it speaks plain text only.
 */
class FakeListener {
  readonly received: string[] = [];
  readonly connectedAt: number[] = [];
  readonly sockets: Socket[] = [];
  readonly clientFingerprints: (string | undefined)[] = [];
  closed = 0;
  private readonly server: Server;

  constructor(
    answer: ((line: string, socket: Socket) => void) | undefined,
    private readonly identity?: Identity,
  ) {
    this.server = createServer((socket) => {
      this.connectedAt.push(Date.now());
      this.sockets.push(socket);
      socket.on('close', () => this.closed++);
      socket.on('error', () => undefined);
      if (!this.identity) return this.readLines(socket, answer);
      void sniffStartTls(socket).then(async (first) => {
        if (first.kind !== 'starttls') return socket.destroy();
        const secure = await acceptTls(socket, {
          context: serverContext(this.identity!),
          requestCert: true,
          timeoutMs: 2000,
        }).catch(() => undefined);
        if (!secure) return;
        this.clientFingerprints.push(peerFingerprint(secure));
        secure.on('error', () => undefined);
        this.readLines(secure, answer);
      });
    });
  }

  private readLines(socket: Socket, answer: ((line: string, socket: Socket) => void) | undefined): void {
    let buffer = '';
    socket.setEncoding('utf8').on('data', (text: string) => {
      buffer += text;
      const lines = buffer.split('\n');
      buffer = lines.pop()!;
      for (const line of lines) {
        this.received.push(line);
        answer?.(line, socket);
      }
    });
  }

  listen(): Promise<number> {
    return new Promise((r) =>
      this.server.listen(0, '127.0.0.1', () => r((this.server.address() as { port: number }).port)),
    );
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe(PeerTrackerClient.name, () => {
  const cleanup: (() => Promise<unknown>)[] = [];
  let logger: { log: jest.Mock; warn: jest.Mock };
  let dir: string;
  /** Tracker 1's identity (the dialer's), and two others a listener may present. */
  let mine: Identity;
  let theirs: Identity;
  let impostor: Identity;
  /** The message of the first warning logged (an event with fields: its `message`). */
  const firstWarning = (): string => (logger.warn.mock.calls as [{ message: string }][])[0][0].message;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'peer-link-'));
    mine = loadOrCreateIdentity(join(dir, '1'), 'p2p-share tracker 1');
    theirs = loadOrCreateIdentity(join(dir, '2'), 'p2p-share tracker 2');
    impostor = loadOrCreateIdentity(join(dir, 'x'), 'p2p-share tracker 2');
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  beforeEach(() => {
    logger = { log: jest.fn(), warn: jest.fn() };
  });

  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  /** Tracker 1's link to tracker 2 at `port`, dialing with `key`, presenting `mine`, pinning `pin` when given. */
  function dialer(port: number, key = TEST_CLUSTER_KEY, timings = FAST, pin?: string) {
    const { log, work } = inMemoryStores();
    const sync = new SyncService(log, work, trackerConfig({ trackerNumber: 1, trackerCount: 2 }), key);
    const tls = { identity: mine, pin };
    const link = new PeerTrackerClient(
      2,
      { host: '127.0.0.1', port },
      sync,
      key,
      logger as unknown as Logger,
      tls,
      timings,
    );
    cleanup.push(() => link.stop());
    return { sync, link };
  }

  /** A fake at tracker 2's address, over TLS with `identity`, answering like a tracker with a made-up proof. */
  async function keylessListener(identity: Identity) {
    const fake = new FakeListener((line, socket) => {
      if (line.includes('sync_hello')) socket.write(`OK 2 prove it\n${'a'.repeat(64)}\n${'b'.repeat(64)}\n`);
      else socket.write('OK 1 welcome, tracker 1\n1:99\n');
    }, identity);
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    return { fake, port };
  }

  it('links two trackers that hold the key, then pushes changes over the sealed link', async () => {
    const two = await listener(TEST_CLUSTER_KEY);
    cleanup.push(() => two.app.close());
    const one = dialer(two.port);
    await one.link.start();
    expect(one.link.connected).toBe(true);
    one.sync.commit({ kind: 'create_group', groupId: 'g1', actor: 'alice' });
    one.link.wake(); // this SyncService was not bootstrapped: it does not know the link
    await until(() => two.sync.versionVector().get(1) === 1, 'the change reaching tracker 2');
    await until(() => one.link.ackedSeq(1) === 1, 'tracker 2 acknowledging it');
    expect(logger.warn).not.toHaveBeenCalled();
  });

  it("keeps what it knows of the peer current through status, so a compaction of the peer's own changes does not make it look behind", async () => {
    const two = await listener(TEST_CLUSTER_KEY);
    cleanup.push(() => two.app.close());
    const one = dialer(two.port);
    await one.link.start();
    // tracker 2 makes changes after the link is up; they reach tracker 1 the way they would over tracker 2's link
    for (const groupId of ['g1', 'g2', 'g3']) two.sync.commit({ kind: 'create_group', groupId, actor: 'bob' });
    one.sync.receiveAll(two.sync.opsAfter(new Map(), 10));
    expect(one.link.ackedSeq(2)).toBe(0);
    const status = await one.link.status();
    expect(status).toEqual(new Map([[2, 3]]));
    expect(one.link.ackedSeq(2)).toBe(3);
    expect(one.sync.compactWith(new Map([[2, status]])).compacted).toBe(true);
    // a write on tracker 1 now waits for tracker 2 instead of passing it over as a peer that needs the snapshot
    expect(one.link.awaitingSnapshot).toBe(false);
  });

  it.each([
    ['the dialer', OTHER_KEY, TEST_CLUSTER_KEY],
    ['the listener', TEST_CLUSTER_KEY, OTHER_KEY],
  ])(
    'never links when %s holds another key, and nothing reaches the listener',
    async (_who, dialerKey, listenerKey) => {
      const two = await listener(listenerKey);
      cleanup.push(() => two.app.close());
      const one = dialer(two.port, dialerKey);
      one.sync.commit({ kind: 'create_group', groupId: 'g1', actor: 'alice' });
      await one.link.start();
      await until(() => logger.warn.mock.calls.length >= 2, 'two failed tries');
      expect(one.link.connected).toBe(false);
      expect(firstWarning()).toMatch(/wrong proof: the peer does not hold the network key/);
      expect(two.sync.versionVector()).toEqual(new Map());
    },
  );

  it('sends a keyless listener nothing but STARTTLS and its hello, presenting its own certificate', async () => {
    const { fake, port } = await keylessListener(theirs);
    const one = dialer(port);
    one.sync.commit({ kind: 'create_group', groupId: 'g1', actor: 'alice' });
    await one.link.start();
    // a try counts once its hello has arrived: the connection alone can be seen before the line
    await until(() => fake.received.length >= 3, 'three hellos');
    expect(one.link.connected).toBe(false);
    expect(fake.connectedAt.length).toBeGreaterThanOrEqual(3);
    for (const line of fake.received) expect(line).toMatch(/^123456789 sync_hello 1 [0-9a-f]{64}$/);
    expect(new Set(fake.clientFingerprints)).toEqual(new Set([mine.fingerprint]));
  });

  it('takes the pinned certificate, and sends a listener presenting another one nothing inside TLS', async () => {
    const pinned = await keylessListener(theirs);
    const good = dialer(pinned.port, TEST_CLUSTER_KEY, FAST, theirs.fingerprint);
    void good.link.start();
    await until(() => pinned.fake.received.length >= 1, 'a hello to the pinned listener');
    await good.link.stop();

    logger.warn.mockClear();
    const { fake, port } = await keylessListener(impostor);
    const one = dialer(port, TEST_CLUSTER_KEY, FAST, theirs.fingerprint);
    one.sync.commit({ kind: 'create_group', groupId: 'g1', actor: 'alice' });
    void one.link.start();
    await until(() => logger.warn.mock.calls.length >= 3, 'three refused tries');
    expect(one.link.connected).toBe(false);
    expect(fake.received).toEqual([]);
    const warning = firstWarning();
    expect(warning).toContain('no link with tracker 2');
    expect(warning).toContain(`presented the certificate ${impostor.fingerprint}, not ${theirs.fingerprint}`);
    expect(warning).toContain('tracker_info.txt');
    expect((logger.warn.mock.calls as [object][])[0][0]).toMatchObject({
      expected: theirs.fingerprint,
      presented: impostor.fingerprint,
    });
    // refused tries back off as failed handshakes do
    expect(warning).toMatch(/next try in 50 ms$/);
    expect((logger.warn.mock.calls as [{ message: string }][])[1][0].message).toMatch(/next try in 100 ms$/);
  });

  it('passes over a listener that does not speak TLS, saying so, and sends it nothing but STARTTLS', async () => {
    const fake = new FakeListener((line, socket) => socket.write(`error: unknown command '${line}'\n`));
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    const one = dialer(port);
    void one.link.start();
    await until(() => logger.warn.mock.calls.length >= 2, 'two refused tries');
    expect(one.link.connected).toBe(false);
    expect(new Set(fake.received)).toEqual(new Set(['STARTTLS']));
    expect(firstWarning()).toMatch(/does not speak TLS .*it speaks no sync over TLS/);
  });

  it('says why when the listener refuses STARTTLS for a limit, and backs off', async () => {
    const fake = new FakeListener((_line, socket) =>
      socket.end('ERR TOO_MANY_CONNECTIONS at most 1 connections from 127.0.0.1\n'),
    );
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    const one = dialer(port);
    void one.link.start();
    await until(() => logger.warn.mock.calls.length >= 2, 'two refused tries');
    expect(firstWarning()).toMatch(
      /no link with tracker 2 .*: refused: TOO_MANY_CONNECTIONS at most 1 connections from 127.0.0.1; next try in 50 ms$/,
    );
    expect(new Set(fake.received)).toEqual(new Set(['STARTTLS']));
  });

  it('does not hold start-up for a listener that never answers, drops it after the deadline and backs off', async () => {
    const fake = new FakeListener(undefined);
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    const one = dialer(port);
    const started = Date.now();
    await one.link.start();
    expect(Date.now() - started).toBeLessThan(FAST.handshakeTimeoutMs);
    expect(one.link.connected).toBe(false);
    await until(() => fake.connectedAt.length >= 5, 'five tries', 10_000);
    expect(fake.closed).toBeGreaterThanOrEqual(4);
    expect(firstWarning()).toMatch(/no handshake within 300 ms/);
    expect(new Set(fake.received)).toEqual(new Set(['STARTTLS']));
    // timers never fire early: each wait after a failed handshake is at least the backoff step
    const gaps = fake.connectedAt.slice(1).map((t, i) => t - fake.connectedAt[i]);
    const backoff = [50, 100, 200, 200];
    gaps.slice(0, 4).forEach((gap, i) => expect(gap).toBeGreaterThanOrEqual(FAST.handshakeTimeoutMs + backoff[i] - 5));
  });

  it('drops a listener that stalls inside TLS after the same deadline', async () => {
    const fake = new FakeListener(undefined, theirs);
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    const one = dialer(port);
    void one.link.start();
    await until(() => logger.warn.mock.calls.length >= 1, 'a failed try');
    expect(firstWarning()).toMatch(/no handshake within 300 ms/);
    expect(fake.received[0]).toMatch(/^123456789 sync_hello 1 /);
  });

  it('dials again at once when the peer proves the key on a link of its own (retryNow)', async () => {
    const fake = new FakeListener(undefined);
    const port = await fake.listen();
    cleanup.push(() => fake.close());
    const one = dialer(port, TEST_CLUSTER_KEY, { ...FAST, retryMs: 60_000, maxRetryMs: 60_000 });
    void one.link.start();
    await until(() => fake.closed >= 1, 'the first try to time out');
    const before = fake.connectedAt.length;
    one.link.retryNow();
    await until(() => fake.connectedAt.length > before, 'a new try', 2000);
  });

  it('keeps its defaults in line with the README: 3 s handshake deadline, 0.5 s doubling to 30 s', () => {
    expect(DEFAULT_LINK_TIMINGS).toEqual({
      connectTimeoutMs: 1500,
      handshakeTimeoutMs: 3000,
      startupHandshakeWaitMs: 1000,
      retryMs: 500,
      maxRetryMs: 30_000,
    });
  });
  describe('catch-up from a snapshot', () => {
    /** The change that sets `key` to `value` in that part. */
    const set = (key: string, value: string, actor = 'a') => ({
      kind: OpKind.CreateUser,
      actor,
      userId: key,
      passwordHash: value,
    });

    const rowsOf = (count: number, part = 'kv') =>
      Array.from({ length: count }, (_, i) => ({ n: i + 1, part, row: ['kv', `x${i}`, 'y'] }));

    /** Tracker 2 with changes 1..n compacted (as if tracker 1 had held them all) and one change past the cut. */
    async function compactedListener(n: number) {
      const two = await listener(TEST_CLUSTER_KEY);
      cleanup.push(() => two.app.close());
      keyValueState(two.sync);
      for (let i = 0; i < n; i++) two.sync.commit(set(`k${i}`, `value "${i}"`));
      expect(two.sync.compactWith(new Map([[1, two.sync.versionVector()]])).compacted).toBe(true);
      two.sync.commit(set('k0', 'after the cut'));
      return two;
    }

    it('takes the snapshot page by page, then the changes after it, and reaches the same state', async () => {
      const two = await compactedListener(300);
      const one = dialer(two.port);
      const values = keyValueState(one.sync);
      await one.link.start();
      expect(logger.warn.mock.calls).toEqual([]);
      expect(one.sync.digest()).toBe(two.sync.digest());
      expect(values.get('k0')).toBe('after the cut');
      expect(values.get('k299')).toBe('value "299"');
      expect(one.sync.snapshotCut()?.rows).toBe(300);
      expect(one.sync.logLength()).toBe(1);
      expect(logger.log).toHaveBeenCalledWith('took the snapshot of tracker 2: 300 rows');
    });

    it.each([
      ['rows out of order', [{ n: 2, part: 'kv', row: ['kv', 'x', 'y'] }], /row 2 came where row 1 was due/],
      ['a row of a part it does not have', rowsOf(3, 'nope'), /unknown part 'nope'/],
      ['a row its part cannot read', [...rowsOf(2), { n: 3, part: 'kv', row: ['kv', 'x'] }], /bad kv row/],
      ['more rows than the head says', rowsOf(4), /the snapshot has 3 rows, not 4/],
    ])('refuses a snapshot with %s and keeps nothing of it', async (_what, page, reason) => {
      const two = await compactedListener(3);
      const serve = jest.spyOn(two.sync, 'snapshotPage').mockReturnValue(page);
      const one = dialer(two.port);
      const values = keyValueState(one.sync);
      one.sync.commit(set('mine', '1', 'b'));
      const digest = one.sync.digest();
      void one.link.start();
      await until(() => logger.warn.mock.calls.length >= 2, 'two failed tries');
      expect(serve).toHaveBeenCalled();
      await one.link.stop();
      expect(one.sync.snapshotCut()).toBeUndefined();
      expect(one.sync.digest()).toBe(digest);
      expect([...values]).toEqual([['mine', '1']]);
      expect(one.sync.versionVector()).toEqual(new Map([[1, 1]]));
      expect(firstWarning()).toMatch(reason);
    });
  });
});

describe(presenceLine.name, () => {
  const entry = {
    userId: 'dave',
    address: '127.0.0.1:7004',
    groupId: 'team',
    fileName: 'my report.txt',
    filePath: '/home/dave/my report.txt',
    form: SeederForm.Extended,
  };

  it('writes a full seeder as presence_set/presence_unset, with its path and form', () => {
    expect(presenceLine({ on: true, entry })).toBe(
      '123456789 presence_set dave 127.0.0.1:7004 team "my report.txt" "/home/dave/my report.txt" p2p-share/2',
    );
    expect(presenceLine({ on: false, entry: { userId: 'dave', groupId: 'team', fileName: 'my report.txt' } })).toBe(
      '123456789 presence_unset dave team "my report.txt"',
    );
  });

  it('writes a partial seeder as presence_partial_set/presence_partial_unset, with no path nor form', () => {
    expect(presenceLine({ on: true, entry: { ...entry, filePath: '', partial: true } })).toBe(
      '123456789 presence_partial_set dave 127.0.0.1:7004 team "my report.txt"',
    );
    expect(
      presenceLine({ on: false, entry: { userId: 'dave', groupId: 'team', fileName: 'my report.txt', partial: true } }),
    ).toBe('123456789 presence_partial_unset dave team "my report.txt"');
  });

  it("ends a set line with the seeder's fingerprint when it has one", () => {
    const fingerprint = `sha256:${'c'.repeat(64)}`;
    expect(presenceLine({ on: true, entry: { ...entry, fingerprint } })).toBe(
      `123456789 presence_set dave 127.0.0.1:7004 team "my report.txt" "/home/dave/my report.txt" p2p-share/2 ${fingerprint}`,
    );
    expect(presenceLine({ on: true, entry: { ...entry, filePath: '', partial: true, fingerprint } })).toBe(
      `123456789 presence_partial_set dave 127.0.0.1:7004 team "my report.txt" ${fingerprint}`,
    );
  });
});
