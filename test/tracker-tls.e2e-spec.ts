import { Identity, loadOrCreateIdentity } from '@app/tls';
import { spawnSync } from 'node:child_process';
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

  it('without --require-tls: a seed-form client logs in in plain text as before, and over TLS too', async () => {
    const seed = await plain();
    expect(await seed.request('create_user alice pw-a')).toEqual(['user alice created']);
    expect(await seed.request('login alice pw-a')).toEqual(['logged in as alice']);
    seed.destroy();
    const secure = await tls();
    expect(await secure.request('create_user carol pw-c')).toEqual(['user carol created']);
    expect(await secure.request('login carol pw-c')).toEqual(['logged in as carol']);
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
