import {
  DigestsLine,
  ErrorCode,
  formatFileMetadata,
  okReply,
  OkReply,
  PackedFileMetadata,
  ProtocolError,
  ReplyLine,
  UploadFileCmd,
} from '@app/protocol';
import { Test } from '@nestjs/testing';
import { createHash } from 'node:crypto';
import { NotLoggedInError } from '../common/domain.error';
import { passThroughInterceptor } from '../testing/pass-through.interceptor';
import { peerContext } from '../testing/fake-session';
import { ReplicationInterceptor } from '../sync/replication.interceptor';
import { PeerContext } from '../transport/peer.context';
import { TRACKER_CONFIG } from '../config/tracker.config';
import { trackerConfig } from '../testing/sync-testing';
import { FilesController, parseFileSize } from './files.controller';
import { FileConflictError, TrackerAddressAsSeederError } from './files.errors';
import { FileListing, FilesService } from './files.service';
import { SeederAddressRule } from './seeder-address.rule';

const sha1 = (text: string) => createHash('sha1').update(text).digest('hex');
const [h1, h2, h3] = [sha1('1'), sha1('2'), sha1('3')];

/** Runs `work`, expecting a protocol error with `code`. */
function protocolRefusal(work: () => unknown, code: ErrorCode): void {
  let thrown: unknown;
  try {
    work();
  } catch (err) {
    thrown = err;
  }
  expect(thrown).toBeInstanceOf(ProtocolError);
  expect((thrown as ProtocolError).code).toBe(code);
}

