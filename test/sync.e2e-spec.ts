import { Reply } from '@app/protocol';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CuttableProxy } from './support/proxy';
import { Proc, RawConn, removeDir, startTracker, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest, tlsConnection } from './support/sync';

const code = (r: Reply) => (r.ok ? 'OK' : r.code);
const hash = (i: number) => i.toString(16).padStart(40, '0');
/** Refusals that the groups' state explains (a group that exists already, a user who is no member...). */
const STATE_REFUSALS = new Set([
  'GROUP_EXISTS',
  'UNKNOWN_GROUP',
  'NOT_MEMBER',
  'ALREADY_MEMBER',
  'REQUEST_PENDING',
  'NO_SUCH_REQUEST',
  'NOT_OWNER',
  'FILE_CONFLICT',
  'NOT_SEEDING',
  'UNKNOWN_FILE',
]);

/** Trackers that replicate: every tracker of tracker_info.txt ends with the same state. */
describe('tracker sync', () => {
  const dirs: string[] = [];
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  async function network(count: number) {
    const net = await trackerNetwork(count);
    dirs.push(net.dir);
    const keyFile = net.infoFile.replace(/\.txt$/, '.key');
    const start = async (n: number, extra: string[] = []) => {
      const p = startTracker(net.infoFile, n, join(net.dir, `data-${n}`), extra);
      procs.push(p);
      await p.waitFor(/listening on/, 15_000);
      return p;
    };
    const open = async (n: number) => {
      const c = await RawConn.open(net.ports[n - 1]);
      conns.push(c);
      return c;
    };
    const digests = () => Promise.all(net.ports.map((port, i) => stateDigest(port, keyFile, i === 0 ? 2 : 1, i + 1)));
    const converged = async (which = net.ports.map((_, i) => i + 1)) => {
      await eventually(
        async () => {
          const ds = await Promise.all(which.map((n) => stateDigest(net.ports[n - 1], keyFile, n === 1 ? 2 : 1, n)));
          return ds.every((d) => d === ds[0]);
        },
        20_000,
        `trackers ${which.join(', ')} agreeing`,
      );
    };
    return { net, keyFile, start, open, digests, converged };
  }

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    dirs.splice(0).forEach(removeDir);
  });

  it('state made through tracker 1 is visible through tracker 2, and a restarted tracker catches up', async () => {
    const { start, open, converged } = await network(2);
    const t1 = await start(1);
    await start(2);
    const a = await open(1);
    must(await a.request('create_user alice pa'));
    must(await a.request('create_user bob pb'));
    must(await a.request('login alice pa'));
    must(await a.request('create_group team'));
    const b = await open(2);
    must(await b.request('login bob pb'));
    must(await b.request('join_group team'));
    expect(must(await a.request('list_requests team'))).toEqual(['bob']);
    must(await a.request(`upload_file team /data/report.pdf 10 ${hash(1)} ${hash(2)} 127.0.0.1:7001`));
    must(await a.request('accept_request team bob'));
    expect(must(await b.request('list_groups'))).toEqual(['team owner=alice members=2 you=member']);
    // alice's client announced the file on tracker 1; tracker 2 knows she is online
    expect(must(await b.request('list_files team'))).toEqual(['report.pdf size=10 seeders=1']);
    const meta = must(await b.request('download_file team report.pdf'));
    expect(meta).toContain(`chunk_hashes:${hash(2)}`);
    expect(meta).toContain('seeders:alice');
    expect(meta).toContain('seeder_ports:7001');
    await converged();

    // tracker 1 dies; what happens meanwhile on tracker 2 reaches it when it is back
    await t1.stop('SIGKILL');
    expect(code(await b.request('leave_group team'))).toBe('OK');
    const c = await open(2);
    must(await c.request('create_user carol pc'));
    await start(1);
    const a2 = await open(1);
    must(await a2.request('login carol pc'));
    expect(must(await a2.request('list_groups'))).toEqual(['team owner=alice members=1 you=none']);
    await converged();
  });

  it('a change acknowledged by one tracker survives its immediate death', async () => {
    const { start, open } = await network(2);
    const t1 = await start(1);
    await start(2);
    const a = await open(1);
    for (let i = 0; i < 20; i++) must(await a.request(`create_user user${i} pw`));
    await t1.stop('SIGKILL');
    for (let i = 0; i < 20; i++) {
      const b = await open(2);
      expect(code(await b.request(`login user${i} pw`))).toBe('OK');
    }
  });

  it('the same user id created on two trackers at once ends the same on both', async () => {
    const { start, open, converged, net } = await network(2);
    // each round tries a wrong password from 127.0.0.1: no login backoff in this test
    const noBackoff = ['--login-backoff-after', '1000000'];
    await start(1, noBackoff);
    await start(2, noBackoff);
    for (let round = 0; round < 5; round++) {
      const [a, b] = await Promise.all([open(1), open(2)]);
      const [ra, rb] = await Promise.all([
        a.request(`create_user twin${round} from-one`),
        b.request(`create_user twin${round} from-two`),
      ]);
      expect([ra, rb].some((r) => r.ok)).toBe(true);
      await converged();
      // exactly one password works, the same one on both trackers
      const outcome = async (port: number) => {
        const results: string[] = [];
        for (const pw of ['from-one', 'from-two']) {
          const c = await RawConn.open(port);
          results.push(code(await c.request(`login twin${round} ${pw}`)));
          c.close();
        }
        return results.join(',');
      };
      const [on1, on2] = await Promise.all([outcome(net.ports[0]), outcome(net.ports[1])]);
      expect(on1).toBe(on2);
      expect(['OK,LOGIN_FAILED', 'LOGIN_FAILED,OK']).toContain(on1);
    }
  });

  it('three trackers hold the same state, whichever one a change came through', async () => {
    const { start, open, converged } = await network(3);
    await Promise.all([start(1), start(2), start(3)]);
    const [a, b, c] = await Promise.all([open(1), open(2), open(3)]);
    must(await a.request('create_user ann pw'));
    must(await b.request('create_user ben pw'));
    must(await c.request('create_user cat pw'));
    must(await c.request('login ann pw'));
    must(await c.request('create_group trio'));
    must(await a.request('login ben pw'));
    must(await a.request('join_group trio'));
    must(await b.request('login cat pw'));
    must(await b.request('join_group trio'));
    must(await c.request('accept_request trio ben'));
    await converged();
    expect(must(await b.request('list_groups'))).toEqual(['trio owner=ann members=2 you=requested']);
  });

  it('random operations on three trackers, with a restart in the middle, end in equal digests', async () => {
    const { start, open, converged } = await network(3);
    const trackers = await Promise.all([start(1), start(2), start(3)]);
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      // the high bits: the low bits of this generator cycle fast (with `seed % n` no join_group was ever drawn)
      return Math.floor((seed / 2 ** 31) * n);
    };
    const users = ['u0', 'u1', 'u2', 'u3', 'u4', 'u5'];
    const groups = ['g0', 'g1', 'g2'];
    // one logged-in connection per user per tracker
    const sessions: RawConn[][] = [];
    for (let t = 1; t <= 3; t++) sessions.push([]);
    const setup = await open(1);
    for (const u of users) must(await setup.request(`create_user ${u} pw`));
    await converged();
    const connect = async (t: number) => {
      sessions[t - 1] = [];
      for (const u of users) {
        const conn = await open(t);
        must(await conn.request(`login ${u} pw`));
        sessions[t - 1].push(conn);
      }
    };
    for (let t = 1; t <= 3; t++) await connect(t);
    /** `<command> <OK or error code>` -> how many times. */
    const outcomes = new Map<string, number>();
    const tally = (command: string, reply: Reply) => {
      const key = `${command} ${code(reply)}`;
      outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
    };
    const step = async (i: number) => {
      const t = rand(3);
      if (!trackers[t].running) return;
      const u = rand(users.length);
      const conn = sessions[t][u];
      const g = groups[rand(groups.length)];
      const ops = [
        `create_group ${g}`,
        `join_group ${g}`,
        `leave_group ${g}`,
        `accept_request ${g} ${users[rand(users.length)]}`,
        `upload_file ${g} /f/file${rand(4)}.bin 1 ${hash(rand(3))} ${hash(9)} 127.0.0.1:${7000 + u}`,
        `stop_share ${g} file${rand(4)}.bin`,
      ];
      const op = ops[rand(ops.length)];
      // every request to a running tracker is answered: a refusal is counted, a lost request fails the test
      tally(op.split(' ')[0], await conn.request(op));
      if (i % 7 === 0) tally('list_files', await conn.request('list_files ' + g));
    };
    for (let i = 0; i < 120; i++) {
      await Promise.all([step(i), step(i), step(i)]);
      if (i === 60) {
        await trackers[1].stop('SIGKILL');
      }
      if (i === 80) {
        trackers[1] = await start(2);
        await connect(2);
      }
    }
    await converged();
    // equal digests alone would pass if every operation had been refused: the run must have changed things,
    // and been refused only for what the state of the groups explains
    const refusals = [...outcomes.keys()].map((k) => k.split(' ')[1]).filter((c) => c !== 'OK');
    expect(new Set(refusals)).toEqual(new Set(refusals.filter((c) => STATE_REFUSALS.has(c))));
    const changed = (command: string) => outcomes.get(`${command} OK`) ?? 0;
    for (const command of ['create_group', 'join_group', 'leave_group', 'upload_file']) {
      expect({ command, succeeded: changed(command) > 0 }).toEqual({ command, succeeded: true });
    }
    const changes = ['create_group', 'join_group', 'leave_group', 'accept_request', 'upload_file', 'stop_share'];
    // about 65 in a run on an idle machine; the outcomes depend on how fast changes replicate
    expect(changes.reduce((n, command) => n + changed(command), 0)).toBeGreaterThanOrEqual(30);
  });

  it('trackers cut off from each other keep serving and converge when the link returns', async () => {
    const { net, start, open, converged } = await network(2);
    // each tracker reaches the other through a proxy the test can cut
    const to2 = await CuttableProxy.start(net.ports[1]);
    const to1 = await CuttableProxy.start(net.ports[0]);
    try {
      await start(1, ['--peer-address', `2=127.0.0.1:${to2.port}`]);
      await start(2, ['--peer-address', `1=127.0.0.1:${to1.port}`]);
      const a = await open(1);
      const b = await open(2);
      must(await a.request('create_user before pw'));
      await converged();

      to1.cut();
      to2.cut();
      must(await a.request('create_user only-on-one pw'));
      must(await b.request('create_user only-on-two pw'));
      must(await a.request('create_user split pw-one'));
      must(await b.request('create_user split pw-two'));
      must(await a.request('login before pw'));
      must(await a.request('create_group cut-group'));
      // each side sees its own changes, not the other's
      const probe = await open(2);
      expect(code(await probe.request('login only-on-one pw'))).toBe('LOGIN_FAILED');

      to1.heal();
      to2.heal();
      await converged();
      const after = await open(2);
      must(await after.request('login only-on-one pw'));
      expect(must(await after.request('list_groups'))).toEqual(['cut-group owner=before members=1 you=none']);
      const other = await open(1);
      must(await other.request('login only-on-two pw'));
    } finally {
      await to1.close();
      await to2.close();
    }
  });

  it('refuses sync lines from a peer without the network key', async () => {
    const { start, open, net } = await network(2);
    await start(1);
    const plain = await open(1);
    expect(code(await plain.request(`123456789 sync_hello 2 ${'d'.repeat(64)}`))).toBe('FORBIDDEN');
    const c = await tlsConnection(net.ports[0]);
    try {
      must(await c.request(`123456789 sync_hello 2 ${'d'.repeat(64)}`));
      expect(code(await c.request(`123456789 sync_auth ${'0'.repeat(64)}`))).toBe('FORBIDDEN');
      expect(code(await c.request('123456789 sync_digest'))).toBe('FORBIDDEN');
    } finally {
      c.close();
    }
    writeFileSync(join(net.dir, 'unused'), '');
  });
});
