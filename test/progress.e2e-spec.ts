import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  removeDir,
  signUp,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const MB = 1024 * 1024;
/** 8 MiB at the seeder's 2 MiB/s: a download lasts about 4 s, long enough to look at it while it runs. */
const FILE_BYTES = 8 * MB;

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 60_000) => eventually(check, timeoutMs);

const SIZE = String.raw`(?:\d+ B|\d+\.\d (?:KiB|MiB|GiB))`;
const RATE = String.raw`(?:\d+ B|\d+\.\d (?:KiB|MiB|GiB))/s`;
const DURATION = String.raw`(?:\d+\.\d s|\d+ s|\d+m \d+s)`;
/** A running row's figures: percent, bytes done of the total, speed, peers, then the time left when it can be told. */
// peers connected: none yet in the first moment of the download (its seeder is being connected to), then alice
const RUNNING_ROW = new RegExp(
  String.raw`^\[D\] \[team\] prog\.bin (\d+\.\d)% ${SIZE} of 8\.0 MiB, ${RATE}, (?:0 peers|1 peer)(?:, ETA (${DURATION}))?` +
    String.raw`(?:; from alice \d+(?: over TLS)?)?$`,
);
const COMPLETE_ROW = new RegExp(
  String.raw`^\[C\] \[team\] prog\.bin -> \S+prog\.bin: 8\.0 MiB in \d+\.\d s \(${RATE}\)$`,
);

/**
 * Progress figures between real processes: `show_downloads` during and after a real download, and a piped client
 * (what scripts and these tests see) printing no live line, only its answers, in binary units.
 */
describe('download progress', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers: ClientPeer[] = [];

  async function member(name: string, extra: string[] = []): Promise<ClientPeer> {
    const peer = startClientIn(net.dir, net.infoFile, name, await freePort(), extra);
    peers.push(peer);
    await signUp(peer.proc, name);
    return peer;
  }

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('shows bytes, speed, peers and time left while it runs, size, time and mean speed once complete', async () => {
    const alice = await member('alice', ['--upload-limit', '2M']);
    await alice.proc.run('create_group team', /created/);
    const bob = await member('bob', ['--no-partial-seeding']);
    await bob.proc.run('join_group team', /asked to join/);
    await alice.proc.run('accept_request team bob', /now a member/);
    randomFile(join(alice.dir, 'prog.bin'), FILE_BYTES);
    await alice.proc.run('upload_file team prog.bin', /shared prog\.bin in group team \(16 chunks\)/);
    const startedAt = bob.proc.stdout.length;

    await bob.proc.run(
      'download_file team prog.bin prog.bin',
      /^downloading prog\.bin \(8\.0 MiB, 16 chunks\) from 1 seeder to .*$/m,
    );
    // every running row carries the figures; one of them, partway, with the time left at the speed it measures
    const rows: string[] = [];
    let partway: RegExpExecArray | null = null;
    await waitUntil(async () => {
      const row = /^\[[DCF]\] \[team\] prog\.bin.*$/m.exec(
        await bob.proc.run('show_downloads', /\[team\] prog\.bin/),
      )![0];
      rows.push(row);
      if (!row.startsWith('[D]')) throw new Error(`prog.bin is no longer downloading: ${rows.join('\n')}`);
      expect(row).toMatch(RUNNING_ROW);
      const m = RUNNING_ROW.exec(row)!;
      if (Number(m[1]) > 0 && Number(m[1]) < 100 && m[2] !== undefined && row.includes(', 1 peer')) partway = m;
      return partway !== null;
    });
    console.log(`running: ${rows.at(-1)}`);

    const done = await bob.proc.waitFor(/^downloaded \[team\] prog\.bin.*$/m, 60_000);
    expect(done).toMatch(
      new RegExp(
        String.raw`^downloaded \[team\] prog\.bin to \S+: 8\.0 MiB in \d+\.\d s \(${RATE}\), SHA-1 verified; ` +
          String.raw`chunks from alice 16$`,
        'm',
      ),
    );
    expect(await sha1File(join(bob.dir, 'prog.bin'))).toBe(await sha1File(join(alice.dir, 'prog.bin')));
    const complete = /^\[C\] .*$/m.exec(await bob.proc.run('show_downloads', /^\[C\] \[team\] prog\.bin.*$/m))![0];
    console.log(`complete: ${complete}`);
    expect(complete).toMatch(COMPLETE_ROW);

    // piped: no live line, no carriage return or escape sequence; each line is an answer to what was sent
    const printed = bob.proc.stdout.slice(startedAt);
    expect(printed).not.toMatch(/[\r\x1b]/);
    const lines = printed.split('\n').filter((l) => l !== '');
    expect(lines.filter((l) => /\bETA\b|% .* of /.test(l) && !l.startsWith('[D] '))).toEqual([]);
    for (const line of lines) {
      expect(line).toMatch(/^(?:downloading prog\.bin \(|\[[DC]\] \[team\] prog\.bin |downloaded \[team\] prog\.bin )/);
    }
    expect(lines.filter((l) => l.startsWith('[D] '))).toEqual(rows);
    expect(alice.proc.stdout).not.toMatch(/[\r\x1b]|hashing/);
  }, 120_000);
});
