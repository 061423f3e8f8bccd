import { Test } from '@nestjs/testing';
import { AddressInfo } from 'node:net';
import { ClientConfigService } from '../config/client-config.service';
import { DownloadProgress } from '../download/download.job';
import { ClientSession } from '../session/client-session';
import { DownloadManager } from '../downloads/download.manager';
import { OUTPUT } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { ShareRegistry } from '../seeding/share.registry';
import { clientConfig } from '../testing/client-config.factory';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient } from '../tracker/tracker.client';
import { StatusCommand } from './status.command';
import { TransferSettings } from './transfer-settings.service';

type Entry = { job: { progress: Partial<DownloadProgress> } };
const download = (state: DownloadProgress['state'], speed: number): Entry => ({ job: { progress: { state, speed } } });

describe(StatusCommand.name, () => {
  let out: CollectingOutput;
  let command: StatusCommand;
  let session: ClientSession;
  let settings: TransferSettings;
  let tracker: { tracker: { host: string; port: number } | undefined };
  let downloads: { downloads: Entry[] };
  let server: { address: jest.Mock<AddressInfo | undefined, []>; connectionCount: number };
  let registry: { list: jest.Mock<unknown[], [string?]> };

  beforeEach(async () => {
    out = new CollectingOutput();
    tracker = { tracker: { host: '127.0.0.1', port: 7000 } };
    downloads = { downloads: [] };
    server = {
      address: jest.fn(() => ({ address: '127.0.0.1', family: 'IPv4', port: 7001 })),
      connectionCount: 0,
    };
    registry = { list: jest.fn((user?: string) => (user === 'alice' ? [{}, {}, {}] : [])) };
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
        { provide: OUTPUT, useValue: out },
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
      'serving chunks on: 127.0.0.1:7001',
      'upload limit: none',
      'download limit: none',
      'partial seeding: on',
      'downloads: none running',
      'seeding: nothing (not logged in)',
      'connections served: 0',
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

    await command.run();

    expect(out.lines).toEqual([
      'user: alice',
      'tracker: 127.0.0.1:7000',
      'serving chunks on: 127.0.0.1:7001',
      'upload limit: 5.0 MiB/s',
      'download limit: 500.0 KiB/s',
      'partial seeding: off',
      'downloads: 2 running, 1.5 MiB/s combined',
      'seeding: 3 files',
      'connections served: 4',
    ]);
    expect(registry.list).toHaveBeenCalledWith('alice');
  });

  it('says so when there is no tracker connection and no chunk server, and counts one file as one', async () => {
    session.loggedIn('bob');
    registry.list.mockReturnValue([{}]);
    tracker.tracker = undefined;
    server.address.mockReturnValue(undefined);
    downloads.downloads = [download('downloading', 0)];

    await command.run();

    expect(out.lines).toEqual(
      expect.arrayContaining([
        'tracker: not connected',
        'serving chunks on: not listening (127.0.0.1:7001 when started)',
        'downloads: 1 running, 0 B/s combined',
        'seeding: 1 file',
      ]),
    );
  });

  it('writes IPv6 addresses in brackets', async () => {
    tracker.tracker = { host: '::1', port: 7000 };
    server.address.mockReturnValue({ address: '::1', family: 'IPv6', port: 7001 });

    await command.run();

    expect(out.lines.slice(1, 3)).toEqual(['tracker: [::1]:7000', 'serving chunks on: [::1]:7001']);
  });
});
