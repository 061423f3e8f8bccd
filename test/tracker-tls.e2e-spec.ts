import { Identity, loadOrCreateIdentity } from '@app/tls';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineSocket } from '../apps/tracker/src/testing/line-socket';
import { Proc, removeDir, startTrackerReady, TRACKER_MAIN, trackerNetwork } from './support/processes';

const FINGERPRINT = /sha256:[0-9a-f]{64}/;

/** A real tracker process: its identity, STARTTLS, --require-tls and seeders' fingerprints as a client sees them. */
describe('tracker over TLS', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let dataDir: string;
  let tracker: Proc | undefined;
  let member: Identity;
  const conns: LineSocket[] = [];
  const plain = async (hello = false) => {
    const c = await LineSocket.open(net.ports[0], '127.0.0.1', { hello });
    conns.push(c);
    return c;
  };
  const tls = async (options: { identity?: Identity; hello?: boolean } = {}) => {
    const c = await LineSocket.openTls(net.ports[0], { hello: false, ...options });
    conns.push(c);
    return c;
  };
  const printFingerprint = () => {
    const r = spawnSync(
      process.execPath,
      [TRACKER_MAIN, net.infoFile, '1', '--data-dir', dataDir, '--print-fingerprint'],
      {
        encoding: 'utf8',
        timeout: 30_000,
      },
    );
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^${FINGERPRINT.source}\\n$`));
    return r.stdout.trim();
  };

  beforeAll(async () => {
    net = await trackerNetwork(1);
    dataDir = join(net.dir, 'data1');
    member = loadOrCreateIdentity(join(net.dir, 'member'), 'a member');
  });
  afterEach(() => conns.splice(0).forEach((c) => c.destroy()));
  afterAll(async () => {
    await tracker?.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('prints the fingerprint it logs at start, the same across restarts, and presents that certificate', async () => {
    const printed = printFingerprint(); // makes the identity
    tracker = await startTrackerReady(net.infoFile, 1, dataDir, ['--log-format', 'text']);
    await tracker.waitFor(/pin it in tracker_info\.txt as: /);
    expect(tracker.stdout).toContain(`pin it in tracker_info.txt as: 127.0.0.1:${net.ports[0]} ${printed}`);
    expect(tracker.stdout).toContain(join(dataDir, 'identity.crt'));
    const seen: string[] = [];
    const c = await LineSocket.openTls(net.ports[0], { verify: (fp) => seen.push(fp) });
    conns.push(c);
    expect(seen).toEqual([printed]);
    expect(printFingerprint()).toBe(printed);
  });

  it('stops with one error line and status 2 when its data directory cannot hold an identity', () => {
    const blocker = join(net.dir, 'a-file');
    writeFileSync(blocker, 'in the way\n');
    const bad = join(blocker, 'data');
    const r = spawnSync(process.execPath, [TRACKER_MAIN, net.infoFile, '1', '--data-dir', bad], {
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^error: cannot use the data directory ${bad}: ENOTDIR[^\\n]*\\n$`));
    expect(readFileSync(blocker, 'utf8')).toBe('in the way\n');
  });

  it('without --require-tls: a seed-form client logs in in plain text as before, and over TLS too', async () => {
    const seed = await plain();
    expect(await seed.request('create_user alice pw-a')).toEqual(['user alice created']);
    expect(await seed.request('login alice pw-a')).toEqual(['logged in as alice']);
    seed.destroy();
    const secure = await tls();
    expect(await secure.request('create_user carol pw-c')).toEqual(['user carol created']);
    expect(await secure.request('login carol pw-c')).toEqual(['logged in as carol']);
  });

  it('lists a seeder registered over TLS with its certificate fingerprint, one registered in plain with -', async () => {
    const h = 'a'.repeat(40);
    const dave = await tls({ identity: member, hello: true });
    expect(await dave.request('create_user dave pw-d')).toEqual(['OK 0 user dave created']);
    expect((await dave.request('login dave pw-d', 3))[0]).toBe('OK 2 logged in as dave');
    expect((await dave.request('create_group tg'))[0]).toMatch(/^OK 0 /);
    const erin = await plain(true);
    expect(await erin.request('create_user erin pw-e')).toEqual(['OK 0 user erin created']);
    expect((await erin.request('login erin pw-e', 3))[0]).toBe('OK 2 logged in as erin');
    expect((await erin.request('join_group tg'))[0]).toMatch(/^OK 0 /);
    expect((await dave.request('accept_request tg erin'))[0]).toMatch(/^OK 0 /);
    expect((await dave.request(`upload_file tg /d/f.bin 10 ${h} ${h} 7001`))[0]).toMatch(/^OK 0 shared/);
    expect((await erin.request(`upload_file tg /e/g.bin 10 ${'b'.repeat(40)} ${'b'.repeat(40)} 7002`))[0]).toMatch(
      /^OK 0 shared/,
    );
    const [head, ...body] = await erin.request('download_file tg f.bin', 16);
    expect(head).toMatch(/^OK 15 f\.bin: 10 bytes, 1 online seeder$/);
    expect(body).toContain('seeders:dave');
    expect(body).toContain(`seeder_fingerprints:${member.fingerprint}`);
    expect(body).toContain('partial_seeder_fingerprints:');
    const plainSeeded = await dave.request('download_file tg g.bin', 16);
    expect(plainSeeded).toContain('seeders:erin');
    expect(plainSeeded).toContain('seeder_fingerprints:-');
    // a seed-form member sees exactly the seven seed lines, no fingerprint
    const frank = await plain();
    expect(await frank.request('create_user frank pw-f')).toEqual(['user frank created']);
    expect(await frank.request('login frank pw-f')).toEqual(['logged in as frank']);
    await frank.request('join_group tg');
    expect((await dave.request('accept_request tg frank'))[0]).toMatch(/^OK 0 /);
    frank.write('download_file tg f.bin\nlist_groups\n');
    const seven = await frank.readLines(7);
    expect(seven.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
      'file_name',
      'file_size',
      'file_hash',
      'chunk_hashes',
      'seeders',
      'seeder_ports',
      'seeder_file_paths',
    ]);
    expect(seven.slice(0, 6)).toEqual([
      'file_name:f.bin',
      'file_size:10',
      `file_hash:${h}`,
      `chunk_hashes:${h}`,
      'seeders:dave',
      'seeder_ports:7001',
    ]);
    // the next line is already the answer to list_groups: nothing followed the seven
    expect((await frank.readLines(1))[0]).not.toMatch(/^(seeder|partial)/);
  });

  it('with --require-tls: a plain login, resume or create_user is refused with the exact line; over TLS they work', async () => {
    await tracker!.stop();
    const before = printFingerprint();
    tracker = await startTrackerReady(net.infoFile, 1, dataDir, ['--require-tls']);
    expect(printFingerprint()).toBe(before);
    const seed = await plain();
    const refusal = 'this tracker requires TLS: connect with STARTTLS (docs/PROTOCOL.md 8)';
    expect(await seed.request('login alice pw-a')).toEqual([`error: ${refusal}`]);
    expect(await seed.request('create_user bob pw-b')).toEqual([`error: ${refusal}`]);
    const framed = await plain(true);
    expect(await framed.request('login alice pw-a')).toEqual([`ERR TLS_REQUIRED ${refusal}`]);
    expect(await framed.request('resume abc')).toEqual([`ERR TLS_REQUIRED ${refusal}`]);
    // nothing else changes for a plain connection
    expect(await framed.request('list_groups')).toEqual(['ERR NOT_LOGGED_IN you must log in first']);
    const secure = await tls({ identity: member, hello: true });
    expect((await secure.request('login alice pw-a', 3))[0]).toBe('OK 2 logged in as alice');
    const seedInside = await tls();
    expect(await seedInside.request('create_user bob pw-b')).toEqual(['user bob created']);
  });
});
