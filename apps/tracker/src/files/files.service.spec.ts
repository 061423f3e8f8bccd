import { CHUNK_SIZE } from '@app/chunking';
import {
  CapabilityClaims,
  decodeCapability,
  decodeOpBody,
  ED25519_SPKI_PREFIX,
  encodeOpArgs,
  ErrorCode,
  formatFileMetadata,
  HostPort,
  SeederForm,
  SeederInfo,
  StampedOp,
} from '@app/protocol';
import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createHash, createPublicKey, verify } from 'node:crypto';
import { CapabilitySigner } from '../capability/capability.signer';
import { DEFAULT_CAPABILITY_TTL_MS } from '../config/tracker.config';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER, USER_STORE } from '../auth/auth.tokens';
import { InMemoryUserStore } from '../auth/in-memory-user.store';
import { PasswordHasher } from '../auth/password.hasher';
import { DomainError } from '../common/domain.error';
import { Session } from '../common/session';
import { GroupsService } from '../groups/groups.service';
import { GROUP_STORE } from '../groups/groups.tokens';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { fakeSession } from '../testing/fake-session';
import { inMemoryServiceProviders, syncTestingProviders } from '../testing/sync-testing';
import { SqliteOpLogStore } from '../sync/sqlite-oplog.store';
import { SqliteUnitOfWork } from '../storage/unit-of-work';
import { SyncService } from '../sync/sync.service';
import { TempDatabases } from '../testing/temp-db';
import { FileStore, packChunkHashes, unpackChunkHashes } from './file.store';
import { Announcer, FilesService, ShareRequest } from './files.service';
import { FILE_STORE } from './files.tokens';
import { PresenceService } from './presence.service';
import { SqliteFileStore } from './sqlite-file.store';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const chunkList = (n: number, seed = 'chunk') => Array.from({ length: n }, (_, i) => sha1(`${seed}${i}`));

