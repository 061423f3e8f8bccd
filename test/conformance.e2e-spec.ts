import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { AddressInfo, createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import { randomFile } from './support/files';
import {
  freePort,
  Proc,
  removeDir,
  sleep,
  startClient,
  startTracker,
  tempDir,
  trackerNetwork,
} from './support/processes';
import { fetchSeedChunk, hashFile, SEED_CHUNK_SIZE, SeedClient, SeedMetadata, SeedSeeder } from './support/seed-peers';

const CHUNK = SEED_CHUNK_SIZE;
/** 3.3 chunks: three whole ones and a short last one. */
const THREE_AND_A_BIT = 3 * CHUNK + Math.floor(0.3 * CHUNK);
/** A 100 GiB file's chunk count. */
const HUGE_CHUNKS = 204_800;
/**
 * The bound on tracker 1's peak RSS (VmHWM, since its start) across the
 * 204,800-hash `upload_file` and its `download_file`. The line and the reply
 * are 8.4 MB each; the tracker stores the file, replicates the op to tracker 2
 * and answers by position. Measured: about 145 MiB before and 240-267 MiB after
 * (the `@N` upload of today's extended form peaks about as high); 320 MiB leaves
 * room for a busier garbage collector, and a tracker that held the line as
 * UTF-16 strings, arrays of strings and string-built replies goes well past it.
 */
const HUGE_RSS_BOUND_MIB = 320;

/** How fast the swarm's two first seeders serve (olive, ours, and sam's seed-form one): 8 MiB/s each. */
const SWARM_RATE = '8M';
const SWARM_BYTES_PER_SECOND = 8 * 1024 * 1024;

const sha1 = (data: Buffer | string) => createHash('sha1').update(data).digest('hex');
/** A whole reply that is one readable line: no `OK`/`ERR` framing, no code. */
const ERROR_LINE = /^error: (?!(?:[A-Z]+_)*[A-Z]+ )[^\n]+\n$/;

/** Everything a connection sends back to `line` until it closes (or `timeoutMs`; then `timedOut`). */
function exchange(port: number, line: string, timeoutMs = 8_000): Promise<{ bytes: Buffer; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const pieces: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ bytes: Buffer.concat(pieces), timedOut: true });
    }, timeoutMs);
    socket.on('data', (d: Buffer) => pieces.push(d));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ bytes: Buffer.concat(pieces), timedOut: false });
    });
    socket.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' ? undefined : reject(e)));
    socket.connect(port, '127.0.0.1', () => socket.write(line + '\n'));
  });
}

async function waitUntil(check: () => Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await sleep(100);
  }
}

/** The tracker process's memory figures from /proc, in MiB. */
function memoryMiB(pid: number): { rss: number; hwm: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]);
  return { rss: kib('VmRSS') / 1024, hwm: kib('VmHWM') / 1024 };
}

/**
 * The doubles proven against each other first: a seed client fetching from two
 * seed seeders with hand-made metadata, and reading a tracker's metadata by
 * position however it is split into reads.
 */
