import { packChunkHashes } from '../files/file.store';
import { SqliteFileStore } from '../files/sqlite-file.store';
import { SqliteGroupStore } from '../groups/sqlite-group.store';
import { TempDatabases } from '../testing/temp-db';
import { cacheKey, ReadCache } from './read-cache';

describe(ReadCache.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  it('loads once and answers from memory until invalidated', () => {
    const cache = new ReadCache(dbs.open());
    const load = jest.fn(() => ['a']);
    expect(cache.get('k', load)).toEqual(['a']);
    expect(cache.get('k', load)).toEqual(['a']);
    expect(load).toHaveBeenCalledTimes(1);
    cache.invalidate();
    expect(cache.get('k', load)).toEqual(['a']);
    expect(load).toHaveBeenCalledTimes(2);
  });

  it('remembers undefined and false answers too', () => {
    const cache = new ReadCache(dbs.open());
    const load = jest.fn((): undefined => undefined);
    cache.get('none', load);
    cache.get('none', load);
    expect(load).toHaveBeenCalledTimes(1);
  });

  it('hands out frozen values, so no caller can change what the next one gets', () => {
    const cache = new ReadCache(dbs.open());
    const list = cache.get('k', () => [{ name: 'x' }]);
    expect(Object.isFrozen(list)).toBe(true);
    expect(Object.isFrozen(list[0])).toBe(true);
    expect(() => (list as { name: string }[]).push({ name: 'y' })).toThrow(TypeError);
  });

  it('neither reads from nor fills the cache inside a transaction', () => {
    const db = dbs.open();
    const cache = new ReadCache(db);
    cache.get('k', () => 'before');
    const load = jest.fn(() => 'inside');
    db.transaction(() => {
      expect(cache.get('k', load)).toBe('inside');
      expect(cache.get('other', load)).toBe('inside');
    })();
    expect(load).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(1);
  });

  it('starts afresh when full instead of growing without bound', () => {
    const cache = new ReadCache(dbs.open(), 10_000);
    for (let i = 0; i < 100; i++) cache.get(`k${i}`, () => Buffer.alloc(1000));
    expect(cache.weight).toBeLessThanOrEqual(10_000);
    expect(cache.size).toBeGreaterThan(0);
    expect(cache.size).toBeLessThan(10);
  });

  it('weighs lists by what they hold, and never keeps a value bigger than its budget', () => {
    const cache = new ReadCache(dbs.open(), 10_000);
    const load = jest.fn(() => Array.from({ length: 200 }, (_, i) => ({ name: `file-${i}`, size: i })));
    expect(cache.get('big', load)).toHaveLength(200);
    cache.get('big', load);
    expect(load).toHaveBeenCalledTimes(2);
    expect(cache.size).toBe(0);
  });

  it('keys parts apart', () => {
    expect(cacheKey('member', 'g', 'ab')).not.toBe(cacheKey('member', 'ga', 'b'));
  });

  describe('in the stores', () => {
    it('a group store answers reads after a write with the write in them, and after a rollback without', () => {
      const db = dbs.open();
      const groups = new SqliteGroupStore(db);
      groups.create({ groupId: 'g1', owner: 'alice', createdAt: 1 });
      expect(groups.isMember('g1', 'bob')).toBe(false);
      expect(groups.list().map((g) => g.memberCount)).toEqual([1]);

      expect(() =>
        groups.transaction(() => {
          groups.addMember('g1', 'bob');
          expect(groups.isMember('g1', 'bob')).toBe(true); // seen inside its own transaction
          throw new Error('undo');
        }),
      ).toThrow('undo');
      expect(groups.isMember('g1', 'bob')).toBe(false);
      expect(groups.list().map((g) => g.memberCount)).toEqual([1]);

      groups.addMember('g1', 'bob');
      expect(groups.isMember('g1', 'bob')).toBe(true);
      expect(groups.groupsOf('bob')).toEqual(['g1']);
      expect(groups.list().map((g) => g.memberCount)).toEqual([2]);
      groups.delete('g1');
      expect(groups.get('g1')).toBeUndefined();
      expect(groups.isMember('g1', 'bob')).toBe(false);
      expect(groups.groupsOf('bob')).toEqual([]);
    });

    it('a file store answers list_files and seeders afresh after every kind of write', () => {
      const files = new SqliteFileStore(dbs.open());
      const file = {
        groupId: 'g1',
        fileName: 'a.bin',
        fileSize: 3,
        fileHash: 'a'.repeat(40),
        uploader: 'alice',
        createdAt: 1,
        chunkHashes: packChunkHashes(['b'.repeat(40)]),
      };
      const seeder = { groupId: 'g1', fileName: 'a.bin', userId: 'alice', filePath: '/a/a.bin' };
      expect(files.listFiles('g1')).toEqual([]);
      files.addFile(file);
      expect(files.getFile('g1', 'a.bin')?.fileSize).toBe(3);
      expect(files.listFiles('g1')).toEqual([]); // no seeder yet
      files.putSeeder(seeder);
      expect(files.listFiles('g1')).toEqual([{ fileName: 'a.bin', fileSize: 3 }]);
      files.putSeeder({ ...seeder, filePath: '/moved/a.bin' });
      expect(files.seeders('g1', 'a.bin').map((s) => s.filePath)).toEqual(['/moved/a.bin']);
      expect(files.getSeeder('g1', 'a.bin', 'alice')?.filePath).toBe('/moved/a.bin');
      files.removeSeeder('g1', 'a.bin', 'alice');
      expect(files.seeders('g1', 'a.bin')).toEqual([]);
      expect(files.listFiles('g1')).toEqual([]);
      files.putSeeder(seeder);
      files.removeSeedersOf('g1', 'alice');
      expect(files.getSeeder('g1', 'a.bin', 'alice')).toBeUndefined();
      files.deleteGroupFiles('g1');
      expect(files.getFile('g1', 'a.bin')).toBeUndefined();
      files.addFile(file);
      files.deleteFile('g1', 'a.bin');
      expect(files.getFile('g1', 'a.bin')).toBeUndefined();
      files.addFile(file);
      files.clear();
      expect(files.getFile('g1', 'a.bin')).toBeUndefined();
    });
  });
});
