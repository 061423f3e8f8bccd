import { Test } from '@nestjs/testing';
import {
  appendFileSync,
  chmodSync,
  mkdirSync,
  readFileSync,
  renameSync,
  statSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { InvalidShareError } from './seeding.errors';
import { SEEDING_OPTIONS } from './seeding.tokens';
import { ShareStateFile } from './share-state.file';
import { ShareRegistry } from './share.registry';
import { fileIdentity } from './shared-file';
import { aShare, listDir, shareOf, TempDirs } from './testing/seeding.fixtures';

describe(ShareRegistry.name, () => {
  const temp = new TempDirs();
  let dataDir: string;
  let filesDir: string;

  const open = async (dir = dataDir): Promise<ShareRegistry> => {
    const registry = new ShareRegistry({ dataDir: dir });
    await registry.load();
    return registry;
  };
  const stateOf = (dir = dataDir) =>
    JSON.parse(readFileSync(join(dir, 'shares.json'), 'utf8')) as { version: number; shares: unknown[] };

  beforeEach(() => {
    dataDir = join(temp.make(), 'data');
    filesDir = temp.make();
  });
  afterEach(() => {
    jest.restoreAllMocks();
    temp.cleanup();
  });

  describe('shares', () => {
    it('adds, lists, finds, replaces and removes shares', async () => {
      const registry = await open();
      const a = await registry.add(aShare({ fileName: 'a.bin', path: '/srv/a.bin' }));
      await registry.add(aShare({ groupId: 'g2', fileName: 'a.bin', path: '/srv/a.bin', sharedAt: a.sharedAt + 1 }));
      await registry.add(aShare({ fileName: 'b.bin', path: '/srv/b.bin', userId: 'bob' }));

      expect(registry.list().map((s) => `${s.groupId}/${s.fileName}/${s.userId}`)).toEqual([
        'g1/a.bin/alice',
        'g1/b.bin/bob',
        'g2/a.bin/alice',
      ]);
      expect(registry.list('bob').map((s) => s.fileName)).toEqual(['b.bin']);
      expect(registry.findByPath('/srv/a.bin').map((s) => s.groupId)).toEqual(['g2', 'g1']);
      expect(registry.findByPath('/srv/./a.bin')).toEqual([]);
      expect(registry.findByPath('/srv/A.bin')).toEqual([]);

      const replaced = await registry.add(aShare({ fileName: 'a.bin', path: '/srv/other.bin', size: 5 }));
      expect(registry.get('g1', 'a.bin', 'alice')).toBe(replaced);
      expect(registry.list()).toHaveLength(3);
      expect(registry.findByPath('/srv/a.bin').map((s) => s.groupId)).toEqual(['g2']);
      expect(registry.findByPath('/srv/other.bin')).toEqual([replaced]);

      expect(await registry.remove('g2', 'a.bin', 'alice')).toBe(true);
      expect(await registry.remove('g2', 'a.bin', 'alice')).toBe(false);
      expect(registry.findByPath('/srv/a.bin')).toEqual([]);
      expect(registry.list().map((s) => s.fileName)).toEqual(['a.bin', 'b.bin']);
    });

    it('finds shares by what a capability names: group, file hash and seeding user', async () => {
      const registry = await open();
      const h = (c: string) => c.repeat(40);
      const a1 = await registry.add(aShare({ fileName: 'a.bin', fileHash: h('A'), sharedAt: 1 }));
      const a2 = await registry.add(
        aShare({ fileName: 'copy.bin', path: '/srv/copy.bin', fileHash: h('a'), sharedAt: 2 }),
      );
      const inG2 = await registry.add(aShare({ groupId: 'g2', fileHash: h('a') }));
      const bobs = await registry.add(aShare({ userId: 'bob', fileHash: h('a') }));
      await registry.add(aShare({ fileName: 'other.bin', path: '/srv/other.bin', fileHash: h('b') }));

      expect(registry.findByHash('g1', h('a'), 'alice')).toEqual([a2, a1]);
      expect(registry.findByHash('g2', h('a'), 'alice')).toEqual([inG2]);
      expect(registry.findByHash('g1', h('a'), 'bob')).toEqual([bobs]);
      expect(registry.findByHash('g3', h('a'), 'alice')).toEqual([]);
      expect(registry.findByHash('g1', h('c'), 'alice')).toEqual([]);

      // replaced by a share of other bytes under the same name, then removed
      const changed = await registry.add(aShare({ fileName: 'a.bin', fileHash: h('d') }));
      expect(registry.findByHash('g1', h('a'), 'alice')).toEqual([a2]);
      expect(registry.findByHash('g1', h('d'), 'alice')).toEqual([changed]);
      await registry.remove('g1', 'copy.bin', 'alice');
      expect(registry.findByHash('g1', h('a'), 'alice')).toEqual([]);
    });

    it('removes all of one user’s shares in a group, and only those', async () => {
      const registry = await open();
      for (const [groupId, fileName, userId] of [
        ['g1', 'a', 'alice'],
        ['g1', 'b', 'alice'],
        ['g1', 'c', 'bob'],
        ['g2', 'a', 'alice'],
      ]) {
        await registry.add(aShare({ groupId, fileName, userId, path: `/srv/${groupId}-${fileName}` }));
      }
      expect(await registry.removeGroup('g1', 'alice')).toBe(2);
      expect(await registry.removeGroup('g1', 'alice')).toBe(0);
      expect(registry.list().map((s) => `${s.groupId}/${s.fileName}/${s.userId}`)).toEqual(['g1/c/bob', 'g2/a/alice']);
      expect(stateOf().shares).toHaveLength(2);
    });

    it('stamps sharedAt when it is not given and hands out frozen entries', async () => {
      const registry = await open();
      const before = Date.now();
      const entry = await registry.add({ ...aShare(), sharedAt: undefined });
      expect(entry.sharedAt).toBeGreaterThanOrEqual(before);
      expect(Object.isFrozen(entry)).toBe(true);
    });

    it.each([
      ['a relative path', { path: 'srv/a.bin' }],
      ['a path with ..', { path: '/srv/x/../a.bin' }],
      ['a trailing slash', { path: '/srv/a.bin/' }],
      ['a chunk count that does not fit the size', { size: 10, chunkCount: 2 }],
      ['a bad hash', { fileHash: 'xyz' }],
      ['an empty group', { groupId: '' }],
      ['a fractional size', { size: 1.5 }],
    ])('refuses %s', async (_, overrides) => {
      const registry = await open();
      await expect(registry.add({ ...aShare(), ...overrides })).rejects.toThrow(InvalidShareError);
      expect(registry.list()).toEqual([]);
    });
  });

  describe('persistence', () => {
    it('keeps shares across instances', async () => {
      const first = await open();
      const added = [
        await first.add(
          aShare({ fileName: 'a.bin', path: '/srv/a.bin', ino: 2 ** 40 + 7, mtimeMs: 1712345678901.234 }),
        ),
        await first.add(aShare({ fileName: 'b c.bin', path: '/srv/b c.bin', userId: 'bob', size: 0 })),
      ];
      await first.remove('g1', 'nothing', 'alice');

      const second = await open();
      expect(second.loadWarning).toBeUndefined();
      expect(second.list()).toEqual(added);
      expect(second.findByPath('/srv/b c.bin')).toEqual([added[1]]);
      expect(stateOf().version).toBe(1);
    });

    it('creates the data folder and starts empty when there is no state file', async () => {
      const registry = await open(join(dataDir, 'deeper'));
      expect(registry.list()).toEqual([]);
      expect(registry.loadWarning).toBeUndefined();
      expect(listDir(join(dataDir, 'deeper'))).toEqual([]);
    });

    it('reads the data directory only when loaded, so it may be bound before the command line is read', async () => {
      await (await open()).add(aShare());
      const options: { dataDir?: string } = {};
      const moduleRef = await Test.createTestingModule({
        providers: [{ provide: SEEDING_OPTIONS, useValue: options }, ShareRegistry],
      }).compile();
      await moduleRef.init();
      options.dataDir = dataDir;
      await moduleRef.get(ShareRegistry).load();
      expect(moduleRef.get(ShareRegistry).list()).toHaveLength(1);
      await moduleRef.close();
    });

    it('waits for the load before a change, so a change never overwrites unread state', async () => {
      await (await open()).add(aShare({ fileName: 'old.bin' }));
      const registry = new ShareRegistry({ dataDir });
      await registry.add(aShare({ fileName: 'new.bin' }));
      expect((await open()).list().map((s) => s.fileName)).toEqual(['new.bin', 'old.bin']);
    });

    it('writes atomically through a temp file and leaves none behind', async () => {
      const registry = await open();
      for (let i = 0; i < 20; i++) await registry.add(aShare({ fileName: `f${i}`, path: `/srv/f${i}` }));
      await Promise.all([registry.removeGroup('g1', 'alice'), registry.add(aShare({ fileName: 'last' }))]);
      expect(listDir(dataDir)).toEqual(['shares.json']);
      expect((await open()).list().map((s) => s.fileName)).toEqual(['last']);
    });

    it('keeps its folder 0700 and shares.json 0600 through every atomic replace, whatever the umask', async () => {
      const umask = process.umask(0);
      try {
        const modeOf = (path: string) => statSync(path).mode & 0o777;
        const registry = await open();
        expect(modeOf(dataDir)).toBe(0o700);
        for (let i = 0; i < 3; i++) {
          await registry.add(aShare({ fileName: `f${i}`, path: `/srv/f${i}` }));
          expect(modeOf(join(dataDir, 'shares.json'))).toBe(0o600);
        }
        // a folder and a file an older version left open are tightened at the next start
        chmodSync(dataDir, 0o755);
        chmodSync(join(dataDir, 'shares.json'), 0o644);
        expect((await open()).list()).toHaveLength(3);
        expect(modeOf(dataDir)).toBe(0o700);
        expect(modeOf(join(dataDir, 'shares.json'))).toBe(0o600);
      } finally {
        process.umask(umask);
      }
    });

    it('ignores and removes a temp file left by a crash mid-write', async () => {
      await (await open()).add(aShare());
      writeFileSync(join(dataDir, 'shares.json.tmp-99999999-1'), '{"version":1,"shares":[{"groupId":');
      const registry = await open();
      expect(registry.list()).toHaveLength(1);
      expect(registry.loadWarning).toBeUndefined();
      expect(listDir(dataDir)).toEqual(['shares.json']);
    });

    it('keeps the old state file, undoes the change and cleans up when a write fails', async () => {
      const registry = await open();
      const kept = await registry.add(aShare({ fileName: 'kept' }));
      const before = readFileSync(join(dataDir, 'shares.json'), 'utf8');
      // Make the rename fail: the state file's name now points at a non-empty folder.
      renameSync(join(dataDir, 'shares.json'), join(dataDir, 'saved.json'));
      mkdirSync(join(dataDir, 'shares.json', 'x'), { recursive: true });

      await expect(registry.add(aShare({ fileName: 'lost' }))).rejects.toThrow();
      await expect(registry.remove('g1', 'kept', 'alice')).rejects.toThrow();
      expect(registry.list()).toEqual([kept]);
      expect(listDir(dataDir)).toEqual(['saved.json', 'shares.json']);
      expect(readFileSync(join(dataDir, 'saved.json'), 'utf8')).toBe(before);
    });

    it('saves a burst of hundreds of changes in a few writes, without losing any', async () => {
      const registry = await open();
      const save = jest.spyOn(ShareStateFile.prototype, 'save');
      await Promise.all(
        Array.from({ length: 300 }, (_, i) => registry.add(aShare({ fileName: `f${i}`, path: `/srv/f${i}` }))),
      );
      expect(save.mock.calls.length).toBeLessThanOrEqual(2);
      expect(stateOf().shares).toHaveLength(300);
      expect((await open()).list()).toHaveLength(300);
    });

    it.each([
      ['half-written JSON', '{"version":1,"shares":[{"groupId":"g1",'],
      ['binary garbage', '\u0000\u0001\u00ff'],
      ['a wrong version', '{"version":99,"shares":[]}'],
      ['an invalid share', '{"version":1,"shares":[{"groupId":"g1"}]}'],
      ['a share with a relative path', JSON.stringify({ version: 1, shares: [{ ...aShare(), path: 'a.bin' }] })],
      ['an array', '[]'],
    ])('moves a state file with %s aside and starts empty, saying why', async (_, text) => {
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(join(dataDir, 'shares.json'), text);
      const registry = await open();
      expect(registry.list()).toEqual([]);
      expect(registry.loadWarning).toMatch(
        /shares\.json is corrupt \(.+\); moved it to .*shares\.json\.corrupt-\d{4}-/,
      );
      const aside = listDir(dataDir).filter((n) => n.startsWith('shares.json.corrupt-'));
      expect(aside).toHaveLength(1);
      expect(readFileSync(join(dataDir, aside[0]), 'utf8')).toBe(text);

      await registry.add(aShare());
      expect((await open()).list()).toHaveLength(1);
    });

    it('moves an unreadable state file aside too', async () => {
      mkdirSync(join(dataDir, 'shares.json'), { recursive: true });
      const registry = await open();
      expect(registry.loadWarning).toMatch(/cannot read .*shares\.json \(EISDIR\); moved it to/);
      await registry.add(aShare());
      expect(listDir(dataDir).filter((n) => !n.startsWith('shares.json.corrupt-'))).toEqual(['shares.json']);
    });

    it('never overwrites an earlier corrupt copy', async () => {
      mkdirSync(dataDir, { recursive: true });
      for (let i = 0; i < 3; i++) {
        writeFileSync(join(dataDir, 'shares.json'), `garbage ${i}`);
        jest.spyOn(Date.prototype, 'toISOString').mockReturnValue('2030-01-01T00:00:00.000Z');
        await open();
        jest.restoreAllMocks();
      }
      expect(listDir(dataDir)).toEqual([
        'shares.json.corrupt-2030-01-01T00-00-00-000Z',
        'shares.json.corrupt-2030-01-01T00-00-00-000Z-2',
        'shares.json.corrupt-2030-01-01T00-00-00-000Z-3',
      ]);
    });
  });

  describe('check', () => {
    const WHEN = new Date('2024-05-01T12:00:00Z');
    let registry: ShareRegistry;
    let path: string;

    beforeEach(async () => {
      registry = await open();
      path = join(filesDir, 'file.bin');
      writeFileSync(path, 'original content');
      utimesSync(path, WHEN, WHEN);
    });

    const shared = async () => registry.add(await shareOf(path));

    it('finds an untouched file ok', async () => {
      expect(await registry.check(await shared())).toBe('ok');
    });

    it('sees a size change', async () => {
      const entry = await shared();
      appendFileSync(path, '!');
      utimesSync(path, WHEN, WHEN); // same mtime as when shared: only the size tells
      expect((await fileIdentity(path)).mtimeMs).toBe(entry.mtimeMs);
      expect(await registry.check(entry)).toBe('changed');
    });

    it('sees an mtime change with the same size', async () => {
      const entry = await shared();
      utimesSync(path, new Date(), new Date(entry.mtimeMs + 5000));
      expect(await registry.check(entry)).toBe('changed');
    });

    it('sees a deletion', async () => {
      const entry = await shared();
      unlinkSync(path);
      expect(await registry.check(entry)).toBe('missing');
    });

    it('sees a replacement by another file with the same size and mtime', async () => {
      const entry = await shared();
      const other = join(filesDir, 'other.bin');
      writeFileSync(other, 'ORIGINAL CONTENT');
      utimesSync(other, new Date(entry.mtimeMs), new Date(entry.mtimeMs));
      renameSync(other, path);
      expect(await registry.check(entry)).toBe('changed');
    });

    it('sees a replacement by a symlink, even to the same file', async () => {
      const entry = await shared();
      const moved = join(filesDir, 'moved.bin');
      renameSync(path, moved);
      symlinkSync(moved, path);
      expect(await registry.check(entry)).toBe('changed');
    });
  });
});
