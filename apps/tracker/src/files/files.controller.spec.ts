import {
  decodeCapability,
  DigestsLine,
  ErrorCode,
  formatFileMetadata,
  okReply,
  OkReply,
  parseFileMetadata,
  parseSeederLists,
  ProtocolError,
  ReplyLine,
  UploadFileCmd,
} from '@app/protocol';
import { Test } from '@nestjs/testing';
import { createHash } from 'node:crypto';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER, USER_STORE } from '../auth/auth.tokens';
import { InMemoryUserStore } from '../auth/in-memory-user.store';
import { NotLoggedInError } from '../common/domain.error';
import { GroupsService } from '../groups/groups.service';
import { NotMemberError } from '../groups/groups.errors';
import { GROUP_STORE } from '../groups/groups.tokens';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { plainHasher, syncTestingProviders } from '../testing/sync-testing';
import { thrownBy } from '../testing/thrown';
import { OpLogStore } from '../sync/oplog.store';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { OPLOG_STORE } from '../sync/sync.tokens';
import { PeerContext } from '../transport/peer.context';
import { FileStore, packChunkHashes } from './file.store';
import { FilesController, parseFileSize } from './files.controller';
import { FileConflictError, NotSeedingError, TrackerAddressAsSeederError, UnknownFileError } from './files.errors';
import { FilesService } from './files.service';
import { FILE_STORE } from './files.tokens';
import { PresenceService } from './presence.service';
import { InMemoryFileStore } from './in-memory-file.store';
import { SeederAddressRule } from './seeder-address.rule';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const [h1, h2, h3] = [sha1('1'), sha1('2'), sha1('3')];

/** Runs `work`, expecting a protocol error with `code`. */
function protocolRefusal(work: () => unknown, code: ErrorCode): void {
  const thrown = thrownBy(work);
  expect(thrown).toBeInstanceOf(ProtocolError);
  expect((thrown as ProtocolError).code).toBe(code);
}

/** A connection from `remoteAddress` with `user` on it; extended unless it is a seed-form one (no HELLO). */
function connection(connectionId: number, remoteAddress: string, user: string, extended = true): PeerContext {
  const ctx = new PeerContext(connectionId, remoteAddress);
  ctx.setUser(user);
  ctx.extended = extended;
  return ctx;
}

