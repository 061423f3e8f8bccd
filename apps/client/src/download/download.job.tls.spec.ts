import { ChunkHasher, CHUNK_SIZE, Sha1ChunkHasher } from '@app/chunking';
import { FileMetadata, SeederInfo } from '@app/protocol';
import { Identity, loadOrCreateIdentity } from '@app/tls';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DownloadJob } from './download.job';
import { FakeSeeder, FakeSeederOptions } from './testing/fake-seeder.server';

const sha1 = (b: Buffer) => createHash('sha1').update(b).digest('hex');

/** 6 chunks, the last one short. */
const FILE_SIZE = 5 * CHUNK_SIZE + 777;

describe(`${DownloadJob.name} over TLS`, () => {
  const hasher: ChunkHasher = new Sha1ChunkHasher();
  let data: Buffer;
  let dir: string;
  let ids: string;
  let alice: Identity;
  let mallory: Identity;
  const started: FakeSeeder[] = [];

  const metadata = (seeders: SeederInfo[], partialSeeders: SeederInfo[] = []): FileMetadata => {
    const chunkHashes: string[] = [];
    for (let at = 0; at < data.length; at += CHUNK_SIZE) chunkHashes.push(sha1(data.subarray(at, at + CHUNK_SIZE)));
    return { fileName: 'f.bin', fileSize: data.length, fileHash: sha1(data), chunkHashes, seeders, partialSeeders };
  };
  const seeder = async (options: FakeSeederOptions) => {
    const s = await new FakeSeeder(data, options).start();
    started.push(s);
    return s;
  };
  const info = (userId: string, s: FakeSeeder, fingerprint?: string): SeederInfo => ({
    userId,
    address: { host: '127.0.0.1', port: s.port },
    capability: s.capability,
    ...(fingerprint && { fingerprint }),
  });

  beforeAll(() => {
    data = randomBytes(FILE_SIZE);
    ids = mkdtempSync(join(tmpdir(), 'job-tls-ids-'));
    alice = loadOrCreateIdentity(join(ids, 'alice'), 'alice');
    mallory = loadOrCreateIdentity(join(ids, 'mallory'), 'mallory');
  });
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'job-tls-'));
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  });
  afterAll(() => rmSync(ids, { recursive: true, force: true }));

  it('fetches over TLS from a seeder and a partial seeder listed with fingerprints, in clear from one without', async () => {
    const full = await seeder({ identity: alice });
    const partial = await seeder({ identity: alice, held: [0, 2, 4] });
    const plain = await seeder({});
    const dest = join(dir, 'f.bin');
    const job = new DownloadJob(
      metadata(
        [info('alice', full, alice.fingerprint), info('carl', plain)],
        [info('bob', partial, alice.fingerprint)],
      ),
      dest,
      hasher,
      { inFlightPerSeeder: 1 },
    );
    await job.run();
    expect(readFileSync(dest).equals(data)).toBe(true);
    expect([full.tlsConnections, partial.tlsConnections, plain.tlsConnections]).toEqual([1, 1, 0]);
    expect(partial.bitfieldRequests).toBe(1);
    const tls = Object.fromEntries(job.progress.seeders.map((s) => [s.userId, s.tls]));
    expect(tls).toEqual({ alice: true, bob: true, carl: false });
  });

  it('drops a seeder whose certificate is not the one listed, tells once, sends it nothing, and takes the file from the others', async () => {
    const impostor = await seeder({ identity: mallory });
    const honest = await seeder({ identity: alice });
    const notices: string[] = [];
    const dest = join(dir, 'f.bin');
    const listed = [info('mallory', impostor, alice.fingerprint), info('alice', honest, alice.fingerprint)];
    // the tracker keeps listing it: it is not taken back
    const job = new DownloadJob(metadata(listed), dest, hasher, {
      onNotice: (text) => notices.push(text),
      retryDelayMs: 1,
      renewCapabilities: () => Promise.resolve(listed),
    });
    await job.run();
    expect(readFileSync(dest).equals(data)).toBe(true);
    expect(notices).toEqual([
      `seeder mallory at 127.0.0.1:${impostor.port} presented certificate ${mallory.fingerprint}, ` +
        `not the ${alice.fingerprint} its tracker lists: not used`,
    ]);
    // the handshake, then nothing: no HELLO, no request, and no second try
    expect({ connections: impostor.connections, hellos: impostor.hellos, requests: impostor.requests.length }).toEqual({
      connections: 1,
      hellos: 0,
      requests: 0,
    });
    const dropped = job.progress.seeders.find((s) => s.userId === 'mallory');
    expect(dropped).toMatchObject({
      state: 'dropped',
      retries: 0,
      reason: 'presented a certificate other than the one its tracker lists',
    });
  });

  it('fails the download with the reason when the only seeder is not the one listed', async () => {
    const impostor = await seeder({ identity: mallory });
    const job = new DownloadJob(metadata([info('mallory', impostor, alice.fingerprint)]), join(dir, 'f.bin'), hasher);
    await expect(job.run()).rejects.toThrow(
      /no seeders left: mallory presented a certificate other than the one its tracker lists/,
    );
    expect(impostor.hellos).toBe(0);
  });
});
