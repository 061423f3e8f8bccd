import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, ROOT, startTracker, startTrackerReady, trackerNetwork } from './support/processes';
import { eventually, must, stateDigest, SyncPeer } from './support/sync';

/**
 * test/fixtures/tracker-v0.db was written by the tracker as it was before the database had a schema version
 * (user_version 0): three users, two groups with a member, a join request and a file with two seeders, every
 * session logged out; tracker-v0.digest is the state digest that tracker gave for it.
 */
const FIXTURE = join(ROOT, 'test/fixtures/tracker-v0.db');
const FIXTURE_DIGEST = readFileSync(join(ROOT, 'test/fixtures/tracker-v0.digest'), 'utf8').trim();

const keyFile = (net: { infoFile: string }) => net.infoFile.replace(/\.txt$/, '.key');

const userVersion = (path: string): number => {
  const db = new Database(path, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
};

describe('tracker database schema versions', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc | undefined;

  beforeEach(async () => {
    // tracker 2 never runs: it is only the name the test's sync connection goes by
    net = await trackerNetwork(2);
  });

  afterEach(async () => {
    await tracker?.stop('SIGKILL');
    tracker = undefined;
    removeDir(net.dir);
  });

  it('opens a database from before schema versions, migrates it and holds the same state and digest', async () => {
    const dataDir = join(net.dir, 'data');
    mkdirSync(dataDir);
    copyFileSync(FIXTURE, join(dataDir, 'tracker.db'));
    tracker = await startTrackerReady(net.infoFile, 1, dataDir);
    expect(await stateDigest(net.ports[0], keyFile(net), 2, 1)).toBe(FIXTURE_DIGEST);

    const alice = await RawConn.open(net.ports[0]);
    must(await alice.request('login alice a-secret'));
    expect(must(await alice.request('list_groups'))).toEqual([
      'solo owner=alice members=1 you=owner',
      'team owner=alice members=2 you=owner',
    ]);
    expect(must(await alice.request('list_requests team'))).toEqual(['carol']);
    must(await alice.request('logout'));
    alice.close();
    await tracker.stop('SIGTERM');
    expect(userVersion(join(dataDir, 'tracker.db'))).toBe(2);
  });

  it('refuses to start on a database marked newer than it knows, exits non-zero and leaves the file as it was', async () => {
    const dataDir = join(net.dir, 'data');
    mkdirSync(dataDir);
    const path = join(dataDir, 'tracker.db');
    copyFileSync(FIXTURE, path);
    const marked = new Database(path);
    marked.pragma('user_version = 7');
    marked.close();
    const bytes = readFileSync(path);

    tracker = startTracker(net.infoFile, 1, dataDir);
    const { code } = await tracker.exited;
    expect(code).not.toBe(0);
    expect(tracker.stderr).toContain(
      'tracker.db was written by a newer version (schema 7; this build knows up to 2); refusing to start',
    );
    expect(tracker.stdout).not.toMatch(/listening on/);
    expect(readFileSync(path).equals(bytes)).toBe(true);
    expect(readdirSync(dataDir)).toEqual(['tracker.db']);
  });
});

/** Rows of the op log in a stopped tracker's database, and whether it holds a snapshot. */
function logRows(dataDir: string): { ops: number; snapshot: boolean } {
  const db = new Database(join(dataDir, 'tracker.db'), { readonly: true });
  try {
    const ops = (db.prepare('SELECT count(*) AS n FROM oplog').get() as { n: number }).n;
    const snapshot = db.prepare('SELECT 1 FROM snapshot').get() !== undefined;
    return { ops, snapshot };
  } finally {
    db.close();
  }
}

const hash = (i: number) => i.toString(16).padStart(40, '0');
/** Changes past the snapshot that make a tracker compact its log. */
const COMPACT_AFTER = '40';

