import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLIENT_MAIN,
  freePort,
  Proc,
  removeDir,
  runClientScript,
  startClient,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/** The seed's user and group flow, three users on three client processes, through two trackers' info file. */
describe('client shell against a real tracker', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const clients: Proc[] = [];
  let runs = 0;
  /** `--data-dir` and working folder of a fresh client, both in the test's temp folder, never in the checkout. */
  const isolated = () => {
    const dir = join(net.dir, `client-${++runs}`);
    mkdirSync(dir);
    return { extra: ['--data-dir', join(dir, '.state')], cwd: dir };
  };
  const client = async () => {
    const { extra, cwd } = isolated();
    const p = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, extra, cwd);
    clients.push(p);
    return p;
  };

  beforeAll(async () => {
    net = await trackerNetwork(2);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'data1'));
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.stop('SIGKILL')));
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('runs the whole user and group flow with three users', async () => {
    const alice = await client();
    const bob = await client();
    const carol = await client();

    await alice.run('create_user alice a-pass', /user alice created/);
    await bob.run('create_user bob b-pass', /user bob created/);
    await carol.run('create_user carol "c pass with spaces"', /user carol created/);
    await alice.run('login alice a-pass', /logged in as alice/);
    await bob.run('login bob b-pass', /logged in as bob/);
    await carol.run('login carol "c pass with spaces"', /logged in as carol/);

    await alice.run('create_group team', /group team created/);
    await bob.run('create_group bobs', /group bobs created/);
    await bob.run('join_group team', /asked to join group team/);
    await carol.run('join_group team', /asked to join group team/);
    expect(await alice.run('list_requests team', /carol/)).toMatch(/bob\ncarol/);
    await alice.run('accept_request team bob', /bob is now a member of group team/);
    await alice.run('accept_request team carol', /carol is now a member of group team/);
    expect(await alice.run('list_requests team', /no pending requests/)).not.toMatch(/bob|carol/);

    const groups = await carol.run('list_groups', /team owner=/);
    expect(groups).toMatch(/bobs owner=bob members=1 you=none/);
    expect(groups).toMatch(/team owner=alice members=3 you=member/);

    // the owner leaves: the longest-standing member (bob) takes over
    await alice.run('leave_group team', /left group team; bob owns it now/);
    expect(await carol.run('list_groups', /team owner=/)).toMatch(/team owner=bob members=2 you=member/);
    await carol.run('list_requests team', /^error: only the owner of group team/m);
    await alice.run('join_group team', /asked to join group team/);
    await bob.run('accept_request team alice', /alice is now a member of group team/);

    await carol.run('leave_group team', /left group team/);
    await bob.run('leave_group bobs', /it had no members left and was deleted/);
    expect(await bob.run('list_groups', /team owner=/)).not.toMatch(/bobs/);

    await alice.run('logout', /alice logged out/);
    await alice.run('list_groups', /^error: you must log in first/m);
    await alice.run('login alice a-pass', /logged in as alice/);

    // piped sessions: 0 only when every command succeeded; alice's list_groups after logout and carol's
    // list_requests failed, so they exit 1 and say so
    for (const [c, code] of [
      [alice, 1],
      [bob, 0],
      [carol, 1],
    ] as const) {
      c.send('exit');
      expect((await c.exited).code).toBe(code);
      if (code === 1) expect(c.stdout).toMatch(/^error: 1 of \d+ commands failed$/m);
    }
    expect(tracker.running).toBe(true);
  });

  it('answers bad input with error lines and keeps going', async () => {
    const port = await freePort();
    const { code, stdout } = await runClientScript(
      `127.0.0.1:${port}`,
      net.infoFile,
      [
        'frobnicate',
        'create_user',
        'create_user dave',
        'create_user dave d-pass',
        'login dave wrong',
        'login nobody x',
        'login dave d-pass',
        'login dave d-pass',
        'join_group no-such-group',
        'create_group "bad group"',
        'accept_request no-such-group eve',
        'login "unterminated',
        'list_groups',
      ],
      isolated(),
    );
    // some commands failed: exit 1, and the last line says how many
    expect(code).toBe(1);
    const lines = stdout.trim().split('\n');
    expect(lines.pop()).toBe('error: 10 of 13 commands failed');
    const errors = lines.filter((l) => l.startsWith('error:'));
    expect(errors).toHaveLength(10);
    expect(stdout).toMatch(/error: unknown command 'frobnicate'/);
    expect(stdout).toMatch(/error: usage: create_user <user_id> <password>/);
    expect(stdout.match(/error: wrong user id or password/g)).toHaveLength(2); // wrong password, unknown user
    expect(stdout).toMatch(/error: already logged in as dave/);
    expect(stdout).toMatch(/error: no group named no-such-group/);
    expect(stdout).toMatch(/error: invalid group id 'bad group'/);
    expect(stdout).toMatch(/user dave created/);
    expect(stdout).toMatch(/logged in as dave/);
    // the last command still ran
    expect(lines[lines.length - 1]).toMatch(/owner=/);
  });

  it('prints no prompt when stdin is not a terminal and exits at end of input', async () => {
    const { code, stdout } = await runClientScript(`127.0.0.1:${await freePort()}`, net.infoFile, ['help'], isolated());
    expect(code).toBe(0);
    expect(stdout).not.toMatch(/\$>/);
    for (const cmd of ['create_user', 'login', 'join_group', 'accept_request', 'list_groups', 'exit']) {
      expect(stdout).toMatch(new RegExp(`^\\s*${cmd}\\b`, 'm'));
    }
  });

  it('exits 0 after a piped script in which every command succeeded', async () => {
    const { code, stdout } = await runClientScript(
      `127.0.0.1:${await freePort()}`,
      net.infoFile,
      ['create_user erin e-pass', 'login erin e-pass', 'create_group erins', 'list_groups', 'quit', 'frobnicate'],
      isolated(),
    );
    expect(code).toBe(0); // quit ends the script: the line after it never runs
    expect(stdout).not.toMatch(/error/);
  });

  it('exits 130 on SIGINT (Ctrl-C), whatever came before', async () => {
    const c = await client();
    await c.run('frobnicate', /unknown command/);
    await c.run('help', /commands:/);
    c.child.kill('SIGINT');
    const { code, signal } = await c.exited;
    // 130 from the client's own exit, or the signal itself if it had already stopped listening on its way out
    expect(code === 130 || signal === 'SIGINT').toBe(true);
    expect(c.stdout).not.toMatch(/commands failed/);
  });

  describe('argv handling', () => {
    // run from the test's temp folder: a client that got as far as its default ./data folder makes it there
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [CLIENT_MAIN, ...args], {
        encoding: 'utf8',
        timeout: 15_000,
        input: '',
        cwd: net.dir,
      });

    it.each([
      [['127.0.0.1:7001'], /usage/],
      [['not-an-address', 'tracker_info.txt'], /not-an-address/],
      [['127.0.0.1:99999', 'tracker_info.txt'], /127\.0\.0\.1:99999/],
    ])('refuses %j with one error line and status 2', (args, pattern) => {
      const r = run(...args);
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/^error: /);
      expect(r.stderr).toMatch(pattern);
    });

    it('names a missing tracker_info file', () => {
      const r = run('127.0.0.1:7001', join(net.dir, 'nope.txt'));
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/nope\.txt/);
    });

    it('names the line of a bad tracker_info entry', () => {
      const bad = join(net.dir, 'bad-info.txt');
      writeFileSync(bad, '127.0.0.1:6001\n\nbogus line here\n');
      const r = run('127.0.0.1:7001', bad);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/bad-info\.txt:3/);
    });

    it('says so when no tracker answers', async () => {
      const dead = join(net.dir, 'dead-info.txt');
      writeFileSync(dead, `127.0.0.1:${await freePort()}\n`);
      const { extra } = isolated();
      const r = run(`127.0.0.1:${await freePort()}`, dead, ...extra);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(/^error: no tracker reachable/m);
    });
  });
});
