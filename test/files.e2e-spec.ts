import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  realpathSync,
  utimesSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { randomFile, sha1File } from './support/files';
import {
  ClientPeer,
  eventually,
  freePort,
  Proc,
  removeDir,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';
import { FrameDecoder, HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { Socket } from 'node:net';

const MB = 1024 * 1024;
const CHUNK = 512 * 1024;
/** Seeders upload at most this fast, so that a transfer lasts long enough to interrupt. */
const SEED_LIMIT = '6M';
/** A download with no seeder to serve it fails after this long without a chunk (the default is 10 minutes). */
const STALL_TIMEOUT = '20s';

/**
 * The seed's file workflow between real client processes: uploads, parallel
 * downloads from several seeders, seeding after download, and everything that
 * can go wrong on the way.
 */
describe('file sharing between real clients', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const peers = new Map<string, ClientPeer>();

  async function startPeer(name: string, port?: number): Promise<ClientPeer> {
    const peer = startClientIn(net.dir, net.infoFile, name, port ?? (await freePort()), [
      '--upload-limit',
      SEED_LIMIT,
      '--stall-timeout',
      STALL_TIMEOUT,
    ]);
    peers.set(name, peer);
    return peer;
  }
  const peer = (name: string) => peers.get(name)!.proc;
  const dirOf = (name: string) => peers.get(name)!.dir;

  /** A new client of a new user, logged in and a member of team: for a test that kills or restarts its client. */
  async function newMember(name: string): Promise<ClientPeer> {
    const fresh = await startPeer(name);
    await fresh.proc.run(`create_user ${name} pw-${name}`, /created/);
    await fresh.proc.run(`login ${name} pw-${name}`, /logged in/);
    await fresh.proc.run('join_group team', /asked to join/);
    await peer('alice').run(`accept_request team ${name}`, /now a member/);
    return fresh;
  }

  /** Waits until `name`'s download of `fileName` has verified some bytes but is not done: mid-transfer. */
  async function midTransfer(name: string, fileName: string): Promise<void> {
    const row = new RegExp(`^\\[(\\w)\\] \\[team\\] ${fileName.replace('.', '\\.')}(?: ([\\d.]+)%)?`, 'm');
    await waitUntil(async () => {
      const m = row.exec(await peer(name).run('show_downloads', row));
      if (!m || m[1] !== 'D') throw new Error(`${fileName} is no longer downloading: ${m?.[0]}`);
      return Number(m[2]) > 0;
    });
  }

  /** The number of online seeders that `name`'s list_files shows for `fileName`. */
  async function seedersOf(name: string, fileName: string): Promise<number> {
    const listed = await peer(name).run('list_files team', /files? in group team/);
    const m = new RegExp(`${fileName.replace('.', '\\.')} size=\\d+ seeders=(\\d+)`).exec(listed);
    return m ? Number(m[1]) : 0;
  }

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    for (const name of ['alice', 'bob', 'carol', 'dave']) {
      const { proc } = await startPeer(name);
      await proc.run(`create_user ${name} pw-${name}`, /created/);
      await proc.run(`login ${name} pw-${name}`, /logged in/);
    }
    await peer('alice').run('create_group team', /created/);
    for (const name of ['bob', 'carol']) {
      await peer(name).run('join_group team', /asked to join/);
      await peer('alice').run(`accept_request team ${name}`, /now a member/);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all([...peers.values()].map((p) => p.proc.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  /** The same random file in each named peer's folder. */
  function sameFileAt(fileName: string, bytes: number, ...names: string[]): string {
    const first = join(dirOf(names[0]), fileName);
    randomFile(first, bytes);
    for (const name of names.slice(1)) copyFileSync(first, join(dirOf(name), fileName));
    return first;
  }

  it('downloads a 20 MB file from two seeders at once, verifies it and seeds it', async () => {
    const original = sameFileAt('shared.bin', 20 * MB, 'alice', 'bob');
    await peer('alice').run('upload_file team shared.bin', /shared shared\.bin in group team \(40 chunks\)/);
    await peer('bob').run('upload_file team shared.bin', /shared shared\.bin/);
    expect(await peer('carol').run('list_files team', /shared\.bin/)).toMatch(/shared\.bin size=20971520 seeders=2/);

    mkdirSync(join(dirOf('carol'), 'in'));
    await peer('carol').run('download_file team shared.bin in', /downloading shared\.bin .* from 2 seeders/);
    expect(await peer('carol').run('show_downloads', /\[(D|C)\] \[team\] shared\.bin/)).toMatch(
      /^\[D\] \[team\] shared\.bin [\d.]+% .*\/s|^\[C\] \[team\] shared\.bin/m,
    );
    const done = await peer('carol').waitFor(/downloaded \[team\] shared\.bin.*/, 30_000);
    const from = /chunks from alice (\d+), bob (\d+)|chunks from bob (\d+), alice (\d+)/.exec(done);
    expect(from).not.toBeNull();
    const counts = from!.slice(1).filter(Boolean).map(Number);
    expect(counts.every((n) => n > 0)).toBe(true);
    expect(counts.reduce((a, b) => a + b)).toBeGreaterThanOrEqual(40);

    const copy = join(dirOf('carol'), 'in', 'shared.bin');
    expect(await sha1File(copy)).toBe(await sha1File(original));
    expect(readdirSync(join(dirOf('carol'), 'in'))).toEqual(['shared.bin']);
    expect(await peer('carol').run('show_downloads', /\[C\]/)).toMatch(/^\[C\] \[team\] shared\.bin/m);
    // carol now seeds it too
    await waitUntil(async () =>
      /shared\.bin size=20971520 seeders=3/.test(await peer('alice').run('list_files team', /shared\.bin/)),
    );
  });

  it('rejects corrupt chunks from a seeder whose file changed on disk and takes them from another', async () => {
    const original = sameFileAt('corrupt.bin', 10 * MB, 'alice', 'bob');
    const bobs = join(dirOf('bob'), 'corrupt.bin');
    const stamp = new Date('2026-01-02T03:04:05Z'); // whole seconds, so that it can be set again exactly
    utimesSync(bobs, stamp, stamp);
    await peer('alice').run('upload_file team corrupt.bin', /shared corrupt\.bin/);
    await peer('bob').run('upload_file team corrupt.bin', /shared corrupt\.bin/);
    // change bob's bytes in every chunk, keeping size and modification time, so his client still serves it
    const fd = openSync(bobs, 'r+');
    for (let offset = 100; offset < 10 * MB; offset += CHUNK) writeSync(fd, Buffer.from('CORRUPTED'), 0, 9, offset);
    closeSync(fd);
    utimesSync(bobs, stamp, stamp);

    await peer('carol').run('download_file team corrupt.bin corrupt-copy.bin', /downloading corrupt\.bin/);
    const done = await peer('carol').waitFor(/downloaded \[team\] corrupt\.bin.*/, 30_000);
    expect(done).toMatch(/rejected corrupt chunks: \d+ from bob/);
    expect(await sha1File(join(dirOf('carol'), 'corrupt-copy.bin'))).toBe(await sha1File(original));
  });

  it('serves nothing for a path: /etc/passwd, ../, relative paths and the real path of a shared file all get DENIED', async () => {
    const alice = peers.get('alice')!;
    const shared = realpathSync(join(alice.dir, 'shared.bin'));
    const ask = (line: string) => peerRequest(alice.port, line);
    const refusals = [
      await ask('GET_CHUNK 0 /etc/passwd'),
      await ask(`GET_CHUNK 0 ${alice.dir}/../../../../../etc/passwd`),
      await ask('GET_CHUNK 0 ../alice/shared.bin'),
      await ask('GET_CHUNK 0 shared.bin'),
      await ask(`GET_CHUNK 0 ${join(alice.dir, '.state', 'shares.json')}`),
      await ask(`GET_CHUNK 40 ${shared}`),
      await ask(`GET_CHUNK 0 ${shared}`),
    ];
    // one and the same answer: nothing tells which of these exist or are shared (see security-cap.e2e-spec.ts)
    expect(new Set(refusals)).toEqual(new Set(['ERR DENIED no valid capability for a file shared here']));
  });

  it('refuses upload, list and download to a non-member and writes nothing', async () => {
    const dave = peer('dave');
    randomFile(join(dirOf('dave'), 'mine.bin'), 1000);
    await dave.run('upload_file team mine.bin', /^error: you are not a member of group team/m);
    await dave.run('list_files team', /^error: you are not a member of group team/m);
    await dave.run('download_file team shared.bin stolen.bin', /^error: you are not a member of group team/m);
    expect(existsSync(join(dirOf('dave'), 'stolen.bin'))).toBe(false);
    await dave.run('upload_file team no-such-file.bin', /^error: no such file: no-such-file\.bin/m);
    await dave.run('download_file no-such-group x y', /^error: no group named no-such-group/m);
  });

  it('answers client-side mistakes clearly', async () => {
    const carol = peer('carol');
    await carol.run('upload_file team .', /^error: .* is not a regular file/m);
    await carol.run('download_file team nothing-like-it.bin x', /^error: .*nothing-like-it\.bin/m);
    await carol.run('download_file team shared.bin in', /^error: .*in\/shared\.bin already exists/m);
    await carol.run('download_file team shared.bin /no/such/dir/x.bin', /^error: no such directory: \/no\/such\/dir/m);
    await carol.run(
      'download_file team shared.bin',
      /^error: usage: download_file <group_id> <file_name> <destination_path>/m,
    );
  });

  it('stop_share takes a file with no seeder left off the list', async () => {
    randomFile(join(dirOf('alice'), 'only.bin'), 3 * MB);
    await peer('alice').run('upload_file team only.bin', /shared only\.bin/);
    expect(await peer('carol').run('list_files team', /only\.bin/)).toMatch(/only\.bin size=3145728 seeders=1/);
    await peer('alice').run('stop_share team only.bin', /./);
    expect(await peer('carol').run('list_files team', /files? in group team/)).not.toMatch(/only\.bin/);
    await peer('alice').run('stop_share team only.bin', /^error: /m);
    await peer('carol').run('download_file team only.bin only.bin', /^error: .*only\.bin/m);
  });

  it('finishes from the other seeder when one is killed mid-transfer', async () => {
    const original = sameFileAt('kill.bin', 20 * MB, 'alice', 'bob');
    await peer('alice').run('upload_file team kill.bin', /shared kill\.bin/);
    await peer('bob').run('upload_file team kill.bin', /shared kill\.bin/);
    await peer('carol').run('download_file team kill.bin kill-copy.bin', /downloading kill\.bin .* from 2 seeders/);
    await midTransfer('carol', 'kill.bin');
    await peers.get('bob')!.proc.stop('SIGKILL');
    const done = await peer('carol').waitFor(/downloaded \[team\] kill\.bin.*/, 30_000);
    // bob is tried again with backoff (he might come back) while alice serves the rest
    expect(done).toMatch(/retried bob (once|\d+ times) \(last: (closed the connection|is unreachable .*)\)/);
    expect(await sha1File(join(dirOf('carol'), 'kill-copy.bin'))).toBe(await sha1File(original));
  });

  it('a client restarted on the same address offers its shares again after login', async () => {
    const erin = await newMember('erin');
    sameFileAt('keep.bin', 1 * MB, 'alice', 'erin');
    sameFileAt('change.bin', 1 * MB, 'alice', 'erin');
    for (const name of ['alice', 'erin']) {
      await peer(name).run('upload_file team keep.bin', /shared keep\.bin/);
      await peer(name).run('upload_file team change.bin', /shared change\.bin/);
    }
    expect(await seedersOf('carol', 'keep.bin')).toBe(2);
    await erin.proc.stop('SIGKILL');
    // while erin is away, her files are listed with fewer online seeders
    await waitUntil(async () => (await seedersOf('carol', 'keep.bin')) === 1);
    expect(await seedersOf('carol', 'change.bin')).toBe(1);
    // meanwhile change.bin changes on disk: it must not be offered again
    writeSync(openSync(join(erin.dir, 'change.bin'), 'a'), Buffer.from('one more byte'));
    const { proc } = await startPeer('erin', erin.port);
    await proc.run('login erin pw-erin', /logged in as erin/);
    expect(await proc.waitFor(/seeding \d+ files? again/)).toMatch(/seeding 1 file again/);
    expect(proc.stdout).toMatch(/no longer sharing change\.bin \(changed on disk\)/);
    expect(await seedersOf('carol', 'keep.bin')).toBe(2);
    expect(await seedersOf('carol', 'change.bin')).toBe(1);
  });

  it('fails cleanly when the only seeder goes away and stays away, keeping only the .part to resume from', async () => {
    const frank = await newMember('frank');
    randomFile(join(frank.dir, 'solo.bin'), 20 * MB);
    await frank.proc.run('upload_file team solo.bin', /shared solo\.bin/);
    await peer('carol').run('download_file team solo.bin solo-copy.bin', /downloading solo\.bin .* from 1 seeder/);
    await midTransfer('carol', 'solo.bin');
    await frank.proc.stop('SIGKILL');
    // carol waits, retrying frank and asking the tracker for seeders, until 20 s pass without a chunk
    await waitUntil(async () =>
      /^\[D\] \[team\] solo\.bin [\d.]+% .*, waiting for a seeder \(frank /m.test(
        await peer('carol').run('show_downloads', /solo\.bin/),
      ),
    );
    const failed = await peer('carol').waitFor(/^error: download of solo\.bin failed: .+/m, 50_000);
    expect(failed).toMatch(/failed: no progress for 20 s: waiting for a seeder \(frank .*asked the tracker/);
    expect(await peer('carol').run('show_downloads', /solo\.bin/)).toMatch(/^\[F\] \[team\] solo\.bin \(.+\)/m);
    expect(failed).toMatch(/; kept .*solo-copy\.bin\.part to resume from/);
    expect(
      readdirSync(dirOf('carol'))
        .filter((f) => f.startsWith('solo'))
        .sort(),
    ).toEqual(['solo-copy.bin.part', 'solo-copy.bin.part.chunks']);
  }, 90_000);

  it("leave_group stops the leaver's shares there", async () => {
    sameFileAt('leave.bin', 1 * MB, 'alice', 'carol');
    await peer('alice').run('upload_file team leave.bin', /shared leave\.bin/);
    await peer('carol').run('upload_file team leave.bin', /shared leave\.bin/);
    expect(await seedersOf('alice', 'leave.bin')).toBe(2);
    await peer('carol').run('leave_group team', /left group team/);
    expect(await seedersOf('alice', 'leave.bin')).toBe(1);
    // a client that quits at end of input waits for its downloads; carol's download of solo.bin failed, so her
    // piped session exits 1 and says how much failed
    const carol = peer('carol');
    carol.child.stdin?.end();
    expect((await carol.exited).code).toBe(1);
    expect(carol.stdout).toMatch(/^error: \d+ of \d+ commands failed$/m);
  });
});

/** Sends one peer-protocol line in the extended form (HELLO first) and returns the first line of the answer after the HELLO's. */
function peerRequest(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const decoder = new FrameDecoder();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer to ${line}`));
    }, 5000);
    socket.on('data', (d: Buffer) => {
      decoder.push(d);
      let f = decoder.next();
      if (f?.type === 'line' && f.line === HELLO_REPLY) f = decoder.next();
      if (f?.type === 'line') {
        clearTimeout(timer);
        socket.destroy();
        resolve(f.line);
      }
    });
    socket.on('error', reject);
    socket.connect(port, '127.0.0.1', () => socket.write(`${HELLO_LINE}\n${line}\n`));
  });
}

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 10_000) =>
  eventually(check, timeoutMs, 'a condition', 100);