describe('op log compaction between real trackers', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  const procs: Proc[] = [];
  const conns: RawConn[] = [];

  beforeEach(async () => {
    net = await trackerNetwork(2);
  });

  afterEach(async () => {
    conns.splice(0).forEach((c) => c.close());
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    removeDir(net.dir);
  });

  const dataDir = (n: number) => join(net.dir, `data-${n}`);
  const start = async (n: number) => {
    const p = await startTrackerReady(net.infoFile, n, dataDir(n), ['--compact-after', COMPACT_AFTER]);
    procs.push(p);
    return p;
  };
  const open = async (n: number) => {
    const c = await RawConn.open(net.ports[n - 1]);
    conns.push(c);
    return c;
  };
  const digestOf = (n: number) => stateDigest(net.ports[n - 1], keyFile(net), n === 1 ? 2 : 1, n);
  const converged = () =>
    eventually(async () => (await digestOf(1)) === (await digestOf(2)), 30_000, 'trackers 1 and 2 agreeing');
  const vvOf = async (n: number) => {
    const peer = await SyncPeer.open(net.ports[n - 1], keyFile(net), n === 1 ? 2 : 1, n);
    try {
      return must(await peer.request('123456789 sync_status'))[0];
    } finally {
      peer.close();
    }
  };
  const changesIn = (vv: string) => vv.split(',').reduce((sum, part) => sum + Number(part.split(':')[1]), 0);

  /** alice (on tracker 1) owns 30 groups bob (on tracker 2) joined, and shares a file: 80 changes; their connections. */
  async function manyWrites(): Promise<{ a: RawConn; b: RawConn }> {
    const a = await open(1);
    const b = await open(2);
    must(await a.request('create_user alice pa'));
    must(await b.request('create_user bob pb'));
    must(await a.request('login alice pa'));
    must(await b.request('login bob pb'));
    for (let i = 0; i < 30; i++) {
      must(await a.request(`create_group g${i}`));
      must(await b.request(`join_group g${i}`));
      if (i % 2 === 0) must(await a.request(`accept_request g${i} bob`));
    }
    must(await a.request(`upload_file g0 "/data/a report.pdf" 10 ${hash(1)} ${hash(2)} 127.0.0.1:7001`));
    return { a, b };
  }

  it('compacts when the log passes --compact-after; restarted, the tracker holds the same digest from fewer log rows', async () => {
    const t1 = await start(1);
    await start(2);
    const { b } = await manyWrites();
    await t1.waitFor(/compacted the op log: \d+ changes into a snapshot/, 30_000);
    await converged();
    const digest = await digestOf(1);
    const made = changesIn(await vvOf(1));
    expect(made).toBeGreaterThanOrEqual(80);

    await t1.stop('SIGTERM');
    const rows = logRows(dataDir(1));
    expect(rows.snapshot).toBe(true);
    expect(rows.ops).toBeLessThan(made - 40);

    procs.push(await startTrackerReady(net.infoFile, 1, dataDir(1), ['--compact-after', COMPACT_AFTER]));
    expect(await digestOf(1)).toBe(digest);
    expect(await digestOf(2)).toBe(digest);
    // and it goes on replicating
    const a = await open(1);
    must(await a.request('login alice pa'));
    must(await a.request('create_group after'));
    await converged();
    expect(must(await b.request('list_groups'))).toContain('after owner=alice members=1 you=none');
  });

  it('brings a tracker whose data was wiped up from the compacted tracker, and writes on either replicate after', async () => {
    const t1 = await start(1);
    const t2 = await start(2);
    const { a } = await manyWrites();
    await t1.waitFor(/compacted the op log/, 30_000);
    await converged();
    const digest = await digestOf(1);

    await t2.stop('SIGKILL');
    removeDir(dataDir(2));
    const again = await start(2);
    await again.waitFor(/took the snapshot of tracker 1/, 30_000);
    await converged();
    expect(await digestOf(2)).toBe(digest);
    expect(logRows(dataDir(1)).snapshot).toBe(true);

    const b = await open(2);
    must(await b.request('login bob pb'));
    must(await b.request('create_group from2'));
    must(await a.request('join_group from2'));
    expect(must(await b.request('list_requests from2'))).toEqual(['alice']);
    await converged();
    expect(must(await a.request('list_groups'))).toContain('g0 owner=alice members=2 you=owner');
  });
});