/** Stores `plain$<password>`: fast, and enough for tests that are not about passwords. */
const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain$${password}`),
  verify: (password, stored) => Promise.resolve(stored === `plain$${password}`),
};

/** A 3-chunk file (1 MiB + 1 byte) at `path`, with metadata derived from `content`. */
function upload(
  groupId: string,
  path: string,
  content = 'report',
  size = 2 * CHUNK_SIZE + 1,
): ShareRequest & { chunkHashes: readonly string[] } {
  const chunks = Math.ceil(size / CHUNK_SIZE);
  return { groupId, filePath: path, fileSize: size, fileHash: sha1(content), chunkHashes: chunkList(chunks, content) };
}

/** Runs `work`, expecting a domain error with `code`; returns it. */
function refusal(work: () => unknown, code: ErrorCode): DomainError {
  let thrown: unknown;
  try {
    work();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(DomainError);
  expect((thrown as DomainError).code).toBe(code);
  return thrown as DomainError;
}

interface Peer {
  readonly userId: string;
  session: Session;
  /** Announces from the current session, serving chunks at 10.0.0.x:port. */
  as(port?: number): Announcer;
}

describe(FilesService.name, () => {
  let files: FilesService;
  let groups: GroupsService;
  let auth: AuthService;
  let store: FileStore;
  let sync: SyncService;
  let alice: Peer;
  let bob: Peer;
  let carol: Peer;

  const address = (userId: string, port: number): HostPort => ({ host: `10.0.0.${userId.length}`, port });

  async function peer(userId: string): Promise<Peer> {
    await auth.createUser(userId, 'pw');
    const p: Peer = {
      userId,
      session: fakeSession(),
      as: (port = 7000) => ({ userId, connectionId: p.session.connectionId, address: address(userId, port) }),
    };
    await auth.login(p.session, userId, 'pw');
    return p;
  }

  /** Logs the user in again on a new connection. */
  async function reconnect(p: Peer): Promise<void> {
    p.session = fakeSession();
    await auth.login(p.session, p.userId, 'pw');
  }

  const names = (groupId = 'g1', as = alice) => files.list(as.userId, groupId).map((f) => f.fileName);
  const online = (fileName: string, groupId = 'g1', as = alice) =>
    files.download(as.userId, groupId, fileName).seeders.map((s) => s.userId);

  /** The claims of a seeder's capability, once its signature checks out against the signer's public key. */
  function claimsOf(seeder: SeederInfo): CapabilityClaims {
    const decoded = decodeCapability(seeder.capability);
    expect(decoded).toBeDefined();
    const key = createPublicKey({
      key: Buffer.concat([ED25519_SPKI_PREFIX, signer.publicKey]),
      format: 'der',
      type: 'spki',
    });
    expect(verify(null, decoded!.signed, key, decoded!.signature)).toBe(true);
    return decoded!.claims;
  }
  let signer: CapabilitySigner;
  /** Who `as` would download `fileName` from, and where. */
  const whereFrom = (as: string, fileName: string, groupId = 'g1') =>
    files.download(as, groupId, fileName).seeders.map(({ userId, address }) => ({ userId, address }));

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      providers: [...inMemoryServiceProviders(), ...syncTestingProviders()],
    }).compile();
    files = moduleRef.get(FilesService);
    groups = moduleRef.get(GroupsService);
    auth = moduleRef.get(AuthService);
    store = moduleRef.get<FileStore>(FILE_STORE);
    sync = moduleRef.get(SyncService);
    signer = moduleRef.get(CapabilitySigner);
    [alice, bob, carol] = [await peer('alice'), await peer('bob'), await peer('carol')];
    // alice owns g1, bob is a member; carol has only asked to join.
    groups.create('alice', 'g1');
    groups.join('bob', 'g1');
    groups.accept('alice', 'g1', 'bob');
    groups.join('carol', 'g1');
  });

  describe('share (upload_file)', () => {
    it('creates the file, named by the basename of the path, with the uploader as online seeder', () => {
      const req = upload('g1', '/home/alice/docs/report.pdf');
      expect(files.share(alice.as(7001), req)).toEqual({ fileName: 'report.pdf', chunkCount: 3, created: true });
      expect(store.getFile('g1', 'report.pdf')).toEqual({
        groupId: 'g1',
        fileName: 'report.pdf',
        fileSize: req.fileSize,
        fileHash: req.fileHash,
        uploader: 'alice',
        createdAt: expect.any(Number) as number,
      });
      expect(files.list('bob', 'g1')).toEqual([
        { fileName: 'report.pdf', fileSize: 2 * CHUNK_SIZE + 1, onlineSeeders: 1 },
      ]);
      expect(files.download('bob', 'g1', 'report.pdf')).toEqual({
        fileName: 'report.pdf',
        fileSize: req.fileSize,
        fileHash: req.fileHash,
        chunkDigests: packChunkHashes(req.chunkHashes),
        seeders: [{ userId: 'alice', address: address('alice', 7001), capability: expect.any(String) as string }],
        partialSeeders: [],
      });
    });

    it('stores hashes in lowercase', () => {
      const req = upload('g1', '/a/x');
      files.share(alice.as(), {
        ...req,
        fileHash: req.fileHash.toUpperCase(),
        chunkHashes: req.chunkHashes.map((h) => h.toUpperCase()),
      });
      const meta = files.download('alice', 'g1', 'x');
      expect(meta.fileHash).toBe(req.fileHash);
      expect(unpackChunkHashes(meta.chunkDigests)).toEqual(req.chunkHashes);
    });

    it.each([
      [0, 0],
      [1, 1],
      [CHUNK_SIZE, 1],
      [CHUNK_SIZE + 1, 2],
      [10 * CHUNK_SIZE, 10],
    ])('accepts a %d-byte file with %d chunk hashes', (size, chunks) => {
      expect(files.share(alice.as(), upload('g1', '/a/f', 'f', size)).chunkCount).toBe(chunks);
      expect(files.download('alice', 'g1', 'f').chunkDigests).toHaveLength(20 * chunks);
    });

    it.each([
      [0, 1],
      [1, 0],
      [CHUNK_SIZE, 2],
      [CHUNK_SIZE + 1, 1],
      [3 * CHUNK_SIZE, 4],
    ])('refuses a %d-byte file with %d chunk hashes', (size, chunks) => {
      const req = { ...upload('g1', '/a/f', 'f', size), chunkHashes: chunkList(chunks) };
      const err = refusal(() => files.share(alice.as(), req), ErrorCode.BadFileMetadata);
      expect(err.message).toContain(`${size} bytes`);
      expect(err.message).toContain(`but ${chunks} chunk hash`);
      expect(store.getFile('g1', 'f')).toBeUndefined();
    });

    it.each([-1, 1.5, NaN, Infinity, 2 ** 53])('refuses the size %p', (size) => {
      refusal(() => files.share(alice.as(), { ...upload('g1', '/a/f'), fileSize: size }), ErrorCode.BadFileMetadata);
    });

    it.each(['', 'abc', sha1('x').slice(1), `${sha1('x')}0`, `${sha1('x').slice(1)}g`])(
      'refuses the file hash %j',
      (hash) => {
        refusal(() => files.share(alice.as(), { ...upload('g1', '/a/f'), fileHash: hash }), ErrorCode.BadFileMetadata);
        expect(store.getFile('g1', 'f')).toBeUndefined();
      },
    );

    it('refuses a chunk list with a malformed hash, naming its position', () => {
      const req = upload('g1', '/a/f');
      const chunkHashes = [req.chunkHashes[0], 'nothex', req.chunkHashes[2]];
      expect(
        refusal(() => files.share(alice.as(), { ...req, chunkHashes }), ErrorCode.BadFileMetadata).message,
      ).toContain('chunk hash 1');
    });

    it.each([
      ['an empty path', ''],
      ['a control character', '/a/bad\u0007name'],
      ['a tab', '/a/tab\tname'],
    ])('refuses %s with BAD_FILE_METADATA', (_, path) => {
      refusal(() => files.share(alice.as(), upload('g1', path)), ErrorCode.BadFileMetadata);
      expect(files.list('alice', 'g1')).toEqual([]);
    });

    it.each([
      ['a directory path', '/home/alice/'],
      ['the root', '/'],
      ['a path ending in ..', '/home/..'],
      ['a path ending in .', '/home/.'],
      ['a 256-character name', `/a/${'n'.repeat(256)}`],
      ['a C1 control in the name', '/a/bad\u009bname'],
      ['a right-to-left override in the name', '/a/invoice\u202efdp.exe'],
      ['a bidi isolate in the name', '/a/\u2067name'],
      ['an Arabic letter mark in the name', '/a/x\u061cy'],
      ['a zero-width space in the name', '/a/pay\u200bpal.pdf'],
      ['a byte order mark in the name', '/a/\ufeffreport.pdf'],
    ])('refuses %s with INVALID_NAME', (_, path) => {
      refusal(() => files.share(alice.as(), upload('g1', path)), ErrorCode.InvalidName);
      expect(files.list('alice', 'g1')).toEqual([]);
    });

    it('accepts names of 255 characters, with spaces, quotes and non-ASCII letters', () => {
      const accepted = ['n'.repeat(255), 'é'.repeat(255), 'my "best" report.pdf', '..hidden', 'no-slash', '日本語.txt'];
      for (const name of accepted) {
        expect(files.share(alice.as(), upload('g1', `/x/${name}`, name)).fileName).toBe(name);
      }
      expect(names()).toHaveLength(6);
    });

    it('takes a path without any slash as the name itself', () => {
      expect(files.share(alice.as(), upload('g1', 'relative.txt')).fileName).toBe('relative.txt');
    });

    it('adds a second seeder of the same file, each with its own path and address', () => {
      files.share(alice.as(7001), upload('g1', '/home/alice/report.pdf'));
      expect(files.share(bob.as(7002), upload('g1', '/srv/bob/report.pdf'))).toEqual({
        fileName: 'report.pdf',
        chunkCount: 3,
        created: false,
      });
      const seeders = files.download('alice', 'g1', 'report.pdf').seeders;
      expect(seeders.map(({ userId, address }) => ({ userId, address }))).toEqual([
        { userId: 'alice', address: address('alice', 7001) },
        { userId: 'bob', address: address('bob', 7002) },
      ]);
      expect(seeders.map((s) => claimsOf(s).seederId)).toEqual(['alice', 'bob']);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.filePath)).toEqual([
        '/home/alice/report.pdf',
        '/srv/bob/report.pdf',
      ]);
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(2);
      expect(store.getFile('g1', 'report.pdf')?.uploader).toBe('alice');
    });

    it('updates the path when the same user uploads the same file again', () => {
      files.share(alice.as(), upload('g1', '/old/report.pdf'));
      files.share(alice.as(), upload('g1', '/new/report.pdf'));
      expect(store.seeders('g1', 'report.pdf').map((s) => s.filePath)).toEqual(['/new/report.pdf']);
      expect(files.download('bob', 'g1', 'report.pdf').seeders.map((s) => s.userId)).toEqual(['alice']);
      expect(files.list('bob', 'g1')[0].onlineSeeders).toBe(1);
    });

    it('refuses a different file under a taken name with FILE_CONFLICT and keeps the first', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      const err = refusal(() => files.share(bob.as(), upload('g1', '/b/report.pdf', 'two')), ErrorCode.FileConflict);
      expect(err.message).toBe('a different file named report.pdf is already shared in group g1');
      expect(files.download('bob', 'g1', 'report.pdf').fileHash).toBe(sha1('one'));
      expect(online('report.pdf')).toEqual(['alice']);
    });

    it('refuses the same hash with a different size as a conflict', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      refusal(() => files.share(bob.as(), upload('g1', '/b/report.pdf', 'one', 5)), ErrorCode.FileConflict);
    });

    it('refuses the same file hash with different chunk hashes', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      const req = { ...upload('g1', '/b/report.pdf', 'one'), chunkHashes: chunkList(3, 'other') };
      refusal(() => files.share(bob.as(), req), ErrorCode.BadFileMetadata);
      expect(online('report.pdf')).toEqual(['alice']);
    });

    it('lets the same name hold different files in different groups', () => {
      groups.create('bob', 'g2');
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      files.share(bob.as(), upload('g2', '/b/report.pdf', 'two'));
      expect(files.download('bob', 'g2', 'report.pdf').fileHash).toBe(sha1('two'));
      expect(files.download('bob', 'g1', 'report.pdf').fileHash).toBe(sha1('one'));
    });
  });

  describe('who may do what', () => {
    beforeEach(() => files.share(alice.as(), upload('g1', '/a/report.pdf')));

    const commands: [string, (p: Peer, groupId: string) => unknown][] = [
      ['upload_file', (p, g) => files.share(p.as(), upload(g, '/c/mine.txt'))],
      ['list_files', (p, g) => files.list(p.userId, g)],
      ['download_file', (p, g) => files.download(p.userId, g, 'report.pdf')],
      ['new_seeder', (p, g) => files.addSeeder(p.as(), g, 'report.pdf', '/c/report.pdf')],
      ['stop_share', (p, g) => files.stopShare(p.userId, g, 'report.pdf')],
    ];

    it.each(commands)('refuses %s to a user with only a pending request (NOT_MEMBER)', (_, run) => {
      refusal(() => run(carol, 'g1'), ErrorCode.NotMember);
    });

    it.each(commands)('refuses %s to a stranger (NOT_MEMBER)', async (_, run) => {
      const dave = await peer('dave');
      refusal(() => run(dave, 'g1'), ErrorCode.NotMember);
    });

    it.each(commands)('refuses %s in an unknown group (UNKNOWN_GROUP)', (_, run) => {
      refusal(() => run(alice, 'nope'), ErrorCode.UnknownGroup);
    });

    it.each(commands)('refuses %s with an invalid group id (INVALID_ID)', (_, run) => {
      refusal(() => run(alice, 'bad id'), ErrorCode.InvalidId);
    });

    it('checks membership before the metadata', () => {
      refusal(() => files.share(carol.as(), { ...upload('g1', '/c/x'), fileHash: 'bad' }), ErrorCode.NotMember);
    });

    it('changed nothing for the refused users', () => {
      for (const [, run] of commands) expect(() => run(carol, 'g1')).toThrow();
      expect(files.list('alice', 'g1')).toEqual([
        { fileName: 'report.pdf', fileSize: 2 * CHUNK_SIZE + 1, onlineSeeders: 1 },
      ]);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice']);
    });
  });

  describe('list (list_files)', () => {
    it('lists nothing in a group without files', () => {
      expect(files.list('alice', 'g1')).toEqual([]);
    });

    it('lists files by name with their size and online seeder count', () => {
      files.share(alice.as(), upload('g1', '/a/b.txt', 'b', 10));
      files.share(alice.as(), upload('g1', '/a/a file.txt', 'a', 20));
      files.share(bob.as(), upload('g1', '/b/a file.txt', 'a', 20));
      files.share(bob.as(), upload('g1', '/b/C.txt', 'c', 30));
      expect(files.list('bob', 'g1')).toEqual([
        { fileName: 'C.txt', fileSize: 30, onlineSeeders: 1 },
        { fileName: 'a file.txt', fileSize: 20, onlineSeeders: 2 },
        { fileName: 'b.txt', fileSize: 10, onlineSeeders: 1 },
      ]);
    });

    it('shows only the files of the asked group', () => {
      groups.create('alice', 'g2');
      files.share(alice.as(), upload('g2', '/a/elsewhere'));
      expect(files.list('alice', 'g1')).toEqual([]);
      expect(names('g2')).toEqual(['elsewhere']);
    });
  });

  describe('download (download_file)', () => {
    it('refuses an unknown name with UNKNOWN_FILE', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf'));
      const err = refusal(() => files.download('bob', 'g1', 'Report.pdf'), ErrorCode.UnknownFile);
      expect(err.message).toBe('no file named Report.pdf in group g1');
      expect(refusal(() => files.download('bob', 'g1', 'my file'), ErrorCode.UnknownFile).message).toContain(
        '"my file"',
      );
    });

    it('lists the downloader itself when it seeds', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf'));
      expect(online('report.pdf', 'g1', alice)).toEqual(['alice']);
    });

    it('gives metadata that formats to the seed’s key:value lines, with a capability in place of the path', () => {
      files.share(alice.as(7001), upload('g1', '/a/with, comma.txt', 'x', 5));
      const meta = files.download('bob', 'g1', 'with, comma.txt');
      const lines = formatFileMetadata(meta);
      expect(lines).toEqual([
        'file_name:with, comma.txt',
        'file_size:5',
        `file_hash:${sha1('x')}`,
        `chunk_hashes:${chunkList(1, 'x')[0]}`,
        'seeders:alice',
        'seeder_ports:7001',
        `seeder_file_paths:${meta.seeders[0].capability}`,
        `seeder_hosts:${address('alice', 7001).host}`,
        'seeder_protocols:p2p-share/2',
        'partial_seeders:',
        'partial_seeder_hosts:',
        'partial_seeder_ports:',
        'partial_seeder_file_paths:',
        'seeder_fingerprints:-',
        'partial_seeder_fingerprints:',
      ]);
      expect(lines[6]).toMatch(/^seeder_file_paths:[A-Za-z0-9_-]{100,}$/);
      expect(lines.join('\n')).not.toContain('/a/');
    });

    it('lists a seeder that registered over a seed-form connection with its path and as seed', () => {
      files.share({ ...alice.as(7001), seedForm: true }, upload('g1', '/a/plain.txt', 'x', 5));
      files.share(bob.as(7002), upload('g1', '/b/plain.txt', 'x', 5));
      const meta = files.download('bob', 'g1', 'plain.txt');
      expect(meta.seeders[0]).toEqual({
        userId: 'alice',
        address: address('alice', 7001),
        capability: '/a/plain.txt',
        seedForm: true,
      });
      expect(claimsOf(meta.seeders[1]).seederId).toBe('bob');
      expect(formatFileMetadata(meta).slice(6, 9)).toEqual([
        `seeder_file_paths:/a/plain.txt,${meta.seeders[1].capability}`,
        `seeder_hosts:${address('alice', 7001).host},${address('bob', 7002).host}`,
        'seeder_protocols:seed,p2p-share/2',
      ]);
    });

    it('tells the other trackers each seeder’s form in its presence', () => {
      const pushed = jest.spyOn(sync, 'presenceChanged');
      files.share({ ...alice.as(7001), seedForm: true }, upload('g1', '/a/plain.txt', 'x', 5));
      files.addSeeder(bob.as(7002), 'g1', 'plain.txt', '/b/plain.txt');
      expect(pushed.mock.calls.map(([c]) => (c.on ? [c.entry.userId, c.entry.form, c.entry.filePath] : c))).toEqual([
        ['alice', SeederForm.Seed, '/a/plain.txt'],
        ['bob', SeederForm.Extended, '/b/plain.txt'],
      ]);
      expect(sync.localPresence().map((e) => [e.userId, e.form])).toEqual([
        ['alice', SeederForm.Seed],
        ['bob', SeederForm.Extended],
      ]);
    });

    it('issues each seeder a capability naming the file by hash, the group, the seeder, the downloader and an expiry', () => {
      files.share(alice.as(7001), upload('g1', '/home/alice/report.pdf'));
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/srv/bob/report.pdf');
      const before = Date.now();
      const seeders = files.download('bob', 'g1', 'report.pdf').seeders;
      const after = Date.now();
      const claims = seeders.map(claimsOf);
      expect(claims.map(({ expiresAt: _, ...rest }) => rest)).toEqual([
        { fileHash: sha1('report'), groupId: 'g1', seederId: 'alice', downloaderId: 'bob' },
        { fileHash: sha1('report'), groupId: 'g1', seederId: 'bob', downloaderId: 'bob' },
      ]);
      for (const { expiresAt } of claims) {
        expect(expiresAt).toBeGreaterThanOrEqual(Math.ceil((before + DEFAULT_CAPABILITY_TTL_MS) / 1000));
        expect(expiresAt).toBeLessThanOrEqual(Math.ceil((after + DEFAULT_CAPABILITY_TTL_MS) / 1000));
      }
      // another downloader gets capabilities of its own
      expect(files.download('alice', 'g1', 'report.pdf').seeders.map((s) => claimsOf(s).downloaderId)).toEqual([
        'alice',
        'alice',
      ]);
    });
  });

  describe('online seeders', () => {
    beforeEach(() => {
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/b/report.pdf');
    });

    it('forgets a seeder’s announcements when it logs out, but keeps its seeder row', () => {
      auth.logout(bob.session);
      expect(online('report.pdf')).toEqual(['alice']);
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(1);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice', 'bob']);
    });

    it('forgets them when the connection closes', () => {
      auth.endSession(alice.session);
      expect(online('report.pdf', 'g1', bob)).toEqual(['bob']);
    });

    it('still lists and answers for a file with no online seeder, with no seeders', () => {
      auth.logout(alice.session);
      auth.endSession(bob.session);
      expect(files.list('alice', 'g1')).toEqual([
        { fileName: 'report.pdf', fileSize: 2 * CHUNK_SIZE + 1, onlineSeeders: 0 },
      ]);
      const meta = files.download('bob', 'g1', 'report.pdf');
      expect(meta.seeders).toEqual([]);
      expect(meta.chunkDigests).toHaveLength(3 * 20);
      expect(formatFileMetadata(meta).slice(4)).toEqual([
        'seeders:',
        'seeder_ports:',
        'seeder_file_paths:',
        'seeder_hosts:',
        'seeder_protocols:',
        'partial_seeders:',
        'partial_seeder_hosts:',
        'partial_seeder_ports:',
        'partial_seeder_file_paths:',
        'seeder_fingerprints:',
        'partial_seeder_fingerprints:',
      ]);
    });

    it('does not count a seeder again after it logs in anew, until it announces again', async () => {
      auth.logout(alice.session);
      auth.logout(bob.session);
      await reconnect(alice);
      await reconnect(bob);
      expect(files.list('alice', 'g1')).toEqual([
        { fileName: 'report.pdf', fileSize: 2 * CHUNK_SIZE + 1, onlineSeeders: 0 },
      ]);
      const meta = files.download('bob', 'g1', 'report.pdf');
      expect(meta.seeders).toEqual([]);
      expect(meta.chunkDigests).toHaveLength(3 * 20);

      files.addSeeder(bob.as(8002), 'g1', 'report.pdf', '/b/moved.pdf');
      expect(whereFrom('alice', 'report.pdf')).toEqual([{ userId: 'bob', address: address('bob', 8002) }]);
      expect(store.getSeeder('g1', 'report.pdf', 'bob')?.filePath).toBe('/b/moved.pdf');
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(1);
    });

    it('is not affected by another user’s session ending, nor by a session that announced nothing', async () => {
      auth.logout(carol.session);
      const dave = await peer('dave');
      auth.endSession(dave.session);
      expect(online('report.pdf')).toEqual(['alice', 'bob']);
    });

    it('uses the address a user announced last on its session', () => {
      files.share(alice.as(9001), upload('g1', '/a/other.txt', 'other', 1));
      expect(files.download('bob', 'g1', 'report.pdf').seeders[0].address).toEqual(address('alice', 9001));
    });

    it('forgets the announcements of every file of the session at once', () => {
      files.share(bob.as(7002), upload('g1', '/b/second.txt', 'second', 1));
      auth.logout(bob.session);
      expect(files.list('alice', 'g1').map((f) => [f.fileName, f.onlineSeeders])).toEqual([
        ['report.pdf', 1],
        ['second.txt', 0],
      ]);
      expect(online('second.txt')).toEqual([]);
    });
  });

  describe('partial seeders (partial_seeder, stop_partial, list_seeders)', () => {
    let dave: Peer;
    beforeEach(async () => {
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      dave = await peer('dave');
      groups.join('dave', 'g1');
      groups.accept('alice', 'g1', 'dave');
    });
    const partial = (as: string, fileName = 'report.pdf') =>
      files.download(as, 'g1', fileName).partialSeeders?.map((s) => s.userId);

    it('lists a member downloading the file, with a capability for the asker naming it as seeder', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      const meta = files.download('dave', 'g1', 'report.pdf');
      expect(meta.seeders.map((s) => s.userId)).toEqual(['alice']);
      expect(meta.partialSeeders).toEqual([
        { userId: 'bob', address: address('bob', 7002), capability: expect.any(String) as string, partial: true },
      ]);
      expect(claimsOf(meta.partialSeeders![0])).toMatchObject({
        fileHash: sha1('report'),
        groupId: 'g1',
        seederId: 'bob',
        downloaderId: 'dave',
      });
      // not a seeder: list_files counts the full ones only, and the store has no row for it
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(1);
      expect(store.getSeeder('g1', 'report.pdf', 'bob')).toBeUndefined();
    });

    it('does not list the asker to itself, nor a member who seeds the whole file online', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      files.announcePartial(alice.as(7001), 'g1', 'report.pdf');
      expect(partial('bob')).toEqual([]);
      expect(partial('dave')).toEqual(['bob']);
    });

    it('ends when the member becomes a full seeder (new_seeder), and with its session', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      files.announcePartial(dave.as(7004), 'g1', 'report.pdf');
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/b/report.pdf');
      auth.logout(bob.session);
      // bob's partial announcement went with new_seeder: his session ending cannot bring it back
      expect(partial('alice')).toEqual(['dave']);
      expect(files.download('alice', 'g1', 'report.pdf').seeders.map((s) => s.userId)).toEqual(['alice']);
      auth.endSession(dave.session);
      expect(partial('alice')).toEqual([]);
    });

    it('ends when the member uploads the same file (upload_file)', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      files.share(bob.as(7002), upload('g1', '/b/report.pdf'));
      files.stopShare('bob', 'g1', 'report.pdf');
      expect(partial('alice')).toEqual([]);
    });

    it('withdraws on stop_partial, and says when there was nothing to withdraw', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      expect(files.stopPartial('bob', 'g1', 'report.pdf')).toEqual({ withdrawn: true });
      expect(partial('alice')).toEqual([]);
      expect(files.stopPartial('bob', 'g1', 'report.pdf')).toEqual({ withdrawn: false });
      expect(files.stopPartial('bob', 'g1', 'unknown.pdf')).toEqual({ withdrawn: false });
    });

    it('ends when the member leaves the group, and when the file is deleted', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      files.announcePartial(dave.as(7004), 'g1', 'report.pdf');
      groups.leave('bob', 'g1');
      expect(partial('alice')).toEqual(['dave']);
      files.stopShare('alice', 'g1', 'report.pdf'); // the last seeder: the file goes
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      expect(partial('alice')).toEqual([]);
    });

    it.each([
      ['a user with only a pending request', 'carol', ErrorCode.NotMember],
      ['a stranger', 'zed', ErrorCode.NotMember],
    ])('refuses %s (NOT_MEMBER) and lists nothing for it', (_, userId, code) => {
      const by = { userId, connectionId: 424242, address: address(userId, 7009) };
      refusal(() => files.announcePartial(by, 'g1', 'report.pdf'), code);
      refusal(() => files.stopPartial(userId, 'g1', 'report.pdf'), code);
      refusal(() => files.seeders(userId, 'g1', 'report.pdf'), code);
      expect(partial('bob')).toEqual([]);
    });

    it('refuses an unknown file (UNKNOWN_FILE) and an unknown group', () => {
      refusal(() => files.announcePartial(bob.as(), 'g1', 'nope.pdf'), ErrorCode.UnknownFile);
      refusal(() => files.seeders('bob', 'g1', 'nope.pdf'), ErrorCode.UnknownFile);
      refusal(() => files.announcePartial(bob.as(), 'g9', 'report.pdf'), ErrorCode.UnknownGroup);
    });

    it('answers list_seeders with the same seeders as download_file, and fresh capabilities, without chunk hashes', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      const listing = files.seeders('dave', 'g1', 'report.pdf');
      expect(listing).toEqual({
        fileHash: sha1('report'),
        seeders: [{ userId: 'alice', address: address('alice', 7001), capability: expect.any(String) as string }],
        partialSeeders: [
          { userId: 'bob', address: address('bob', 7002), capability: expect.any(String) as string, partial: true },
        ],
      });
      expect(claimsOf(listing.seeders[0])).toMatchObject({ seederId: 'alice', downloaderId: 'dave' });
      expect(claimsOf(listing.partialSeeders[0])).toMatchObject({ seederId: 'bob', downloaderId: 'dave' });
      const chunkReads = jest.spyOn(store, 'chunkHashes');
      files.seeders('dave', 'g1', 'report.pdf');
      expect(chunkReads).not.toHaveBeenCalled();
    });

    it('commits nothing: partial seeding is never in the log', () => {
      const before = sync.opsAfter(new Map(), 1000).length;
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      files.stopPartial('bob', 'g1', 'report.pdf');
      expect(sync.opsAfter(new Map(), 1000)).toHaveLength(before);
    });

    it('ends when the member leaves the group through another tracker', () => {
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      sync.receive({
        kind: 'leave_group',
        groupId: 'g1',
        actor: 'bob',
        time: 77,
        requestId: '',
        origin: 2,
        seq: 1,
        lamport: 10_000,
      });
      expect(groups.isMember('bob', 'g1')).toBe(false);
      expect(partial('alice')).toEqual([]);
    });

    it('keeps a live partial seeder through a replay of the log', () => {
      jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
      files.announcePartial(bob.as(7002), 'g1', 'report.pdf');
      const late: StampedOp = {
        kind: 'leave_group',
        groupId: 'g1',
        actor: 'zed',
        time: 1,
        requestId: '',
        origin: 2,
        seq: 1,
        lamport: 1,
      };
      expect(sync.receive(late)).toBe('replayed');
      expect(partial('alice')).toEqual(['bob']);
      jest.restoreAllMocks();
    });
  });

  describe('addSeeder (new_seeder)', () => {
    beforeEach(() => files.share(alice.as(), upload('g1', '/a/report.pdf')));

    it('refuses an unknown file with UNKNOWN_FILE', () => {
      refusal(() => files.addSeeder(bob.as(), 'g1', 'nope.pdf', '/b/nope.pdf'), ErrorCode.UnknownFile);
      expect(store.seeders('g1', 'nope.pdf')).toEqual([]);
    });

    it('adds the seeder row and marks it online', () => {
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/downloads/copy of report.pdf');
      expect(store.getSeeder('g1', 'report.pdf', 'bob')?.filePath).toBe('/downloads/copy of report.pdf');
      expect(online('report.pdf')).toEqual(['alice', 'bob']);
    });

    it('updates the path of an existing seeder, and puts an offline seeder back online', async () => {
      auth.logout(alice.session);
      await reconnect(alice);
      files.addSeeder(alice.as(7003), 'g1', 'report.pdf', '/a/moved.pdf');
      expect(whereFrom('bob', 'report.pdf')).toEqual([{ userId: 'alice', address: address('alice', 7003) }]);
      expect(store.getSeeder('g1', 'report.pdf', 'alice')?.filePath).toBe('/a/moved.pdf');
      expect(store.seederCount('g1', 'report.pdf')).toBe(1);
    });

    it.each(['', `/${'p'.repeat(4096)}`, '/a/b\u0000'])('refuses the path %j', (path) => {
      refusal(() => files.addSeeder(bob.as(), 'g1', 'report.pdf', path), ErrorCode.BadFileMetadata);
    });
  });

  describe('stopShare (stop_share)', () => {
    beforeEach(() => {
      files.share(alice.as(), upload('g1', '/a/report.pdf'));
      files.share(bob.as(), upload('g1', '/b/report.pdf'));
    });

    it('refuses a user who does not seed the file with NOT_SEEDING', () => {
      files.stopShare('bob', 'g1', 'report.pdf');
      expect(refusal(() => files.stopShare('bob', 'g1', 'report.pdf'), ErrorCode.NotSeeding).message).toBe(
        'you are not seeding report.pdf in group g1',
      );
      refusal(() => files.stopShare('alice', 'g1', 'unknown.pdf'), ErrorCode.NotSeeding);
    });

    it('removes the seeder and its online mark; the file stays while someone seeds it', () => {
      expect(files.stopShare('bob', 'g1', 'report.pdf')).toEqual({ fileDeleted: false });
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice']);
      expect(online('report.pdf')).toEqual(['alice']);
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(1);
    });

    it('deletes the file when its last seeder stops, even an offline one being the last', () => {
      files.stopShare('alice', 'g1', 'report.pdf');
      auth.logout(bob.session);
      expect(files.stopShare('bob', 'g1', 'report.pdf')).toEqual({ fileDeleted: true });
      expect(names()).toEqual([]);
      refusal(() => files.download('alice', 'g1', 'report.pdf'), ErrorCode.UnknownFile);
      expect(store.getFile('g1', 'report.pdf')).toBeUndefined();
    });

    it('frees the name for a different file once deleted', () => {
      files.stopShare('alice', 'g1', 'report.pdf');
      files.stopShare('bob', 'g1', 'report.pdf');
      expect(files.share(alice.as(), upload('g1', '/a/report.pdf', 'v2')).created).toBe(true);
      expect(online('report.pdf')).toEqual(['alice']);
    });
  });

  describe('replication', () => {
    const changes = () =>
      [...sync.opsAfter(new Map(), 1000)]
        .filter((op) => ['upload_file', 'new_seeder', 'stop_share'].includes(op.kind))
        .map((op) => [op.kind, op.actor, ...encodeOpArgs(op)]);
    /** A change from tracker 2 ordered before every change here but the first: receiving it replays the log. */
    /** A change of group g1 that sorts before everything here (zed leaving a group he never asked to join). */
    const late = (): StampedOp => ({
      kind: 'leave_group',
      groupId: 'g1',
      actor: 'zed',
      time: 1,
      requestId: '',
      origin: 2,
      seq: 1,
      lamport: 1,
    });
    let seq = 0;
    /** A change made on tracker 2, ordered after everything here. */
    const fromTracker2 = (kind: string, actor: string, ...args: string[]): StampedOp => {
      seq++;
      return { ...decodeOpBody(kind, args), actor, time: 77, requestId: '', origin: 2, seq, lamport: 10_000 + seq };
    };
    beforeEach(() => {
      seq = 0;
      jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    });
    afterEach(() => jest.restoreAllMocks());

    it('commits each change as one op: the file’s metadata, a new seeder, a stop', () => {
      const req = upload('g1', '/a/report.pdf');
      files.share(alice.as(), { ...req, fileHash: req.fileHash.toUpperCase() });
      files.addSeeder(bob.as(), 'g1', 'report.pdf', '/b/copy.pdf');
      files.stopShare('bob', 'g1', 'report.pdf');
      expect(changes()).toEqual([
        ['upload_file', 'alice', 'g1', '/a/report.pdf', String(req.fileSize), req.fileHash, req.chunkHashes.join(',')],
        ['new_seeder', 'bob', 'g1', 'report.pdf', '/b/copy.pdf'],
        ['stop_share', 'bob', 'g1', 'report.pdf'],
      ]);
    });

    it('commits nothing for a refused change', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      const before = changes().length;
      for (const refused of [
        () => files.share(bob.as(), upload('g1', '/b/report.pdf', 'two')),
        () => files.share(carol.as(), upload('g1', '/c/x')),
        () => files.share(alice.as(), { ...upload('g1', '/a/y'), fileHash: 'bad' }),
        () => files.addSeeder(bob.as(), 'g1', 'nope', '/b/nope'),
        () => files.stopShare('bob', 'g1', 'report.pdf'),
      ]) {
        expect(refused).toThrow(DomainError);
      }
      expect(changes()).toHaveLength(before);
    });

    it('takes in a file shared on another tracker, its seeder online only while that tracker says so', () => {
      const req = upload('g1', '/b/remote.bin', 'remote');
      sync.receive(
        fromTracker2(
          'upload_file',
          'bob',
          'g1',
          req.filePath,
          String(req.fileSize),
          req.fileHash,
          req.chunkHashes.join(','),
        ),
      );
      expect(store.getFile('g1', 'remote.bin')).toMatchObject({ uploader: 'bob', createdAt: 77 });
      expect(files.list('alice', 'g1')).toEqual([{ fileName: 'remote.bin', fileSize: req.fileSize, onlineSeeders: 0 }]);
      const entry = {
        userId: 'bob',
        address: '10.9.9.9:7002',
        groupId: 'g1',
        fileName: 'remote.bin',
        filePath: req.filePath,
        form: SeederForm.Extended,
      };
      sync.remotePresence(2, { on: true, entry });
      expect(whereFrom('alice', 'remote.bin')).toEqual([{ userId: 'bob', address: { host: '10.9.9.9', port: 7002 } }]);
      expect(claimsOf(files.download('alice', 'g1', 'remote.bin').seeders[0])).toMatchObject({
        seederId: 'bob',
        downloaderId: 'alice',
      });
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(1);
      sync.remotePresence(2, 'reset');
      expect(online('remote.bin')).toEqual([]);
      sync.remotePresence(2, { on: true, entry });
      sync.remotePresence(2, { on: false, entry });
      expect(online('remote.bin')).toEqual([]);
    });

    it('lists a seed-form seeder of another tracker with its path, as its presence says', () => {
      const req = upload('g1', '/b/dir, with comma/remote.bin', 'remote');
      sync.receive(
        fromTracker2(
          'upload_file',
          'bob',
          'g1',
          req.filePath,
          String(req.fileSize),
          req.fileHash,
          req.chunkHashes.join(','),
        ),
      );
      files.share(alice.as(7001), upload('g1', '/a/remote.bin', 'remote'));
      const entry = {
        userId: 'bob',
        address: '10.9.9.9:7002',
        groupId: 'g1',
        fileName: 'remote.bin',
        filePath: req.filePath,
        form: SeederForm.Seed,
      };
      sync.remotePresence(2, { on: true, entry });
      const meta = files.download('alice', 'g1', 'remote.bin');
      expect(meta.seeders).toEqual([
        { userId: 'bob', address: { host: '10.9.9.9', port: 7002 }, capability: req.filePath, seedForm: true },
        { userId: 'alice', address: address('alice', 7001), capability: expect.any(String) as string },
      ]);
      const lines = formatFileMetadata(meta);
      expect(lines[6]).toBe(`seeder_file_paths:/b/dir%2C with comma/remote.bin,${meta.seeders[1].capability}`);
      expect(lines[8]).toBe('seeder_protocols:seed,p2p-share/2');
    });

    it('ignores a change from another tracker that no longer fits', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf', 'one'));
      const other = upload('g1', '/b/report.pdf', 'two');
      for (const op of [
        fromTracker2(
          'upload_file',
          'bob',
          'g1',
          other.filePath,
          String(other.fileSize),
          other.fileHash,
          other.chunkHashes.join(','),
        ),
        fromTracker2('upload_file', 'carol', 'g1', '/c/c.bin', '1', sha1('c'), sha1('c0')), // not a member
        fromTracker2('new_seeder', 'carol', 'g1', 'report.pdf', '/c/report.pdf'),
        fromTracker2('stop_share', 'bob', 'g1', 'report.pdf'), // bob never seeded it
      ]) {
        expect(sync.receive(op)).toBe('applied');
      }
      expect(store.getFile('g1', 'report.pdf')?.fileHash).toBe(sha1('one'));
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice']);
      expect(names()).toEqual(['report.pdf']);
    });

    it('creates no file from another tracker’s op whose name no tracker accepts now', () => {
      const bad = upload('g1', '/b/invoice\u202efdp.exe', 'bidi');
      const op = fromTracker2(
        'upload_file',
        'bob',
        'g1',
        bad.filePath,
        String(bad.fileSize),
        bad.fileHash,
        bad.chunkHashes.join(','),
      );
      expect(sync.receive(op)).toBe('applied');
      expect(names()).toEqual([]);
    });

    it('keeps the stored files and seeders through a replay of the log', () => {
      files.share(alice.as(), upload('g1', '/a/report.pdf'));
      files.addSeeder(bob.as(), 'g1', 'report.pdf', '/b/report.pdf');
      files.share(bob.as(), upload('g1', '/b/gone.txt', 'gone', 1));
      files.stopShare('bob', 'g1', 'gone.txt');
      const digest = sync.digest();
      expect(sync.receive(late())).toBe('replayed');
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice', 'bob']);
      expect(store.getFile('g1', 'gone.txt')).toBeUndefined();
      expect(sync.digest()).toBe(digest); // zed's leaving changed nothing
    });

    it('keeps live seeders online through a replay of the log', () => {
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/b/report.pdf');
      expect(sync.receive(late())).toBe('replayed');
      expect(online('report.pdf')).toEqual(['alice', 'bob']);
      expect(files.list('alice', 'g1')[0].onlineSeeders).toBe(2);
    });

    it('keeps a live seeder online through a replay that passes a stop and a new upload of its file', () => {
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      files.stopShare('alice', 'g1', 'report.pdf'); // the file is gone...
      files.share(alice.as(7001), upload('g1', '/a/report.pdf')); // ...and shared anew by the same session
      expect(online('report.pdf')).toEqual(['alice']);
      expect(sync.receive(late())).toBe('replayed');
      expect(files.list('bob', 'g1')).toEqual([
        { fileName: 'report.pdf', fileSize: 2 * CHUNK_SIZE + 1, onlineSeeders: 1 },
      ]);
      expect(online('report.pdf', 'g1', bob)).toEqual(['alice']);
    });

    it('keeps a live seeder online through a replay that passes its leaving and rejoining the group', () => {
      files.share(alice.as(7001), upload('g1', '/a/report.pdf'));
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/b/report.pdf');
      groups.leave('bob', 'g1');
      groups.join('bob', 'g1');
      groups.accept('alice', 'g1', 'bob');
      files.addSeeder(bob.as(7002), 'g1', 'report.pdf', '/b/report.pdf');
      expect(online('report.pdf')).toEqual(['alice', 'bob']);
      expect(sync.receive(late())).toBe('replayed');
      expect(online('report.pdf')).toEqual(['alice', 'bob']);
    });
  });

  describe('leaving a group', () => {
    beforeEach(() => {
      groups.create('alice', 'g2');
      groups.join('bob', 'g2');
      groups.accept('alice', 'g2', 'bob');
      files.share(alice.as(), upload('g1', '/a/shared.txt', 'shared', 1));
      files.share(bob.as(), upload('g1', '/b/shared.txt', 'shared', 1));
      files.share(bob.as(), upload('g1', '/b/bobs.txt', 'bobs', 1));
      files.share(bob.as(), upload('g2', '/b/bobs.txt', 'bobs', 1));
    });

    it('drops the leaver’s shares in that group and the files nobody else seeds', () => {
      expect(groups.leave('bob', 'g1')).toEqual({ kind: 'left' });
      expect(files.list('alice', 'g1')).toEqual([{ fileName: 'shared.txt', fileSize: 1, onlineSeeders: 1 }]);
      expect(store.seeders('g1', 'shared.txt').map((s) => s.userId)).toEqual(['alice']);
      expect(store.getFile('g1', 'bobs.txt')).toBeUndefined();
      expect(online('shared.txt')).toEqual(['alice']);
      // Other groups keep the leaver's shares.
      expect(files.list('bob', 'g2')).toEqual([{ fileName: 'bobs.txt', fileSize: 1, onlineSeeders: 1 }]);
    });

    it('does the same for an owner who hands the group on', () => {
      expect(groups.leave('alice', 'g1')).toEqual({ kind: 'left-owner', newOwner: 'bob' });
      expect(files.list('bob', 'g1').map((f) => [f.fileName, f.onlineSeeders])).toEqual([
        ['bobs.txt', 1],
        ['shared.txt', 1],
      ]);
      expect(online('shared.txt', 'g1', bob)).toEqual(['bob']);
    });

    it('drops nothing when a pending request is withdrawn', () => {
      expect(groups.leave('carol', 'g1')).toEqual({ kind: 'withdrew' });
      expect(names()).toEqual(['bobs.txt', 'shared.txt']);
    });

    it('drops every file of a group that is deleted with its last member, even offline seeders’ rows', () => {
      groups.leave('bob', 'g1');
      auth.logout(alice.session);
      expect(groups.leave('alice', 'g1')).toEqual({ kind: 'deleted' });
      expect(store.listFiles('g1')).toEqual([]);
      expect(store.getFile('g1', 'shared.txt')).toBeUndefined();
      groups.create('bob', 'g1');
      expect(files.list('bob', 'g1')).toEqual([]);
    });

    it('deletes rows left by a seeder who is no longer a member when the group goes', () => {
      // A row the hook never saw: e.g. written before this tracker had the hook.
      store.putSeeder({ groupId: 'g2', fileName: 'bobs.txt', userId: 'ghost', filePath: '/g' });
      groups.leave('bob', 'g2');
      expect(store.seeders('g2', 'bobs.txt').map((s) => s.userId)).toEqual(['ghost']);
      groups.leave('alice', 'g2');
      expect(store.getFile('g2', 'bobs.txt')).toBeUndefined();
    });

    it('lets a member who comes back share again, starting from nothing', () => {
      groups.leave('bob', 'g1');
      groups.join('bob', 'g1');
      groups.accept('alice', 'g1', 'bob');
      expect(names('g1', bob)).toEqual(['shared.txt']);
      refusal(() => files.stopShare('bob', 'g1', 'shared.txt'), ErrorCode.NotSeeding);
      files.addSeeder(bob.as(), 'g1', 'shared.txt', '/b/again.txt');
      expect(online('shared.txt')).toEqual(['alice', 'bob']);
    });
  });
});

describe(`${FilesService.name} at scale, on the SQLite store`, () => {
  const dbs = new TempDatabases();
  let files: FilesService;
  let groups: GroupsService;
  let auth: AuthService;
  const session = fakeSession();
  const by = (): Announcer => ({
    userId: 'alice',
    connectionId: session.connectionId,
    address: { host: '10.0.0.1', port: 7001 },
  });

  beforeAll(async () => {
    const db = dbs.open();
    // Durability is not under test here: skip the fsync of each of the 10,000 commits.
    db.pragma('synchronous = OFF');
    const moduleRef = await Test.createTestingModule({
      providers: [
        FilesService,
        PresenceService,
        GroupsService,
        AuthService,
        { provide: FILE_STORE, useValue: new SqliteFileStore(db) },
        { provide: GROUP_STORE, useClass: InMemoryGroupStore },
        { provide: USER_STORE, useClass: InMemoryUserStore },
        { provide: PASSWORD_HASHER, useValue: plainHasher },
        ...syncTestingProviders({}, { opLog: new SqliteOpLogStore(db), work: new SqliteUnitOfWork(db) }),
      ],
    }).compile();
    files = moduleRef.get(FilesService);
    groups = moduleRef.get(GroupsService);
    auth = moduleRef.get(AuthService);
    await auth.createUser('alice', 'pw');
    await auth.login(session, 'alice', 'pw');
    groups.create('alice', 'g1');
  });
  afterAll(() => dbs.cleanup());

  it('uploads and downloads a 200,000-chunk file', () => {
    const chunkHashes = chunkList(200_000, 'big');
    const fileSize = 200_000 * CHUNK_SIZE - 7;
    files.share(by(), { groupId: 'g1', filePath: '/a/huge.iso', fileSize, fileHash: sha1('big'), chunkHashes });
    const meta = files.download('alice', 'g1', 'huge.iso');
    expect(unpackChunkHashes(meta.chunkDigests)).toEqual(chunkHashes);
    expect(meta.fileSize).toBe(fileSize);
    expect(formatFileMetadata(meta)[3]).toBe(`chunk_hashes:${chunkHashes.join(',')}`);
  });

  it('lists 10,000 files', () => {
    for (let i = 0; i < 10_000; i++) {
      files.share(by(), {
        groupId: 'g1',
        filePath: `/a/f${i}.txt`,
        fileSize: 1,
        fileHash: sha1(`f${i}`),
        chunkHashes: [sha1(`c${i}`)],
      });
    }
    const listed = files.list('alice', 'g1');
    expect(listed).toHaveLength(10_001);
    expect(listed.every((f) => f.onlineSeeders === 1)).toBe(true);
  });
});
