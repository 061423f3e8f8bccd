import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClusterKey } from '../sync/cluster-key';
import { openDatabase } from '../storage/storage.module';
import { assertKeyFileProtected, makePrivateDir, UnprotectedKeyFileError } from './private-files';

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe('files at rest', () => {
  let dir: string;
  let umask: number;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'private-files-spec-'));
    // the most permissive umask: the modes must not depend on the one a tracker happens to start with
    umask = process.umask(0);
  });
  afterEach(() => {
    process.umask(umask);
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates the data folder 0700 and tightens an existing one', () => {
    const data = join(dir, 'a', 'b');
    makePrivateDir(data);
    expect(modeOf(data)).toBe(0o700);
    chmodSync(data, 0o755);
    makePrivateDir(data);
    expect(modeOf(data)).toBe(0o700);
  });

  it('opens tracker.db with its -wal and -shm 0600, also over files an older version left readable', () => {
    const data = join(dir, 'data');
    let db = openDatabase(data);
    db.exec('CREATE TABLE t (x)');
    db.prepare('INSERT INTO t VALUES (?)').run(1);
    for (const f of ['tracker.db', 'tracker.db-wal', 'tracker.db-shm']) expect(modeOf(join(data, f))).toBe(0o600);
    expect(modeOf(data)).toBe(0o700);
    db.close();

    for (const f of ['tracker.db', 'tracker.db-wal', 'tracker.db-shm']) {
      writeFileSync(join(data, f), '', { flag: 'a' });
      chmodSync(join(data, f), 0o644);
    }
    chmodSync(data, 0o755);
    db = openDatabase(data);
    db.prepare('INSERT INTO t VALUES (?)').run(2);
    for (const f of ['tracker.db', 'tracker.db-wal', 'tracker.db-shm']) expect(modeOf(join(data, f))).toBe(0o600);
    expect(modeOf(data)).toBe(0o700);
    db.close();
  });

  it('creates the key file 0600 and reads it back', () => {
    const keyFile = join(dir, 'net.key');
    const key = loadClusterKey(keyFile);
    expect(modeOf(keyFile)).toBe(0o600);
    expect(loadClusterKey(keyFile)).toEqual(key);
  });

  it.each([0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666])(
    'refuses a key file of mode %o, naming the file and the fix',
    (mode) => {
      const keyFile = join(dir, 'net.key');
      writeFileSync(keyFile, `${'ab'.repeat(32)}\n`);
      chmodSync(keyFile, mode);
      expect(() => loadClusterKey(keyFile)).toThrow(UnprotectedKeyFileError);
      expect(() => assertKeyFileProtected(keyFile)).toThrow(
        `key file ${keyFile} is readable or writable by group or others (mode 0${mode.toString(8)}); it holds the network's secret: run chmod 600 ${keyFile}`,
      );
    },
  );

  it.each([0o600, 0o400])('accepts a key file of mode %o, and a missing one', (mode) => {
    const keyFile = join(dir, 'net.key');
    assertKeyFileProtected(keyFile);
    writeFileSync(keyFile, `${'ab'.repeat(32)}\n`);
    chmodSync(keyFile, mode);
    expect(() => assertKeyFileProtected(keyFile)).not.toThrow();
    expect(loadClusterKey(keyFile)).toHaveLength(32);
  });
});
