import { Test } from '@nestjs/testing';
import { AddressInfo } from 'node:net';
import { ClientConfigService } from '../config/client-config.service';
import { DownloadProgress } from '../download/download.job';
import { ClientSession } from '../session/client-session';
import { DownloadManager } from '../downloads/download.manager';
import { OUTPUT } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { PartialShares } from '../seeding/partial-shares';
import { ShareRegistry } from '../seeding/share.registry';
import { clientConfig, clientIdentityFor } from '../testing/client-config.factory';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient, TrackerLinkSecurity } from '../tracker/tracker.client';
import { ClientIdentityService } from '../config/client-identity.service';
import { StatusCommand } from './status.command';
import { TransferSettings } from './transfer-settings.service';
import { UploadRate } from './upload-rate';

type Entry = { job: { progress: Partial<DownloadProgress> } };
const download = (state: DownloadProgress['state'], speed: number): Entry => ({ job: { progress: { state, speed } } });

const TRACKER_FP = `sha256:${'ab'.repeat(32)}`;
const clientIdentity = clientIdentityFor();

describe(StatusCommand.name, () => {
  let out: CollectingOutput;
  let command: StatusCommand;
  let session: ClientSession;
  let settings: TransferSettings;
  let tracker: {
    tracker: { host: string; port: number } | undefined;
    security: TrackerLinkSecurity | undefined;
    trackerStates: jest.Mock<{ tracker: { host: string; port: number }; inUse: boolean; lastFailure?: string }[]>;
  };
  let partials: { list: jest.Mock<unknown[]> };
  let uploadRate: { bytesPerSecond: jest.Mock<number> };
  let downloads: { downloads: Entry[] };
  let server: {
    address: jest.Mock<AddressInfo | undefined, []>;
    connectionCount: number;
    servingConnections: number;
    uploadedBytesOf: jest.Mock<number, [string, string]>;
  };
  let registry: { list: jest.Mock<unknown[], [string?]> };

  beforeEach(async () => {
    out = new CollectingOutput();
    tracker = {
      tracker: { host: '127.0.0.1', port: 7000 },
      security: { kind: 'tls', fingerprint: TRACKER_FP },
      trackerStates: jest.fn(() => [{ tracker: { host: '127.0.0.1', port: 7000 }, inUse: true }]),
    };
    partials = { list: jest.fn(() => []) };
    uploadRate = { bytesPerSecond: jest.fn(() => 0) };
    downloads = { downloads: [] };
    server = {
      address: jest.fn(() => ({ address: '127.0.0.1', family: 'IPv4', port: 7001 })),
      connectionCount: 0,
      servingConnections: 0,
      uploadedBytesOf: jest.fn((_group: string, _hash: string) => 0),
    };
    const seeded = (fileName: string, size: number) => ({ groupId: 'team', fileName, fileHash: `h-${fileName}`, size });
    registry = {
      list: jest.fn((user?: string) =>
        user === 'alice' ? [seeded('a.bin', 1024), seeded('b.bin', 2048), seeded('c.bin', 3 * 1024 ** 2)] : [],
      ),
    };
    const config = new ClientConfigService();
    config.set(clientConfig({ self: { host: '127.0.0.1', port: 7001 } }));
    const moduleRef = await Test.createTestingModule({
      providers: [
        StatusCommand,
        ClientSession,
        TransferSettings,
        { provide: ClientConfigService, useValue: config },
        { provide: TrackerClient, useValue: tracker },
        { provide: DownloadManager, useValue: downloads },
        { provide: ChunkServer, useValue: server },
        { provide: ShareRegistry, useValue: registry },
        { provide: PartialShares, useValue: partials },
        { provide: UploadRate, useValue: uploadRate },
        { provide: OUTPUT, useValue: out },
        { provide: ClientIdentityService, useValue: clientIdentity },
      ],
    }).compile();
    command = moduleRef.get(StatusCommand);
    session = moduleRef.get(ClientSession);
    settings = moduleRef.get(TransferSettings);
  });

  it('shows a client just started, logged out, nothing running', async () => {
    await command.run();

    expect(out.lines).toEqual([
      'user: not logged in',
      'tracker: 127.0.0.1:7000',
      'tracker 1: 127.0.0.1:7000 (in use)',
      `tracker traffic: tls, tracker certificate ${TRACKER_FP}`,
      `your fingerprint: ${clientIdentity.get().fingerprint}`,
      'serving chunks on: 127.0.0.1:7001',
      'upload limit: none',
      'download limit: none',
      'partial seeding: on',
      'downloads: none running',
      'download rate: 0 B/s',
      'upload rate: 0 B/s',
      'seeding: nothing (not logged in)',
      'connections served: 0',
      'peers being served: 0',
    ]);
  });

  it('shows the user, the settings in force, running downloads with their combined speed, shares and connections', async () => {
    session.loggedIn('alice');
    settings.setUploadLimit(5 * 1024 ** 2);
    settings.setDownloadLimit(500 * 1024);
    settings.setPartialSeeding(false);
    downloads.downloads = [
      download('downloading', 1024 ** 2),
      download('complete', 0),
      download('downloading', 512 * 1024),
      download('failed', 0),
    ];
    server.connectionCount = 4;
    server.servingConnections = 3;
    server.uploadedBytesOf.mockImplementation((group, hash) =>
      group === 'team' && hash === 'h-c.bin' ? 5 * 1024 ** 2 : 0,
    );
    uploadRate.bytesPerSecond.mockReturnValue(256 * 1024);

    await command.run();

    expect(out.lines).toEqual([
      'user: alice',
      'tracker: 127.0.0.1:7000',
      'tracker 1: 127.0.0.1:7000 (in use)',
      `tracker traffic: tls, tracker certificate ${TRACKER_FP}`,
      `your fingerprint: ${clientIdentity.get().fingerprint}`,
      'serving chunks on: 127.0.0.1:7001',
      'upload limit: 5.0 MiB/s',
      'download limit: 500.0 KiB/s',
      'partial seeding: off',
      'downloads: 2 running, 1.5 MiB/s combined',
      'download rate: 1.5 MiB/s',
      'upload rate: 256.0 KiB/s',
      'seeding: 3 files',
      'seed [team] a.bin: 1.0 KiB, uploaded 0 B',
      'seed [team] b.bin: 2.0 KiB, uploaded 0 B',
      'seed [team] c.bin: 3.0 MiB, uploaded 5.0 MiB',
      'connections served: 4',
      'peers being served: 3',
    ]);
    expect(registry.list).toHaveBeenCalledWith('alice');
  });

  it('says so when there is no tracker connection and no chunk server, and counts one file as one', async () => {
    session.loggedIn('bob');
    registry.list.mockReturnValue([{}]);
    tracker.tracker = undefined;
    tracker.security = undefined;
    server.address.mockReturnValue(undefined);
    downloads.downloads = [download('downloading', 0)];

    await command.run();

    expect(out.lines).toEqual(
      expect.arrayContaining([
        'tracker: not connected',
        'tracker traffic: tls (not connected)',
        'serving chunks on: not listening (127.0.0.1:7001 when started)',
        'downloads: 1 running, 0 B/s combined',
        'seeding: 1 file',
      ]),
    );
  });

  it('says when tracker traffic is plain text (--no-tls)', async () => {
    tracker.security = { kind: 'plain' };

    await command.run();

    expect(out.lines).toContain('tracker traffic: plain (--no-tls)');
    expect(out.lines.filter((l) => l.startsWith('tracker traffic:'))).toHaveLength(1);
  });

  it('lists every tracker of the file: the one in use, one that failed when last tried, one not tried', async () => {
    tracker.trackerStates.mockReturnValue([
      { tracker: { host: '127.0.0.1', port: 7000 }, inUse: false, lastFailure: 'connection refused' },
      { tracker: { host: '127.0.0.1', port: 7002 }, inUse: true },
      { tracker: { host: '127.0.0.1', port: 7004 }, inUse: false },
    ]);

    await command.run();

    expect(out.lines.slice(2, 5)).toEqual([
      'tracker 1: 127.0.0.1:7000 (last try failed: connection refused)',
      'tracker 2: 127.0.0.1:7002 (in use)',
      'tracker 3: 127.0.0.1:7004 (standby)',
    ]);
  });

  it('counts the downloads in progress it seeds, with what they hold and what went out of them', async () => {
    session.loggedIn('bob');
    const partial = (userId: string, closed = false) => ({
      groupId: 'team',
      userId,
      fileName: 'movie.mkv',
      fileHash: 'h-movie',
      size: 8 * 512 * 1024,
      chunkCount: 8,
      heldCount: 3,
      closed,
    });
    partials.list.mockReturnValue([partial('bob'), partial('alice'), partial('bob', true)]);
    server.uploadedBytesOf.mockImplementation((group, hash) => (hash === 'h-movie' ? 1024 ** 2 : 0));

    await command.run();

    expect(out.lines).toEqual(
      expect.arrayContaining([
        'seeding: 1 file (1 partial)',
        'partial seed [team] movie.mkv: 3 of 8 chunks of 4.0 MiB, uploaded 1.0 MiB',
      ]),
    );
    expect(server.uploadedBytesOf).toHaveBeenCalledWith('team', 'h-movie');
  });

  it('writes IPv6 addresses in brackets', async () => {
    tracker.tracker = { host: '::1', port: 7000 };
    tracker.trackerStates.mockReturnValue([{ tracker: { host: '::1', port: 7000 }, inUse: true }]);
    server.address.mockReturnValue({ address: '::1', family: 'IPv6', port: 7001 });

    await command.run();

    expect(out.lines.slice(1, 3)).toEqual(['tracker: [::1]:7000', 'tracker 1: [::1]:7000 (in use)']);
    expect(out.lines).toContain('serving chunks on: [::1]:7001');
  });
});
