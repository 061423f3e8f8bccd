import fc from 'fast-check';
import { mkdirSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { HELLO_LINE, HELLO_REPLY, Reply } from '@app/protocol';
import { randomFile, sha1File } from './support/files';
import { fuzzSettings } from './support/fuzz-settings';
import { freePort, Proc, RawConn, removeDir, startClient, startTracker, trackerNetwork } from './support/processes';
import { stateDigest } from './support/sync';
import { EXPECT, TRACKER_EXTRA_FLAGS } from './support/tracker-model';
import {
  attack,
  AttackStats,
  SEED_ERROR,
  FORGED,
  MB,
  MemoryWatch,
  Payload,
  Prober,
  seederPayload,
  syncPayload,
  trackerPayload,
} from './support/wire-fuzz';

/** Most the tracker's resident memory may grow over a phase of attack. */
const TRACKER_GROWTH_BOUND = 150 * MB;
/** Most the seeding client's resident memory may grow while it is attacked. */
const SEEDER_GROWTH_BOUND = 150 * MB;
/** And neither may ever be bigger than this (both start at about 80-150 MB). */
const RSS_BOUND = 400 * MB;
/** Each request of a legitimate client on 127.0.0.1 is answered within this long while the attack goes on... */
const ANSWERED_WITHIN_MS = 1000;
/** ...but a login, which costs an scrypt on a machine the whole suite shares, within this long. */
const LOGIN_ANSWERED_WITHIN_MS = 2000;

const FILE_BYTES = 5 * 512 * 1024 - 1000;

/**
 * Random bytes and near-valid lines against the tracker's client port, the sync handshake (without the network
 * key) and a seeder's port, from attacker connections on 127.0.0.2 and up, while a legitimate client on
 * 127.0.0.1 keeps being answered. Afterwards every service answers correctly, nothing a keyless peer sent
 * changed the tracker's state, and memory stayed bounded. FUZZ_SEED replays; FUZZ_RUNS scales the payload count.
 */
describe('random and near-valid input on every port (fuzz)', () => {
  const { seed, runs } = fuzzSettings(1);
  const payloads = (arb: fc.Arbitrary<Payload>, count: number, salt: number): Payload[] =>
    fc.sample(arb, { seed: seed + salt, numRuns: Math.round(count * runs) });

  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let alice: Proc;
  let bob: Proc;
  let seederPort: number;
  let original: string;
  const trackerPort = () => net.ports[0];

  /** Sends a request and measures how long its answer took. */
  async function timed(conn: RawConn, line: string, times: number[]): Promise<Reply> {
    const start = Date.now();
    const reply = await conn.request(line);
    times.push(Date.now() - start);
    return reply;
  }

  /** A fresh connection from 127.0.0.1 that logs in as the prober; closed (after logout) by the caller. */
  async function proberConn(times: number[] = []): Promise<RawConn> {
    const conn = await RawConn.open(trackerPort());
    const login = await timed(conn, 'login prober pw-prober', times);
    if (!login.ok) throw new Error(`prober login: ERR ${login.code} ${login.message}`);
    return conn;
  }

  /** What a member sees of the tracker's state: groups, the group's files, the file's seeders. */
  async function memberView(): Promise<string[]> {
    const conn = await proberConn();
    try {
      const view: string[] = [];
      for (const line of ['list_groups', 'list_files team', 'download_file team shared.bin']) {
        const reply = await conn.request(line);
        view.push(line, ...(reply.ok ? reply.lines : [`ERR ${reply.code}`]));
      }
      await conn.request('logout');
      return view;
    } finally {
      conn.close();
    }
  }

  /** How long each probe's login took. */
  let loginTimes: number[] = [];

  /** A login and a list_groups from 127.0.0.1, as a legitimate client does them; the slowest answer but login's. */
  async function trackerProbe(): Promise<number> {
    const times: number[] = [];
    const conn = await proberConn(loginTimes);
    try {
      const groups = await timed(conn, 'list_groups', times);
      if (!groups.ok || !groups.lines.includes('team owner=alice members=3 you=member')) {
        throw new Error(`list_groups: ${JSON.stringify(groups)}`);
      }
      await timed(conn, 'logout', times);
    } finally {
      conn.close();
    }
    return Math.max(...times);
  }

  /** An `ERR INTERNAL`, or its seed-form `error: internal error ...` line. */
  const noInternalErrors = (reply: Reply | { chunk: number }): string =>
    'ok' in reply &&
    !reply.ok &&
    (reply.code === 'INTERNAL' || (reply.code === SEED_ERROR && /^internal error/.test(reply.message)))
      ? `INTERNAL error: ${reply.message}`
      : '';

  function report(what: string, stats: AttackStats, memory?: MemoryWatch, probe?: Prober): void {
    if (!process.env.FUZZ_STATS) return;
    const mem = memory ? `, RSS ${(memory.first / MB).toFixed(0)} -> peak ${(memory.peak / MB).toFixed(0)} MB` : '';
    const logins = loginTimes.length ? `, logins ${loginTimes.join(' ')} ms` : '';
    const p = probe ? `, ${probe.times.length} probes (${probe.times.join(' ')} ms${logins})` : '';
    console.log(
      `${what} (seed ${seed}): ${stats.connections} connections (${stats.closedByPeer} closed by the peer), ` +
        `${(stats.bytesSent / MB).toFixed(1)} MB sent, ${stats.replies} replies${mem}${p}\n` +
        [...stats.answers].map(([k, n]) => `${n} ${k}`).join(', '),
    );
  }

  beforeAll(async () => {
    // tracker 2 is listed but never started: the sync fuzz claims to be it
    net = await trackerNetwork(2);
    tracker = startTracker(net.infoFile, 1, join(net.dir, 'tracker-data'), [...TRACKER_EXTRA_FLAGS]);
    await tracker.waitFor(/listening on/, 15_000);

    const start = async (name: string) => {
      const dir = join(net.dir, name);
      mkdirSync(dir);
      const port = await freePort();
      const proc = startClient(`127.0.0.1:${port}`, net.infoFile, ['--data-dir', join(dir, '.state')], dir);
      await proc.run(`create_user ${name} pw-${name}`, /created/);
      await proc.run(`login ${name} pw-${name}`, /logged in/);
      return { proc, port, dir };
    };
    const a = await start('alice');
    const b = await start('bob');
    alice = a.proc;
    bob = b.proc;
    seederPort = a.port;
    original = join(a.dir, 'shared.bin');
    randomFile(original, FILE_BYTES);
    await alice.run('create_group team', /created/);
    await alice.run('upload_file team shared.bin', /shared shared\.bin in group team \(5 chunks\)/);
    await bob.run('join_group team', /asked to join/);
    await alice.run('accept_request team bob', /now a member/);

    const setup = await RawConn.open(trackerPort());
    expect((await setup.request('create_user prober pw-prober')).ok).toBe(true);
    expect((await setup.request('login prober pw-prober')).ok).toBe(true);
    expect((await setup.request('join_group team')).ok).toBe(true);
    await alice.run('accept_request team prober', /now a member/);
    expect((await setup.request('logout')).ok).toBe(true);
    setup.close();
  }, 60_000);

  afterAll(async () => {
    await Promise.all([alice, bob, tracker].filter(Boolean).map((p) => p.stop('SIGKILL')));
    removeDir(net.dir);
  });

  beforeEach(() => {
    loginTimes = [];
  });

  it('the tracker port survives random bytes and near-valid lines, answering everyone else meanwhile', async () => {
    const memory = new MemoryWatch(tracker.child.pid!);
    const probe = new Prober(trackerProbe);
    const stats = await attack({
      port: trackerPort(),
      addresses: ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'],
      connectionsPerAddress: 2,
      payloads: payloads(trackerPayload, 3000, 1),
      kind: 'tracker',
      // every other attacker has an account, so that the fuzz reaches what only logged-in users can do
      preamble: (k) => (k % 2 ? [] : [`create_user xatk${k} pw`, `login xatk${k} pw`]),
      check: noInternalErrors,
    });
    await probe.stop();
    memory.stop();
    report('tracker port', stats, memory, probe);

    expect(tracker.running).toBe(true);
    expect(tracker.stderr).not.toMatch(/ERROR/);
    expect(stats.problems).toEqual([]);
    expect(stats.replies).toBeGreaterThan(100);
    expect(probe.failures).toEqual([]);
    expect(probe.times.length).toBeGreaterThan(0);
    expect(probe.slowest).toBeLessThan(ANSWERED_WITHIN_MS);
    expect(Math.max(...loginTimes)).toBeLessThan(LOGIN_ANSWERED_WITHIN_MS);
    expect(memory.peak - memory.first).toBeLessThan(TRACKER_GROWTH_BOUND);
    expect(memory.peak).toBeLessThan(RSS_BOUND);
    await trackerProbe();
  }, 120_000);

  it('the sync handshake refuses every forged line from a peer without the key, and nothing changes', async () => {
    const before = await memberView();
    // the whole replicated state (users, session tokens, groups, files), as the test holds the network key
    const keyFile = join(net.dir, 'tracker_info.key');
    const digestBefore = await stateDigest(trackerPort(), keyFile, 2, 1);
    const memory = new MemoryWatch(tracker.child.pid!);
    const probe = new Prober(trackerProbe);
    const stats = await attack({
      port: trackerPort(),
      addresses: ['127.0.0.6', '127.0.0.7', '127.0.0.8'],
      connectionsPerAddress: 2,
      payloads: payloads(syncPayload, 2000, 2),
      kind: 'tracker',
      // sync lines are answered framed with or without the HELLO
      seedFramedOk: true,
      check: (reply) => {
        if (!('ok' in reply)) return 'a chunk from the tracker';
        if (reply.ok && !EXPECT.keylessSyncOk.test(reply.message)) return `a keyless peer got OK ${reply.message}`;
        return noInternalErrors(reply);
      },
    });
    await probe.stop();
    memory.stop();
    report('sync handshake', stats, memory, probe);

    expect(tracker.running).toBe(true);
    expect(tracker.stderr).not.toMatch(/ERROR/);
    expect(stats.problems).toEqual([]);
    expect(stats.replies).toBeGreaterThan(100);
    expect(probe.failures).toEqual([]);
    expect(probe.slowest).toBeLessThan(ANSWERED_WITHIN_MS);
    expect(Math.max(...loginTimes)).toBeLessThan(LOGIN_ANSWERED_WITHIN_MS);
    expect(memory.peak - memory.first).toBeLessThan(TRACKER_GROWTH_BOUND);
    expect(memory.peak).toBeLessThan(RSS_BOUND);
    // the state is the same, as a member sees it and as a whole, and nothing the forged lines named exists
    expect(await memberView()).toEqual(before);
    expect(await stateDigest(trackerPort(), keyFile, 2, 1)).toBe(digestBefore);
    const check = await RawConn.open(trackerPort());
    const created = await check.request(`create_user ${FORGED.user} pw`);
    check.close();
    expect(created.ok).toBe(true);
    expect(before.join('\n')).not.toContain(FORGED.group);
    expect(before.join('\n')).not.toContain(FORGED.file);
  }, 120_000);

  it('a seeder survives junk GET_CHUNKs, huge lines and binary, and a real download completes after', async () => {
    const memory = new MemoryWatch(alice.child.pid!);
    /** A request from 127.0.0.1 for a file that is not shared: refused with one line, promptly. */
    const probe = new Prober(
      () =>
        new Promise<number>((resolve, reject) => {
          const socket = connect({ port: seederPort, host: '127.0.0.1' });
          const start = Date.now();
          let got = '';
          const timer = setTimeout(() => {
            socket.destroy();
            reject(new Error('no answer from the seeder within 5 s'));
          }, 5000);
          // the extended form, whose refusals come with a reason
          socket.on('connect', () => socket.write(`${HELLO_LINE}\nGET_CHUNK 0 /no/such/file\n`));
          socket.on('data', (d: Buffer) => {
            got += d.toString('latin1');
            if (got.startsWith(`${HELLO_REPLY}\n`)) got = got.slice(HELLO_REPLY.length + 1);
            if (!got.includes('\n')) return;
            clearTimeout(timer);
            socket.destroy();
            if (/^ERR [A-Z_]+ /.test(got)) resolve(Date.now() - start);
            else reject(new Error(`seeder answered ${JSON.stringify(got.slice(0, 80))}`));
          });
          socket.on('error', (err) => {
            clearTimeout(timer);
            reject(err);
          });
        }),
    );
    const stats = await attack({
      port: seederPort,
      addresses: ['127.0.0.9', '127.0.0.10', '127.0.0.11', '127.0.0.12'],
      connectionsPerAddress: 2,
      payloads: payloads(seederPayload(original), 3000, 3),
      kind: 'seeder',
      // half speak the extended form (HELLO first), half the seed form (where any byte back would be a problem)
      preamble: (k) => (k % 2 ? [] : [HELLO_LINE]),
      // no attacker request names a shared file by a valid chunk index: none may get bytes
      check: (reply) => ('chunk' in reply ? `an attacker got chunk ${reply.chunk}` : ''),
    });
    await probe.stop();
    memory.stop();
    report('seeder port', stats, memory, probe);

    expect(alice.running).toBe(true);
    expect(stats.problems).toEqual([]);
    expect(stats.replies).toBeGreaterThan(100);
    expect(probe.failures).toEqual([]);
    expect(probe.slowest).toBeLessThan(ANSWERED_WITHIN_MS);
    expect(memory.peak - memory.first).toBeLessThan(SEEDER_GROWTH_BOUND);
    expect(memory.peak).toBeLessThan(RSS_BOUND);

    await bob.run('download_file team shared.bin copy.bin', /downloading shared\.bin/);
    await bob.waitFor(/downloaded \[team\] shared\.bin/, 30_000);
    expect(await sha1File(join(net.dir, 'bob', 'copy.bin'))).toBe(await sha1File(original));
  }, 120_000);
});