describe(FilesController.name, () => {
  let controller: FilesController;
  const files = {
    share: jest.fn(),
    list: jest.fn(),
    download: jest.fn(),
    addSeeder: jest.fn(),
    stopShare: jest.fn(),
  };
  let alice: PeerContext;

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

  beforeEach(async () => {
    jest.resetAllMocks();
    const moduleRef = await Test.createTestingModule({
      controllers: [FilesController],
      providers: [
        FilesService,
        SeederAddressRule,
        // this tracker listens on 192.168.1.2:6001, its peer on 192.168.1.3:6002
        {
          provide: TRACKER_CONFIG,
          useValue: trackerConfig({
            trackers: [
              { host: '192.168.1.2', port: 6001 },
              { host: '192.168.1.3', port: 6002 },
            ],
          }),
        },
      ],
    })
      .overrideProvider(FilesService)
      .useValue(files)
      .overrideInterceptor(ReplicationInterceptor)
      .useValue(passThroughInterceptor)
      .compile();
    controller = moduleRef.get(FilesController);
    alice = new PeerContext(42, '192.168.1.20:51234');
    alice.setUser('alice');
    alice.extended = true; // its connection began with HELLO p2p-share/2
  });

  describe('upload_file', () => {
    it('shares the parsed metadata for the logged-in user, serving on the connection’s IP', () => {
      files.share.mockReturnValue({ fileName: 'report.pdf', chunkCount: 3, created: true });
      expect(controller.upload(uploadCmd(), alice)).toEqual(okReply('shared report.pdf in group g1 (3 chunks)'));
      expect(files.share).toHaveBeenCalledWith(
        { userId: 'alice', connectionId: 42, address: { host: '192.168.1.20', port: 7001 }, seedForm: false },
        {
          groupId: 'g1',
          filePath: '/home/alice/report.pdf',
          fileSize: 1048577,
          fileHash: sha1('report'),
          chunkHashes: [h1, h2, h3],
        },
      );
    });

    it('announces a seeder on a connection without HELLO as a seed-form one', () => {
      files.share.mockReturnValue({ fileName: 'report.pdf', chunkCount: 3, created: true });
      alice.extended = false;
      controller.upload(uploadCmd(), alice);
      controller.newSeeder({ kind: 'new_seeder', groupId: 'g1', fileName: 'f', filePath: '/f', myPort: '7001' }, alice);
      expect(files.share).toHaveBeenCalledWith(expect.objectContaining({ seedForm: true }), expect.anything());
      expect(files.addSeeder).toHaveBeenCalledWith(expect.objectContaining({ seedForm: true }), 'g1', 'f', '/f');
    });

    it('takes only the port of an IP:PORT: the host is always the connection’s own', () => {
      files.share.mockReturnValue({ fileName: 'report.pdf', chunkCount: 3, created: true });
      controller.upload(uploadCmd({ myPort: '10.0.0.9:7005' }), alice);
      expect(files.share).toHaveBeenCalledWith(
        { userId: 'alice', connectionId: 42, address: { host: '192.168.1.20', port: 7005 }, seedForm: false },
        expect.anything(),
      );
    });

    it.each(['6001', '192.168.1.2:6001', '10.9.9.9:6001'])(
      'refuses my_port %j from a connection on the tracker’s own host: that is the tracker’s address',
      (myPort) => {
        const onTrackerHost = new PeerContext(43, '192.168.1.2:40000');
        onTrackerHost.setUser('mallory');
        expect(() => controller.upload(uploadCmd({ myPort }), onTrackerHost)).toThrow(TrackerAddressAsSeederError);
        expect(() =>
          controller.newSeeder(
            { kind: 'new_seeder', groupId: 'g1', fileName: 'f', filePath: '/f', myPort },
            onTrackerHost,
          ),
        ).toThrow(/is where a tracker of this network listens/);
        expect(files.share).not.toHaveBeenCalled();
        expect(files.addSeeder).not.toHaveBeenCalled();
      },
    );

    it('accepts the tracker’s port from a client on another host: that host serves there', () => {
      files.share.mockReturnValue({ fileName: 'report.pdf', chunkCount: 3, created: true });
      controller.upload(uploadCmd({ myPort: '6001' }), alice);
      expect(files.share).toHaveBeenCalledWith(
        expect.objectContaining({ address: { host: '192.168.1.20', port: 6001 } }),
        expect.anything(),
      );
    });

    it('says so when the user joined the seeders of a file already shared, and quotes names with spaces', () => {
      files.share.mockReturnValue({ fileName: 'my report.pdf', chunkCount: 1, created: false });
      expect(
        controller.upload(uploadCmd({ filePath: '/a/my report.pdf', fileSize: '1', chunkHashes: h1 }), alice),
      ).toEqual(okReply('shared "my report.pdf" in group g1 (1 chunk); it was already shared, you seed it too now'));
    });

    it('reads an empty chunk list for an empty file', () => {
      files.share.mockReturnValue({ fileName: 'empty', chunkCount: 0, created: true });
      expect(controller.upload(uploadCmd({ fileSize: '0', chunkHashes: '' }), alice)).toEqual(
        okReply('shared empty in group g1 (0 chunks)'),
      );
      expect(files.share).toHaveBeenCalledWith(
        expect.anything(),
        expect.objectContaining({ fileSize: 0, chunkHashes: [] }),
      );
    });

    it.each(['-1', '1.5', 'abc', '', '1e6', '99999999999999999'])(
      'refuses the size %j with BAD_FILE_METADATA',
      (size) => {
        protocolRefusal(() => controller.upload(uploadCmd({ fileSize: size }), alice), ErrorCode.BadFileMetadata);
        expect(files.share).not.toHaveBeenCalled();
      },
    );

    it('refuses a malformed chunk list with BAD_FILE_METADATA', () => {
      protocolRefusal(
        () => controller.upload(uploadCmd({ chunkHashes: `${h1},nope,${h3}` }), alice),
        ErrorCode.BadFileMetadata,
      );
      expect(files.share).not.toHaveBeenCalled();
    });

    it.each(['0', '65536', 'port', '1.2.3.4:', ':7001', '1.2.3.4:0', '1.2.3.4:7001:1'])(
      'refuses my_port %j with BAD_ARGUMENTS',
      (myPort) => {
        protocolRefusal(() => controller.upload(uploadCmd({ myPort }), alice), ErrorCode.BadArguments);
        expect(files.share).not.toHaveBeenCalled();
      },
    );

    it('passes a service refusal through unchanged', () => {
      const refusal = new FileConflictError('g1', 'report.pdf');
      files.share.mockImplementation(() => {
        throw refusal;
      });
      expect(() => controller.upload(uploadCmd(), alice)).toThrow(refusal);
    });
  });

  describe('list_files', () => {
    const listing = (fileName: string, fileSize: number, onlineSeeders: number): FileListing => ({
      fileName,
      fileSize,
      onlineSeeders,
    });

    it('writes one line per file, names quoted so they can be typed back', () => {
      files.list.mockReturnValue([
        listing('a report.pdf', 1048577, 2),
        listing('b.txt', 0, 0),
        listing('say "hi"', 5, 1),
      ]);
      expect(controller.list({ kind: 'list_files', groupId: 'g1' }, alice)).toEqual(
        okReply('3 files in group g1', [
          '"a report.pdf" size=1048577 seeders=2',
          'b.txt size=0 seeders=0',
          '"say \\"hi\\"" size=5 seeders=1',
        ]),
      );
      expect(files.list).toHaveBeenCalledWith('alice', 'g1');
    });

    it('says so when there are none, and uses the singular for one', () => {
      files.list.mockReturnValue([]);
      expect(controller.list({ kind: 'list_files', groupId: 'g1' }, alice)).toEqual(okReply('no files in group g1'));
      files.list.mockReturnValue([listing('x', 1, 1)]);
      expect(controller.list({ kind: 'list_files', groupId: 'g1' }, alice)).toEqual(
        okReply('1 file in group g1', ['x size=1 seeders=1']),
      );
    });
  });

  describe('download_file', () => {
    const meta: PackedFileMetadata = {
      fileName: 'report.pdf',
      fileSize: 1048576,
      fileHash: sha1('report'),
      chunkDigests: Buffer.from(h1 + h2, 'hex'),
      seeders: [
        { userId: 'bob', address: { host: '10.0.0.2', port: 7002 }, capability: 'AQ-bob' },
        { userId: 'carol', address: { host: '10.0.0.3', port: 7003 }, capability: 'AQ-carol' },
      ],
    };

    /** The reply with its long lines as text. */
    const asText = (reply: OkReply<ReplyLine>) => okReply(reply.message, reply.lines.map(String));

    it('answers the metadata lines with the online seeders, ignoring the destination', () => {
      files.download.mockReturnValue(meta);
      const reply = controller.download(
        { kind: 'download_file', groupId: 'g1', fileName: 'report.pdf', destinationPath: '/tmp' },
        alice,
      );
      expect(asText(reply)).toEqual(okReply('report.pdf: 1048576 bytes, 2 online seeders', formatFileMetadata(meta)));
      expect(reply.seed).toBe('metadata');
      expect(String(reply.lines[3])).toBe(`chunk_hashes:${h1},${h2}`);
      expect(reply.lines[3]).toBeInstanceOf(DigestsLine); // written in pieces, never built whole
      expect(files.download).toHaveBeenCalledWith('alice', 'g1', 'report.pdf');
    });

    it('still answers when nobody is online', () => {
      files.download.mockReturnValue({ ...meta, fileSize: 1, seeders: [] });
      const reply = controller.download({ kind: 'download_file', groupId: 'g1', fileName: 'report.pdf' }, alice);
      expect(asText(reply)).toEqual(
        okReply('report.pdf: 1 byte, 0 online seeders', formatFileMetadata({ ...meta, fileSize: 1, seeders: [] })),
      );
      expect(reply.seed).toBe('metadata');
    });
  });

  it('new_seeder announces the logged-in user as a seeder at its address', () => {
    expect(
      controller.newSeeder(
        { kind: 'new_seeder', groupId: 'g1', fileName: 'report.pdf', filePath: '/dl/report.pdf', myPort: '7009' },
        alice,
      ),
    ).toEqual(okReply('now seeding report.pdf in group g1'));
    expect(files.addSeeder).toHaveBeenCalledWith(
      { userId: 'alice', connectionId: 42, address: { host: '192.168.1.20', port: 7009 }, seedForm: false },
      'g1',
      'report.pdf',
      '/dl/report.pdf',
    );
  });

  it('stop_share says whether the file is gone', () => {
    files.stopShare.mockReturnValue({ fileDeleted: false });
    expect(controller.stopShare({ kind: 'stop_share', groupId: 'g1', fileName: 'report.pdf' }, alice)).toEqual(
      okReply('stopped sharing report.pdf in group g1'),
    );
    expect(files.stopShare).toHaveBeenCalledWith('alice', 'g1', 'report.pdf');
    files.stopShare.mockReturnValue({ fileDeleted: true });
    expect(controller.stopShare({ kind: 'stop_share', groupId: 'g1', fileName: 'report.pdf' }, alice)).toEqual(
      okReply('stopped sharing report.pdf in group g1; nobody else seeds it, so it is no longer listed'),
    );
  });

  describe('on a connection with nobody logged in', () => {
    const anonymous = () => peerContext();
    it.each<[string, (c: FilesController) => unknown]>([
      ['upload_file', (c) => c.upload(uploadCmd(), anonymous())],
      ['upload_file with a bad port', (c) => c.upload(uploadCmd({ myPort: 'x' }), anonymous())],
      ['list_files', (c) => c.list({ kind: 'list_files', groupId: 'g1' }, anonymous())],
      ['download_file', (c) => c.download({ kind: 'download_file', groupId: 'g1', fileName: 'f' }, anonymous())],
      [
        'new_seeder',
        (c) =>
          c.newSeeder({ kind: 'new_seeder', groupId: 'g1', fileName: 'f', filePath: '/f', myPort: '1' }, anonymous()),
      ],
      ['stop_share', (c) => c.stopShare({ kind: 'stop_share', groupId: 'g1', fileName: 'f' }, anonymous())],
    ])('%s throws NotLoggedInError without calling the service', (_name, call) => {
      expect(() => call(controller)).toThrow(NotLoggedInError);
      for (const fn of Object.values(files)) expect(fn).not.toHaveBeenCalled();
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
