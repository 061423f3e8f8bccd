import { fingerprintOf } from '@app/tls';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomFile } from './support/files';
import {
  CLIENT_MAIN,
  ClientPeer,
  freePort,
  Proc,
  removeDir,
  startClientIn,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/** The last line `status` prints. */
const STATUS_END = /^peers being served: \d+$/m;

/** The `name: value` lines of a `status` answer. */
function statusOf(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([a-z ]+): (.*)$/.exec(line);
    if (m) fields[m[1]] = m[2];
  }
  return fields;
}

/** Run-time limits and switches (`set`, the flags, the P2P_* variables) and `status`, on real processes. */
describe('client settings and status', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const procs: Proc[] = [];
  let trackerPort: number;
  let trackerFingerprint: string;

  async function client(name: string, extra: string[] = []): Promise<ClientPeer> {
    const peer = startClientIn(net.dir, net.infoFile, name, await freePort(), extra);
    procs.push(peer.proc);
    return peer;
  }

  /** A client with `env` added to the environment, in its own folder of the test's temp folder. */
  async function clientWithEnv(name: string, env: Record<string, string>, extra: string[] = []) {
    const dir = join(net.dir, name);
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    const proc = new Proc(
      spawn(
        process.execPath,
        [CLIENT_MAIN, `127.0.0.1:${port}`, net.infoFile, '--data-dir', join(dir, '.state'), ...extra],
        {
          stdio: ['pipe', 'pipe', 'pipe'],
          cwd: dir,
          env: { ...process.env, ...env },
        },
      ),
    );
    procs.push(proc);
    return { port, proc };
  }

  beforeAll(async () => {
    net = await trackerNetwork(1);
    trackerPort = net.ports[0];
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker'));
    trackerFingerprint = fingerprintOf(readFileSync(join(net.dir, 'tracker', 'identity.crt'), 'utf8'));
  });

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('shows a new limit in status once set, and the client at a glance', async () => {
    const alice = await client('alice');
    const { proc } = alice;

    const before = statusOf(await proc.run('status', STATUS_END));
    expect(before).toEqual({
      user: 'not logged in',
      tracker: `127.0.0.1:${trackerPort}`,
      'tracker traffic': `tls, tracker certificate ${trackerFingerprint}`,
      'your fingerprint': fingerprintOf(readFileSync(join(alice.dir, '.state', 'identity.crt'), 'utf8')),
      'serving chunks on': `127.0.0.1:${alice.port}`,
      'upload limit': 'none',
      'download limit': 'none',
      'partial seeding': 'on',
      downloads: 'none running',
      'download rate': '0 B/s',
      'upload rate': '0 B/s',
      seeding: 'nothing (not logged in)',
      'connections served': '0',
      'peers being served': '0',
    });

    await proc.run('create_user alice pw-alice', /created/);
    await proc.run('login alice pw-alice', /logged in as alice/);
    await proc.run('create_group team', /created/);
    randomFile(join(alice.dir, 'shared.bin'), 700 * 1024);
    await proc.run('upload_file team shared.bin', /shared shared\.bin in group team/);

    expect(await proc.run('set upload_limit 5M', /^upload limit: .*$/m)).toMatch(/^upload limit: 5\.0 MiB\/s$/m);
    expect(await proc.run('set download_limit 500K', /^download limit: .*$/m)).toMatch(
      /^download limit: 500\.0 KiB\/s$/m,
    );

    const after = statusOf(await proc.run('status', STATUS_END));
    expect(after).toEqual({
      ...before,
      user: 'alice',
      'upload limit': '5.0 MiB/s',
      'download limit': '500.0 KiB/s',
      seeding: '1 file',
    });

    await proc.run('set upload_limit none', /^upload limit: none$/m);
    expect(statusOf(await proc.run('status', STATUS_END))['upload limit']).toBe('none');
  });

  it('refuses bad names and values with a clear error, changing nothing', async () => {
    const { proc } = await client('bob', ['--upload-limit', '2M']);

    expect(await proc.run('set upload_limit fast', /^error: .*$/m)).toMatch(
      /^error: upload_limit is a rate such as 500K, 5M or 1G per second \(at least 1K\), or 0, none or off for no limit, not 'fast'$/m,
    );
    expect(await proc.run('set partial_seeding maybe', /^error: .*$/m)).toMatch(
      /^error: partial_seeding is on or off, not 'maybe'$/m,
    );
    expect(await proc.run('set speed 5M', /^error: .*$/m)).toMatch(
      /^error: unknown setting 'speed'; the settings are upload_limit, download_limit, partial_seeding$/m,
    );
    expect(await proc.run('set download_limit', /^error: .*$/m)).toMatch(/^error: usage: set <name> <value>/m);

    const listed = await proc.run('set', /^partial seeding: .*$/m);
    expect(listed).toMatch(/^upload limit: 2\.0 MiB\/s\ndownload limit: none\npartial seeding: on$/m);
    expect(listed).not.toMatch(/error/);
  });

  it('shows --no-partial-seeding and --download-limit given on the command line', async () => {
    const { proc } = await client('carol', ['--no-partial-seeding', '--download-limit', '1M']);

    const status = statusOf(await proc.run('status', STATUS_END));

    expect(status['partial seeding']).toBe('off');
    expect(status['download limit']).toBe('1.0 MiB/s');
    await proc.run('set partial_seeding on', /^partial seeding: on$/m);
    expect(statusOf(await proc.run('status', STATUS_END))['partial seeding']).toBe('on');
  });

  it('reads P2P_UPLOAD_LIMIT, P2P_DOWNLOAD_LIMIT and P2P_PARTIAL_SEEDING=off, the flags winning', async () => {
    const env = { P2P_UPLOAD_LIMIT: '3M', P2P_DOWNLOAD_LIMIT: '256K', P2P_PARTIAL_SEEDING: 'off' };
    const fromEnv = await clientWithEnv('dave', env);
    const flagged = await clientWithEnv('erin', env, ['--partial-seeding', '--upload-limit', '1M']);

    expect(statusOf(await fromEnv.proc.run('status', STATUS_END))).toMatchObject({
      'upload limit': '3.0 MiB/s',
      'download limit': '256.0 KiB/s',
      'partial seeding': 'off',
    });
    expect(statusOf(await flagged.proc.run('status', STATUS_END))).toMatchObject({
      'upload limit': '1.0 MiB/s',
      'download limit': '256.0 KiB/s',
      'partial seeding': 'on',
    });
  });

  it.each([
    [['--download-limit', 'fast'], {}, /^error: --download-limit 'fast' is not a rate such as 500K/],
    [[], { P2P_PARTIAL_SEEDING: 'sometimes' }, /^error: P2P_PARTIAL_SEEDING 'sometimes' is not on or off; usage: /],
    [[], { P2P_UPLOAD_LIMIT: '10' }, /^error: P2P_UPLOAD_LIMIT '10' is not a rate such as 500K/],
  ])('refuses %j %j at start with one error line and status 2', async (extra, env, pattern) => {
    const dir = join(net.dir, `refused-${Object.keys(env).join('') || extra[0]}`);
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(
      process.execPath,
      [CLIENT_MAIN, `127.0.0.1:${await freePort()}`, net.infoFile, '--data-dir', join(dir, '.state'), ...extra],
      { encoding: 'utf8', timeout: 15_000, input: '', cwd: dir, env: { ...process.env, ...env } },
    );
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(pattern);
  });
});
