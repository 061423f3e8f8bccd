import { CHUNK_SIZE } from '@app/chunking';
import { FileMetadata, HELLO_LINE, HELLO_REPLY, parseFileMetadata, Reply } from '@app/protocol';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import { FakeSeeder } from '../apps/client/src/download/testing/fake-seeder.server';
import { randomFile, sha1File } from './support/files';
import {
  formGroup,
  freePort,
  Proc,
  RawConn,
  removeDir,
  startClient,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/** 2 full chunks and a short third one. */
const FILE_SIZE = 2 * CHUNK_SIZE + 54_321;

/**
 * The peer protocol of our client's chunk port in both forms, against real
 * processes: a tracker, alice (our client) seeding a file, erin talking to the
 * tracker over a raw socket as a member (extended form: HELLO first, to read
 * the capabilities in `seeder_file_paths`) and to alice's chunk port as a
 * seed-form client would; and bob (our client) downloading from a seeder that
 * speaks only the seed form.
 */
describe('seed-form peers (the chunk port without HELLO)', () => {
  let network: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let alice: Proc;
  let bob: Proc;
  let alicePort: number;
  let aliceDir: string;
  let bobDir: string;
  let file: Buffer;
  let erin: RawConn;
  let seedSeeder: FakeSeeder | undefined;

  /** A tracker connection in the extended form: `RawConn.open` says `HELLO p2p-share/2` and checks the answer. */
  async function extendedTracker(port: number): Promise<RawConn> {
    return RawConn.open(port);
  }

  const ok = (reply: Reply): Extract<Reply, { ok: true }> => {
    if (!reply.ok) throw new Error(`expected OK, got ERR ${reply.code} ${reply.message}`);
    return reply;
  };

  async function metadata(fileName: string): Promise<FileMetadata> {
    return parseFileMetadata(ok(await erin.request(`download_file team ${fileName}`)).lines);
  }

  /** alice's capability for big.bin, as the tracker gives it to erin. */
  async function capability(): Promise<string> {
    const meta = await metadata('big.bin');
    const seeder = meta.seeders.find((s) => s.userId === 'alice');
    if (!seeder) throw new Error('alice is not listed as a seeder of big.bin');
    return seeder.capability;
  }

  beforeAll(async () => {
    network = await trackerNetwork(1);
    tracker = await startTrackerReady(network.infoFile, 1, join(network.dir, 'tracker-data'));
    aliceDir = join(network.dir, 'alice');
    bobDir = join(network.dir, 'bob');
    mkdirSync(aliceDir);
    mkdirSync(bobDir);
    alicePort = await freePort();
    alice = startClient(`127.0.0.1:${alicePort}`, network.infoFile, ['--data-dir', join(aliceDir, '.state')], aliceDir);
    bob = startClient(
      `127.0.0.1:${await freePort()}`,
      network.infoFile,
      ['--data-dir', join(bobDir, '.state')],
      bobDir,
    );
    await formGroup([
      [alice, 'alice'],
      [bob, 'bob'],
    ]);

    erin = await extendedTracker(network.ports[0]);
    ok(await erin.request('create_user erin pw-erin'));
    ok(await erin.request('login erin pw-erin'));
    ok(await erin.request('join_group team'));
    await alice.run('accept_request team erin', /now a member/);

    randomFile(join(aliceDir, 'big.bin'), FILE_SIZE);
    file = readFileSync(join(aliceDir, 'big.bin'));
    await alice.run('upload_file team big.bin', /shared big\.bin in group team \(3 chunks\)/);
  }, 60_000);

  afterAll(async () => {
    erin?.close();
    await seedSeeder?.stop();
    await Promise.all([alice, bob].map((p) => p?.stop('SIGKILL')));
    await tracker?.stop('SIGKILL');
    if (network) removeDir(network.dir);
  });

  it('answers a GET_CHUNK without HELLO with exactly the raw bytes of the chunk, then closes', async () => {
    const cap = await capability();
    for (const index of [0, 1, 2]) {
      const answer = await exchange(alicePort, `GET_CHUNK ${index} ${cap}\n`);
      const expected = file.subarray(index * CHUNK_SIZE, (index + 1) * CHUNK_SIZE);
      expect({ index, length: answer.bytes.length }).toEqual({ index, length: expected.length });
      expect(answer.bytes.equals(expected)).toBe(true);
    }
  });

  it('reads the file chunk by chunk as a seed-form client does: one connection each, hashes checked', async () => {
    const meta = await metadata('big.bin');
    const at = meta.seeders.findIndex((s) => s.userId === 'alice');
    const pieces: Buffer[] = [];
    for (let i = 0; i < meta.chunkHashes.length; i++) {
      const { bytes } = await exchange(
        meta.seeders[at].address.port,
        `GET_CHUNK ${i} ${meta.seeders[at].capability}\n`,
      );
      expect(createHash('sha1').update(bytes).digest('hex')).toBe(meta.chunkHashes[i]);
      pieces.push(bytes);
    }
    expect(createHash('sha1').update(Buffer.concat(pieces)).digest('hex')).toBe(meta.fileHash);
  });

  it('refuses in the seed form with no byte and a close', async () => {
    const cap = await capability();
    const refused = [
      'GET_CHUNK 0 /etc/passwd',
      `GET_CHUNK 0 ${join(aliceDir, 'big.bin')}`,
      `GET_CHUNK 0 ${cap}x`,
      `GET_CHUNK 3 ${cap}`,
      `GET_CHUNK -1 ${cap}`,
      'GET_CHUNK',
      'NOPE',
      'HELLO p2p-share/1',
      '\u0000\u0001binary\u00ff',
    ];
    for (const line of refused) {
      const answer = await exchange(alicePort, `${line}\n`);
      expect({ line, bytes: answer.bytes.length }).toEqual({ line, bytes: 0 });
    }
  });

  it('speaks the extended form after HELLO: OK 0 p2p-share/2, then pipelined chunks with headers', async () => {
    const cap = await capability();
    const { bytes } = await exchange(alicePort, `${HELLO_LINE}\nGET_CHUNK 2 ${cap}\nGET_CHUNK 9 ${cap}\n`, true);
    const last = file.subarray(2 * CHUNK_SIZE);
    const head = Buffer.from(`${HELLO_REPLY}\nCHUNK 2 ${last.length}\n`);
    expect(bytes.subarray(0, head.length).toString('latin1')).toBe(head.toString('latin1'));
    expect(bytes.subarray(head.length, head.length + last.length).equals(last)).toBe(true);
    expect(bytes.subarray(head.length + last.length).toString('latin1')).toMatch(
      /^ERR NO_SUCH_CHUNK no chunk 9 in big\.bin: chunks are 0\.\.2\n$/,
    );
  });

  it('our client downloads from a seeder that speaks only the seed form, found so when it does not answer the HELLO', async () => {
    const data = Buffer.alloc(FILE_SIZE);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 9)) & 0xff;
    seedSeeder = await new FakeSeeder(data, { form: 'seed', acceptAny: true }).start();
    const chunkHashes = [0, 1, 2].map((i) =>
      createHash('sha1')
        .update(data.subarray(i * CHUNK_SIZE, (i + 1) * CHUNK_SIZE))
        .digest('hex'),
    );
    const fileHash = createHash('sha1').update(data).digest('hex');
    // erin registers the file with the seed seeder's port, as a seed-form client would for its own listener
    ok(
      await erin.request(
        `upload_file team /home/erin/seed.bin ${FILE_SIZE} ${fileHash} ${chunkHashes.join(',')} ${seedSeeder.port}`,
      ),
    );
    await bob.run('download_file team seed.bin seed-copy.bin', /downloading seed\.bin/);
    const done = await bob.waitFor(/downloaded \[team\] seed\.bin.*|download of seed\.bin failed.*/, 30_000);
    expect(done).toMatch(/downloaded \[team\] seed\.bin/);
    expect(await sha1File(join(bobDir, 'seed-copy.bin'))).toBe(fileHash);
    // one connection per chunk (and one for the HELLO it did not answer, unless the tracker listed it as seed)
    expect(seedSeeder.requests.map((r) => r.index).sort()).toEqual([0, 1, 2]);
    expect(seedSeeder.connections).toBe(3 + seedSeeder.hellos);
  });
});

/**
 * Sends `request` to a chunk port (then half-closes, with `halfClose`: an
 * extended connection ends only so) and collects every byte until the server
 * ends the connection (fails after 10 s).
 */
function exchange(port: number, request: string, halfClose = false): Promise<{ bytes: Buffer }> {
  return new Promise((resolve, reject) => {
    const pieces: Buffer[] = [];
    const socket: Socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () =>
      halfClose ? socket.end(request) : socket.write(request),
    );
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`the seeder did not close after ${JSON.stringify(request.slice(0, 60))}`));
    }, 10_000);
    socket.on('data', (d: Buffer) => pieces.push(d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('end', () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ bytes: Buffer.concat(pieces) });
    });
  });
}