describe('the seed-form doubles', () => {
  let dir: string;
  const seeders: SeedSeeder[] = [];
  let fake: Server | undefined;

  beforeAll(() => {
    dir = tempDir('p2p-seed-doubles-');
  });

  afterAll(async () => {
    await Promise.all(seeders.map((s) => s.stop()));
    fake?.close();
    removeDir(dir);
  });

  it('a seed client downloads a 3.3-chunk file from two seed seeders, one chunk per connection, byte for byte', async () => {
    const original = join(dir, 'doubles.bin');
    randomFile(original, THREE_AND_A_BIT);
    copyFileSync(original, join(dir, 'doubles-copy-b.bin'));
    seeders.push(await SeedSeeder.start(), await SeedSeeder.start());
    const { size, hash, chunkHashes } = await hashFile(original);
    expect(size).toBe(THREE_AND_A_BIT);
    expect(hash).toBe(sha1(readFileSync(original)));
    expect(chunkHashes).toHaveLength(4);
    expect(chunkHashes[3]).toBe(sha1(readFileSync(original).subarray(3 * CHUNK)));
    const meta: SeedMetadata = {
      fileName: 'doubles.bin',
      fileSize: size,
      fileHash: hash,
      chunkHashes,
      seeders: ['a', 'b'],
      seederPorts: seeders.map((s) => s.port),
      seederFilePaths: [original, join(dir, 'doubles-copy-b.bin')],
      raw: '',
    };
    const client = await SeedClient.connect(seeders[0].port); // the download itself never uses this connection
    const dest = join(dir, 'doubles-out.bin');
    const got = await client.downloadFile(meta, dest);
    client.close();
    expect(got.failures).toEqual([]);
    expect(got.chunksFrom).toEqual(
      new Map([
        ['a', 2],
        ['b', 2],
      ]),
    );
    expect(readFileSync(dest).equals(readFileSync(original))).toBe(true);
    expect(seeders[0].served.map((s) => s.line).sort()).toEqual([`GET_CHUNK 0 ${original}`, `GET_CHUNK 2 ${original}`]);
    // the last chunk is the short rest of the file; past the end and bad lines get no bytes
    expect((await fetchSeedChunk(seeders[0].port, 3, original, THREE_AND_A_BIT - 3 * CHUNK)).length).toBe(
      THREE_AND_A_BIT - 3 * CHUNK,
    );
    await expect(fetchSeedChunk(seeders[0].port, 4, original, 1)).rejects.toThrow(/closed after 0 of 1 bytes/);
    expect(await exchange(seeders[0].port, 'HELLO p2p-share/2')).toEqual({ bytes: Buffer.alloc(0), timedOut: false });
    // a seeder that sends more than the chunk is caught
    await expect(fetchSeedChunk(seeders[0].port, 0, original, CHUNK - 1)).rejects.toThrow(/1 bytes after the chunk/);
  });

  it('a seed client reads a reply as one read, and metadata by position however it is split', async () => {
    const script: Record<string, string[]> = {
      'create_user x y': ['user x created\n'],
      'download_file g f.bin': [
        'file_name:f.bin\nfile_size:5\nfile_ha',
        'sh:abc\nchunk_hashes:h1\nseeders:u1,u2\nseeder_ports:1,2\n',
        'seeder_file_paths:/a,/b\nlater\n',
      ],
      'download_file g missing': ['error: no file named missing\n'],
    };
    fake = createServer((socket) => {
      let text = '';
      const answer = async (line: string) => {
        for (const piece of script[line] ?? ['error: unknown\n']) {
          await new Promise((r) => socket.write(piece, r));
          await sleep(30); // separate reads on purpose
        }
      };
      socket.on('data', (d: Buffer) => {
        text += d.toString();
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n')) {
          void answer(text.slice(0, nl));
          text = text.slice(nl + 1);
        }
      });
    });
    await new Promise<void>((r) => fake!.listen(0, '127.0.0.1', () => r()));
    const client = await SeedClient.connect((fake.address() as AddressInfo).port);
    expect(await client.send('create_user x y')).toBe('user x created\n');
    const meta = await client.downloadMetadata('g', 'f.bin');
    expect(meta).toMatchObject({
      fileName: 'f.bin',
      fileSize: 5,
      fileHash: 'abc',
      chunkHashes: ['h1'],
      seeders: ['u1', 'u2'],
      seederPorts: [1, 2],
      seederFilePaths: ['/a', '/b'],
    });
    await client.read(); // the line after the seven, left for the next read
    await expect(client.downloadMetadata('g', 'missing')).rejects.toThrow(/error: no file named missing/);
    client.close();
  });
});

interface Ours {
  user: string;
  port: number;
  dir: string;
  proc: Proc;
}

