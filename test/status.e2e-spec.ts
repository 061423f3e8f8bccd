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

/** The last line `status` prints. */
const STATUS_END = /^peers being served: \d+$/m;

/** `status` on a real client: the trackers of the file, what it seeds with the bytes uploaded of each, the rates. */
describe('client status', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers: ClientPeer[] = [];

  beforeAll(async () => {
    // tracker 1 of the file never starts: the clients find it down and use tracker 2
    net = await trackerNetwork(2);
    tracker = await startTrackerReady(net.infoFile, 2, join(net.dir, 'tracker-2'));
  }, 30_000);

  afterAll(async () => {
    await Promise.all(peers.map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('shows the tracker in use, the one that failed, and the uploaded bytes of a share moving with a download', async () => {
    for (const name of ['alice', 'bob']) peers.push(startClientIn(net.dir, net.infoFile, name, await freePort()));
    const [alice, bob] = peers;
    await formGroup([
      [alice.proc, 'alice'],
      [bob.proc, 'bob'],
    ]);
    randomFile(join(alice.dir, 'report.bin'), 3 * 1024 * 1024 + 1000);
    await alice.proc.run('upload_file team report.bin', /shared report\.bin in group team/, 30_000);

    const [dead, used] = net.ports.map((p) => `127.0.0.1:${p}`);
    const before = await alice.proc.run('status', STATUS_END);
    expect(before).toMatch(new RegExp(`^tracker: ${used}$`, 'm'));
    expect(before).toMatch(new RegExp(`^tracker 1: ${dead} \\(last try failed: connection refused\\)$`, 'm'));
    expect(before).toMatch(new RegExp(`^tracker 2: ${used} \\(in use\\)$`, 'm'));
    expect(before).toMatch(/^seeding: 1 file$/m);
    expect(before).toMatch(/^seed \[team\] report\.bin: 3\.0 MiB, uploaded 0 B$/m);

    await bob.proc.run('download_file team report.bin got.bin', /downloading report\.bin/, 30_000);
    await bob.proc.waitFor(/^downloaded \[team\] report\.bin.*$/m, 120_000);
    expect(await sha1File(join(bob.dir, 'got.bin'))).toBe(await sha1File(join(alice.dir, 'report.bin')));

    // every byte of the file went out of alice once, counted against this share
    const after = await alice.proc.run('status', STATUS_END);
    expect(after).toMatch(/^seed \[team\] report\.bin: 3\.0 MiB, uploaded [3-9]\.[0-9] MiB$/m);
    expect(after).toMatch(/^upload rate: \d+(\.\d)? [KMG]?i?B\/s$/m);
    expect(after).toMatch(/^peers being served: \d+$/m);

    // bob seeds what he downloaded, nothing uploaded of it yet
    const bobs = await bob.proc.run('status', STATUS_END);
    expect(bobs).toMatch(/^seed \[team\] report\.bin: 3\.0 MiB, uploaded 0 B$/m);
    expect(bobs).toMatch(/^download rate: /m);
  }, 180_000);
});
