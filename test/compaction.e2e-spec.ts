import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
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
const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
/** Files of a 100 GiB file's chunk count (8.4 MB of metadata each) in the snapshot a new tracker takes. */
const BIG_FILES = 3;
const BIG_COUNT = 204_800;
/**
 * Peak RSS allowed to either tracker. Measured: about 330 MiB on tracker 1 (which also took the three 8.4 MB
 * upload lines from the client) and 260 MiB on the tracker that took the snapshot.
 */
const BIG_RSS_BOUND_MIB = 400;
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
      await eventually(
        async () => must(await b.request('list_groups')).some((line) => line.startsWith(`g${i} `)),
        10_000,
        `g${i} reaching tracker 2`,
      );
      must(await b.request(`join_group g${i}`));
      if (i % 2 === 0) {
        // a write is answered once the other tracker holds it, or after the replication wait on a loaded machine
        await eventually(
          async () => must(await a.request(`list_requests g${i}`)).includes('bob'),
          10_000,
          `bob's request for g${i} reaching tracker 1`,
        );
        must(await a.request(`accept_request g${i} bob`));
      }
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

  it("compacts and hands over files of 204,800 chunk hashes with the trackers' memory bounded", async () => {
    const t1 = await start(1);
    const t2 = await start(2);
    const { a } = await manyWrites();
    const started = Date.now();
    for (let f = 0; f < BIG_FILES; f++) {
      const hashes = Array.from({ length: BIG_COUNT }, (_, i) => sha1(`file ${f} chunk ${i}`));
      const size = BIG_COUNT * 512 * 1024;
      a.write(`upload_file g0 /data/big${f}.img ${size} ${sha1(`file ${f}`)} ${hashes.join(',')} 7001\n`);
      expect(must(await a.reply(120_000))).toEqual([]);
    }
    await converged();
    // compaction ran before the big files came (past 40 changes); the next one folds them in
    const snapshotted = /compacted the op log: \d+ changes into a snapshot of \d+ rows/g;
    const compactions = () => t1.stdout.match(snapshotted)?.length ?? 0;
    const before = compactions();
    for (let i = 0; i < Number(COMPACT_AFTER); i++) must(await a.request(`create_group more${i}`));
    await eventually(async () => Promise.resolve(compactions() > before), 60_000, 'a compaction past the big files');
    await converged();
    const digest = await digestOf(1);
    expect(logRows(dataDir(1)).snapshot).toBe(true);

    await t2.stop('SIGKILL');
    removeDir(dataDir(2));
    const again = await start(2);
    await again.waitFor(/took the snapshot of tracker 1/, 120_000);
    await converged();
    expect(await digestOf(2)).toBe(digest);
    const [m1, m2] = [memoryMiB(t1.child.pid!), memoryMiB(again.child.pid!)];
    console.log(
      `${BIG_FILES} files of ${BIG_COUNT} hashes compacted and handed over in ${((Date.now() - started) / 1000).toFixed(1)} s; ` +
        `VmHWM tracker 1 ${m1.toFixed(0)} MiB, tracker 2 (took the snapshot) ${m2.toFixed(0)} MiB`,
    );
    expect(m1).toBeLessThan(BIG_RSS_BOUND_MIB);
    expect(m2).toBeLessThan(BIG_RSS_BOUND_MIB);
  }, 300_000);
});

/** Peak resident memory of a process (VmHWM), in MiB. */
function memoryMiB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m![1]) / 1024;
}
