import Database from 'better-sqlite3';
import { copyFileSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, ROOT, startTracker, startTrackerReady, trackerNetwork } from './support/processes';
import { must, stateDigest } from './support/sync';

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
