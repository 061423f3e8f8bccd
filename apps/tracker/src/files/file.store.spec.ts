import { fileSnapshotContract } from '../testing/snapshot-contracts';
import { createHash } from 'node:crypto';
import { StoreHarness } from '../testing/store-contracts';
import { TempDatabases } from '../testing/temp-db';
import { compareNames, FileRecord, FileStore, packChunkHashes, SeederRecord, unpackChunkHashes } from './file.store';
import { InMemoryFileStore } from './in-memory-file.store';
import { SqliteFileStore } from './sqlite-file.store';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const hashes = (n: number, seed = 'c') => Array.from({ length: n }, (_, i) => sha1(`${seed}${i}`));

function fileRecord(overrides: Partial<FileRecord> = {}): FileRecord {
  return {
    groupId: 'g1',
    fileName: 'report.pdf',
    fileSize: 1_048_576,
    fileHash: sha1('report'),
    uploader: 'alice',
    createdAt: 1_700_000_000_000,
    chunkHashes: packChunkHashes(hashes(2)),
    ...overrides,
  };
}

function seeder(overrides: Partial<SeederRecord> = {}): SeederRecord {
  return { groupId: 'g1', fileName: 'report.pdf', userId: 'alice', filePath: '/home/alice/report.pdf', ...overrides };
}

const infoOf = (f: FileRecord) => ({
  groupId: f.groupId,
  fileName: f.fileName,
  fileSize: f.fileSize,
  fileHash: f.fileHash,
  uploader: f.uploader,
  createdAt: f.createdAt,
});

