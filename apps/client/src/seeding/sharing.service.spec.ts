import { CHUNK_HASHER, CHUNK_SIZE, ChunkHasher, Sha1ChunkHasher } from '@app/chunking';
import { errReply, formatGetChunk, okReply, parseCommand, UploadFileCmd } from '@app/protocol';
import { Test, TestingModule } from '@nestjs/testing';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  appendFileSync,
  mkdirSync,
  renameSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT } from '../output/output.port';
import { CapabilityVerifier } from './capability.verifier';
import { ChunkServer } from './chunk.server';
import { TestCapabilityIssuer } from './testing/capability.fixtures';
import { SEEDING_OPTIONS } from './seeding.tokens';
import { TransferSettings } from '../settings/transfer-settings.service';
import { ShareRegistry } from './share.registry';
import { fileIdentity } from './shared-file';
import { ChunkSocket } from './testing/chunk-socket';
import { aShare, eventually, sha1, shareOf, TempDirs } from './testing/seeding.fixtures';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient } from '../tracker/tracker.client';
import { TrackerConnectionLostError } from '../tracker/tracker.errors';
import { ClientSession } from '../session/client-session';
import { HASH_PROGRESS_MS, hashingLine, SharingService } from './sharing.service';
import { configService, fakeTracker, FakeTracker, MY_PORT } from '../testing/files.fixtures';

const chunkHashesOf = (data: Buffer): string[] => {
  const hashes: string[] = [];
  for (let at = 0; at < data.length; at += CHUNK_SIZE) hashes.push(sha1(data.subarray(at, at + CHUNK_SIZE)));
  return hashes;
};

