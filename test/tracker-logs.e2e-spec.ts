import { encodeChunkHashes } from '@app/protocol';
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import {
  Proc,
  RawConn,
  removeDir,
  startTracker,
  startTrackerReady,
  TRACKER_MAIN,
  trackerNetwork,
} from './support/processes';

type Line = Record<string, unknown> & { level: string; message: string };

/** Every line the tracker wrote (stdout and stderr, both pipes here), each parsed as JSON: a line that is not fails. */
function logLines(p: Proc): Line[] {
  return (p.stdout + p.stderr)
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      try {
        return JSON.parse(l) as Line;
      } catch {
        throw new Error(`not a JSON line: ${l}`);
      }
    });
}

/** Waits for a log line that `match` accepts and returns it. */
async function logLine(p: Proc, match: (l: Line) => boolean, what: string, timeoutMs = 20_000): Promise<Line> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logLines(p).find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no ${what} line; got:\n${p.stdout}\n${p.stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const ANSI = '\x1b[';

describe('tracker logs (real processes, output to pipes)', () => {
  let net: { dir: string; infoFile: string; ports: number[] };
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  beforeAll(async () => {
    net = await trackerNetwork(2);
  });

  afterAll(async () => {
    for (const c of conns) c.close();
    await Promise.all(procs.map((p) => p.stop()));
    removeDir(net.dir);
  });

  it('logs start-up, a login without its password, a group change, an upload, an error with its request id and a limit refusal, as JSON lines', async () => {
    const t1 = await startTrackerReady(net.infoFile, 1, join(net.dir, 't1'), ['--max-conns-per-ip', '2']);
    procs.push(t1);
    const start = await logLine(t1, (l) => /listening on/.test(l.message), 'start-up');
    expect(start).toMatchObject({
      level: 'info',
      context: 'Tracker',
      tracker: 1,
      address: `127.0.0.1:${net.ports[0]}`,
      dataDir: join(net.dir, 't1'),
      peers: [`127.0.0.1:${net.ports[1]}`],
    });
    expect(typeof start.time).toBe('string');

    const alice = await RawConn.open(net.ports[0]);
    conns.push(alice);
    expect((await alice.request('create_user alice pw-Secret-1')).ok).toBe(true);
    const login = await alice.request('login alice pw-Secret-1');
    expect(login.ok).toBe(true);
    const token = /session_token:([0-9a-f]{64})/.exec(JSON.stringify(login))![1];
    const loginLine = await logLine(t1, (l) => l.message === 'alice logged in', 'login');
    expect(loginLine).toMatchObject({ context: 'AuthController', user: 'alice' });
    expect(loginLine.address).toMatch(/^127\.0\.0\.1:\d+$/);

    expect((await alice.request('create_group team')).ok).toBe(true);
    await logLine(t1, (l) => l.message === 'alice created group team' && l.group === 'team', 'group change');

    const chunks = encodeChunkHashes([sha1('c0'), sha1('c1')]);
    const upload = await alice.request(
      `upload_file team /home/alice/report.pdf 600000 ${sha1('f')} ${chunks.arg} 7001`,
    );
    expect(upload.ok).toBe(true);
    expect(await logLine(t1, (l) => l.file === 'report.pdf', 'upload')).toMatchObject({
      context: 'FilesController',
      user: 'alice',
      group: 'team',
      size: 600000,
      chunks: 2,
      created: true,
    });

    const refused = await alice.request('#ask-9 join_group nowhere');
    expect(refused).toMatchObject({ ok: false, code: 'UNKNOWN_GROUP' });
    expect(await logLine(t1, (l) => l.code === 'UNKNOWN_GROUP', 'error')).toMatchObject({
      requestId: 'ask-9',
      user: 'alice',
      message: expect.stringMatching(/^answered ERR UNKNOWN_GROUP: /) as unknown,
    });

    conns.push(await RawConn.open(net.ports[0])); // the second connection from 127.0.0.1: the last one allowed
    await expect(RawConn.open(net.ports[0])).rejects.toThrow(/TOO_MANY_CONNECTIONS/);
    const limit = await logLine(t1, (l) => l.limit === 'TOO_MANY_CONNECTIONS', 'limit refusal');
    expect(limit.level).toBe('warn');
    expect(limit.address).toMatch(/^127\.0\.0\.1:\d+$/);

    const all = t1.stdout + t1.stderr;
    expect(all).not.toContain('pw-Secret-1');
    expect(all).not.toContain(token);
    expect(all).not.toContain(ANSI);
    expect(logLines(t1).length).toBeGreaterThan(5); // every line parsed as JSON
  }, 60_000);

  it("logs a second tracker's sync link up, then down with its reason", async () => {
    const t1 = procs[0];
    const t2 = startTracker(net.infoFile, 2, join(net.dir, 't2'));
    procs.push(t2);
    const up = await logLine(t1, (l) => l.link === 'up' && l.peer === 2, 'link up', 30_000);
    expect(up).toMatchObject({ level: 'info', context: 'SyncService', address: `127.0.0.1:${net.ports[1]}` });
    await t2.stop();
    const down = await logLine(t1, (l) => l.link === 'down' && l.peer === 2, 'link down', 30_000);
    expect(down.level).toBe('warn');
    expect(typeof down.reason).toBe('string');
    expect(t2.stdout + t2.stderr).not.toContain(ANSI);
  }, 90_000);
});

describe('tracker binary', () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    spawnSync(process.execPath, [TRACKER_MAIN, ...args], {
      encoding: 'utf8',
      timeout: 30_000,
      env: { ...process.env, ...env },
    });

  it('--help prints the usage with the flags and their environment variables, and exits 0', () => {
    for (const flag of ['--help', '-h']) {
      const r = run([flag]);
      expect(r.status).toBe(0);
      expect(r.stdout).toMatch(/^usage: tracker <tracker_info_file> <tracker_number>/);
      expect(r.stdout).toMatch(/--log-level LEVEL .* TRACKER_LOG_LEVEL/);
      expect(r.stdout).toMatch(/TRACKER_DATA_DIR/);
      expect(r.stderr).toBe('');
    }
  });

  it('--version prints the version and exits 0', () => {
    const r = run(['--version']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^tracker \(p2p-share\) \d+\.\d+\.\d+\n$/);
  });

  it('a bad flag or level exits 2 with one error line', () => {
    for (const args of [
      ['info.txt', '1', '--bogus'],
      ['info.txt', '1', '--log-level', 'loud'],
    ]) {
      const r = run(args);
      expect(r.status).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/^error: [^\n]+\n$/);
    }
    const env = run(['info.txt', '1'], { TRACKER_LOG_LEVEL: 'loud' });
    expect(env.status).toBe(2);
    expect(env.stderr).toMatch(/^error: TRACKER_LOG_LEVEL must be one of error, warn, info, debug/);
  });

  it('stops cleanly on Ctrl-C (SIGINT) and on SIGTERM, ending by that signal (exit status 130 and 143 in a shell)', async () => {
    const own = await trackerNetwork(1);
    try {
      for (const signal of ['SIGINT', 'SIGTERM'] as const) {
        const p = await startTrackerReady(own.infoFile, 1, join(own.dir, `t-${signal}`));
        try {
          p.child.kill(signal);
          expect(await p.exited).toEqual({ code: null, signal });
        } finally {
          await p.stop('SIGKILL');
        }
      }
    } finally {
      removeDir(own.dir);
    }
  });

  it('--log-format text writes text lines to a pipe, without colour', async () => {
    const net = await trackerNetwork(1);
    const p = startTracker(net.infoFile, 1, join(net.dir, 't'), ['--log-format', 'text']);
    try {
      const text = await p.waitFor(/listening on[^\n]*\n/, 30_000);
      expect(text).toMatch(/ LOG \[Tracker\] tracker 1 listening on 127\.0\.0\.1:\d+/);
      expect(text).not.toMatch(/^\{"time"/m);
      expect(text).not.toContain(ANSI);
    } finally {
      await p.stop();
      removeDir(net.dir);
    }
  }, 60_000);

  it('takes the data dir and the log level from the environment: at warn, the info lines are gone', async () => {
    const net = await trackerNetwork(1);
    const dataDir = join(net.dir, 'from-env');
    const p = new Proc(
      spawn(process.execPath, [TRACKER_MAIN, net.infoFile, '1'], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TRACKER_DATA_DIR: dataDir, TRACKER_LOG_LEVEL: 'warn' },
      }),
    );
    try {
      const conn = await waitConnect(net.ports[0]);
      expect(await conn.request('join_group g')).toMatchObject({ ok: false, code: 'NOT_LOGGED_IN' }); // it serves
      conn.close();
      expect(spawnSync('ls', [dataDir]).stdout.toString()).toMatch(/tracker\.db/);
      expect(logLines(p).filter((l) => l.level === 'info')).toEqual([]);
    } finally {
      await p.stop();
      removeDir(net.dir);
    }
  }, 60_000);
});

