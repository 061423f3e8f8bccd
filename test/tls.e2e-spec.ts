import { acceptTls, fingerprintOf, loadOrCreateIdentity, serverContext, sniffStartTls, startTlsClient } from '@app/tls';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import {
  afterStartTls,
  CapturedConnection,
  foundIn,
  RecordingRelay,
  sideOf,
  TLS_APPLICATION_DATA,
  TLS_HANDSHAKE,
  tlsRecords,
  windowsOf,
} from './support/capture';
import { randomFile } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  RawConn,
  removeDir,
  runClientScript,
  startClientIn,
  startTrackerReady,
  tempDir,
  TRACKER_MAIN,
} from './support/processes';
import { SEED_CHUNK_SIZE, SeedClient, SeedSeeder } from './support/seed-peers';

/** The file of the capture: three whole chunks and a bit (four chunks). */
const FILE_BYTES = 3 * SEED_CHUNK_SIZE + 1000;
/** 32-byte windows of the file looked for in each chunk of the captures. */
const WINDOWS_PER_CHUNK = 6;
const REQUIRE_TLS_SEED = 'error: this tracker requires TLS: connect with STARTTLS (docs/PROTOCOL.md 8)\n';
const FINGERPRINT = /sha256:[0-9a-f]{64}/;

/** `--print-fingerprint` of the tracker with data in `dataDir` (made if missing): its one line, checked. */
function printTrackerFingerprint(infoFile: string, dataDir: string): string {
  const r = spawnSync(process.execPath, [TRACKER_MAIN, infoFile, '1', '--data-dir', dataDir, '--print-fingerprint'], {
    encoding: 'utf8',
    timeout: 20_000,
  });
  expect({ status: r.status, stderr: r.stderr }).toEqual({ status: 0, stderr: '' });
  expect(r.stdout).toMatch(/^sha256:[0-9a-f]{64}\n$/);
  return r.stdout.trim();
}