describe(SharingService.name, () => {
  const temp = new TempDirs();
  let moduleRef: TestingModule;
  let sharing: SharingService;
  let registry: ShareRegistry;
  let session: ClientSession;
  let tracker: FakeTracker;
  let out: CollectingOutput;
  let realHasher: Sha1ChunkHasher;
  let dataDir: string;
  let dir: string;

  /** Compiles the module; `hasher` replaces the real SHA-1 hasher. */
  async function build(hasher?: ChunkHasher): Promise<void> {
    moduleRef = await Test.createTestingModule({
      providers: [
        SharingService,
        ShareRegistry,
        ChunkServer,
        CapabilityVerifier,
        ClientSession,
        TransferSettings,
        { provide: ClientConfigService, useValue: configService({ dataDir }) },
        { provide: SEEDING_OPTIONS, useValue: { host: '127.0.0.1', port: 0, dataDir } },
        { provide: TrackerClient, useValue: tracker },
        { provide: CHUNK_HASHER, useValue: hasher ?? realHasher },
        { provide: OUTPUT, useValue: out },
      ],
    }).compile();
    sharing = moduleRef.get(SharingService);
    registry = moduleRef.get(ShareRegistry);
    session = moduleRef.get(ClientSession);
    await registry.load();
  }

  const file = (name: string, data: Buffer | string): string => {
    const path = join(dir, name);
    writeFileSync(path, data);
    return path;
  };

  beforeEach(async () => {
    dataDir = join(temp.make('files-spec-data-'), 'data');
    dir = temp.make('files-spec-');
    tracker = fakeTracker();
    out = new CollectingOutput();
    realHasher = new Sha1ChunkHasher();
    await build();
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await moduleRef.close();
    temp.cleanup();
  });

  describe('upload', () => {
    beforeEach(() => session.loggedIn('alice'));

    it('refuses when nobody is logged in, before hashing or asking the tracker', async () => {
      session.loggedOut();
      const hashFile = jest.spyOn(realHasher, 'hashFile');
      await expect(sharing.upload('g1', file('a.bin', 'abc'))).rejects.toThrow('you must log in first');
      expect(hashFile).not.toHaveBeenCalled();
      expect(tracker.request).not.toHaveBeenCalled();
      expect(registry.list()).toEqual([]);
    });

    it.each([
      ['a right-to-left override', 'invoice\u202efdp.exe', '\\u{202e}'],
      ['an escape sequence', 'red\x1b[31m.txt', '\\x1b'],
      ['a C1 control', 'c1\x9b.txt', '\\x9b'],
      ['a zero-width space', 'pay\u200bpal.pdf', '\\u{200b}'],
    ])('refuses a file whose name holds %s, before hashing or asking the tracker', async (_, name, shown) => {
      const hashFile = jest.spyOn(realHasher, 'hashFile');
      const path = file(name, 'abc');
      const err = (await sharing.upload('g1', path).catch((e: unknown) => e)) as Error;
      expect(err.message).toContain(`cannot share ${path}: a file name cannot contain control, bidi or invisible`);
      expect(err.message).toContain(shown);
      expect(hashFile).not.toHaveBeenCalled();
      expect(tracker.request).not.toHaveBeenCalled();
      expect(registry.list()).toEqual([]);
    });

    it('shares names in any script', async () => {
      for (const name of ['résumé.pdf', '日本語.txt']) {
        await expect(sharing.upload('g1', file(name, name))).resolves.toEqual(okReply('ok'));
      }
      expect(registry.list().map((s) => s.fileName)).toEqual(['résumé.pdf', '日本語.txt']);
    });

    it('names a missing file', async () => {
      const path = join(dir, 'nope.bin');
      await expect(sharing.upload('g1', path)).rejects.toThrow(new Error(`no such file: ${path}`));
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it('refuses a directory and a FIFO as not regular files', async () => {
      const sub = join(dir, 'folder');
      mkdirSync(sub);
      await expect(sharing.upload('g1', sub)).rejects.toThrow(new Error(`${sub} is not a regular file`));
      const fifo = join(dir, 'pipe');
      execFileSync('mkfifo', [fifo]);
      await expect(sharing.upload('g1', fifo)).rejects.toThrow(new Error(`${fifo} is not a regular file`));
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it('sends the realpath, size, SHA-1, chunk SHA-1s and this client address of a multi-chunk file, then seeds it', async () => {
      const data = randomBytes(2 * CHUNK_SIZE + 12_345);
      const path = file('report.pdf', data);
      const hashes = chunkHashesOf(data);
      expect(hashes).toHaveLength(3);

      const reply = await sharing.upload('g1', path);

      expect(reply).toEqual(okReply('ok'));
      expect(tracker.request).toHaveBeenCalledTimes(1);
      expect(tracker.request).toHaveBeenCalledWith(
        `upload_file g1 ${path} ${data.length} ${sha1(data)} ${hashes.join(',')} ${MY_PORT}`,
        [],
      );
      const id = await fileIdentity(path);
      expect(registry.list()).toEqual([
        {
          ...id,
          groupId: 'g1',
          fileName: 'report.pdf',
          userId: 'alice',
          fileHash: sha1(data),
          chunkCount: 3,
          sharedAt: expect.any(Number) as number,
        },
      ]);
    });

    it('shares the file a symlink points to, under its own name, with its path quoted when it has a space', async () => {
      const target = file('my report.pdf', 'hello');
      const linkDir = temp.make('files-spec-links-');
      const link = join(linkDir, 'link.pdf');
      symlinkSync(target, link);

      await sharing.upload('g1', link);

      const [line] = tracker.lines;
      expect(line).toContain(`"${target}"`);
      expect(parseCommand(line)).toEqual({
        kind: 'upload_file',
        groupId: 'g1',
        filePath: target,
        fileSize: '5',
        fileHash: sha1(Buffer.from('hello')),
        chunkHashes: sha1(Buffer.from('hello')),
        myPort: MY_PORT,
      });
      expect(registry.get('g1', 'my report.pdf', 'alice')?.path).toBe(target);
      expect(registry.get('g1', 'link.pdf', 'alice')).toBeUndefined();
    });

    it('sends an empty file with an empty chunk list', async () => {
      const path = file('empty.txt', '');
      await sharing.upload('g1', path);
      const cmd = parseCommand(tracker.lines[0]) as UploadFileCmd;
      expect(cmd).toMatchObject({ fileSize: '0', fileHash: sha1(Buffer.alloc(0)), chunkHashes: '' });
      expect(registry.get('g1', 'empty.txt', 'alice')?.chunkCount).toBe(0);
    });

    it('sends more than 500 chunk hashes as @N and continuation lines', async () => {
      const size = 500 * CHUNK_SIZE + 1; // 501 chunks, sparse: costs no disk
      const path = file('big.iso', '');
      truncateSync(path, size);
      const zeroChunk = sha1(Buffer.alloc(CHUNK_SIZE));
      const whole = createHash('sha1');
      const zeros = Buffer.alloc(CHUNK_SIZE);
      for (let i = 0; i < 500; i++) whole.update(zeros);
      whole.update(Buffer.alloc(1));
      const fileHash = whole.digest('hex');

      await sharing.upload('g1', path);

      expect(tracker.request).toHaveBeenCalledTimes(1);
      const [line, continuation] = tracker.request.mock.calls[0];
      expect(line).toBe(`upload_file g1 ${path} ${size} ${fileHash} @1 ${MY_PORT}`);
      expect(continuation).toEqual([[...Array<string>(500).fill(zeroChunk), sha1(Buffer.alloc(1))].join(',')]);
      expect(registry.get('g1', 'big.iso', 'alice')?.chunkCount).toBe(501);
    }, 15_000);

    it('does not seed what the tracker refuses, and hands back its answer', async () => {
      const refusal = errReply('FILE_CONFLICT', 'g1 already has another report.pdf');
      tracker = fakeTracker(() => refusal);
      await moduleRef.close();
      await build();
      session.loggedIn('alice');

      await expect(sharing.upload('g1', file('report.pdf', 'abc'))).resolves.toEqual(refusal);
      expect(tracker.request).toHaveBeenCalledTimes(1);
      expect(registry.list()).toEqual([]);
    });

    it('does not seed when the tracker connection is lost', async () => {
      tracker = fakeTracker(() => new TrackerConnectionLostError({ host: '127.0.0.1', port: 7000 }));
      await moduleRef.close();
      await build();
      session.loggedIn('alice');

      await expect(sharing.upload('g1', file('report.pdf', 'abc'))).rejects.toThrow(TrackerConnectionLostError);
      expect(registry.list()).toEqual([]);
    });

    it.each<[string, (path: string) => void]>([
      ['grows', (path) => appendFileSync(path, 'more')],
      ['is rewritten in place (new mtime)', (path) => utimesSync(path, new Date(), new Date(Date.now() + 60_000))],
      [
        'is replaced by another file',
        (path) => {
          writeFileSync(`${path}.new`, 'abcdef');
          renameSync(`${path}.new`, path);
        },
      ],
    ])('refuses a file that %s while being hashed', async (_, change) => {
      const hasher = new Sha1ChunkHasher();
      const hashFile = jest.spyOn(hasher, 'hashFile').mockImplementation(async (path) => {
        const digest = await realHasher.hashFile(path);
        change(path);
        return digest;
      });
      await moduleRef.close();
      await build(hasher);
      session.loggedIn('alice');
      const path = file('report.pdf', 'abcdef');

      await expect(sharing.upload('g1', path)).rejects.toThrow(
        new Error(`${path} changed while it was being hashed; try again`),
      );
      expect(hashFile).toHaveBeenCalledTimes(1);
      expect(tracker.request).not.toHaveBeenCalled();
      expect(registry.list()).toEqual([]);
    });

    describe('hashing progress', () => {
      const MIB = 1024 * 1024;
      let updates: (string | undefined)[];
      let clock: number;

      /** Compiles with `hashFile` replaced; the live lines go to `updates`, `performance.now()` reads `clock`. */
      const buildWith = async (hashFile: ChunkHasher['hashFile']) => {
        const hasher = new Sha1ChunkHasher();
        jest.spyOn(hasher, 'hashFile').mockImplementation(hashFile);
        updates = [];
        clock = 1_000;
        jest.spyOn(performance, 'now').mockImplementation(() => clock);
        jest.spyOn(out, 'progress').mockImplementation((key, text) => updates.push(text && `${key}: ${text}`));
        await moduleRef.close();
        await build(hasher);
        session.loggedIn('alice');
      };

      it('shows percent, bytes and speed every HASH_PROGRESS_MS at most while it hashes, then takes the line away', async () => {
        await buildWith(async (path, onProgress) => {
          clock += HASH_PROGRESS_MS / 2;
          onProgress?.(MIB); // too soon after the start: not drawn
          clock += HASH_PROGRESS_MS / 2;
          onProgress?.(2 * MIB);
          clock += HASH_PROGRESS_MS / 2;
          onProgress?.(3 * MIB); // too soon again
          clock += HASH_PROGRESS_MS / 2;
          onProgress?.(4 * MIB);
          expect(updates.at(-1)).toBeDefined(); // still shown while hashing
          return realHasher.hashFile(path);
        });
        const path = file('big.bin', randomBytes(4 * MIB));
        tracker.request.mockResolvedValue(okReply('file uploaded'));

        expect(await sharing.upload('g1', path)).toMatchObject({ ok: true, message: 'file uploaded' });
        expect(updates).toEqual([
          'hash 1: hashing big.bin 50.0% 2.0 MiB of 4.0 MiB, 10.0 MiB/s',
          'hash 1: hashing big.bin 100.0% 4.0 MiB of 4.0 MiB, 10.0 MiB/s',
          undefined,
        ]);
      });

      it('words an empty file and a moment with no bytes yet', () => {
        expect(hashingLine('empty.txt', 0, 0, 0)).toBe('hashing empty.txt 100.0% 0 B of 0 B');
        expect(hashingLine('a.bin', 0, 1536, 50)).toBe('hashing a.bin 0.0% 0 B of 1.5 KiB');
      });

      it('shows nothing for a file hashed in less than HASH_PROGRESS_MS', async () => {
        await buildWith(async (path, onProgress) => {
          clock += HASH_PROGRESS_MS - 1;
          onProgress?.(MIB);
          return realHasher.hashFile(path);
        });
        tracker.request.mockResolvedValue(okReply('file uploaded'));

        await sharing.upload('g1', file('small.bin', randomBytes(MIB)));
        expect(updates).toEqual([]);
      });

      it('takes the line away when hashing fails too', async () => {
        await buildWith((_path, onProgress) => {
          clock += HASH_PROGRESS_MS;
          onProgress?.(512);
          return Promise.reject(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
        });
        const path = file('bad.bin', randomBytes(1024));

        await expect(sharing.upload('g1', path)).rejects.toThrow();
        expect(updates).toEqual(['hash 1: hashing bad.bin 50.0% 512 B of 1.0 KiB, 2.5 KiB/s', undefined]);
      });
    });

    it('explains a file that cannot be read while hashing', async () => {
      const hasher = new Sha1ChunkHasher();
      jest
        .spyOn(hasher, 'hashFile')
        .mockRejectedValue(Object.assign(new Error('EACCES: permission denied, open'), { code: 'EACCES' }));
      await moduleRef.close();
      await build(hasher);
      session.loggedIn('alice');
      const path = file('secret.bin', 'abc');

      await expect(sharing.upload('g1', path)).rejects.toThrow(new Error(`permission denied: ${path}`));
      expect(tracker.request).not.toHaveBeenCalled();
    });
  });

  describe('reoffer', () => {
    it("offers again the user's intact shares and drops changed, vanished and refused ones", async () => {
      const intact = await registry.add(await shareOf(file('a.bin', 'aaa'), { groupId: 'g1' }));
      const changed = await registry.add(await shareOf(file('b.bin', 'bbb'), { groupId: 'g1' }));
      appendFileSync(changed.path, 'changed');
      const gone = await registry.add(await shareOf(file('c.bin', 'ccc'), { groupId: 'g2' }));
      unlinkSync(gone.path);
      const refused = await registry.add(await shareOf(file('d.bin', 'ddd'), { groupId: 'g2' }));
      const bobs = await registry.add(await shareOf(file('e.bin', 'eee'), { groupId: 'g1', userId: 'bob' }));
      tracker.request.mockImplementation((line: string) =>
        Promise.resolve(
          line.startsWith('new_seeder g2 d.bin')
            ? errReply('UNKNOWN_FILE', 'no file d.bin in group g2')
            : okReply('now seeding'),
        ),
      );
      session.loggedIn('alice');

      await expect(sharing.reoffer('alice')).resolves.toEqual({
        offered: 1,
        dropped: ['b.bin (changed on disk)', 'c.bin (gone)', 'd.bin (no file d.bin in group g2)'],
      });

      expect(tracker.lines).toEqual([
        `new_seeder g1 a.bin ${intact.path} ${MY_PORT}`,
        'stop_share g1 b.bin',
        'stop_share g2 c.bin',
        `new_seeder g2 d.bin ${refused.path} ${MY_PORT}`,
      ]);
      expect(registry.list()).toEqual([intact, bobs]);
    });

    it('stops, dropping nothing, when the tracker says the user is no longer logged in', async () => {
      const a = await registry.add(await shareOf(file('a.bin', 'aaa'), { groupId: 'g1' }));
      const b = await registry.add(await shareOf(file('b.bin', 'bbb'), { groupId: 'g1' }));
      tracker.request.mockResolvedValue(errReply('NOT_LOGGED_IN', 'you are not logged in'));
      session.loggedIn('alice');

      await expect(sharing.reoffer('alice')).resolves.toEqual({ offered: 0, dropped: [] });

      expect(tracker.lines).toEqual([`new_seeder g1 a.bin ${a.path} ${MY_PORT}`]);
      expect(registry.list()).toEqual([a, b]);
    });

    it('stops when the user logs out (or the session is lost) meanwhile', async () => {
      const a = await registry.add(await shareOf(file('a.bin', 'aaa'), { groupId: 'g1' }));
      const b = await registry.add(await shareOf(file('b.bin', 'bbb'), { groupId: 'g1' }));
      session.loggedIn('alice');
      tracker.request.mockImplementation(() => {
        session.loggedOut();
        return Promise.resolve(okReply('now seeding'));
      });

      await expect(sharing.reoffer('alice')).resolves.toEqual({ offered: 1, dropped: [] });

      expect(tracker.lines).toEqual([`new_seeder g1 a.bin ${a.path} ${MY_PORT}`]);
      expect(registry.list()).toEqual([a, b]);
    });

    it('does nothing for a user with no shares here', async () => {
      await registry.add(aShare({ userId: 'bob' }));
      session.loggedIn('alice');
      await expect(sharing.reoffer('alice')).resolves.toEqual({ offered: 0, dropped: [] });
      expect(tracker.request).not.toHaveBeenCalled();
      expect(registry.list()).toHaveLength(1);
    });
  });

  describe('stopped and leftGroup', () => {
    beforeEach(async () => {
      await registry.add(aShare({ groupId: 'g1', fileName: 'a.bin', path: '/srv/a.bin' }));
      await registry.add(aShare({ groupId: 'g1', fileName: 'b.bin', path: '/srv/b.bin' }));
      await registry.add(aShare({ groupId: 'g2', fileName: 'a.bin', path: '/srv/a.bin' }));
      await registry.add(aShare({ groupId: 'g1', fileName: 'a.bin', path: '/srv/bob/a.bin', userId: 'bob' }));
    });
    const keys = () => registry.list().map((s) => `${s.groupId}/${s.fileName}/${s.userId}`);

    it("stopped drops the logged-in user's share of that file in that group only", async () => {
      session.loggedIn('alice');
      await sharing.stopped('g1', 'a.bin');
      expect(keys()).toEqual(['g1/a.bin/bob', 'g1/b.bin/alice', 'g2/a.bin/alice']);
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it("leftGroup drops the logged-in user's shares in that group and counts them", async () => {
      session.loggedIn('alice');
      await expect(sharing.leftGroup('g1')).resolves.toBe(2);
      expect(keys()).toEqual(['g1/a.bin/bob', 'g2/a.bin/alice']);
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it('changes nothing when nobody is logged in', async () => {
      await sharing.stopped('g1', 'a.bin');
      await expect(sharing.leftGroup('g1')).resolves.toBe(0);
      expect(keys()).toHaveLength(4);
    });
  });

  describe('seedDownloaded', () => {
    const downloaded = (path: string, userId = 'alice') => ({
      groupId: 'g1',
      userId,
      fileName: 'report.pdf',
      path,
      fileHash: sha1(Buffer.from('abc')),
      chunkCount: 1,
    });

    it('seeds the downloaded file and announces it with new_seeder', async () => {
      session.loggedIn('alice');
      const path = file('saved.pdf', 'abc');
      await sharing.seedDownloaded(downloaded(path));
      expect(tracker.lines).toEqual([`new_seeder g1 report.pdf ${path} ${MY_PORT}`]);
      expect(registry.get('g1', 'report.pdf', 'alice')).toMatchObject({ ...(await fileIdentity(path)), chunkCount: 1 });
    });

    it('only remembers it when another user is logged in now (offered at their next login)', async () => {
      session.loggedIn('bob');
      const path = file('saved.pdf', 'abc');
      await sharing.seedDownloaded(downloaded(path));
      expect(tracker.request).not.toHaveBeenCalled();
      expect(registry.get('g1', 'report.pdf', 'alice')?.path).toBe(path);
    });

    it('fails when the tracker refuses the announcement', async () => {
      session.loggedIn('alice');
      tracker.request.mockResolvedValue(errReply('NOT_MEMBER', 'alice is not a member of g1'));
      await expect(sharing.seedDownloaded(downloaded(file('saved.pdf', 'abc')))).rejects.toThrow(
        'could not announce report.pdf as seeded: alice is not a member of g1',
      );
    });
  });

  describe('start and share-changed notices', () => {
    const server = () => moduleRef.get(ChunkServer);

    /** Asks the chunk server for the first chunk of the file shared at `path`, with a valid capability. */
    async function requestChunk(path: string) {
      const issuer = new TestCapabilityIssuer();
      moduleRef.get(CapabilityVerifier).trust('alice', issuer.rawPublicKey);
      const socket = await ChunkSocket.open(server().address()!.port);
      try {
        socket.send(formatGetChunk({ index: 0, capability: issuer.for(registry.findByPath(path)[0]) }));
        return await socket.readOne();
      } finally {
        socket.destroy();
      }
    }

    it('withdraws a share the chunk server finds changed: registry, stop_share and a notice', async () => {
      session.loggedIn('alice');
      const path = file('a.bin', 'version 1');
      await sharing.upload('g1', path);
      await sharing.start();
      appendFileSync(path, ' and more');

      await expect(requestChunk(path)).resolves.toMatchObject({ kind: 'err', code: 'FILE_CHANGED' });
      await eventually(() => registry.list().length === 0, 'the share is dropped');
      await eventually(() => tracker.lines.includes('stop_share g1 a.bin'), 'stop_share is sent');
      await eventually(() => out.lines.length > 0, 'a notice is printed');
      expect(out.lines).toEqual(['stopped sharing a.bin in group g1: it changed on disk']);
    });

    it('only drops it locally when its user is not logged in', async () => {
      const path = file('a.bin', 'version 1');
      await registry.add(await shareOf(path));
      await sharing.start();
      unlinkSync(path);

      await expect(requestChunk(path)).resolves.toMatchObject({ kind: 'err', code: 'FILE_CHANGED' });
      await eventually(() => out.lines.length > 0, 'a notice is printed');
      expect(registry.list()).toEqual([]);
      expect(tracker.request).not.toHaveBeenCalled();
    });

    it('reports a withdrawal that cannot be saved', async () => {
      const path = file('a.bin', 'version 1');
      await registry.add(await shareOf(path));
      jest.spyOn(registry, 'remove').mockRejectedValue(new Error('disk full'));
      await sharing.start();
      appendFileSync(path, '!');

      await requestChunk(path);
      await eventually(() => out.lines.length > 0, 'an error is printed');
      expect(out.lines).toEqual(['error: could not stop sharing a.bin: disk full']);
    });

    it('prints the warning of an unusable state file, listens, and stops listening on stop', async () => {
      await moduleRef.close();
      mkdirSync(dataDir, { recursive: true });
      writeFileSync(join(dataDir, 'shares.json'), 'not json');
      await build();
      await sharing.start();
      expect(out.lines).toHaveLength(1);
      expect(out.lines[0]).toMatch(/^error: .*shares\.json is corrupt .*started with no shares$/);
      expect(server().address()?.port).toBeGreaterThan(0);
      await sharing.stop();
      expect(server().address()).toBeUndefined();
    });
  });
});
