import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  removeDir,
  signUp,
  signUpAndJoin,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
/** 24 MiB: 48 chunks; at the seeder's 4 MiB/s a lone download lasts about 6 s. */
const FILE_BYTES = 24 * MB;
const CHUNKS = FILE_BYTES / (512 * 1024);

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 60_000) => eventually(check, timeoutMs);

/** `alice 12, bob 36` of a completion line, as a map. */
function chunkSources(done: string): Map<string, number> {
  const list = /chunks from ([^;\n]*)/.exec(done)?.[1] ?? '';
  return new Map(
    list
      .split(', ')
      .map((item) => /^(\S+) (\d+)$/.exec(item))
      .filter((m): m is RegExpExecArray => m !== null)
      .map((m) => [m[1], Number(m[2])]),
  );
}

/**
 * Swarming between real processes: downloaders serve the chunks they hold while they download. A seeder (alice)
 * capped with its upload limit, downloaders that start while others are partway, one of them killed mid-transfer.
 * Chunks are counted by source from each downloader's completion line, and every copy is checked byte for byte.
 */
describe('swarm: downloaders serve the chunks they hold', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers = new Map<string, ClientPeer>();
  let alice: ClientPeer;

  async function member(name: string, extra: string[] = []): Promise<ClientPeer> {
    const peer = startClientIn(net.dir, net.infoFile, name, await freePort(), extra);
    peers.set(name, peer);
    await signUpAndJoin(peer.proc, name, alice.proc);
    return peer;
  }

  /** `name`'s `show_downloads` row for `fileName`. */
  async function row(peer: ClientPeer, fileName: string): Promise<string> {
    const pattern = new RegExp(`^\\[\\w\\] \\[team\\] ${fileName.replace('.', '\\.')}.*$`, 'm');
    return pattern.exec(await peer.proc.run('show_downloads', pattern))![0];
  }

  const percent = (text: string) => Number(/ ([\d.]+)%/.exec(text)?.[1] ?? 'NaN');

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    alice = startClientIn(net.dir, net.infoFile, 'alice', await freePort(), ['--upload-limit', '4M']);
    peers.set('alice', alice);
    await signUp(alice.proc, 'alice');
    await alice.proc.run('create_group team', /created/);
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...peers.values()].map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('gives a downloader that starts when another is halfway chunks from that other one', async () => {
    const original = join(alice.dir, 'half.bin');
    randomFile(original, FILE_BYTES);
    await alice.proc.run('upload_file team half.bin', /shared half\.bin/);
    const bob = await member('bob');
    const carol = await member('carol');

    await bob.proc.run('download_file team half.bin half.bin', /downloading half\.bin .* from 1 seeder/);
    await waitUntil(async () => percent(await row(bob, 'half.bin')) >= 50);
    await carol.proc.run(
      'download_file team half.bin half.bin',
      /downloading half\.bin .* from 1 seeder and 1 partial seeder/,
    );

    const carolDone = await carol.proc.waitFor(/^downloaded \[team\] half\.bin.*$/m, 120_000);
    const bobDone = await bob.proc.waitFor(/^downloaded \[team\] half\.bin.*$/m, 120_000);
    console.log(
      `bob:   ${/chunks from [^;\n]*/.exec(bobDone)![0]}\ncarol: ${/chunks from [^;\n]*/.exec(carolDone)![0]}`,
    );
    const fromCarol = chunkSources(carolDone);
    // bob held half the file when carol started, and alice's upload is capped: carol takes a good part from bob
    expect(fromCarol.get('bob') ?? 0).toBeGreaterThanOrEqual(CHUNKS / 4);
    expect((fromCarol.get('bob') ?? 0) + (fromCarol.get('alice') ?? 0)).toBe(CHUNKS);
    const want = await sha1File(original);
    expect(await sha1File(join(bob.dir, 'half.bin'))).toBe(want);
    expect(await sha1File(join(carol.dir, 'half.bin'))).toBe(want);
    for (const p of [bob, carol]) expect(existsSync(join(p.dir, 'half.bin.part'))).toBe(false);
  }, 180_000);

  it('costs nothing but time when a partial seeder goes away mid-transfer', async () => {
    const original = join(alice.dir, 'gone.bin');
    randomFile(original, FILE_BYTES);
    await alice.proc.run('upload_file team gone.bin', /shared gone\.bin/);
    // dave serves slowly, so that erin is still fetching from him when he dies
    const dave = await member('dave', ['--upload-limit', '1M']);
    const erin = await member('erin');

    await dave.proc.run('download_file team gone.bin gone.bin', /downloading gone\.bin/);
    await waitUntil(async () => percent(await row(dave, 'gone.bin')) >= 40);
    await erin.proc.run('download_file team gone.bin gone.bin', /downloading gone\.bin .* 1 partial seeder/);
    // erin has taken a chunk from dave: he is in the middle of serving her
    await waitUntil(async () => /from [^;]*\bdave [1-9]/.test(await row(erin, 'gone.bin')));
    await dave.proc.stop('SIGKILL');

    const done = await erin.proc.waitFor(/^downloaded \[team\] gone\.bin.*$/m, 120_000);
    console.log(`erin: ${done.trim()}`);
    const from = chunkSources(done);
    expect(from.get('dave') ?? 0).toBeGreaterThan(0);
    expect((from.get('dave') ?? 0) + (from.get('alice') ?? 0)).toBe(CHUNKS);
    expect(await sha1File(join(erin.dir, 'gone.bin'))).toBe(await sha1File(original));
    expect(existsSync(join(erin.dir, 'gone.bin.part'))).toBe(false);
  }, 180_000);
});
