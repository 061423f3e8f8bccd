import { CHUNK_SIZE } from '@app/chunking';
import { parseFileMetadata, Reply } from '@app/protocol';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { FakeSeeder } from '../apps/client/src/download/testing/fake-seeder.server';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  RawConn,
  removeDir,
  signUp,
  signUpAndJoin,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
/**
 * Connections the fake seeder answers `ERR BUSY` before it serves: with the client's retry backoff (200 ms doubling
 * to 5 s, each cut by up to half) some 10-20 s.
 */
const BUSY_CONNECTIONS = 8;

/**
 * Downloads that ride out trouble, between real client processes and a real
 * tracker: a seeder that turns the downloader away for longer than a lost
 * seeder is given, a seeder that answers `ERR BUSY` to its first connections
 * (an in-process fake registered with the tracker), the only seeder killed
 * mid-download and another coming online, and a seeder that joins
 * mid-download. Seeders are slowed down with their upload limit, not with big
 * files.
 */
describe('downloads that ride out busy and vanishing seeders', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers = new Map<string, ClientPeer>();
  let carol: Proc;
  let carolDir: string;

  /** Starts a client on a free port with its own folder and data directory. */
  async function launch(name: string, extra: string[] = [], port?: number): Promise<ClientPeer> {
    const peer = startClientIn(net.dir, net.infoFile, name, port ?? (await freePort()), extra);
    peers.set(name, peer);
    return peer;
  }

  /** A new user on a new client, logged in and let into team by carol. */
  async function member(name: string, extra: string[] = []): Promise<ClientPeer> {
    const peer = await launch(name, extra);
    await signUpAndJoin(peer.proc, name, carol);
    return peer;
  }

  /** carol's `show_downloads` line for `fileName`. */
  async function carolsRow(fileName: string): Promise<string> {
    const row = new RegExp(`^\\[\\w\\] \\[team\\] ${fileName.replace('.', '\\.')}.*$`, 'm');
    return row.exec(await carol.run('show_downloads', row))![0];
  }

  /** Waits until carol's download of `fileName` has some bytes but is still running. */
  async function midTransfer(fileName: string): Promise<void> {
    await waitUntil(async () => {
      const row = await carolsRow(fileName);
      if (!row.startsWith('[D]')) throw new Error(`${fileName} is no longer downloading: ${row}`);
      return Number(/ ([\d.]+)%/.exec(row)![1]) > 0;
    });
  }

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    const c = await launch('carol');
    carol = c.proc;
    carolDir = c.dir;
    await signUp(carol, 'carol');
    await carol.run('create_group team', /created/);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...peers.values()].map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('completes from a seeder that turns it away for longer than a lost seeder is given (30 s)', async () => {
    // one connection per address at most, and a connection may wait for ever for its first request
    const alice = await member('alice', ['--max-peer-conns-per-ip', '1', '--peer-request-timeout', '0']);
    const original = join(alice.dir, 'busy.bin');
    randomFile(original, 3 * MB);
    await alice.proc.run('upload_file team busy.bin', /shared busy\.bin/);
    // the test holds the one connection 127.0.0.1 may have: carol, on the same address, is turned away
    const holder = new Socket();
    holder.on('error', () => undefined);
    await new Promise<void>((resolve) => holder.connect(alice.port, '127.0.0.1', resolve));

    await carol.run('download_file team busy.bin busy-copy.bin', /downloading busy\.bin .* from 1 seeder/);
    await waitUntil(async () => /waiting for a seeder \(alice busy, retry in /.test(await carolsRow('busy.bin')));
    const busySince = Date.now();
    // the old rule dropped a seeder after 30 s without a chunk, and the download failed with it
    await waitUntil(async () => {
      const row = await carolsRow('busy.bin');
      expect(row).toMatch(/^\[D\] \[team\] busy\.bin 0\.0% .*, waiting for a seeder \(alice (busy|connecting)/);
      expect(row).toMatch(/gives up in \d+m \d+s without progress\)$/);
      return Date.now() - busySince > 31_000;
    }, 60_000);
    holder.destroy();

    const done = await carol.waitFor(/^downloaded \[team\] busy\.bin.*$/m, 60_000);
    console.log(`busy for ${((Date.now() - busySince) / 1000).toFixed(1)} s, then: ${lineOf(done)}`);
    expect(done).toMatch(/chunks from alice 6/);
    expect(done).toMatch(/retried alice \d+ times \(last: refused the connection \(TOO_MANY_CONNECTIONS\)\)/);
    expect(done).not.toMatch(/dropped/);
    expect(await sha1File(join(carolDir, 'busy-copy.bin'))).toBe(await sha1File(original));
  }, 120_000);

  it(`completes from a seeder that answers ERR BUSY to its first ${BUSY_CONNECTIONS} connections`, async () => {
    const dir = join(net.dir, 'hal');
    mkdirSync(dir, { recursive: true });
    const original = join(dir, 'refused.bin');
    randomFile(original, 3 * MB + 12_345);
    const data = readFileSync(original);
    const chunkHashes: string[] = [];
    for (let at = 0; at < data.length; at += CHUNK_SIZE) chunkHashes.push(sha1(data.subarray(at, at + CHUNK_SIZE)));
    const fileHash = sha1(data);
    expect(fileHash).toBe(await sha1File(original));

    // hal's seeder: an in-process chunk server serving the file's bytes once it stops answering ERR BUSY
    const fake = await new FakeSeeder(data, { busyConnections: BUSY_CONNECTIONS, acceptAny: true }).start();
    // hal's tracker connection began with the HELLO: the tracker lists hal as a p2p-share/2 seeder
    const hal = await RawConn.open(net.ports[0]);
    try {
      ok(await hal.request('create_user hal pw-hal'));
      ok(await hal.request('login hal pw-hal'));
      ok(await hal.request('join_group team'));
      await carol.run('accept_request team hal', /now a member/);
      const shared = ok(
        await hal.request(
          `upload_file team ${original} ${data.length} ${fileHash} ${chunkHashes.join(',')} ${fake.port}`,
        ),
      );
      expect(shared.message).toBe(`shared refused.bin in group team (${chunkHashes.length} chunks)`);
      const listed = ok(await hal.request('download_file team refused.bin'));
      expect(listed.lines).toContain('seeder_protocols:p2p-share/2');
      expect(parseFileMetadata(listed.lines).seeders).toEqual([
        expect.objectContaining({ userId: 'hal', address: { host: '127.0.0.1', port: fake.port } }),
      ]);

      await carol.run('download_file team refused.bin refused-copy.bin', /downloading refused\.bin .* from 1 seeder/);
      // while the fake still turns every connection away, carol's row says she waits for hal, busy
      let busyRow = '';
      await waitUntil(async () => {
        const row = await carolsRow('refused.bin');
        if (!row.startsWith('[D]')) throw new Error(`refused.bin is no longer downloading: ${row}`);
        if (!/waiting for a seeder \(hal busy, retry in /.test(row)) return false;
        busyRow = row;
        return true;
      });
      expect(fake.requests).toHaveLength(0);
      expect(fake.connections).toBeLessThanOrEqual(BUSY_CONNECTIONS);
      expect(busyRow).toMatch(/^\[D\] \[team\] refused\.bin 0\.0% .*, waiting for a seeder \(hal busy, retry in /);

      const done = await carol.waitFor(/^downloaded \[team\] refused\.bin.*$/m, 90_000);
      const busyFor = (fake.connectedAt[BUSY_CONNECTIONS] - fake.connectedAt[0]) / 1000;
      console.log(`ERR BUSY for ${busyFor.toFixed(1)} s, then: ${lineOf(done)}`);
      // the backoff's shortest waits for that many connections add up to over 10 s
      expect(busyFor).toBeGreaterThan(8);
      expect(await sha1File(join(carolDir, 'refused-copy.bin'))).toBe(fileHash);
      // every connection after the busy ones began with our HELLO: the rest were answered ERR BUSY
      const busyAnswers = fake.connections - fake.hellos;
      expect(busyAnswers).toBe(BUSY_CONNECTIONS);
      expect(fake.hellos).toBeGreaterThanOrEqual(1);
      expect(new Set(fake.indexes)).toEqual(new Set(chunkHashes.map((_, i) => i)));
      expect(done).toMatch(new RegExp(`chunks from hal ${chunkHashes.length}(;|$)`, 'm'));
      expect(done).toMatch(
        new RegExp(`retried hal ${busyAnswers} times \\(last: refused the connection \\(BUSY\\)\\)`),
      );
      expect(done).not.toMatch(/dropped/);
    } finally {
      hal.close();
      await fake.stop();
    }
  }, 150_000);

  it('waits when its only seeder is killed, and completes from a seeder that comes online later', async () => {
    const erin = await member('erin', ['--upload-limit', '2M']);
    const bob = await member('bob');
    const original = join(erin.dir, 'gone.bin');
    randomFile(original, 12 * MB);
    await erin.proc.run('upload_file team gone.bin', /shared gone\.bin/);
    // bob fetched the file earlier and shares it, but is logged out when carol starts
    await bob.proc.run('download_file team gone.bin .', /downloading gone\.bin/);
    await bob.proc.waitFor(/^downloaded \[team\] gone\.bin.*$/m, 60_000);
    await bob.proc.run('logout', /logged out/);

    await carol.run('download_file team gone.bin gone-copy.bin', /downloading gone\.bin .* from 1 seeder/);
    await midTransfer('gone.bin');
    await erin.proc.stop('SIGKILL');
    await waitUntil(async () =>
      /^\[D\] \[team\] gone\.bin [\d.]+% .*, waiting for a seeder \(erin .*(asked|asking) the tracker/m.test(
        await carolsRow('gone.bin'),
      ),
    );

    await bob.proc.run('login bob pw-bob', /logged in/);
    await bob.proc.waitFor(/seeding 1 file again/);
    const done = await carol.waitFor(/^downloaded \[team\] gone\.bin.*$/m, 90_000);
    console.log(lineOf(done));
    const from = /chunks from ([^;\n]*)/.exec(done)![1];
    expect(from).toMatch(/erin \d+/);
    expect(Number(/bob (\d+)/.exec(from)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(await sha1File(join(carolDir, 'gone-copy.bin'))).toBe(await sha1File(original));
    // no second download_file: the one download found bob by itself
    expect(carol.stdout.match(/^downloading gone\.bin/gm)).toHaveLength(1);
    expect(readdirSync(carolDir).filter((f) => f.startsWith('gone'))).toEqual(['gone-copy.bin']);
  }, 150_000);

  it('uses a seeder that starts sharing the file mid-download', async () => {
    const frank = await member('frank', ['--upload-limit', '1M']);
    const gina = await member('gina');
    const original = join(frank.dir, 'join.bin');
    randomFile(original, 40 * MB);
    await frank.proc.run('upload_file team join.bin', /shared join\.bin/);

    await carol.run('download_file team join.bin join-copy.bin', /downloading join\.bin .* from 1 seeder/);
    await midTransfer('join.bin');
    copyFileSync(original, join(gina.dir, 'join.bin'));
    await gina.proc.run('upload_file team join.bin', /shared join\.bin/);
    // carol asks the tracker for seeders every 30 s while she downloads: at 1 MB/s from frank, well before the end
    const done = await carol.waitFor(/^downloaded \[team\] join\.bin.*$/m, 90_000);
    console.log(lineOf(done));
    const from = /chunks from ([^;\n]*)/.exec(done)![1];
    expect(Number(/frank (\d+)/.exec(from)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(Number(/gina (\d+)/.exec(from)?.[1] ?? 0)).toBeGreaterThan(0);
    expect(await sha1File(join(carolDir, 'join-copy.bin'))).toBe(await sha1File(original));
  }, 150_000);
});

const sha1 = (data: Buffer) => createHash('sha1').update(data).digest('hex');

const ok = (reply: Reply): Extract<Reply, { ok: true }> => {
  if (!reply.ok) throw new Error(`expected OK, got ERR ${reply.code} ${reply.message}`);
  return reply;
};

/** The `downloaded ...` line in `text`. */
const lineOf = (text: string) => /^downloaded .*$/m.exec(text)![0];

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 20_000) =>
  eventually(check, timeoutMs, 'a condition', 200);
