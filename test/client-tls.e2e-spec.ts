import { fingerprintOf } from '@app/tls';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLIENT_MAIN,
  freePort,
  Proc,
  removeDir,
  runClientScript,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

const FINGERPRINT = /^sha256:[0-9a-f]{64}$/;
const NO_TLS_WARNING = 'warning: --no-tls: passwords, tokens and file bytes cross the network in clear';

/**
 * The client's own identity and how it talks to a real tracker: `--print-fingerprint`, the start-up line, trust on
 * first use kept in `known_trackers`, and `--no-tls`. One tracker for the whole file, one data directory per client.
 */
describe('client TLS: identity, trust on first use, --no-tls', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let trackerFingerprint: string;
  let trackerAddress: string;

  beforeAll(async () => {
    net = await trackerNetwork(1);
    const trackerDir = join(net.dir, 'tracker-1');
    tracker = await startTrackerReady(net.infoFile, 1, trackerDir);
    trackerFingerprint = fingerprintOf(readFileSync(join(trackerDir, 'identity.crt'), 'utf8'));
    trackerAddress = `127.0.0.1:${net.ports[0]}`;
  }, 30_000);

  afterAll(async () => {
    await tracker?.stop('SIGKILL');
    removeDir(net.dir);
  });

  const script = async (dataDir: string, lines: string[], extra: string[] = []) =>
    runClientScript(`127.0.0.1:${await freePort()}`, net.infoFile, lines, {
      extra: ['--data-dir', dataDir, ...extra],
      cwd: net.dir,
    });

  it('prints the same fingerprint with --print-fingerprint on every run, the one it shows at start-up', async () => {
    const dataDir = join(net.dir, 'ann');
    const print = () =>
      spawnSync(
        process.execPath,
        [CLIENT_MAIN, '127.0.0.1:1', net.infoFile, '--data-dir', dataDir, '--print-fingerprint'],
        {
          input: '',
          encoding: 'utf8',
          timeout: 30_000,
        },
      );
    const first = print();
    expect(first.status).toBe(0);
    expect(first.stderr).toBe('');
    const printed = first.stdout.replace(/\n$/, '');
    expect(printed).toMatch(FINGERPRINT);
    expect(first.stdout).toBe(`${printed}\n`);
    expect(statSync(join(dataDir, 'identity.key')).mode & 0o777).toBe(0o600);
    expect(print().stdout).toBe(first.stdout);

    const run = await script(dataDir, ['status']);
    expect(run.code).toBe(0);
    expect(run.stdout.split('\n')[0]).toBe(`your fingerprint: ${printed}`);
    expect(run.stdout).toContain(`\nyour fingerprint: ${printed}\n`); // status says it too
  }, 60_000);

  it('trusts the tracker on first use, says so once, and keeps it in known_trackers (0600)', async () => {
    const dataDir = join(net.dir, 'bea');
    const known = join(dataDir, 'known_trackers');

    const first = await script(dataDir, ['create_user bea pw-bea', 'login bea pw-bea', 'status']);
    expect(first.code).toBe(0);
    const trustLine = `trusting tracker ${trackerAddress} on first use: ${trackerFingerprint} (kept in ${known})`;
    expect(first.stdout.split('\n').filter((l) => l.startsWith('trusting tracker'))).toEqual([trustLine]);
    expect(first.stdout).toMatch(/logged in as bea/);
    expect(first.stdout).toContain(`tracker traffic: tls, tracker certificate ${trackerFingerprint}\n`);
    expect(statSync(known).mode & 0o777).toBe(0o600);
    expect(readFileSync(known, 'utf8')).toContain(`${trackerAddress} ${trackerFingerprint}\n`);

    const again = await script(dataDir, ['login bea pw-bea']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/logged in as bea/);
    expect(again.stdout).not.toContain('trusting tracker');
  }, 60_000);

  it('stops with one error line and status 2 when its data directory cannot hold an identity', async () => {
    const blocker = join(net.dir, 'a-file');
    writeFileSync(blocker, 'in the way\n');
    const dataDir = join(blocker, 'state');
    const r = spawnSync(process.execPath, [CLIENT_MAIN, '127.0.0.1:1', net.infoFile, '--data-dir', dataDir], {
      input: '',
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect({ status: r.status, stdout: r.stdout }).toEqual({ status: 2, stdout: '' });
    expect(r.stderr).toMatch(new RegExp(`^error: cannot keep an identity in ${dataDir}: ENOTDIR[^\n]*\n$`));
    expect(readFileSync(blocker, 'utf8')).toBe('in the way\n');
  }, 60_000);

  it('--no-tls warns once at start and talks to the tracker in plain text', async () => {
    const dataDir = join(net.dir, 'cid');
    const run = await script(dataDir, ['create_user cid pw-cid', 'login cid pw-cid', 'status'], ['--no-tls']);
    expect(run.code).toBe(0);
    const lines = run.stdout.split('\n');
    expect(lines[0]).toBe(NO_TLS_WARNING);
    expect(lines.filter((l) => l === NO_TLS_WARNING)).toHaveLength(1);
    expect(run.stdout).toMatch(/logged in as cid/);
    expect(run.stdout).toContain('tracker traffic: plain (--no-tls)\n');
    expect(run.stdout).not.toContain('trusting tracker');
    expect(existsSync(join(dataDir, 'known_trackers'))).toBe(false);
  }, 60_000);
});