describe('tracker logs on a terminal (script(1) gives it a pseudo-terminal)', () => {
  /** Tracker 1 of a fresh network run under script(1), stdout and stderr the terminal; its text until it listens. */
  async function onTerminal(env: NodeJS.ProcessEnv): Promise<string> {
    const net = await trackerNetwork(1);
    const command = [process.execPath, TRACKER_MAIN, net.infoFile, '1', '--data-dir', join(net.dir, 't')]
      .map((arg) => `'${arg}'`)
      .join(' ');
    const p = new Proc(
      spawn('script', ['-qfec', command, '/dev/null'], {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, NO_COLOR: undefined, ...env },
      }),
    );
    try {
      return await p.waitFor(/listening on[^\n]*\n/, 30_000);
    } finally {
      await p.stop();
      removeDir(net.dir);
    }
  }

  it('writes text lines in colour, not JSON', async () => {
    const text = await onTerminal({});
    expect(text).toContain(ANSI);
    expect(text.replace(/\x1b\[[0-9;]*m/g, '')).toMatch(/ LOG \[Tracker\] tracker 1 listening on 127\.0\.0\.1:\d+/);
    expect(text).not.toMatch(/^\{"time"/m);
  }, 60_000);

  it('writes no colour code with NO_COLOR set', async () => {
    const text = await onTerminal({ NO_COLOR: '1' });
    expect(text).toMatch(/tracker 1 listening on/);
    expect(text).not.toContain(ANSI);
    expect(text).not.toMatch(/^\{"time"/m);
  }, 60_000);
});

/** Connects once the tracker listens (it logs nothing at warn to wait on). */
async function waitConnect(port: number, timeoutMs = 20_000): Promise<RawConn> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await RawConn.open(port);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
