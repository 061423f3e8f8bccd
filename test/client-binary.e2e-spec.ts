import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLIENT_MAIN,
  freePort,
  Proc,
  removeDir,
  ROOT,
  startClient,
  startTrackerReady,
  tempDir,
  trackerNetwork,
} from './support/processes';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** Runs the built client to its end with `args`, stdin closed; `env` is added to this process's. */
function runClient(args: string[], env: Record<string, string> = {}, cwd?: string) {
  return spawnSync(process.execPath, [CLIENT_MAIN, ...args], {
    input: '',
    encoding: 'utf8',
    timeout: 30_000,
    cwd,
    env: { ...process.env, ...env },
  });
}

describe('client binary: --help, --version, environment', () => {
  it('prints usage with every flag for --help and exits 0', () => {
    const run = runClient(['--help']);
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/^Usage: client \[options\] <address> <tracker_info_file>/);
    for (const flag of [
      '--data-dir',
      '--upload-limit',
      '--log-level',
      '--no-tls',
      '--print-fingerprint',
      '--version',
      '--help',
    ]) {
      expect(run.stdout).toContain(flag);
    }
    expect(run.stdout).toMatch(/P2P_DATA_DIR/);
    expect(run.stdout).toMatch(/P2P_LOG_LEVEL/);
    expect(run.stdout).toMatch(/P2P_NO_TLS/);
    expect(run.stderr).toBe('');
  });

  it.each([['--version'], ['-V']])('prints the package version for %s and exits 0', (flag) => {
    const run = runClient([flag]);
    expect(run.status).toBe(0);
    expect(run.stdout).toBe(`${VERSION}\n`);
  });

  it('refuses a bad --log-level or P2P_LOG_LEVEL with exit 2 and one error line', () => {
    const flag = runClient(['127.0.0.1:1', 'missing.txt', '--log-level', 'loud']);
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/^error: --log-level 'loud' is not one of off, error, warn, info, debug, verbose;/);
    const env = runClient(['127.0.0.1:1', 'missing.txt'], { P2P_LOG_LEVEL: 'loud' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/^error: P2P_LOG_LEVEL 'loud' is not one of/);
  });

  describe('with a tracker', () => {
    let net: Awaited<ReturnType<typeof trackerNetwork>>;
    let tracker: Proc;

    beforeAll(async () => {
      net = await trackerNetwork(1);
      tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-1'));
    }, 30_000);

    afterAll(async () => {
      await tracker.stop('SIGKILL');
      removeDir(net.dir);
    });

    it('keeps its data in P2P_DATA_DIR unless --data-dir says otherwise', async () => {
      const envDir = join(net.dir, 'from-env');
      const flagDir = join(net.dir, 'from-flag');
      const cwd = tempDir();
      try {
        const port = await freePort();
        const byEnv = runClient([`127.0.0.1:${port}`, net.infoFile], { P2P_DATA_DIR: envDir }, cwd);
        expect(byEnv.status).toBe(0);
        expect(existsSync(envDir)).toBe(true);
        const byFlag = runClient(
          [`127.0.0.1:${port}`, net.infoFile, '--data-dir', flagDir],
          { P2P_DATA_DIR: envDir },
          cwd,
        );
        expect(byFlag.status).toBe(0);
        expect(existsSync(flagDir)).toBe(true);
        expect(existsSync(join(cwd, 'data'))).toBe(false);
      } finally {
        removeDir(cwd);
      }
    });

    it('logs on stderr only with a log level, and keeps stdout for the shell', async () => {
      const port = await freePort();
      const dataDir = join(net.dir, 'logged');
      const quiet = runClient([`127.0.0.1:${port}`, net.infoFile, '--data-dir', dataDir]);
      expect(quiet.status).toBe(0);
      expect(quiet.stderr).toBe('');
      const logged = runClient([`127.0.0.1:${port}`, net.infoFile, '--data-dir', dataDir], { P2P_LOG_LEVEL: 'info' });
      expect(logged.status).toBe(0);
      expect(logged.stderr).toMatch(/LOG \[NestFactory\] Starting Nest application/);
      expect(logged.stdout).not.toMatch(/NestFactory/);
      const flagWins = runClient([`127.0.0.1:${port}`, net.infoFile, '--data-dir', dataDir, '--log-level', 'off'], {
        P2P_LOG_LEVEL: 'info',
      });
      expect(flagWins.stderr).toBe('');
    });
  });
});

describe('client with every tracker down', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let client: Proc;

  beforeAll(async () => {
    // two trackers in the file; the second never starts
    net = await trackerNetwork(2);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-1'));
  }, 30_000);

  afterAll(async () => {
    await client?.stop('SIGKILL');
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('fails a command within a few seconds with one error naming the trackers tried, after one notice', async () => {
    client = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, ['--data-dir', join(net.dir, 'client')]);
    await client.run('create_user alice pw', /created/, 15_000);
    await client.run('login alice pw', /logged in as alice/, 15_000);

    await tracker.stop('SIGKILL');
    const started = Date.now();
    const out = await client.run('list_groups', /error:/, 15_000);
    const took = Date.now() - started;
    // the background reconnect and the command report one failure between them, once: the answer to a later
    // command comes after anything either could still print
    await client.run('status', /user: alice/, 15_000);
    const all = client.stdout + client.stderr;
    const trackers = net.ports.map((p) => `127.0.0.1:${p}`).join(', ');
    expect(all.match(/error:/g)).toHaveLength(1);
    expect(all).toContain(`error: lost connection to every tracker (tried ${trackers})`);
    expect(all.match(/trying the others/g) ?? []).toHaveLength(1);
    expect(took).toBeLessThan(9_000);
    expect(out).toMatch(/error:/);
  }, 60_000);
});
