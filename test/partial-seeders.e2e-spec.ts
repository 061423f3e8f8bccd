import {
  capabilityKeyOf,
  decodeCapability,
  ED25519_SPKI_PREFIX,
  parseFileMetadata,
  parseSeederLists,
  SeederInfo,
} from '@app/protocol';
import { createPublicKey, verify } from 'node:crypto';
import { join } from 'node:path';
import { SeedClient } from './support/seed-peers';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { eventually, must } from './support/sync';

const hash = (i: number) => i.toString(16).padStart(40, '0');

/**
 * Partial seeders on real trackers over raw sockets: a member downloading a file announces that it serves the
 * chunks it holds; the extended form lists it (on every tracker) while its session lives, the seed form never.
 */
describe('partial seeders', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const closers: (() => void)[] = [];

  afterEach(async () => {
    closers.splice(0).forEach((close) => close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  async function network(count: number) {
    const net = await trackerNetwork(count);
    dirs.push(net.dir);
    await Promise.all(
      net.ports.map(async (_, i) => {
        const p = startTracker(net.infoFile, i + 1, join(net.dir, `data-${i + 1}`));
        procs.push(p);
        await p.waitFor(/listening on/, 15_000);
      }),
    );
    /** An extended (HELLO) connection to tracker `n`, logged in as `user`; with the capability key it was given. */
    const user = async (n: number, name: string, create = true) => {
      const conn = await RawConn.open(net.ports[n - 1]);
      closers.push(() => conn.close());
      if (create) must(await conn.request(`create_user ${name} pw-${name}`));
      const key = capabilityKeyOf(must(await conn.request(`login ${name} pw-${name}`)));
      return { conn, key: key! };
    };
    return { net, user };
  }

  /** The claims of a capability whose signature checks out against the tracker's public key. */
  function claimsOf(seeder: SeederInfo, key: Buffer) {
    const decoded = decodeCapability(seeder.capability);
    expect(decoded).toBeDefined();
    const publicKey = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, key]), format: 'der', type: 'spki' });
    expect(verify(null, decoded!.signed, publicKey, decoded!.signature)).toBe(true);
    return decoded!.claims;
  }

  it('lists an announced partial seeder on both trackers to extended members only, until its connection closes', async () => {
    const { net, user } = await network(2);
    const alice = await user(1, 'alice');
    const bob = await user(1, 'bob');
    // carol speaks the seed form: no HELLO
    const carol = await SeedClient.connect(net.ports[0]);
    closers.push(() => carol.close());
    expect(await carol.createUser('carol', 'pw-carol')).toBe('user carol created\n');
    expect(await carol.login('carol', 'pw-carol')).toBe('logged in as carol\n');
    must(await alice.conn.request('create_group team'));
    must(await bob.conn.request('join_group team'));
    expect(await carol.send('join_group team')).toMatch(/team/);
    must(await alice.conn.request('accept_request team bob'));
    must(await alice.conn.request('accept_request team carol'));
    must(await alice.conn.request(`upload_file team /data/report.pdf 10 ${hash(1)} ${hash(2)} 7001`));
    // dave is a member who works through tracker 2
    const dave = await user(2, 'dave');
    await eventually(async () => (await dave.conn.request('join_group team')).ok, 20_000, 'dave’s join on tracker 2');
    await eventually(async () => (await alice.conn.request('accept_request team dave')).ok, 20_000, 'dave’s request');

    // the seed form cannot announce partial seeding: it is ours only
    expect(await carol.send('partial_seeder team report.pdf 7003')).toBe(
      'error: partial_seeder needs the extended form: send HELLO p2p-share/2 as the first line\n',
    );
    expect(await bob.conn.request('partial_seeder team report.pdf 7654')).toEqual({
      ok: true,
      message: 'serving the chunks you hold of report.pdf in group team',
      lines: [],
    });

    // tracker 1: alice, extended, sees bob among the partial seeders, with a capability for her to fetch from him
    const here = parseFileMetadata(must(await alice.conn.request('download_file team report.pdf')));
    expect(here.seeders.map((s) => s.userId)).toEqual(['alice']);
    expect(here.partialSeeders?.map(({ userId, address }) => ({ userId, address }))).toEqual([
      { userId: 'bob', address: { host: '127.0.0.1', port: 7654 } },
    ]);
    expect(claimsOf(here.partialSeeders![0], alice.key)).toMatchObject({
      fileHash: hash(1),
      groupId: 'team',
      seederId: 'bob',
      downloaderId: 'alice',
    });
    const listed = parseSeederLists(must(await alice.conn.request('list_seeders team report.pdf')));
    expect(listed.partialSeeders.map((s) => s.userId)).toEqual(['bob']);
    expect(listed.seeders.map((s) => s.userId)).toEqual(['alice']);

    // tracker 2: dave sees him too, once the presence has crossed over
    let there: readonly SeederInfo[] = [];
    await eventually(
      async () => {
        there = parseFileMetadata(must(await dave.conn.request('download_file team report.pdf'))).partialSeeders ?? [];
        return there.length === 1;
      },
      20_000,
      'bob listed on tracker 2',
    );
    expect(there[0]).toMatchObject({ userId: 'bob', address: { host: '127.0.0.1', port: 7654 }, partial: true });
    expect(claimsOf(there[0], dave.key)).toMatchObject({ seederId: 'bob', downloaderId: 'dave' });

    // the seed form's seven lines never show him
    const seven = await carol.downloadMetadata('team', 'report.pdf');
    expect(seven.seeders).toEqual(['alice']);
    expect(seven.seederPorts).toEqual([7001]);
    expect(seven.raw).not.toMatch(/bob|7654|partial/);
    // and nothing more came after them: the next answer is the next request's
    expect(await carol.send('list_files team')).not.toMatch(/partial|bob|7654/);

    // his connection closes: he is gone from both trackers
    bob.conn.close();
    await eventually(
      async () =>
        parseSeederLists(must(await alice.conn.request('list_seeders team report.pdf'))).partialSeeders.length === 0,
      20_000,
      'bob gone from tracker 1',
    );
    await eventually(
      async () =>
        parseSeederLists(must(await dave.conn.request('list_seeders team report.pdf'))).partialSeeders.length === 0,
      20_000,
      'bob gone from tracker 2',
    );
  }, 90_000);

  it('drops a partial seeder on the other tracker when it stops or becomes a full seeder', async () => {
    const { user } = await network(2);
    const alice = await user(1, 'alice');
    must(await alice.conn.request('create_group team'));
    must(await alice.conn.request(`upload_file team /data/report.pdf 10 ${hash(1)} ${hash(2)} 7001`));
    const dave = await user(2, 'dave');
    await eventually(async () => (await dave.conn.request('join_group team')).ok, 20_000, 'dave’s join on tracker 2');
    await eventually(async () => (await alice.conn.request('accept_request team dave')).ok, 20_000, 'dave’s request');
    await eventually(
      async () => (await dave.conn.request('partial_seeder team report.pdf 7700')).ok,
      20_000,
      'dave in',
    );
    const partialOnOne = async () =>
      parseSeederLists(must(await alice.conn.request('list_seeders team report.pdf'))).partialSeeders.map(
        (s) => s.userId,
      );
    await eventually(async () => (await partialOnOne()).length === 1, 20_000, 'dave listed on tracker 1');

    expect(must(await dave.conn.request('stop_partial team report.pdf'))).toEqual([]);
    await eventually(async () => (await partialOnOne()).length === 0, 20_000, 'dave withdrawn on tracker 1');

    must(await dave.conn.request('partial_seeder team report.pdf 7700'));
    await eventually(async () => (await partialOnOne()).length === 1, 20_000, 'dave listed again');
    must(await dave.conn.request('new_seeder team report.pdf /home/dave/report.pdf 7700'));
    await eventually(
      async () => {
        const lists = parseSeederLists(must(await alice.conn.request('list_seeders team report.pdf')));
        return lists.partialSeeders.length === 0 && lists.seeders.some((s) => s.userId === 'dave');
      },
      20_000,
      'dave a full seeder on tracker 1, no longer a partial one',
    );
  }, 90_000);
});
