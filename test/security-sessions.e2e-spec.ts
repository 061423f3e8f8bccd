import { Reply } from '@app/protocol';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, Proc, RawConn, removeDir, startClient, startTracker, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest } from './support/sync';

const code = (r: Reply) => (r.ok ? 'OK' : r.code);
const tokenOf = (lines: readonly string[]) => lines.find((l) => l.startsWith('session_token:'))!.slice(14);

/** Resolves once `ms` have passed since `from` (epoch ms): for waits whose length is the behaviour under test. */
async function until(from: number, ms: number): Promise<void> {
  await eventually(() => Promise.resolve(Date.now() >= from + ms), ms + 60_000, `${ms} ms past`);
}

/**
 * Sessions end (idle time and absolute age, on every tracker, across restarts),
 * and a request id belongs to the user, or before login to the connection,
 * that sent it.
 */
describe('security: sessions and request ids', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  /** Two trackers of one network, started with `flags`; `restart` kills both (-9) and starts them on their data dirs. */
  async function network(flags: string[]) {
    const net = await trackerNetwork(2);
    dirs.push(net.dir);
    const keyFile = net.infoFile.replace(/\.txt$/, '.key');
    const trackers: Proc[] = [];
    const start = (n: number) => {
      const p = startTracker(net.infoFile, n, join(net.dir, `data-${n}`), flags);
      procs.push(p);
      trackers[n - 1] = p;
      return p;
    };
    /** Starts both and waits until each has linked with the other. */
    const startBoth = async () => {
      const ps = [start(1), start(2)];
      await Promise.all(ps.map((p) => p.waitFor(/listening on/, 20_000)));
      await Promise.all(ps.map((p, i) => p.waitFor(new RegExp(`linked with tracker ${2 - i}`), 20_000)));
    };
    const open = async (n: number, localAddress?: string) => {
      const c = await RawConn.open(net.ports[n - 1], localAddress);
      conns.push(c);
      return c;
    };
    const killBoth = () => Promise.all(trackers.map((p) => p.stop('SIGKILL')));
    /** Both trackers hold the same replicated state. */
    const converged = () =>
      eventually(
        async () =>
          (await stateDigest(net.ports[0], keyFile, 2, 1)) === (await stateDigest(net.ports[1], keyFile, 1, 2)),
        20_000,
        'trackers agreeing',
      );
    /** `resume <token>` on a fresh connection to tracker n; the connection is closed again (no logout). */
    const resume = async (n: number, token: string) => {
      const c = await open(n);
      const reply = await c.request(`resume ${token}`);
      c.close();
      return reply;
    };
    return { net, trackers, start, startBoth, open, killBoth, converged, resume };
  }

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  it('a token dropped without logout resumes within the idle time, then is refused with SESSION_EXPIRED on both trackers, after both were killed and restarted', async () => {
    const IDLE = 4000;
    const { startBoth, open, killBoth, converged, resume } = await network([
      '--session-idle',
      `${IDLE}ms`,
      '--session-max-age',
      '1h',
    ]);
    await startBoth();
    const a = await open(1);
    must(await a.request('create_user alice pw'));
    const token = tokenOf(must(await a.request('login alice pw')));
    a.close(); // no logout

    // within the idle time the token resumes, on either tracker
    const r1 = await resume(1, token);
    expect(r1).toMatchObject({ ok: true, message: 'resumed the session of alice' });
    expect(code(await resume(2, token))).toBe('OK');
    const lastSeen = Date.now();
    await converged();

    await killBoth();
    await startBoth();
    await until(lastSeen, IDLE + 1500);
    for (const n of [1, 2]) {
      const refused = await resume(n, token);
      expect(refused).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
    }
    // and it is gone: no later resume brings it back
    expect(code(await resume(1, token))).toMatch(/SESSION_EXPIRED|UNKNOWN_SESSION/);
  }, 120_000);

  it('a token stops resuming at its absolute age even when it was just used, on both trackers, after a restart', async () => {
    const MAX_AGE = 6000;
    const { startBoth, open, killBoth, resume } = await network([
      '--session-idle',
      '1h',
      '--session-max-age',
      `${MAX_AGE}ms`,
    ]);
    await startBoth();
    const a = await open(1);
    must(await a.request('create_user alice pw'));
    const loggedIn = Date.now();
    const token = tokenOf(must(await a.request('login alice pw')));
    a.close();
    expect(code(await resume(2, token))).toBe('OK');
    expect(code(await resume(1, token))).toBe('OK');

    await killBoth();
    await startBoth();
    await until(loggedIn, MAX_AGE + 1000);
    for (const n of [2, 1]) expect(await resume(n, token)).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
  }, 120_000);

  it('a session held when its tracker is killed resumes on the other within the idle time from the drop; one left longer does not', async () => {
    const IDLE = 3000;
    const { trackers, startBoth, open, resume } = await network(['--session-idle', `${IDLE}ms`]);
    await startBoth();
    const setup = await open(1);
    must(await setup.request('create_user alice pa'));
    must(await setup.request('create_user bob pb'));
    setup.close();
    const alice = await open(1);
    const bob = await open(1);
    const aliceToken = tokenOf(must(await alice.request('login alice pa')));
    const bobToken = tokenOf(must(await bob.request('login bob pb')));
    // held for longer than the idle time: a held session does not idle
    await until(Date.now(), IDLE + 1000);
    expect(must(await alice.request('list_groups'))).toEqual([]);

    await trackers[0].stop('SIGKILL');
    const killed = Date.now();
    expect(code(await resume(2, aliceToken))).toBe('OK'); // the failover
    await until(killed, IDLE + 1500);
    expect(await resume(2, bobToken)).toMatchObject({ ok: false, code: 'SESSION_EXPIRED' });
  }, 120_000);

  it('our client says once that the session expired when its resume after a failover is refused, and goes on', async () => {
    const IDLE = 3000;
    const { net, trackers, start, startBoth } = await network(['--session-idle', `${IDLE}ms`]);
    await startBoth();
    const dir = join(net.dir, 'alice');
    mkdirSync(dir);
    const client = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, ['--data-dir', join(dir, '.state')], dir);
    procs.push(client);
    await client.run('create_user alice pw', /created/);
    await client.run('login alice pw', /logged in as alice/);

    // tracker 2 goes first, then tracker 1: the client finds no tracker for its whole failover window
    await trackers[1].stop('SIGKILL');
    await trackers[0].stop('SIGKILL');
    await client.waitFor(/error: .*every tracker/, 40_000);
    const t2 = start(2);
    await t2.waitFor(/listening on/, 20_000);
    const restarted = Date.now();
    await until(restarted, IDLE + 1500);

    const out = await client.run('list_groups', /must log in/, 20_000);
    expect(out).toMatch(/^error: your session has expired; log in again$/m);
    expect(out.match(/session has expired/g)).toHaveLength(1);
    await client.run('login alice pw', /logged in as alice/);
    const listed = await client.run('list_groups', /no groups|error:/);
    expect(listed).not.toMatch(/error:/);
  }, 180_000);

  it('a request id is the sender’s: another connection’s id never makes a change "already applied"; a same-user retry after failover still is', async () => {
    const { trackers, startBoth, open } = await network([]);
    await startBoth();
    const setup = await open(1);
    must(await setup.request('create_user bob pb'));
    must(await setup.request('create_user carol pc'));
    setup.close();

    // the attacker, not logged in, claims the id first
    const attacker = await open(1, '127.0.0.2');
    must(await attacker.request('#x1 create_user mallory pw'));

    const bob = await open(1);
    const bobToken = tokenOf(must(await bob.request('login bob pb')));
    const created = await bob.request('#x1 create_group team');
    expect(created).toMatchObject({ ok: true, message: 'group team created; you own it' });

    // the group exists on both trackers
    const carol = await open(2);
    must(await carol.request('login carol pc'));
    const started = Date.now();
    expect(must(await carol.request('list_groups'))).toEqual(['team owner=bob members=1 you=none']);
    expect(Date.now() - started).toBeLessThan(1000); // a legitimate client is answered promptly
    expect(must(await bob.request('list_groups'))).toEqual(['team owner=bob members=1 you=owner']);

    // logged in, the attacker's ids are still only hers
    must(await attacker.request('login mallory pw'));
    expect(await attacker.request('#x1 create_group mteam')).toMatchObject({
      ok: true,
      message: 'group mteam created; you own it',
    });

    // bob's change goes through tracker 1, which dies before he sees the answer; he retries on tracker 2
    expect(code(await bob.request('#x2 create_group g2'))).toBe('OK');
    await trackers[0].stop('SIGKILL');
    const bob2 = await open(2);
    must(await bob2.request(`resume ${bobToken}`));
    expect(await bob2.request('#x2 create_group g2')).toMatchObject({
      ok: true,
      message: 'done (request #x2 had already been applied)',
    });
    const groups = must(await bob2.request('list_groups'));
    expect(groups.filter((g) => g.startsWith('g2 '))).toEqual(['g2 owner=bob members=1 you=owner']);
  }, 120_000);
});
