import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import { freePort, Proc, removeDir, startClient, startTracker, trackerNetwork } from './support/processes';

/** Clients ride through the death of their tracker: same session, same commands, through the next tracker. */
describe('client failover between trackers', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  const trackers: Proc[] = [];
  const clients = new Map<string, { proc: Proc; dir: string }>();

  beforeAll(async () => {
    net = await trackerNetwork(2);
    for (const n of [1, 2]) {
      const t = startTracker(net.infoFile, n, join(net.dir, `tracker-${n}`));
      trackers.push(t);
      await t.waitFor(/listening on/, 15_000);
    }
    for (const name of ['alice', 'bob']) {
      const dir = join(net.dir, name);
      mkdirSync(dir);
      const proc = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, ['--data-dir', join(dir, '.state')], dir);
      clients.set(name, { proc, dir });
      await proc.run(`create_user ${name} pw-${name}`, /created/);
      await proc.run(`login ${name} pw-${name}`, /logged in as/);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...clients.values()].map((c) => c.proc.stop('SIGKILL')));
    await Promise.all(trackers.map((t) => t.stop('SIGKILL')));
    removeDir(net.dir);
  });

  const client = (name: string) => clients.get(name)!.proc;
  const dir = (name: string) => clients.get(name)!.dir;

  it('goes on through tracker 2 after tracker 1 is killed, without logging in again', async () => {
    const alice = client('alice');
    const bob = client('bob');
    await alice.run('create_group team', /created/);
    await bob.run('join_group team', /asked to join/);
    await alice.run('accept_request team bob', /now a member/);
    randomFile(join(dir('alice'), 'before.bin'), 3 * 1024 * 1024);
    await alice.run('upload_file team before.bin', /shared before\.bin/);
    // login printed no session token for people to see
    expect(alice.stdout).not.toMatch(/session_token/);

    await trackers[0].stop('SIGKILL');

    const groups = await bob.run('list_groups', /team owner=alice members=2 you=member/);
    expect(groups).not.toMatch(/error:/);
    // one notice, printed when the idle client noticed the loss or with this command's answer
    expect(bob.stdout.match(/now using/g) ?? []).toHaveLength(1);

    randomFile(join(dir('alice'), 'after.bin'), 2 * 1024 * 1024);
    const uploaded = await alice.run('upload_file team after.bin', /shared after\.bin|error:/);
    expect(uploaded).toMatch(/shared after\.bin/);

    // alice's client announced its files again on tracker 2: both are downloadable
    await bob.run('list_files team', /before\.bin size=3145728 seeders=1/);
    for (const file of ['before.bin', 'after.bin']) {
      await bob.run(`download_file team ${file} ${file}`, /downloading/);
      await bob.waitFor(new RegExp(`downloaded \\[team\\] ${file.replace('.', '\\.')}`), 30_000);
      expect(await sha1File(join(dir('bob'), file))).toBe(await sha1File(join(dir('alice'), file)));
    }
    expect(bob.stdout).not.toMatch(/log in again/);
    expect(alice.stdout.match(/now using/g) ?? []).toHaveLength(1);
  });
});