/**
 * A client and a seeder written from README-seed.md alone (test/support/seed-peers.ts)
 * against two real trackers and our real clients: every command of the seed's
 * README in the seed form, files both ways between our seeders and seed-form
 * ones, one swarm of both kinds, and a 100 GiB file's 204,800 inline hashes.
 * Seed clients `sam` (the group's owner), `lee`, `nick` talk to tracker 1,
 * `sue` to tracker 2; our clients `olive` and `oscar` use tracker 1.
 */
describe('conformance: the seed form against real trackers and clients', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  const trackers: Proc[] = [];
  const ours = new Map<string, Ours>();
  const seeds = new Map<string, SeedClient>();
  const seedSeeders = new Map<string, SeedSeeder>();
  const dirs = new Map<string, string>();

  const seed = (user: string) => seeds.get(user)!;
  const our = (user: string) => ours.get(user)!;
  const dirOf = (user: string) => dirs.get(user)!;

  async function startOurs(user: string, extra: string[] = []): Promise<Ours> {
    const dir = join(net.dir, user);
    mkdirSync(dir, { recursive: true });
    dirs.set(user, dir);
    const port = await freePort();
    const proc = startClient(`127.0.0.1:${port}`, net.infoFile, ['--data-dir', join(dir, '.state'), ...extra], dir);
    const o = { user, port, dir, proc };
    ours.set(user, o);
    await proc.run(`create_user ${user} pw-${user}`, /created/, 20_000);
    await proc.run(`login ${user} pw-${user}`, /logged in as/, 20_000);
    return o;
  }

  async function startSeed(user: string, tracker: number): Promise<SeedClient> {
    const dir = join(net.dir, user);
    mkdirSync(dir, { recursive: true });
    dirs.set(user, dir);
    const c = await SeedClient.connect(net.ports[tracker - 1]);
    seeds.set(user, c);
    expect(await c.createUser(user, `pw-${user}`)).toBe(`user ${user} created\n`);
    // the seed's login reply is its message alone: no session token, no capability key
    expect(await c.login(user, `pw-${user}`)).toBe(`logged in as ${user}\n`);
    return c;
  }

  /** `list_files` of a seed client, as `name -> seeders`. */
  async function seedersListed(user: string, group: string): Promise<Map<string, number>> {
    const text = await seed(user).send(`list_files ${group}`);
    return new Map([...text.matchAll(/^(\S+) size=\d+ seeders=(\d+)$/gm)].map((m) => [m[1], Number(m[2])]));
  }

  /** Asserts that the seed client's last reply was all it got: nothing arrives after it (checked with its next one). */
  function nothingUnread(user: string): void {
    expect(seed(user).unread).toBe('');
  }

  beforeAll(async () => {
    net = await trackerNetwork(2);
    trackers.push(...[1, 2].map((n) => startTracker(net.infoFile, n, join(net.dir, `tracker-${n}`))));
    await Promise.all(trackers.map((t) => t.waitFor(/listening on/, 30_000)));
    await startSeed('sam', 1);
    await startSeed('sue', 2);
    // sam's seeder serves the swarm as fast as olive, so that both have chunks to give
    seedSeeders.set('sam', await SeedSeeder.start(SWARM_BYTES_PER_SECOND));
    seedSeeders.set('sue', await SeedSeeder.start());
    await startOurs('olive', ['--upload-limit', SWARM_RATE]);
    await startOurs('oscar');
  }, 60_000);

  afterAll(async () => {
    seeds.forEach((c) => c.close());
    await Promise.all([...seedSeeders.values()].map((s) => s.stop()));
    await Promise.all([...ours.values()].map((o) => o.proc.stop('SIGKILL')));
    await Promise.all(trackers.map((t) => t.stop('SIGKILL')));
    removeDir(net.dir);
  });

  it('groups: create, join, list requests, accept, leave and list, each reply readable text, seen from the other tracker and from our client', async () => {
    const sam = seed('sam');
    const sue = seed('sue');
    expect(await sam.send('create_group club')).toBe('group club created; you own it\n');
    // sue is on tracker 2: the group reaches her by sync
    await waitUntil(async () => /^club owner=sam/m.test(await sue.send('list_groups')), 'club listed on tracker 2');
    expect(await sue.send('list_groups')).toBe('1 group\nclub owner=sam members=1 you=none\n');
    expect(await sue.send('join_group club')).toBe('asked to join group club; waiting for the owner to accept\n');
    await waitUntil(async () => /^sue$/m.test(await sam.send('list_requests club')), 'sue asked, on tracker 1');
    expect(await sam.send('list_requests club')).toBe('1 pending request for group club\nsue\n');
    expect(await sam.send('accept_request club sue')).toBe('sue is now a member of group club\n');
    expect(await sam.send('list_requests club')).toBe('no pending requests for group club\n');

    // our clients join the seed client's group and see it as the seed client does
    for (const user of ['olive', 'oscar']) {
      await our(user).proc.run('join_group club', /asked to join group club/);
      expect(await sam.send(`accept_request club ${user}`)).toBe(`${user} is now a member of group club\n`);
    }
    await waitUntil(
      async () => /you=member/.test(await sue.send('list_groups')) && /members=4/.test(await sue.send('list_groups')),
      'four members on tracker 2',
    );
    expect(await sue.send('list_groups')).toBe('1 group\nclub owner=sam members=4 you=member\n');
    expect(await our('olive').proc.run('list_groups', /club owner=sam/)).toMatch(/club owner=sam members=4 you=member/);

    // lee asks and withdraws, then joins and leaves; sam sees each step
    const lee = await startSeed('lee', 1);
    expect(await lee.send('join_group club')).toBe('asked to join group club; waiting for the owner to accept\n');
    expect(await lee.send('leave_group club')).toBe('withdrew your request to join group club\n');
    expect(await sam.send('list_requests club')).toBe('no pending requests for group club\n');
    expect(await lee.send('join_group club')).toBe('asked to join group club; waiting for the owner to accept\n');
    expect(await sam.send('accept_request club lee')).toBe('lee is now a member of group club\n');
    expect(await sam.send('list_groups')).toBe('1 group\nclub owner=sam members=5 you=owner\n');
    expect(await lee.send('leave_group club')).toBe('left group club\n');
    expect(await sam.send('list_groups')).toBe('1 group\nclub owner=sam members=4 you=owner\n');
    expect(await lee.send('list_groups')).toBe('1 group\nclub owner=sam members=4 you=none\n');
  });

  it('errors are one readable line, `error: <message>`, and no extension reaches a seed-form connection', async () => {
    const sam = seed('sam');
    const nick = await SeedClient.connect(net.ports[0]);
    seeds.set('nick', nick);
    const cases: [SeedClient, string, RegExp][] = [
      [sam, 'create_group club', /already exists/],
      [sam, 'frobnicate', /unknown command/],
      [sam, 'list_files', /.+/],
      [sam, 'accept_request club nobody', /.+/],
      [sam, 'download_file club no-such.bin', /no-such\.bin/],
      [sam, '#c1 list_groups', /unknown command/], // request ids are an extension
      [sam, 'HELLO p2p-share/2', /unknown command 'HELLO'/], // HELLO only as a connection's first line
      [nick, 'list_groups', /you must log in first/],
      [nick, 'login sam wrong', /wrong user id or password/],
    ];
    for (const [client, line, message] of cases) {
      const reply = await client.send(line);
      expect({ line, reply, oneErrorLine: ERROR_LINE.test(reply) }).toEqual({ line, reply, oneErrorLine: true });
      expect(reply).toMatch(message);
    }
    // the connection stays usable and in the seed form
    expect(await sam.send('list_groups')).toBe('1 group\nclub owner=sam members=4 you=owner\n');
    expect(await nick.createUser('nick', 'pw-nick')).toBe('user nick created\n');
    expect(await nick.login('nick', 'pw-nick')).toBe('logged in as nick\n');
  });

  it('a seed client, as a member, downloads a 3.3-chunk file from our seeder: metadata by position, a capability as the path, raw bytes', async () => {
    const olive = our('olive');
    const original = join(olive.dir, 'f.bin');
    randomFile(original, THREE_AND_A_BIT);
    await olive.proc.run('upload_file club f.bin', /shared f\.bin in group club \(4 chunks\)/);
    const sam = seed('sam');
    expect(await sam.send('list_files club')).toBe(`1 file in group club\nf.bin size=${THREE_AND_A_BIT} seeders=1\n`);

    const dest = join(dirOf('sam'), 'f-copy.bin');
    const meta = await sam.downloadMetadata('club', 'f.bin', dest);
    nothingUnread('sam');
    const { hash, chunkHashes } = await hashFile(original);
    expect(meta.raw.split('\n')).toHaveLength(8); // seven lines, each ending in a newline
    expect(meta).toMatchObject({
      fileName: 'f.bin',
      fileSize: THREE_AND_A_BIT,
      fileHash: hash,
      chunkHashes,
      seeders: ['olive'],
      seederPorts: [olive.port],
    });
    // our seeder's item is a download capability for sam, never the path
    expect(meta.seederFilePaths).toEqual([expect.stringMatching(/^[A-Za-z0-9_-]{100,}$/)]);

    const got = await sam.downloadFile(meta, dest);
    expect(got.failures).toEqual([]);
    expect(got.chunksFrom).toEqual(new Map([['olive', 4]]));
    expect(readFileSync(dest).equals(readFileSync(original))).toBe(true);
    // the next reply on sam's connection is clean: nothing trailed the seven lines
    expect(await sam.send('list_requests club')).toBe('no pending requests for group club\n');

    // what nobody without a capability gets from our seeder: no bytes, the connection closed
    const nick = seed('nick');
    expect(await nick.send('download_file club f.bin')).toMatch(ERROR_LINE);
    for (const line of [
      `GET_CHUNK 0 ${original}`,
      'GET_CHUNK 0 /etc/passwd',
      `GET_CHUNK 4 ${meta.seederFilePaths[0]}`, // past the end, with a good capability
      'GET_CHUNK zero f.bin',
      'list_groups',
    ]) {
      expect({ line, answer: await exchange(olive.port, line) }).toEqual({
        line,
        answer: { bytes: Buffer.alloc(0), timedOut: false },
      });
    }
  });

  it('our client downloads a 3.3-chunk file from a seed-form seeder registered on the other tracker (its item is the path)', async () => {
    const sue = seed('sue');
    const seeder = seedSeeders.get('sue')!;
    const original = join(dirOf('sue'), 'g.bin');
    randomFile(original, THREE_AND_A_BIT);
    expect(await sue.uploadFile('club', original, seeder.port)).toBe('shared g.bin in group club (4 chunks)\n');

    // the seed seeder is listed everywhere with its path; sam (tracker 1) reads it by position
    const sam = seed('sam');
    await waitUntil(async () => (await seedersListed('sam', 'club')).get('g.bin') === 1, 'g.bin online on tracker 1');
    const meta = await sam.downloadMetadata('club', 'g.bin');
    expect(meta).toMatchObject({ seeders: ['sue'], seederPorts: [seeder.port], seederFilePaths: [original] });

    const olive = our('olive');
    await olive.proc.run('download_file club g.bin g-copy.bin', /downloading g\.bin/);
    const done = await olive.proc.waitFor(/downloaded \[club\] g\.bin.*|error: download of g\.bin.*/, 30_000);
    expect(done).toMatch(/downloaded \[club\] g\.bin .*chunks from sue 4/);
    expect(readFileSync(join(olive.dir, 'g-copy.bin')).equals(readFileSync(original))).toBe(true);
    // one request per connection, in the seed's words, each answered with the chunk
    expect(seeder.served.length).toBeGreaterThanOrEqual(4);
    for (const s of seeder.served) {
      expect(s.line).toMatch(new RegExp(`^GET_CHUNK [0-3] ${original}$`));
      expect({ line: s.line, extraBytes: s.extraBytes }).toEqual({ line: s.line, extraBytes: 0 });
    }
    expect(new Set(seeder.served.filter((s) => s.bytes > 0).map((s) => s.line)).size).toBe(4);
  });

  it('one swarm: our client and a seed client download one file from both kinds of seeder at once, and each seeds it after', async () => {
    const CHUNKS = 16;
    const olive = our('olive');
    const oscar = our('oscar');
    const sam = seed('sam');
    const sue = seed('sue');
    const original = join(olive.dir, 'h.bin');
    randomFile(original, CHUNKS * CHUNK);
    const samCopy = join(dirOf('sam'), 'h.bin');
    copyFileSync(original, samCopy);
    const samSeeder = seedSeeders.get('sam')!;

    await olive.proc.run('upload_file club h.bin', /shared h\.bin in group club \(16 chunks\)/);
    expect(await sam.uploadFile('club', samCopy, samSeeder.port)).toBe(
      'shared h.bin in group club (16 chunks); it was already shared, you seed it too now\n',
    );
    // sue, on tracker 2, waits until both seeders reached it
    let meta: SeedMetadata | undefined;
    await waitUntil(async () => {
      meta = await sue.downloadMetadata('club', 'h.bin');
      return meta.seeders.length === 2;
    }, 'two seeders of h.bin on tracker 2');
    const paths = new Map(meta!.seeders.map((s, i) => [s, meta!.seederFilePaths[i]]));
    expect(paths.get('sam')).toBe(samCopy);
    expect(paths.get('olive')).toMatch(/^[A-Za-z0-9_-]{100,}$/);

    const sueDest = join(dirOf('sue'), 'h-copy.bin');
    const [ourEnd, seedGot] = await Promise.all([
      oscar.proc
        .run('download_file club h.bin h-copy.bin', /downloading h\.bin .* from 2 seeders/)
        .then(() => oscar.proc.waitFor(/downloaded \[club\] h\.bin.*|error: download of h\.bin.*/, 40_000)),
      sue.downloadFile(meta!, sueDest),
    ]);

    // our client took chunks from both kinds of seeder
    expect(ourEnd).toMatch(
      /downloaded \[club\] h\.bin .*chunks from (olive [1-9]\d*, sam [1-9]\d*|sam [1-9]\d*, olive [1-9]\d*)/,
    );
    expect(readFileSync(join(oscar.dir, 'h-copy.bin')).equals(readFileSync(original))).toBe(true);

    console.log(
      `swarm: oscar (ours) ${/chunks from [^;\n]*/.exec(ourEnd)![0]}; sue (seed form) chunks from ${[...seedGot.chunksFrom].map((e) => e.join(' ')).join(', ')}`,
    );
    expect(seedGot.failures).toEqual([]);
    expect(seedGot.chunksFrom).toEqual(
      new Map([
        ['olive', 8],
        ['sam', 8],
      ]),
    );
    expect(readFileSync(sueDest).equals(readFileSync(original))).toBe(true);

    // sue seeds her copy with the seed's new_seeder; our client seeds its own by itself
    const sueSeeder = seedSeeders.get('sue')!;
    expect(await sue.send(`new_seeder club h.bin ${sueDest} ${sueSeeder.port}`)).toBe(
      'now seeding h.bin in group club\n',
    );
    await waitUntil(async () => (await seedersListed('sam', 'club')).get('h.bin') === 4, 'four seeders of h.bin');
    const after = await sam.downloadMetadata('club', 'h.bin');
    const sueAt = after.seeders.indexOf('sue');
    expect(after.seederPorts[sueAt]).toBe(sueSeeder.port);
    expect(after.seederFilePaths[sueAt]).toBe(sueDest);
    // and what sue seeds is served: a chunk of her copy through her item
    const chunk7 = await fetchSeedChunk(sueSeeder.port, 7, after.seederFilePaths[sueAt], CHUNK);
    expect(sha1(chunk7)).toBe(after.chunkHashes[7]);

    // stop_share takes sam off; the others still seed
    expect(await sam.send('stop_share club h.bin')).toBe('stopped sharing h.bin in group club\n');
    expect(await oscar.proc.run('list_files club', /h\.bin size=\d+ seeders=\d+/)).toMatch(
      /h\.bin size=8388608 seeders=3/,
    );
    expect((await sam.downloadMetadata('club', 'h.bin')).seeders.sort()).toEqual(['olive', 'oscar', 'sue']);
  });

  it(`takes an upload_file with ${HUGE_CHUNKS} inline hashes from a logged-in seed client, tracker VmHWM under ${HUGE_RSS_BOUND_MIB} MiB, and gives all back by position`, async () => {
    const sam = seed('sam');
    const tracker = trackers[0];
    const before = memoryMiB(tracker.child.pid!);
    const hashes = Array.from({ length: HUGE_CHUNKS }, (_, i) => sha1(`chunk ${i}`));
    const fileHash = sha1(hashes.join(''));
    const path = join(dirOf('sam'), 'huge.bin'); // never read: only the metadata travels
    const size = HUGE_CHUNKS * CHUNK; // 100 GiB
    // before login the line limit stands: the line is refused, the connection stays
    const anon = await SeedClient.connect(net.ports[0]);
    seeds.set('anon', anon);
    expect(await anon.uploadMetadata('club', path, size, fileHash, hashes, 7000)).toMatch(
      /^error: line longer than \d+ bytes ignored\n$/,
    );
    expect(await anon.send('list_groups')).toBe('error: you must log in first\n');
    const started = Date.now();
    expect(await sam.uploadMetadata('club', path, size, fileHash, hashes, seedSeeders.get('sam')!.port)).toBe(
      `shared huge.bin in group club (${HUGE_CHUNKS} chunks)\n`,
    );
    const uploadMs = Date.now() - started;
    const uploaded = memoryMiB(tracker.child.pid!);

    const meta = await sam.downloadMetadata('club', 'huge.bin');
    nothingUnread('sam');
    expect(meta.fileName).toBe('huge.bin');
    expect(meta.fileSize).toBe(size);
    expect(meta.fileHash).toBe(fileHash);
    expect(meta.chunkHashes.length).toBe(HUGE_CHUNKS);
    expect(meta.chunkHashes.join(',') === hashes.join(',')).toBe(true);
    expect(meta.seederFilePaths).toEqual([path]);
    const after = memoryMiB(tracker.child.pid!);
    console.log(
      `204,800-hash upload_file: ${(uploadMs / 1000).toFixed(1)} s; tracker 1 VmHWM ${before.hwm.toFixed(0)} MiB, ` +
        `${uploaded.hwm.toFixed(0)} after the upload, ${after.hwm.toFixed(0)} after download_file ` +
        `(VmRSS ${before.rss.toFixed(0)} -> ${after.rss.toFixed(0)} MiB); ` +
        `tracker 2 VmHWM ${memoryMiB(trackers[1].child.pid!).hwm.toFixed(0)} MiB`,
    );
    expect(after.hwm).toBeLessThan(HUGE_RSS_BOUND_MIB);

    expect(await sam.send('stop_share club huge.bin')).toBe(
      'stopped sharing huge.bin in group club; nobody else seeds it, so it is no longer listed\n',
    );
  });

  it('logout ends the seed client session: its commands are refused and its seed-form seeder goes offline', async () => {
    const sue = seed('sue');
    const sam = seed('sam');
    await waitUntil(
      async () => (await seedersListed('sam', 'club')).get('g.bin') === 2,
      'g.bin seeded by sue and olive',
    );
    expect(await sue.send('logout')).toBe('sue logged out\n');
    expect(await sue.send('list_groups')).toMatch(ERROR_LINE);
    await waitUntil(async () => (await seedersListed('sam', 'club')).get('g.bin') === 1, 'sue offline on tracker 1');
    expect((await sam.downloadMetadata('club', 'g.bin')).seeders).toEqual(['olive']);
    // and she logs in again on the same connection
    expect(await sue.login('sue', 'pw-sue')).toBe('logged in as sue\n');
  });
});