/** Behaviour every `FileStore` must share. Call inside a `describe` per implementation. */
function fileStoreContract(harness: StoreHarness<FileStore>): void {
  let store: FileStore;
  beforeEach(() => (store = harness.create()));
  afterEach(() => harness.dispose?.());

  /** Adds a file and seeds it by the given users, in that order. */
  function shared(fileName: string, users: string[] = ['alice'], groupId = 'g1', fileSize = 1): void {
    store.addFile(fileRecord({ groupId, fileName, fileSize }));
    for (const userId of users)
      store.putSeeder(seeder({ groupId, fileName, userId, filePath: `/${userId}/${fileName}` }));
  }

  describe('files', () => {
    it('starts empty', () => {
      expect(store.getFile('g1', 'report.pdf')).toBeUndefined();
      expect(store.chunkHashes('g1', 'report.pdf')).toBeUndefined();
      expect(store.listFiles('g1')).toEqual([]);
      expect(store.seeders('g1', 'report.pdf')).toEqual([]);
      expect(store.seederCount('g1', 'report.pdf')).toBe(0);
    });

    it('adds a file and reads every field and the chunk digests back', () => {
      const file = fileRecord({ chunkHashes: packChunkHashes(hashes(3)) });
      expect(store.addFile(file)).toBe(true);
      expect(store.getFile('g1', 'report.pdf')).toEqual(infoOf(file));
      expect(unpackChunkHashes(store.chunkHashes('g1', 'report.pdf')!)).toEqual(hashes(3));
    });

    it('keeps an empty file with no chunks', () => {
      store.addFile(fileRecord({ fileName: 'empty', fileSize: 0, chunkHashes: Buffer.alloc(0) }));
      expect(store.getFile('g1', 'empty')?.fileSize).toBe(0);
      expect(store.chunkHashes('g1', 'empty')).toEqual(Buffer.alloc(0));
    });

    it('refuses a second file of the same name in a group and keeps the first', () => {
      store.addFile(fileRecord({ fileHash: sha1('first') }));
      expect(store.addFile(fileRecord({ fileHash: sha1('second'), uploader: 'bob' }))).toBe(false);
      expect(store.getFile('g1', 'report.pdf')).toMatchObject({ fileHash: sha1('first'), uploader: 'alice' });
    });

    it('keeps groups apart and names exact', () => {
      store.addFile(fileRecord({ groupId: 'g1', fileSize: 1 }));
      expect(store.addFile(fileRecord({ groupId: 'g2', fileSize: 2 }))).toBe(true);
      expect(store.addFile(fileRecord({ groupId: 'g1', fileName: 'Report.pdf', fileSize: 3 }))).toBe(true);
      expect(store.getFile('g1', 'report.pdf')?.fileSize).toBe(1);
      expect(store.getFile('g2', 'report.pdf')?.fileSize).toBe(2);
      expect(store.getFile('g1', 'Report.pdf')?.fileSize).toBe(3);
      expect(store.getFile('g1', 'report.pdf ')).toBeUndefined();
    });

    it('keeps sizes up to the largest safe integer', () => {
      store.addFile(fileRecord({ fileSize: Number.MAX_SAFE_INTEGER }));
      expect(store.getFile('g1', 'report.pdf')?.fileSize).toBe(Number.MAX_SAFE_INTEGER);
    });

    it('does not let a caller change a stored file through what it passed in or got back', () => {
      const digests = packChunkHashes(hashes(2));
      store.addFile(fileRecord({ chunkHashes: digests }));
      digests.fill(0);
      store.chunkHashes('g1', 'report.pdf')!.fill(0);
      try {
        (store.getFile('g1', 'report.pdf') as { fileSize: number }).fileSize = 0;
      } catch {
        // a store may hand out frozen records: then the attempt throws, which is as good
      }
      expect(unpackChunkHashes(store.chunkHashes('g1', 'report.pdf')!)).toEqual(hashes(2));
      expect(store.getFile('g1', 'report.pdf')?.fileSize).toBe(1_048_576);
    });
  });

  describe('seeders', () => {
    beforeEach(() => store.addFile(fileRecord()));

    it('adds seeders, longest-standing first, and reads them back', () => {
      for (const u of ['zed', 'alice', 'bob']) store.putSeeder(seeder({ userId: u, filePath: `/${u}/r.pdf` }));
      expect(store.seeders('g1', 'report.pdf')).toEqual([
        seeder({ userId: 'zed', filePath: '/zed/r.pdf' }),
        seeder({ userId: 'alice', filePath: '/alice/r.pdf' }),
        seeder({ userId: 'bob', filePath: '/bob/r.pdf' }),
      ]);
      expect(store.getSeeder('g1', 'report.pdf', 'alice')).toEqual(seeder({ filePath: '/alice/r.pdf' }));
      expect(store.getSeeder('g1', 'report.pdf', 'carol')).toBeUndefined();
      expect(store.seederCount('g1', 'report.pdf')).toBe(3);
    });

    it('updates the path of a seeder who announces again, keeping its place', () => {
      store.putSeeder(seeder({ userId: 'alice', filePath: '/old' }));
      store.putSeeder(seeder({ userId: 'bob' }));
      expect(store.putSeeder(seeder({ userId: 'alice', filePath: '/new, with comma' }))).toBe(true);
      expect(store.seeders('g1', 'report.pdf').map((s) => [s.userId, s.filePath])).toEqual([
        ['alice', '/new, with comma'],
        ['bob', '/home/alice/report.pdf'],
      ]);
      expect(store.seederCount('g1', 'report.pdf')).toBe(2);
    });

    it('refuses a seeder for a file that does not exist', () => {
      expect(store.putSeeder(seeder({ fileName: 'nope' }))).toBe(false);
      expect(store.putSeeder(seeder({ groupId: 'g2' }))).toBe(false);
      expect(store.seeders('g1', 'nope')).toEqual([]);
      expect(store.listFiles('g2')).toEqual([]);
    });

    it('removes one seeder', () => {
      store.putSeeder(seeder({ userId: 'alice' }));
      store.putSeeder(seeder({ userId: 'bob' }));
      expect(store.removeSeeder('g1', 'report.pdf', 'alice')).toBe(true);
      expect(store.removeSeeder('g1', 'report.pdf', 'alice')).toBe(false);
      expect(store.removeSeeder('g1', 'nope', 'bob')).toBe(false);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['bob']);
    });

    it('keeps the file when its last seeder goes (deleting it is the caller’s rule)', () => {
      store.putSeeder(seeder());
      store.removeSeeder('g1', 'report.pdf', 'alice');
      expect(store.getFile('g1', 'report.pdf')).toBeDefined();
      expect(store.seederCount('g1', 'report.pdf')).toBe(0);
    });

    it('removes every seeder row of a user in one group and says which files', () => {
      shared('b.txt', ['bob', 'alice']);
      shared('a.txt', ['alice']);
      shared('c.txt', ['bob']);
      shared('a.txt', ['alice'], 'g2');
      expect(store.removeSeedersOf('g1', 'alice')).toEqual(['a.txt', 'b.txt']);
      expect(store.seeders('g1', 'b.txt').map((s) => s.userId)).toEqual(['bob']);
      expect(store.seederCount('g1', 'a.txt')).toBe(0);
      expect(store.seederCount('g2', 'a.txt')).toBe(1);
      expect(store.removeSeedersOf('g1', 'alice')).toEqual([]);
    });
  });

  describe('listFiles', () => {
    it('lists only files with a seeder, ordered by code point, with their sizes', () => {
      for (const [name, size] of [
        ['b', 2],
        ['a b.txt', 3],
        ['B', 1],
        ['é', 4],
        ['😀', 6],
        ['ｚ', 5],
        ['a', 7],
      ] as const) {
        shared(name, ['alice'], 'g1', size);
      }
      shared('unseeded', []);
      shared('other', ['alice'], 'g2');
      expect(store.listFiles('g1')).toEqual([
        { fileName: 'B', fileSize: 1 },
        { fileName: 'a', fileSize: 7 },
        { fileName: 'a b.txt', fileSize: 3 },
        { fileName: 'b', fileSize: 2 },
        { fileName: 'é', fileSize: 4 },
        { fileName: 'ｚ', fileSize: 5 },
        { fileName: '😀', fileSize: 6 },
      ]);
    });
  });

  describe('delete', () => {
    it('deletes a file with its seeders; the name can then be used afresh', () => {
      shared('report.pdf', ['alice', 'bob']);
      shared('other', ['alice']);
      expect(store.deleteFile('g1', 'report.pdf')).toBe(true);
      expect(store.deleteFile('g1', 'report.pdf')).toBe(false);
      expect(store.getFile('g1', 'report.pdf')).toBeUndefined();
      expect(store.seeders('g1', 'report.pdf')).toEqual([]);
      expect(store.listFiles('g1').map((f) => f.fileName)).toEqual(['other']);
      expect(store.addFile(fileRecord({ fileHash: sha1('new') }))).toBe(true);
      expect(store.seederCount('g1', 'report.pdf')).toBe(0);
    });

    it('deletes every file of a group, and nothing of other groups', () => {
      shared('b', ['alice']);
      shared('a', ['alice', 'bob']);
      shared('a', ['alice'], 'g2');
      expect(store.deleteGroupFiles('g1')).toEqual(['a', 'b']);
      expect(store.listFiles('g1')).toEqual([]);
      expect(store.getFile('g1', 'a')).toBeUndefined();
      expect(store.seeders('g1', 'a')).toEqual([]);
      expect(store.listFiles('g2').map((f) => f.fileName)).toEqual(['a']);
      expect(store.deleteGroupFiles('g1')).toEqual([]);
    });
  });

  describe('clear', () => {
    it('forgets every file and seeder of every group, and the store works afresh', () => {
      shared('report.pdf', ['alice', 'bob']);
      shared('b', ['carol'], 'g2');
      store.clear();
      for (const [g, f] of [
        ['g1', 'report.pdf'],
        ['g2', 'b'],
      ]) {
        expect(store.getFile(g, f)).toBeUndefined();
        expect(store.chunkHashes(g, f)).toBeUndefined();
        expect(store.seeders(g, f)).toEqual([]);
        expect(store.seederCount(g, f)).toBe(0);
      }
      expect(store.listFiles('g1')).toEqual([]);
      expect(store.listFiles('g2')).toEqual([]);
      expect(store.removeSeedersOf('g1', 'alice')).toEqual([]);
      shared('report.pdf', ['bob', 'alice']);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['bob', 'alice']);
    });

    it('clears an empty store', () => {
      expect(() => store.clear()).not.toThrow();
      expect(store.listFiles('g1')).toEqual([]);
    });

    it('is undone with a transaction that throws', () => {
      shared('report.pdf', ['alice']);
      expect(() =>
        store.transaction(() => {
          store.clear();
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice']);
    });
  });

  describe('transaction', () => {
    beforeEach(() => shared('report.pdf', ['alice']));

    it('returns what the work returns and keeps its changes', () => {
      expect(store.transaction(() => store.putSeeder(seeder({ userId: 'bob' })) && 'done')).toBe('done');
      expect(store.seederCount('g1', 'report.pdf')).toBe(2);
    });

    it('rolls every change back when the work throws, and rethrows the same error', () => {
      const boom = new Error('boom');
      expect(() =>
        store.transaction(() => {
          store.putSeeder(seeder({ userId: 'bob' }));
          store.putSeeder(seeder({ userId: 'alice', filePath: '/changed' }));
          store.addFile(fileRecord({ fileName: 'new' }));
          store.putSeeder(seeder({ fileName: 'new' }));
          store.removeSeedersOf('g1', 'alice');
          store.deleteFile('g1', 'report.pdf');
          throw boom;
        }),
      ).toThrow(boom);
      expect(store.getFile('g1', 'new')).toBeUndefined();
      expect(store.seeders('g1', 'report.pdf')).toEqual([seeder({ filePath: '/alice/report.pdf' })]);
      expect(store.listFiles('g1').map((f) => f.fileName)).toEqual(['report.pdf']);
    });

    it('rolls back a group delete', () => {
      expect(() =>
        store.transaction(() => {
          store.deleteGroupFiles('g1');
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(store.seederCount('g1', 'report.pdf')).toBe(1);
    });
  });
}

describe('chunk digest packing', () => {
  it('packs hex SHA-1s into 20 bytes each and back', () => {
    const list = hashes(5);
    const packed = packChunkHashes(list);
    expect(packed.length).toBe(100);
    expect(packed.subarray(20, 40).toString('hex')).toBe(list[1]);
    expect(unpackChunkHashes(packed)).toEqual(list);
    expect(unpackChunkHashes(packChunkHashes([]))).toEqual([]);
  });

  it('reads uppercase hex and gives lowercase back', () => {
    expect(unpackChunkHashes(packChunkHashes([sha1('x').toUpperCase()]))).toEqual([sha1('x')]);
  });

  it.each([[['abc']], [[sha1('x').slice(1) + 'g']], [[sha1('x') + '0']], [[sha1('x'), '']]])('refuses %j', (list) => {
    expect(() => packChunkHashes(list)).toThrow(RangeError);
  });

  it('refuses to unpack a partial digest', () => {
    expect(() => unpackChunkHashes(Buffer.alloc(21))).toThrow(RangeError);
  });
});

describe(compareNames.name, () => {
  it('orders by code point, like SQLite compares UTF-8', () => {
    const names = ['😀', 'ｚ', 'a', 'B', 'ab', 'a', '', 'é', '\u{10000}', '\uffff'];
    expect([...names].sort(compareNames)).toEqual(['', 'B', 'a', 'a', 'ab', 'é', 'ｚ', '\uffff', '\u{10000}', '😀']);
  });
});

describe(InMemoryFileStore.name, () => {
  fileStoreContract({ create: () => new InMemoryFileStore() });
  fileSnapshotContract({ create: () => new InMemoryFileStore() });
});

describe(SqliteFileStore.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());
  fileStoreContract({ create: () => new SqliteFileStore(dbs.open()) });
  fileSnapshotContract({ create: () => new SqliteFileStore(dbs.open()) });

  it('keeps files, chunk digests and seeders after the database is closed and opened again', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const store = new SqliteFileStore(first);
    const file = fileRecord({ chunkHashes: packChunkHashes(hashes(3)) });
    store.addFile(file);
    store.putSeeder(seeder({ userId: 'bob', filePath: '/b' }));
    store.putSeeder(seeder({ userId: 'alice', filePath: '/a' }));
    store.addFile(fileRecord({ fileName: 'gone' }));
    store.putSeeder(seeder({ fileName: 'gone' }));
    store.deleteFile('g1', 'gone');
    first.close();

    const again = new SqliteFileStore(dbs.open(dir));
    expect(again.getFile('g1', 'report.pdf')).toEqual(infoOf(file));
    expect(unpackChunkHashes(again.chunkHashes('g1', 'report.pdf')!)).toEqual(hashes(3));
    expect(again.seeders('g1', 'report.pdf').map((s) => [s.userId, s.filePath])).toEqual([
      ['bob', '/b'],
      ['alice', '/a'],
    ]);
    expect(again.listFiles('g1').map((f) => f.fileName)).toEqual(['report.pdf']);
    again.putSeeder(seeder({ userId: 'carol' }));
    expect(again.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['bob', 'alice', 'carol']);
  });

  it('round-trips a 200,000-chunk file as a 4 MB BLOB across a restart', () => {
    const dir = dbs.newDir();
    const first = dbs.open(dir);
    const list = hashes(200_000);
    const size = 200_000 * 512 * 1024;
    new SqliteFileStore(first).addFile(
      fileRecord({ fileName: 'huge.iso', fileSize: size, chunkHashes: packChunkHashes(list) }),
    );
    first.close();

    const db = dbs.open(dir);
    const again = new SqliteFileStore(db);
    expect(db.prepare('SELECT length(chunk_hashes) AS n FROM files').get()).toEqual({ n: 4_000_000 });
    const back = unpackChunkHashes(again.chunkHashes('g1', 'huge.iso')!);
    expect(back).toEqual(list);
    expect(again.getFile('g1', 'huge.iso')?.fileSize).toBe(size);
  });

  it('lists 10,000 files, some with 200,000 chunks', () => {
    const db = dbs.open();
    const store = new SqliteFileStore(db);
    const big = packChunkHashes(hashes(200_000));
    const small = packChunkHashes(hashes(1));
    store.transaction(() => {
      for (let i = 0; i < 10_000; i++) {
        const fileName = `file-${String(i).padStart(5, '0')}.bin`;
        store.addFile(fileRecord({ fileName, chunkHashes: i % 2000 === 0 ? big : small }));
        store.putSeeder(seeder({ fileName }));
        store.putSeeder(seeder({ fileName, userId: 'bob' }));
      }
    });
    const files = store.listFiles('g1');
    expect(files).toHaveLength(10_000);
    expect(files[9_999].fileName).toBe('file-09999.bin');
  });

  it('finds files, seeders and a user’s rows by index, not by scanning', () => {
    const db = dbs.open();
    new SqliteFileStore(db);
    const plan = (sql: string) =>
      (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as { detail: string }[]).map((r) => r.detail).join('; ');
    expect(plan("SELECT chunk_hashes FROM files WHERE group_id = 'g' AND file_name = 'f'")).toMatch(
      /USING (COVERING )?INDEX/,
    );
    expect(plan("SELECT user_id FROM file_seeders WHERE group_id = 'g' AND file_name = 'f' ORDER BY seq")).toMatch(
      /USING (COVERING )?INDEX/,
    );
    expect(plan("DELETE FROM file_seeders WHERE group_id = 'g' AND user_id = 'u'")).toMatch(/file_seeders_user/);
    expect(plan("SELECT file_name FROM files WHERE group_id = 'g' ORDER BY file_name")).not.toMatch(/TEMP B-TREE/);
  });
});