describe(FilesController.name, () => {
  let controller: FilesController;
  let files: FilesService;
  let auth: AuthService;
  let store: FileStore;
  let opLog: OpLogStore;
  let alice: PeerContext;
  let bob: PeerContext;

  const uploadCmd = (overrides: Partial<UploadFileCmd> = {}): UploadFileCmd => ({
    kind: 'upload_file',
    groupId: 'g1',
    filePath: '/home/alice/report.pdf',
    fileSize: '1048577',
    fileHash: sha1('report'),
    chunkHashes: `${h1},${h2},${h3}`,
    myPort: '7001',
    ...overrides,
  });
  const newSeeder = (ctx: PeerContext, myPort = '7009', fileName = 'report.pdf', filePath = '/dl/report.pdf') =>
    controller.newSeeder({ kind: 'new_seeder', groupId: 'g1', fileName, filePath, myPort }, ctx);
  const stopShare = (ctx: PeerContext, fileName = 'report.pdf') =>
    controller.stopShare({ kind: 'stop_share', groupId: 'g1', fileName }, ctx);
  /** Who bob would download `fileName` from, where, and in which form. */
  const seedersFor = (fileName = 'report.pdf') =>
    files.download('bob', 'g1', fileName).seeders.map(({ userId, address, seedForm }) => ({
      userId,
      address,
      seedForm: seedForm === true,
    }));

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      controllers: [FilesController],
      providers: [
        FilesService,
        PresenceService,
        GroupsService,
        AuthService,
        SeederAddressRule,
        { provide: FILE_STORE, useClass: InMemoryFileStore },
        { provide: GROUP_STORE, useClass: InMemoryGroupStore },
        { provide: USER_STORE, useClass: InMemoryUserStore },
        { provide: PASSWORD_HASHER, useValue: plainHasher },
        // this tracker listens on 192.168.1.2:6001, its peer on 192.168.1.3:6002
        ...syncTestingProviders({
          trackers: [
            { host: '192.168.1.2', port: 6001 },
            { host: '192.168.1.3', port: 6002 },
          ],
        }),
      ],
    })
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(FilesController);
    files = moduleRef.get(FilesService);
    auth = moduleRef.get(AuthService);
    store = moduleRef.get<FileStore>(FILE_STORE);
    opLog = moduleRef.get<OpLogStore>(OPLOG_STORE);
    // alice owns g1 and bob is a member; carol has only asked to join
    const groups = moduleRef.get(GroupsService);
    groups.create('alice', 'g1');
    groups.join('bob', 'g1');
    groups.accept('alice', 'g1', 'bob');
    groups.join('carol', 'g1');
    alice = connection(42, '192.168.1.20:51234', 'alice'); // its connection began with HELLO p2p-share/2
    bob = connection(43, '10.0.0.2:40000', 'bob');
  });

  describe('upload_file', () => {
    it('registers the parsed metadata with the logged-in user as seeder, serving on the connection’s IP', () => {
      expect(controller.upload(uploadCmd(), alice)).toEqual(okReply('shared report.pdf in group g1 (3 chunks)'));
      expect(store.getFile('g1', 'report.pdf')).toMatchObject({
        fileSize: 1048577,
        fileHash: sha1('report'),
        uploader: 'alice',
      });
      expect(store.chunkHashes('g1', 'report.pdf')).toEqual(packChunkHashes([h1, h2, h3]));
      expect(store.getSeeder('g1', 'report.pdf', 'alice')?.filePath).toBe('/home/alice/report.pdf');
      expect(seedersFor()).toEqual([
        { userId: 'alice', address: { host: '192.168.1.20', port: 7001 }, seedForm: false },
      ]);
    });

    it('lists a seeder announced on a connection without HELLO as a seed-form one, with its path', () => {
      const seedForm = connection(44, '192.168.1.20:51235', 'alice', false);
      controller.upload(uploadCmd(), seedForm);
      newSeeder(connection(45, '10.0.0.2:40001', 'bob', false));
      expect(files.download('bob', 'g1', 'report.pdf').seeders).toEqual([
        {
          userId: 'alice',
          address: { host: '192.168.1.20', port: 7001 },
          capability: '/home/alice/report.pdf',
          seedForm: true,
        },
        { userId: 'bob', address: { host: '10.0.0.2', port: 7009 }, capability: '/dl/report.pdf', seedForm: true },
      ]);
    });

    it('takes only the port of an IP:PORT: the host is always the connection’s own', () => {
      controller.upload(uploadCmd({ myPort: '10.0.0.9:7005' }), alice);
      expect(seedersFor()).toEqual([
        { userId: 'alice', address: { host: '192.168.1.20', port: 7005 }, seedForm: false },
      ]);
    });

    it.each(['6001', '192.168.1.2:6001', '10.9.9.9:6001'])(
      'refuses my_port %j from a connection on the tracker’s own host: that is the tracker’s address',
      (myPort) => {
        controller.upload(uploadCmd(), alice);
        const before = opLog.count();
        const onTrackerHost = connection(46, '192.168.1.2:40000', 'bob');
        const err = thrownBy(() =>
          controller.upload(uploadCmd({ filePath: '/b/other', fileSize: '0', chunkHashes: '', myPort }), onTrackerHost),
        );
        expect(err).toBeInstanceOf(TrackerAddressAsSeederError);
        expect(err).toHaveProperty('code', ErrorCode.BadArguments);
        expect(thrownBy(() => newSeeder(onTrackerHost, myPort))).toBeInstanceOf(TrackerAddressAsSeederError);
        expect(store.getFile('g1', 'other')).toBeUndefined();
        expect(store.getSeeder('g1', 'report.pdf', 'bob')).toBeUndefined();
        expect(opLog.count()).toBe(before);
      },
    );

    it('accepts the tracker’s port from a client on another host: that host serves there', () => {
      controller.upload(uploadCmd({ myPort: '6001' }), alice);
      expect(seedersFor()).toEqual([
        { userId: 'alice', address: { host: '192.168.1.20', port: 6001 }, seedForm: false },
      ]);
    });

    it('says so when the user joined the seeders of a file already shared, and quotes names with spaces', () => {
      const cmd = uploadCmd({ filePath: '/a/my report.pdf', fileSize: '1', chunkHashes: h1 });
      expect(controller.upload(cmd, alice)).toEqual(okReply('shared "my report.pdf" in group g1 (1 chunk)'));
      expect(controller.upload({ ...cmd, filePath: '/b/my report.pdf' }, bob)).toEqual(
        okReply('shared "my report.pdf" in group g1 (1 chunk); it was already shared, you seed it too now'),
      );
      expect(seedersFor('my report.pdf').map((s) => s.userId)).toEqual(['alice', 'bob']);
    });

    it('reads an empty chunk list for an empty file', () => {
      expect(controller.upload(uploadCmd({ filePath: '/a/empty', fileSize: '0', chunkHashes: '' }), alice)).toEqual(
        okReply('shared empty in group g1 (0 chunks)'),
      );
      expect(store.getFile('g1', 'empty')).toMatchObject({ fileSize: 0 });
      expect(store.chunkHashes('g1', 'empty')).toHaveLength(0);
    });

    describe('refuses malformed arguments before anything is stored', () => {
      let before: number;
      beforeEach(() => {
        before = opLog.count();
      });
      afterEach(() => {
        expect(store.listFiles('g1')).toEqual([]);
        expect(opLog.count()).toBe(before);
      });

      it.each(['-1', '1.5', 'abc', '', '1e6', '99999999999999999'])('the size %j with BAD_FILE_METADATA', (size) => {
        protocolRefusal(() => controller.upload(uploadCmd({ fileSize: size }), alice), ErrorCode.BadFileMetadata);
      });

      it('a malformed chunk list with BAD_FILE_METADATA', () => {
        protocolRefusal(
          () => controller.upload(uploadCmd({ chunkHashes: `${h1},nope,${h3}` }), alice),
          ErrorCode.BadFileMetadata,
        );
      });

      it.each(['0', '65536', 'port', '1.2.3.4:', ':7001', '1.2.3.4:0', '1.2.3.4:7001:1'])(
        'my_port %j with BAD_ARGUMENTS',
        (myPort) => {
          protocolRefusal(() => controller.upload(uploadCmd({ myPort }), alice), ErrorCode.BadArguments);
        },
      );
    });

    it('a different file under a registered name is refused with FILE_CONFLICT and the registered one stays', () => {
      controller.upload(uploadCmd(), alice);
      const err = thrownBy(() =>
        controller.upload(uploadCmd({ filePath: '/b/report.pdf', fileHash: sha1('other') }), bob),
      );
      expect(err).toBeInstanceOf(FileConflictError);
      expect(err).toHaveProperty('code', ErrorCode.FileConflict);
      expect(store.getFile('g1', 'report.pdf')?.fileHash).toBe(sha1('report'));
      expect(seedersFor().map((s) => s.userId)).toEqual(['alice']);
    });

    it('a user who is not a member of the group is refused with NOT_MEMBER', () => {
      const err = thrownBy(() => controller.upload(uploadCmd(), connection(47, '10.0.0.3:40000', 'carol')));
      expect(err).toBeInstanceOf(NotMemberError);
      expect(err).toHaveProperty('code', ErrorCode.NotMember);
      expect(store.getFile('g1', 'report.pdf')).toBeUndefined();
    });
  });

  describe('list_files', () => {
    it('writes one line per file with its online seeders, names quoted so they can be typed back', () => {
      const list = () => controller.list({ kind: 'list_files', groupId: 'g1' }, alice);
      expect(list()).toEqual(okReply('no files in group g1'));
      controller.upload(uploadCmd({ filePath: '/a/a report.pdf' }), alice);
      expect(list()).toEqual(okReply('1 file in group g1', ['"a report.pdf" size=1048577 seeders=1']));
      controller.upload(uploadCmd({ filePath: '/b/a report.pdf' }), bob);
      controller.upload(uploadCmd({ filePath: '/b/b.txt', fileSize: '0', chunkHashes: '' }), bob);
      controller.upload(uploadCmd({ filePath: '/a/say "hi"', fileSize: '5', chunkHashes: h1 }), alice);
      auth.endSession(bob); // bob's connection closed: he still seeds, but is not online
      expect(list()).toEqual(
        okReply('3 files in group g1', [
          '"a report.pdf" size=1048577 seeders=1',
          'b.txt size=0 seeders=0',
          '"say \\"hi\\"" size=5 seeders=1',
        ]),
      );
    });

    it('refuses a user who is not a member', () => {
      const carol = connection(47, '10.0.0.3:40000', 'carol');
      expect(thrownBy(() => controller.list({ kind: 'list_files', groupId: 'g1' }, carol))).toBeInstanceOf(
        NotMemberError,
      );
    });
  });

  describe('download_file', () => {
    /** The reply with its long lines as text. */
    const asText = (reply: OkReply<ReplyLine>) => okReply(reply.message, reply.lines.map(String));
    const download = (ctx: PeerContext, fileName = 'report.pdf') =>
      controller.download({ kind: 'download_file', groupId: 'g1', fileName, destinationPath: '/tmp' }, ctx);

    it('answers the metadata lines with the online seeders, ignoring the destination', () => {
      controller.upload(uploadCmd(), alice);
      newSeeder(bob, '7002');
      const reply = download(bob);
      expect(reply.message).toBe('report.pdf: 1048577 bytes, 2 online seeders');
      expect(reply.seed).toBe('metadata');
      const lines = reply.lines.map(String);
      expect(lines).toEqual([
        'file_name:report.pdf',
        'file_size:1048577',
        `file_hash:${sha1('report')}`,
        `chunk_hashes:${h1},${h2},${h3}`,
        'seeders:alice,bob',
        'seeder_ports:7001,7002',
        // a capability for bob per seeder, in place of the seeders' paths
        expect.stringMatching(/^seeder_file_paths:[\w-]{40,},[\w-]{40,}$/),
        'seeder_hosts:192.168.1.20,10.0.0.2',
        'seeder_protocols:p2p-share/2,p2p-share/2',
        'partial_seeders:',
        'partial_seeder_hosts:',
        'partial_seeder_ports:',
        'partial_seeder_file_paths:',
        'seeder_fingerprints:-,-',
        'partial_seeder_fingerprints:',
      ]);
      expect(reply.lines[3]).toBeInstanceOf(DigestsLine); // written in pieces, never built whole
    });

    it('still answers when nobody is online', () => {
      controller.upload(uploadCmd({ fileSize: '1', chunkHashes: h1 }), alice);
      auth.endSession(alice);
      const reply = download(bob);
      expect(asText(reply)).toEqual(
        okReply(
          'report.pdf: 1 byte, 0 online seeders',
          formatFileMetadata({
            fileName: 'report.pdf',
            fileSize: 1,
            fileHash: sha1('report'),
            chunkDigests: packChunkHashes([h1]),
            seeders: [],
          }),
        ),
      );
      expect(reply.seed).toBe('metadata');
    });

    it('refuses an unknown file with UNKNOWN_FILE', () => {
      const err = thrownBy(() => download(bob, 'nope'));
      expect(err).toBeInstanceOf(UnknownFileError);
      expect(err).toHaveProperty('code', ErrorCode.UnknownFile);
    });
  });

  describe('new_seeder', () => {
    it('adds the logged-in user as a seeder at its address', () => {
      controller.upload(uploadCmd(), alice);
      expect(newSeeder(bob)).toEqual(okReply('now seeding report.pdf in group g1'));
      expect(store.getSeeder('g1', 'report.pdf', 'bob')?.filePath).toBe('/dl/report.pdf');
      expect(seedersFor()).toContainEqual({
        userId: 'bob',
        address: { host: '10.0.0.2', port: 7009 },
        seedForm: false,
      });
    });

    it('refuses an unknown file and stores no seeder', () => {
      expect(thrownBy(() => newSeeder(bob))).toBeInstanceOf(UnknownFileError);
      expect(store.getSeeder('g1', 'report.pdf', 'bob')).toBeUndefined();
    });
  });

  describe('stop_share', () => {
    it('says whether the file is gone', () => {
      controller.upload(uploadCmd(), alice);
      newSeeder(bob);
      expect(stopShare(bob)).toEqual(okReply('stopped sharing report.pdf in group g1'));
      expect(store.getSeeder('g1', 'report.pdf', 'bob')).toBeUndefined();
      expect(store.getFile('g1', 'report.pdf')).toBeDefined();
      expect(stopShare(alice)).toEqual(
        okReply('stopped sharing report.pdf in group g1; nobody else seeds it, so it is no longer listed'),
      );
      expect(store.getFile('g1', 'report.pdf')).toBeUndefined();
    });

    it('refuses a user who does not seed the file', () => {
      controller.upload(uploadCmd(), alice);
      const err = thrownBy(() => stopShare(bob));
      expect(err).toBeInstanceOf(NotSeedingError);
      expect(err).toHaveProperty('code', ErrorCode.NotSeeding);
      expect(store.getSeeder('g1', 'report.pdf', 'alice')).toBeDefined();
    });
  });

  describe('partial_seeder, stop_partial, list_seeders', () => {
    const announce = (ctx: PeerContext, myPort = '7010', fileName = 'report.pdf') =>
      controller.partialSeeder({ kind: 'partial_seeder', groupId: 'g1', fileName, myPort }, ctx);
    const stopPartial = (ctx: PeerContext, fileName = 'report.pdf') =>
      controller.stopPartial({ kind: 'stop_partial', groupId: 'g1', fileName }, ctx);
    const listSeeders = (ctx: PeerContext, fileName = 'report.pdf') =>
      controller.listSeeders({ kind: 'list_seeders', groupId: 'g1', fileName }, ctx);
    /** The partial seeders alice's download_file lists, with their addresses. */
    const partialFor = () =>
      parseFileMetadata(
        controller.download({ kind: 'download_file', groupId: 'g1', fileName: 'report.pdf' }, alice).lines.map(String),
      ).partialSeeders?.map(({ userId, address }) => ({ userId, address })) ?? [];

    beforeEach(() => controller.upload(uploadCmd(), alice));

    it('announces the member as partial seeder at the connection’s IP and the given port', () => {
      expect(announce(bob)).toEqual(okReply('serving the chunks you hold of report.pdf in group g1'));
      expect(partialFor()).toEqual([{ userId: 'bob', address: { host: '10.0.0.2', port: 7010 } }]);
      expect(store.getSeeder('g1', 'report.pdf', 'bob')).toBeUndefined();
    });

    it('lists it in list_seeders, the seeder lines of download_file without the chunk hashes', () => {
      announce(bob);
      const reply = listSeeders(alice);
      expect(reply.message).toBe('report.pdf: 1 online seeder, 1 partial seeder');
      expect(reply.lines.map((l) => l.split(':')[0])).toEqual([
        'file_hash',
        'seeders',
        'seeder_ports',
        'seeder_file_paths',
        'seeder_hosts',
        'seeder_protocols',
        'partial_seeders',
        'partial_seeder_hosts',
        'partial_seeder_ports',
        'partial_seeder_file_paths',
        'seeder_fingerprints',
        'partial_seeder_fingerprints',
      ]);
      const lists = parseSeederLists(reply.lines);
      expect(lists.fileHash).toBe(sha1('report'));
      expect(lists.seeders.map((s) => s.userId)).toEqual(['alice']);
      expect(lists.partialSeeders).toEqual([
        {
          userId: 'bob',
          address: { host: '10.0.0.2', port: 7010 },
          capability: expect.any(String) as string,
          partial: true,
        },
      ]);
      expect(decodeCapability(lists.partialSeeders[0].capability)?.claims).toMatchObject({
        seederId: 'bob',
        downloaderId: 'alice',
      });
    });

    it('withdraws on stop_partial, and says so when nothing was announced', () => {
      announce(bob);
      expect(stopPartial(bob)).toEqual(okReply('no longer serving the chunks of report.pdf in group g1'));
      expect(partialFor()).toEqual([]);
      expect(stopPartial(bob)).toEqual(
        okReply('you were not serving the chunks of report.pdf in group g1; nothing changed'),
      );
    });

    it('ends the partial seeding when the member announces the whole file with new_seeder', () => {
      announce(bob);
      newSeeder(bob);
      expect(partialFor()).toEqual([]);
      expect(seedersFor().map((s) => s.userId)).toEqual(['alice', 'bob']);
    });

    it('ends it with the session', () => {
      announce(bob);
      auth.endSession(bob);
      expect(partialFor()).toEqual([]);
    });

    it.each<[string, (c: PeerContext) => unknown]>([
      ['partial_seeder', (c) => announce(c)],
      ['stop_partial', (c) => stopPartial(c)],
      ['list_seeders', (c) => listSeeders(c)],
    ])('refuses %s to a user with only a pending request (NOT_MEMBER), and an unknown file', (name, call) => {
      const carol = connection(44, '10.0.0.3:40000', 'carol');
      expect(thrownBy(() => call(carol))).toHaveProperty('code', ErrorCode.NotMember);
      if (name !== 'stop_partial') {
        const err = thrownBy(() =>
          name === 'partial_seeder' ? announce(bob, '7010', 'nope.pdf') : listSeeders(bob, 'nope.pdf'),
        );
        expect(err).toBeInstanceOf(UnknownFileError);
      }
      expect(partialFor()).toEqual([]);
    });

    it.each<[string, (c: PeerContext) => unknown]>([
      ['partial_seeder', (c) => announce(c)],
      ['stop_partial', (c) => stopPartial(c)],
      ['list_seeders', (c) => listSeeders(c)],
    ])(
      'refuses %s on a seed-form connection, saying it needs HELLO p2p-share/2, before anything else',
      (name, call) => {
        for (const ctx of [
          connection(45, '10.0.0.2:40001', 'bob', false),
          Object.assign(peerContext(), { extended: false }),
        ]) {
          const err = thrownBy(() => call(ctx));
          expect(err).toHaveProperty('code', ErrorCode.UnknownCommand);
          expect((err as Error).message).toBe(
            `${name} needs the extended form: send HELLO p2p-share/2 as the first line`,
          );
        }
        expect(partialFor()).toEqual([]);
      },
    );

    it('refuses them to a connection with nobody logged in', () => {
      const anonymous = () => Object.assign(peerContext(), { extended: true });
      expect(thrownBy(() => announce(anonymous()))).toBeInstanceOf(NotLoggedInError);
      expect(thrownBy(() => stopPartial(anonymous()))).toBeInstanceOf(NotLoggedInError);
      expect(thrownBy(() => listSeeders(anonymous()))).toBeInstanceOf(NotLoggedInError);
    });
  });

  describe('on a connection with nobody logged in', () => {
    const anonymous = () => peerContext();
    it.each<[string, (c: FilesController) => unknown]>([
      ['upload_file', (c) => c.upload(uploadCmd({ filePath: '/x/new' }), anonymous())],
      ['upload_file with a bad port', (c) => c.upload(uploadCmd({ myPort: 'x' }), anonymous())],
      ['list_files', (c) => c.list({ kind: 'list_files', groupId: 'g1' }, anonymous())],
      [
        'download_file',
        (c) => c.download({ kind: 'download_file', groupId: 'g1', fileName: 'report.pdf' }, anonymous()),
      ],
      [
        'new_seeder',
        (c) =>
          c.newSeeder(
            { kind: 'new_seeder', groupId: 'g1', fileName: 'report.pdf', filePath: '/f', myPort: '7001' },
            anonymous(),
          ),
      ],
      ['stop_share', (c) => c.stopShare({ kind: 'stop_share', groupId: 'g1', fileName: 'report.pdf' }, anonymous())],
    ])('%s throws NotLoggedInError and changes nothing', (_name, call) => {
      controller.upload(uploadCmd(), alice);
      const before = opLog.count();
      const err = thrownBy(() => call(controller));
      expect(err).toBeInstanceOf(NotLoggedInError);
      expect(err).toHaveProperty('code', ErrorCode.NotLoggedIn);
      expect(opLog.count()).toBe(before);
      expect(store.listFiles('g1').map((f) => f.fileName)).toEqual(['report.pdf']);
      expect(store.seeders('g1', 'report.pdf').map((s) => s.userId)).toEqual(['alice']);
    });
  });
});

describe(parseFileSize.name, () => {
  it.each([
    ['0', 0],
    ['007', 7],
    ['9007199254740991', Number.MAX_SAFE_INTEGER],
  ])('reads %j', (text, size) => {
    expect(parseFileSize(text)).toBe(size);
  });

  it.each(['9007199254740992', ' 1', '+1', '0x10'])('refuses %j', (text) => {
    protocolRefusal(() => parseFileSize(text), ErrorCode.BadFileMetadata);
  });
});
