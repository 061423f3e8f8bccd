import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  formGroup,
  freePort,
  Proc,
  removeDir,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/** pause_download / resume_download of a real download between two clients. */
describe('pause and resume a download', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers: ClientPeer[] = [];

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker'));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('pauses keeping the .part, shows [P], and resumes fetching only the missing chunks, byte-exact', async () => {
    peers.push(startClientIn(net.dir, net.infoFile, 'alice', await freePort()));
    // bob downloads at 1 MiB/s: the 16 chunks take about 8 s, time enough to pause in the middle
    peers.push(startClientIn(net.dir, net.infoFile, 'bob', await freePort(), ['--download-limit', '1M']));
    const [alice, bob] = peers;
    await formGroup([
      [alice.proc, 'alice'],
      [bob.proc, 'bob'],
    ]);
    randomFile(join(alice.dir, 'big.bin'), 8 * 1024 * 1024);
    await alice.proc.run('upload_file team big.bin', /shared big\.bin in group team/, 30_000);

    // errors for what is not there or not running
    expect(await bob.proc.run('pause_download team big.bin', /^error: .*$/m)).toMatch(
      /^error: no download of big\.bin in group team in this session$/m,
    );

    await bob.proc.run('download_file team big.bin got.bin', /downloading big\.bin/, 30_000);
    expect(await bob.proc.run('resume_download team big.bin', /^error: .*$/m)).toMatch(
      /^error: the download of big\.bin is not paused \(it is running\)$/m,
    );
    // wait (on the condition) until some chunks are in
    for (;;) {
      const shown = await bob.proc.run('show_downloads', /^\[[DCF]\] .*$/m);
      if (/^\[D\] \[team\] big\.bin (?!0\.0%)\d+\.\d%/m.test(shown)) break;
    }
    const paused = await bob.proc.run('pause_download team big.bin', /^(paused|error:) .*$/m);
    const m =
      /^paused \[team\] big\.bin at \d+\.\d% \((\d+) of 16 chunks in .*got\.bin\.part\); resume_download team big\.bin continues it$/m.exec(
        paused,
      );
    expect(m).not.toBeNull();
    const held = Number(m![1]);
    expect(held).toBeGreaterThan(0);
    expect(held).toBeLessThan(16);
    expect(await bob.proc.run('show_downloads', /^\[.\] .*$/m)).toMatch(
      /^\[P\] \[team\] big\.bin \d+\.\d% paused; resume_download team big\.bin continues it$/m,
    );
    expect(await bob.proc.run('pause_download team big.bin', /^error: .*$/m)).toMatch(
      /^error: the download of big\.bin is paused already$/m,
    );
    expect(bob.proc.stdout).not.toMatch(/download of big\.bin failed/);

    await bob.proc.run('resume_download team big.bin', /downloading big\.bin .*resuming from .*got\.bin\.part/, 30_000);
    const done = await bob.proc.waitFor(/^downloaded \[team\] big\.bin.*$/m, 120_000);
    // the chunks held at the pause were not fetched again
    expect(done).toMatch(new RegExp(`resumed ${held} of 16 chunks from .*got\\.bin\\.part, fetched ${16 - held}`));
    expect(await sha1File(join(bob.dir, 'got.bin'))).toBe(await sha1File(join(alice.dir, 'big.bin')));
    const shown = await bob.proc.run('show_downloads', /^\[C\] .*$/m);
    expect(shown).not.toMatch(/^\[P\]/m);
    expect(await bob.proc.run('resume_download team big.bin', /^error: .*$/m)).toMatch(
      /^error: the download of big\.bin is not paused \(it is complete\)$/m,
    );
  }, 180_000);
});