/** A tracker_info.txt of its own in `dir`. */
function infoFile(dir: string, name: string, lines: readonly string[]): string {
  const file = join(dir, name);
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** What a fake tracker saw on one connection. */
interface FakeConnection {
  /** The connection began with exactly `STARTTLS`. */
  startTls: boolean;
  /** Bytes in clear that were not a STARTTLS line (a client speaking plain text to it). */
  plain: Buffer;
  handshakeDone: boolean;
  /** Everything the client sent inside TLS. */
  received: Buffer[];
}

/**
 * A process posing as a tracker: answers STARTTLS with its own identity (another key than the tracker it poses
 * as) and keeps everything a client sends, in clear or inside TLS. It answers nothing else.
 */
class FakeTracker {
  readonly connections: FakeConnection[] = [];
  readonly fingerprint: string;
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    dir: string,
  ) {
    const identity = loadOrCreateIdentity(dir, 'fake tracker');
    this.fingerprint = identity.fingerprint;
    const context = serverContext(identity);
    server.on('connection', (socket: Socket) => {
      const seen: FakeConnection = { startTls: false, plain: Buffer.alloc(0), handshakeDone: false, received: [] };
      this.connections.push(seen);
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => undefined);
      void sniffStartTls(socket).then(async (first) => {
        if (first.kind !== 'starttls') {
          if (first.kind === 'plain') seen.plain = Buffer.from(first.head);
          socket.on('data', (d: Buffer) => (seen.plain = Buffer.concat([seen.plain, d])));
          socket.resume();
          return;
        }
        seen.startTls = true;
        try {
          const tls = await acceptTls(socket, { context, requestCert: true, timeoutMs: 10_000 });
          seen.handshakeDone = true;
          this.sockets.add(tls);
          tls.on('error', () => undefined);
          tls.on('data', (d: Buffer) => seen.received.push(Buffer.from(d)));
        } catch {
          // the client may close as soon as it has seen the certificate, before the server's side is done
        }
      });
    });
  }

  static async start(port: number, dir: string): Promise<FakeTracker> {
    const server = createServer();
    const fake = new FakeTracker(server, dir);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    return fake;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Everything any client sent it, in clear (past a STARTTLS line) or inside TLS. */
  get bytesReceived(): number {
    return this.connections.reduce((n, c) => n + c.plain.length + Buffer.concat(c.received).length, 0);
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/**
 * Checks that one captured side of a connection is `STARTTLS` (or its answer) and then nothing but TLS records
 * (`direct`: TLS records from the first byte, a handshake first), among them application data; returns the number
 * of application data records.
 */
function expectTlsOnly(
  c: CapturedConnection,
  direction: 'up' | 'down',
  opening: 'starttls' | 'direct' = 'starttls',
): number {
  const side = sideOf(c, direction);
  const records = tlsRecords(opening === 'direct' ? side : afterStartTls(side, direction));
  if (opening === 'direct') expect(records[0].type).toBe(TLS_HANDSHAKE);
  const data = records.filter((r) => r.type === TLS_APPLICATION_DATA).length;
  expect(data).toBeGreaterThan(0);
  return data;
}

describe('TLS end to end', () => {
  let dir: string;
  /** The tracker with --require-tls, which the capture, the fake and the refusals use. */
  let strict: Proc;
  let strictPort: number;
  let strictFingerprint: string;
  let strictInfo: string;
  const procs: Proc[] = [];
  const relays: RecordingRelay[] = [];
  const fakes: FakeTracker[] = [];
  const seeders: SeedSeeder[] = [];
  const seedClients: SeedClient[] = [];

  beforeAll(() => {
    dir = tempDir('p2p-tls-');
  });

  afterAll(async () => {
    seedClients.forEach((c) => c.close());
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await Promise.all([...relays, ...fakes].map((s) => s.close()));
    await Promise.all(seeders.map((s) => s.stop()));
    removeDir(dir);
  });

  const relay = async (options: Parameters<typeof RecordingRelay.start>[0]) => {
    const r = await RecordingRelay.start(options);
    relays.push(r);
    return r;
  };

  it('a seed-form client still works in plain text against a tracker without --require-tls, and its capture shows what TLS hides', async () => {
    const port = await freePort();
    const info = infoFile(dir, 'plain-info.txt', [`127.0.0.1:${port}`]);
    procs.push(await startTrackerReady(info, 1, join(dir, 'plain-data')));
    const tracker = await relay({ targetPort: port });
    const seeder = await SeedSeeder.start();
    seeders.push(seeder);
    // the seeder registers the relay's port, so the download passes through it
    const chunks = await relay({ targetPort: seeder.port });
    const connect = async () => {
      const c = await SeedClient.connect(tracker.port);
      seedClients.push(c);
      return c;
    };
    const sue = await connect();
    const sam = await connect();
    expect(await sue.createUser('sue', 'pw-sue-Lm42')).toBe('user sue created\n');
    expect(await sue.login('sue', 'pw-sue-Lm42')).toBe('logged in as sue\n');
    expect(await sam.createUser('sam', 'pw-sam-Rt09')).toBe('user sam created\n');
    expect(await sam.login('sam', 'pw-sam-Rt09')).toBe('logged in as sam\n');
    expect(await sue.send('create_group club')).toBe('group club created; you own it\n');
    expect(await sam.send('join_group club')).toBe('asked to join group club; waiting for the owner to accept\n');
    expect(await sue.send('accept_request club sam')).toBe('sam is now a member of group club\n');
    const original = join(dir, 'open-letter.bin');
    randomFile(original, FILE_BYTES);
    expect(await sue.uploadFile('club', original, chunks.port)).toBe(
      'shared open-letter.bin in group club (4 chunks)\n',
    );
    const meta = await sam.downloadMetadata('club', 'open-letter.bin');
    // the seven seed lines, nothing after them
    expect(meta.raw.split('\n').filter(Boolean)).toHaveLength(7);
    expect(sam.unread).toBe('');
    const copy = join(dir, 'open-letter.copy');
    const got = await sam.downloadFile(meta, copy);
    expect(got.failures).toEqual([]);
    const data = readFileSync(original);
    expect(readFileSync(copy).equals(data)).toBe(true);
    expect(seeder.chunksServed).toBe(4);

    // the same checks as on the TLS capture find everything here
    const everything = Buffer.concat([tracker.bytes(), chunks.bytes()]);
    expect(
      foundIn(everything, ['pw-sue-Lm42', 'pw-sam-Rt09', 'login ', 'create_user ', 'open-letter', 'GET_CHUNK']),
    ).toHaveLength(6);
    expect(foundIn(everything, windowsOf(data, SEED_CHUNK_SIZE, WINDOWS_PER_CHUNK))).toHaveLength(
      4 * WINDOWS_PER_CHUNK,
    );
    expect(() => afterStartTls(sideOf(tracker.connections[0], 'up'), 'up')).toThrow(/did not begin with/);
  }, 60_000);

  it('a tracker whose certificate changed after first use is refused loudly until its line is removed from known_trackers', async () => {
    const port = await freePort();
    const info = infoFile(dir, 'tofu-info.txt', [`127.0.0.1:${port}`]);
    const state = join(dir, 'gina-state');
    const known = join(state, 'known_trackers');
    const ginaPort = await freePort();
    const gina = (lines: string[]) =>
      runClientScript(`127.0.0.1:${ginaPort}`, info, lines, { extra: ['--data-dir', state] });

    const first = await startTrackerReady(info, 1, join(dir, 'tofu-data-1'));
    procs.push(first);
    const firstFp = fingerprintOf(readFileSync(join(dir, 'tofu-data-1', 'identity.crt'), 'utf8'));
    const met = await gina(['create_user gina pw-gina-Wd63', 'login gina pw-gina-Wd63']);
    expect(met.stdout).toMatch(/logged in as gina/);
    expect(met.stdout).toContain(`trusting tracker 127.0.0.1:${port} on first use: ${firstFp} (kept in ${known})`);
    expect(readFileSync(known, 'utf8')).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} ${firstFp}$`, 'm'));
    await first.stop();

    // someone else answers at that address with another key: refused, nothing sent to it
    const fake = await FakeTracker.start(port, join(dir, 'tofu-fake-id'));
    fakes.push(fake);
    const refusedByFake = await gina(['login gina pw-gina-Wd63']);
    const sawFake = refusedByFake.stdout + refusedByFake.stderr;
    expect(refusedByFake.code).not.toBe(0);
    expect(sawFake).toContain(fake.fingerprint);
    expect(sawFake).toContain(firstFp);
    expect(sawFake).toContain(known);
    expect(sawFake).not.toMatch(/logged in/);
    expect(fake.connections.length).toBeGreaterThan(0);
    expect(fake.bytesReceived).toBe(0);
    await fake.close();
    fakes.splice(fakes.indexOf(fake), 1);

    // the tracker itself comes back with a new identity (a new data directory): refused just the same
    const second = await startTrackerReady(info, 1, join(dir, 'tofu-data-2'));
    procs.push(second);
    const secondFp = fingerprintOf(readFileSync(join(dir, 'tofu-data-2', 'identity.crt'), 'utf8'));
    const refused = await gina(['login gina pw-gina-Wd63']);
    expect(refused.code).not.toBe(0);
    expect(refused.stdout + refused.stderr).toContain(secondFp);
    expect(refused.stdout + refused.stderr).not.toMatch(/logged in/);
    expect(readFileSync(known, 'utf8')).toContain(firstFp);

    // once its line is removed by hand, the new certificate is trusted on first use and the client works again
    writeFileSync(
      known,
      readFileSync(known, 'utf8')
        .split('\n')
        .filter((l) => !l.startsWith(`127.0.0.1:${port} `))
        .join('\n'),
    );
    const again = await gina(['create_user gina pw-gina-Wd63', 'login gina pw-gina-Wd63']);
    expect(again.stdout).toContain(`trusting tracker 127.0.0.1:${port} on first use: ${secondFp}`);
    expect(again.stdout).toMatch(/logged in as gina/);
    expect(again.code).toBe(0);
    expect(readFileSync(known, 'utf8')).toMatch(new RegExp(`^127\\.0\\.0\\.1:${port} ${secondFp}$`, 'm'));
    expect(FINGERPRINT.test(secondFp) && secondFp !== firstFp).toBe(true);
  }, 90_000);

  describe('with a tracker that requires TLS', () => {
    beforeAll(async () => {
      strictPort = await freePort();
      strictInfo = infoFile(dir, 'strict-info.txt', [`127.0.0.1:${strictPort}`]);
      const data = join(dir, 'strict-data');
      strictFingerprint = printTrackerFingerprint(strictInfo, data);
      expect(strictFingerprint).toBe(fingerprintOf(readFileSync(join(data, 'identity.crt'), 'utf8')));
      strict = await startTrackerReady(strictInfo, 1, data, ['--require-tls']);
      procs.push(strict);
      // it names its fingerprint and certificate file at start-up
      await eventually(
        () => (strict.stdout + strict.stderr).includes(strictFingerprint),
        10_000,
        'the tracker logs its fingerprint',
      );
      expect(strict.stdout + strict.stderr).toContain(join(data, 'identity.crt'));
    }, 60_000);

    it('a capture of two clients signing up, sharing and downloading shows no password, token, command or file byte', async () => {
      // alice's tracker connection leaves the relay from 127.0.0.7, so the tracker lists her chunk server there, where
      // a second relay passes the downloads on to her real 127.0.0.1 address
      const SEEDER_HOST = '127.0.0.7';
      const alicePort = await freePort();
      const aliceTrackerRelay = await relay({ targetPort: strictPort, sourceAddress: SEEDER_HOST });
      const bobTrackerRelay = await relay({ targetPort: strictPort });
      const seederRelay = await relay({ listenHost: SEEDER_HOST, listenPort: alicePort, targetPort: alicePort });
      const start = (name: string, port: number, via: RecordingRelay): ClientPeer => {
        const c = startClientIn(dir, infoFile(dir, `${name}-info.txt`, [via.address]), name, port);
        procs.push(c.proc);
        return c;
      };
      const alice = start('alice', alicePort, aliceTrackerRelay);
      const bob = start('bob', await freePort(), bobTrackerRelay);
      const original = join(alice.dir, 'payroll-2026.bin');
      randomFile(original, FILE_BYTES);

      for (const c of [alice, bob]) {
        // each says who it is, and that it trusts the tracker (seen at the relay's address) on first use
        const said = /your fingerprint: (sha256:[0-9a-f]{64})\n/.exec(
          await c.proc.waitFor(/your fingerprint: .*\n/, 15_000),
        );
        expect(said?.[1]).toBe(fingerprintOf(readFileSync(join(c.dir, '.state', 'identity.crt'), 'utf8')));
        const trust = await c.proc.waitFor(/trusting tracker .* on first use: .*/, 15_000);
        expect(trust).toContain(
          `trusting tracker ${c === alice ? aliceTrackerRelay.address : bobTrackerRelay.address} on first use: ${strictFingerprint}`,
        );
        expect(readFileSync(join(c.dir, '.state', 'known_trackers'), 'utf8')).toContain(
          `${c === alice ? aliceTrackerRelay.address : bobTrackerRelay.address} ${strictFingerprint}`,
        );
      }
      await alice.proc.run('create_user alice pw-alice-Zq81', /created/);
      await alice.proc.run('login alice pw-alice-Zq81', /logged in/);
      await alice.proc.run('create_group vault', /created/);
      await alice.proc.run(
        'upload_file vault payroll-2026.bin',
        /shared payroll-2026\.bin in group vault \(4 chunks\)/,
      );
      await bob.proc.run('create_user bob pw-bob-Kx37', /created/);
      await bob.proc.run('login bob pw-bob-Kx37', /logged in/);
      await bob.proc.run('join_group vault', /asked to join/);
      await alice.proc.run('accept_request vault bob', /now a member/);
      await bob.proc.run('download_file vault payroll-2026.bin copy.bin', /downloading payroll-2026\.bin/);
      const done = await bob.proc.waitFor(/downloaded \[vault\] payroll-2026\.bin.*|error:.*/, 30_000);
      expect(done).toMatch(/downloaded \[vault\] payroll-2026\.bin .*chunks from alice 4/);
      const data = readFileSync(original);
      expect(readFileSync(join(bob.dir, 'copy.bin')).equals(data)).toBe(true);

      // the download went through the seeder relay, over TLS in both directions from the first byte
      expect(seederRelay.connections.length).toBeGreaterThan(0);
      expect(seederRelay.bytes('down').length).toBeGreaterThanOrEqual(FILE_BYTES);
      for (const c of seederRelay.connections.filter((c) => c.up.length > 0)) {
        expectTlsOnly(c, 'up', 'direct');
        expectTlsOnly(c, 'down', 'direct');
      }
      // every tracker session of both clients: STARTTLS, then TLS records only
      const trackerSessions = [...aliceTrackerRelay.connections, ...bobTrackerRelay.connections];
      expect(trackerSessions.length).toBeGreaterThanOrEqual(2);
      for (const c of trackerSessions) {
        expectTlsOnly(c, 'up');
        expectTlsOnly(c, 'down');
      }
      const everything = Buffer.concat([aliceTrackerRelay.bytes(), bobTrackerRelay.bytes(), seederRelay.bytes()]);
      const secrets = [
        'pw-alice-Zq81',
        'pw-bob-Kx37',
        'login ',
        'create_user ',
        'session_token:',
        'capability_key:',
        'HELLO p2p-share',
        'payroll-2026',
        'GET_CHUNK',
      ];
      expect(foundIn(everything, secrets)).toEqual([]);
      const windows = windowsOf(data, SEED_CHUNK_SIZE, WINDOWS_PER_CHUNK);
      expect(windows.length).toBe(4 * WINDOWS_PER_CHUNK);
      expect(foundIn(everything, windows).length).toBe(0);
    }, 90_000);

    it('--require-tls refuses a plain-text login and sign-up, in both forms, while our client signs up and logs in', async () => {
      const seed = await SeedClient.connect(strictPort);
      seedClients.push(seed);
      expect(await seed.createUser('mallory', 'pw-mallory')).toBe(REQUIRE_TLS_SEED);
      expect(await seed.login('alice', 'pw-alice-Zq81')).toBe(REQUIRE_TLS_SEED);
      expect(await seed.send('resume abcdef')).toBe(REQUIRE_TLS_SEED);
      // other commands are answered as before (here: not logged in)
      expect(await seed.send('list_groups')).toMatch(/^error: /);
      expect(await seed.send('list_groups')).not.toBe(REQUIRE_TLS_SEED);

      const extended = await RawConn.open(strictPort);
      try {
        const refused = await extended.request('login alice pw-alice-Zq81');
        expect(refused).toMatchObject({
          ok: false,
          code: 'TLS_REQUIRED',
          message: 'this tracker requires TLS: connect with STARTTLS (docs/PROTOCOL.md 8)',
        });
      } finally {
        extended.close();
      }

      const carol = await runClientScript(
        `127.0.0.1:${await freePort()}`,
        strictInfo,
        ['create_user carol pw-carol', 'login carol pw-carol'],
        {
          extra: ['--data-dir', join(dir, 'carol-state')],
        },
      );
      expect(carol.stdout).toMatch(/user carol created/);
      expect(carol.stdout).toMatch(/logged in as carol/);
      expect(carol.code).toBe(0);
    }, 60_000);

    it('a fake tracker at a pinned address gets no command, and the user is told why; also when it is the only tracker', async () => {
      const fake = await FakeTracker.start(await freePort(), join(dir, 'fake-id'));
      fakes.push(fake);
      expect(fake.fingerprint).not.toBe(strictFingerprint);
      const pinnedFake = `127.0.0.1:${fake.port} ${strictFingerprint}`;

      // the fake first, the real tracker after it: the client passes the fake over and works with the real one
      const both = infoFile(dir, 'fake-then-real.txt', [pinnedFake, `127.0.0.1:${strictPort} ${strictFingerprint}`]);
      const erin = await runClientScript(
        `127.0.0.1:${await freePort()}`,
        both,
        ['create_user erin pw-erin-Ha55', 'login erin pw-erin-Ha55'],
        {
          extra: ['--data-dir', join(dir, 'erin-state')],
        },
      );
      const erinSaw = erin.stdout + erin.stderr;
      expect(erinSaw).toMatch(/logged in as erin/);
      expect(erinSaw).toContain(fake.fingerprint);
      expect(erinSaw).toContain(strictFingerprint);
      expect(fake.connections.length).toBeGreaterThan(0);
      expect(fake.connections.every((c) => c.startTls)).toBe(true);
      expect(fake.bytesReceived).toBe(0);
      // a pinned tracker is not trusted on first use: nothing is kept for it
      expect(erinSaw).not.toMatch(/on first use/);

      // the fake alone: the client cannot start, says why, and has sent it nothing
      const seenBefore = fake.connections.length;
      const only = infoFile(dir, 'fake-only.txt', [pinnedFake]);
      const frank = await runClientScript(`127.0.0.1:${await freePort()}`, only, ['login frank pw-frank-Uv12'], {
        extra: ['--data-dir', join(dir, 'frank-state')],
      });
      const frankSaw = frank.stdout + frank.stderr;
      expect(frank.code).not.toBe(0);
      expect(frankSaw).toContain(fake.fingerprint);
      expect(frankSaw).toContain(strictFingerprint);
      expect(frankSaw).not.toMatch(/logged in/);
      expect(fake.connections.length).toBeGreaterThan(seenBefore);
      expect(fake.bytesReceived).toBe(0);

      // the fake does keep what a client that accepts its certificate sends it inside TLS
      const socket = connect(fake.port, '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      const fooled = await startTlsClient(socket, { peer: 'fake', timeoutMs: 10_000, verify: () => undefined });
      fooled.write('login frank pw-frank-Uv12\n');
      await eventually(() => fake.bytesReceived > 0, 10_000, 'the fake records a line sent inside TLS');
      fooled.destroy();
    }, 60_000);
  });
});
