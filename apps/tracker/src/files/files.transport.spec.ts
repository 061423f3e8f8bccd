import { trackerConfig } from '../testing/sync-testing';
import { CHUNK_SIZE } from '@app/chunking';
import { decodeCapability, encodeChunkHashes, parseFileMetadata } from '@app/protocol';
import { INestMicroservice } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER } from '../auth/auth.tokens';
import { PasswordHasher } from '../auth/password.hasher';
import { LineSocket } from '../testing/line-socket';
import { TempDatabases } from '../testing/temp-db';
import { waitUntil } from '../testing/wait-until';
import { TrackerModule } from '../tracker.module';
import { TextLineServer } from '../transport/text-line.server';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const chunkList = (n: number, seed: string) => Array.from({ length: n }, (_, i) => sha1(`${seed}${i}`));

const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain$${password}`),
  verify: (password, stored) => Promise.resolve(stored === `plain$${password}`),
};

/** The upload_file request for a file of `chunks` full chunks: the command line plus its continuation lines. */
function uploadLines(groupId: string, path: string, chunks: number, myPort: string, seed = path): string {
  const { arg, lines } = encodeChunkHashes(chunkList(chunks, seed));
  const head = `upload_file ${groupId} ${JSON.stringify(path)} ${chunks * CHUNK_SIZE} ${sha1(seed)} ${arg} ${myPort}`;
  return [head, ...lines].join('\n') + '\n';
}

/** The whole tracker (TrackerModule) on a free port over a temp data dir, as main.ts starts it. */
describe('files over the wire', () => {
  const dbs = new TempDatabases();
  let dataDir: string;
  let app: INestMicroservice;
  let port: number;
  const sockets: LineSocket[] = [];

  async function start(): Promise<void> {
    const moduleRef = await Test.createTestingModule({
      imports: [TrackerModule.forRoot(trackerConfig({ dataDir, keyFile: join(dataDir, 'network.key') }))],
    })
      .overrideProvider(PASSWORD_HASHER)
      .useValue(plainHasher)
      .compile();
    const server = new TextLineServer({ host: '127.0.0.1', port: 0 });
    app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
    await app.listen();
    port = server.address().port;
  }

  async function user(userId: string): Promise<LineSocket> {
    const conn = await LineSocket.open(port); // says HELLO: an extended connection, so alice seeds as ours
    sockets.push(conn);
    expect(await conn.request(`create_user ${userId} pw`)).toEqual([`OK 0 user ${userId} created`]);
    expect(await conn.request(`login ${userId} pw`, 3)).toEqual([
      `OK 2 logged in as ${userId}`,
      expect.stringMatching(/^session_token:[0-9a-f]{64}$/),
      expect.stringMatching(/^capability_key:[A-Za-z0-9_-]{43}$/),
    ]);
    return conn;
  }

  /** Resolves once the tracker has ended `userId`'s session. */
  function sessionEnded(userId: string): Promise<void> {
    return new Promise((resolve) => {
      const off = app.get(AuthService).onSessionEnded((who) => {
        if (who !== userId) return;
        off();
        resolve();
      });
    });
  }

  beforeEach(async () => {
    dataDir = dbs.newDir();
    await start();
  });

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await app.close();
    dbs.cleanup();
  });

  /** alice owns g1 with bob as member; both logged in. */
  async function team(): Promise<{ alice: LineSocket; bob: LineSocket }> {
    const alice = await user('alice');
    const bob = await user('bob');
    await alice.request('create_group g1');
    await bob.request('join_group g1');
    expect(await alice.request('accept_request g1 bob')).toEqual(['OK 0 bob is now a member of group g1']);
    return { alice, bob };
  }

  it('shares a 1,500-chunk file sent with continuation lines, lists it and answers its metadata', async () => {
    const { alice, bob } = await team();
    alice.write(uploadLines('g1', '/home/alice/big file.bin', 1500, '7001'));
    expect(await alice.readLines(1)).toEqual(['OK 0 shared "big file.bin" in group g1 (1500 chunks)']);

    expect(await bob.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `"big file.bin" size=${1500 * CHUNK_SIZE} seeders=1`,
    ]);
    const [head, ...body] = await bob.request('download_file g1 "big file.bin" /tmp/out', 16);
    expect(head).toBe(
      `OK 15 big file.bin: ${1500 * CHUNK_SIZE} bytes, 1 online seeder`.replace('big file.bin', '"big file.bin"'),
    );
    const meta = parseFileMetadata(body);
    expect(meta).toEqual({
      fileName: 'big file.bin',
      fileSize: 1500 * CHUNK_SIZE,
      fileHash: sha1('/home/alice/big file.bin'),
      chunkHashes: chunkList(1500, '/home/alice/big file.bin'),
      seeders: [
        {
          userId: 'alice',
          address: { host: '127.0.0.1', port: 7001 },
          capability: expect.any(String) as string,
        },
      ],
    });
    // a capability for bob to fetch from alice, never alice's path
    expect(decodeCapability(meta.seeders[0].capability)?.claims).toMatchObject({
      seederId: 'alice',
      downloaderId: 'bob',
    });
    expect(body.join('\n')).not.toContain('/home/alice');
  });

  it('answers the refusals with their codes', async () => {
    const { alice, bob } = await team();
    const carol = await user('carol');
    expect(await carol.request('list_files g1')).toEqual(['ERR NOT_MEMBER you are not a member of group g1']);
    expect(await bob.request('download_file g1 nope')).toEqual(['ERR UNKNOWN_FILE no file named nope in group g1']);
    alice.write(uploadLines('g1', '/a/f.bin', 2, '7001', 'one'));
    await alice.readLines(1);
    bob.write(uploadLines('g1', '/b/f.bin', 2, '7002', 'two'));
    expect(await bob.readLines(1)).toEqual([
      'ERR FILE_CONFLICT a different file named f.bin is already shared in group g1',
    ]);
    expect(await bob.request(`upload_file g1 /b/x 1048576 ${sha1('x')} ${sha1('c')} 7002`)).toEqual([
      expect.stringMatching(/^ERR BAD_FILE_METADATA a file of 1048576 bytes has 2 chunks/),
    ]);
    expect(await bob.request('stop_share g1 f.bin')).toEqual(['ERR NOT_SEEDING you are not seeding f.bin in group g1']);
    expect(await bob.request('new_seeder g1 nope /b/nope 7002')).toEqual([
      'ERR UNKNOWN_FILE no file named nope in group g1',
    ]);
  });

  it('counts a seeder offline once its connection closes, and drops the shares of a member who leaves', async () => {
    const { alice, bob } = await team();
    alice.write(uploadLines('g1', '/a/f.bin', 2, '7001'));
    await alice.readLines(1);
    expect(await bob.request('new_seeder g1 f.bin /b/f.bin 7002')).toEqual(['OK 0 now seeding f.bin in group g1']);
    expect(await bob.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `f.bin size=${2 * CHUNK_SIZE} seeders=2`,
    ]);

    const ended = sessionEnded('alice');
    alice.destroy();
    await ended;
    expect(await bob.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `f.bin size=${2 * CHUNK_SIZE} seeders=1`,
    ]);
    const [, ...body] = await bob.request('download_file g1 f.bin', 16);
    expect(parseFileMetadata(body).seeders.map((s) => s.userId)).toEqual(['bob']);

    expect(await bob.request('leave_group g1')).toEqual(['OK 0 left group g1']);
    const again = await LineSocket.open(port);
    sockets.push(again);
    await again.request('login alice pw', 3);
    expect(await again.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `f.bin size=${2 * CHUNK_SIZE} seeders=0`,
    ]);
    expect(await again.request('stop_share g1 f.bin')).toEqual([
      'OK 0 stopped sharing f.bin in group g1; nobody else seeds it, so it is no longer listed',
    ]);
    expect(await again.request('list_files g1')).toEqual(['OK 0 no files in group g1']);
  });

  it('keeps files and seeders across a restart, with nobody online until they announce again', async () => {
    const { alice } = await team();
    alice.write(uploadLines('g1', '/a/f.bin', 3, '7001'));
    await alice.readLines(1);
    for (const s of sockets.splice(0)) s.destroy();
    await app.close();

    await start();
    const conn = await LineSocket.open(port);
    sockets.push(conn);
    await conn.request('login bob pw', 3);
    expect(await conn.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `f.bin size=${3 * CHUNK_SIZE} seeders=0`,
    ]);
    const [head, ...body] = await conn.request('download_file g1 f.bin', 16);
    expect(head).toBe(`OK 15 f.bin: ${3 * CHUNK_SIZE} bytes, 0 online seeders`);
    expect(parseFileMetadata(body).chunkHashes).toEqual(chunkList(3, '/a/f.bin'));
  });

  it('answers a retried upload with the same #id as done, even after a restart, and applies it once', async () => {
    const { alice, bob } = await team();
    alice.write(`#up-1 ${uploadLines('g1', '/a/f.bin', 2, '7001')}`);
    expect(await alice.readLines(1)).toEqual(['OK 0 shared f.bin in group g1 (2 chunks)']);
    alice.write(`#up-1 ${uploadLines('g1', '/a/f.bin', 2, '7001')}`);
    expect(await alice.readLines(1)).toEqual(['OK 0 done (request #up-1 had already been applied)']);
    expect(await bob.request('#up-2 stop_share g1 f.bin')).toEqual([
      'ERR NOT_SEEDING you are not seeding f.bin in group g1',
    ]);
    for (const s of sockets.splice(0)) s.destroy();
    await app.close();

    await start();
    const conn = await LineSocket.open(port);
    sockets.push(conn);
    await conn.request('login alice pw', 3);
    conn.write(`#up-1 ${uploadLines('g1', '/a/f.bin', 2, '7001')}`);
    expect(await conn.readLines(1)).toEqual(['OK 0 done (request #up-1 had already been applied)']);
    expect(await conn.request('list_files g1', 2)).toEqual([
      'OK 1 1 file in group g1',
      `f.bin size=${2 * CHUNK_SIZE} seeders=0`,
    ]);
  });

  it('resumes a session by its token after a restart, until logout revokes it', async () => {
    const first = await LineSocket.open(port);
    sockets.push(first);
    await first.request('create_user alice pw');
    const [, tokenLine] = await first.request('login alice pw', 3);
    const token = tokenLine.slice('session_token:'.length);
    for (const s of sockets.splice(0)) s.destroy();
    await app.close();

    await start();
    const conn = await LineSocket.open(port);
    sockets.push(conn);
    expect(await conn.request(`resume ${token}`)).toEqual(['OK 0 resumed the session of alice']);
    expect(await conn.request('logout')).toEqual(['OK 0 alice logged out']);
    expect(await conn.request(`resume ${token}`)).toEqual([expect.stringMatching(/^ERR UNKNOWN_SESSION /)]);
  });

  it('reads a long inline upload_file line only after login, and stores every hash of it', async () => {
    const hashes = chunkList(20_000, 'inline'); // an 820 KB line
    const line = (path: string, list = hashes) =>
      `upload_file g1 ${path} ${list.length * CHUNK_SIZE} ${sha1(path)} ${list.join(',')} 7001\n`;
    const stranger = await LineSocket.open(port);
    sockets.push(stranger);
    stranger.write(line('/s/f.bin'));
    expect(await stranger.readLines(1)).toEqual([expect.stringMatching(/^ERR LINE_TOO_LONG /)]);

    const { alice, bob } = await team();
    const bad = hashes.slice();
    bad[15_000] = `${bad[15_000].slice(0, 39)}x`;
    alice.write(line('/a/bad.bin', bad) + line('/a/inline.bin') + 'list_files g1\n');
    expect(await alice.readLines(4, 10_000)).toEqual([
      'ERR BAD_FILE_METADATA chunk hash 15000 is not a 40-digit hex SHA-1',
      'OK 0 shared inline.bin in group g1 (20000 chunks)',
      'OK 1 1 file in group g1',
      `inline.bin size=${20_000 * CHUNK_SIZE} seeders=1`,
    ]);
    const [, ...body] = await bob.request('download_file g1 inline.bin', 14, 10_000);
    expect(parseFileMetadata(body).chunkHashes).toEqual(hashes);
  }, 30_000);

  it('answers download_file for a 200,000-chunk file (an 8 MB reply) quickly', async () => {
    const { alice, bob } = await team();
    alice.write(uploadLines('g1', '/a/huge.iso', 200_000, '7001'));
    expect(await alice.readLines(1, 20_000)).toEqual(['OK 0 shared huge.iso in group g1 (200000 chunks)']);

    const raw = bob.socket;
    raw.pause();
    raw.removeAllListeners('data');
    const chunks: string[] = [];
    let newlines = 0;
    const received = new Promise<void>((resolve) =>
      raw.on('data', (text: string) => {
        chunks.push(text);
        for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) newlines++;
        if (newlines >= 14) resolve();
      }),
    );
    raw.resume();
    raw.write('download_file g1 huge.iso\n');
    await received;
    const [head, ...body] = chunks.join('').split('\n').slice(0, 16);
    expect(head).toBe(`OK 15 huge.iso: ${200_000 * CHUNK_SIZE} bytes, 1 online seeder`);
    expect(parseFileMetadata(body).chunkHashes).toHaveLength(200_000);
  }, 30_000);

  it('lists a partial seeder to an extended member, never in a seed-form member’s seven lines', async () => {
    const { alice, bob } = await team();
    const carol = await LineSocket.open(port, '127.0.0.1', { hello: false }); // the seed form
    sockets.push(carol);
    expect(await carol.request('create_user carol pw')).toEqual(['user carol created']);
    expect(await carol.request('login carol pw')).toEqual(['logged in as carol']);
    expect(await carol.request('join_group g1')).toEqual([expect.stringContaining('g1')]);
    await alice.request('accept_request g1 carol');
    alice.write(uploadLines('g1', '/home/alice/f.bin', 2, '7001'));
    expect(await alice.readLines(1)).toEqual(['OK 0 shared f.bin in group g1 (2 chunks)']);

    expect(await bob.request('partial_seeder g1 f.bin 7654')).toEqual([
      'OK 0 serving the chunks you hold of f.bin in group g1',
    ]);
    const [head, ...body] = await alice.request('download_file g1 f.bin', 16);
    expect(head).toBe(`OK 15 f.bin: ${2 * CHUNK_SIZE} bytes, 1 online seeder`);
    expect(body.slice(9)).toEqual([
      'partial_seeders:bob',
      'partial_seeder_hosts:127.0.0.1',
      'partial_seeder_ports:7654',
      expect.stringMatching(/^partial_seeder_file_paths:[A-Za-z0-9_-]{100,}$/),
      'seeder_fingerprints:-', // both came over plain connections
      'partial_seeder_fingerprints:-',
    ]);

    const seven = await carol.request('download_file g1 f.bin', 7);
    expect(seven.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
      'file_name',
      'file_size',
      'file_hash',
      'chunk_hashes',
      'seeders',
      'seeder_ports',
      'seeder_file_paths',
    ]);
    expect(seven.slice(4)).toEqual([
      'seeders:alice',
      'seeder_ports:7001',
      expect.stringMatching(/^seeder_file_paths:/),
    ]);
    expect(seven.join('\n')).not.toMatch(/bob|7654/);
    // nothing followed the seven lines: the next reply is the answer to the next request, in the seed form
    expect(await carol.request('partial_seeder g1 f.bin 7003')).toEqual([
      'error: partial_seeder needs the extended form: send HELLO p2p-share/2 as the first line',
    ]);

    bob.destroy(); // the partial seeder's session ends with its connection
    await waitUntil(
      async () =>
        (await alice.request('list_seeders g1 f.bin', 13))[0] === 'OK 12 f.bin: 1 online seeder, 0 partial seeders',
      'bob gone from the partial seeders',
    );
  });
});
