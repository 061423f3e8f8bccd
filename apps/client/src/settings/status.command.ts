import { formatHostPort } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { ClientConfigService } from '../config/client-config.service';
import { ClientSession } from '../session/client-session';
import { DownloadManager } from '../downloads/download.manager';
import { formatRate } from '../common/units';
import { OUTPUT, OutputPort } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { ShareRegistry } from '../seeding/share.registry';
import { LocalCommand } from '../commands/local-command';
import { TrackerClient } from '../tracker/tracker.client';
import { formatSettings } from './setting-values';
import { TransferSettings } from './transfer-settings.service';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * `status`: this client at a glance, one plain `name: value` line each: who is logged in, the tracker in use,
 * where chunks are served, the transfer settings, the running downloads and their combined speed, the files
 * seeded and the peer connections being served.
 */
@Injectable()
export class StatusCommand implements LocalCommand {
  readonly name = 'status';
  readonly args = [];
  readonly summary = 'this client at a glance: login, tracker, limits, downloads, seeding, connections';

  constructor(
    private readonly session: ClientSession,
    private readonly tracker: TrackerClient,
    private readonly config: ClientConfigService,
    private readonly settings: TransferSettings,
    private readonly downloads: DownloadManager,
    private readonly server: ChunkServer,
    private readonly registry: ShareRegistry,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  run(): Promise<void> {
    const { server, registry } = this;
    const user = this.session.user;
    const tracker = this.tracker.tracker;
    const listening = server.address();
    const running = this.downloads.downloads.filter((d) => d.job.progress.state === 'downloading');
    const speed = running.reduce((sum, d) => sum + d.job.progress.speed, 0);

    this.out.line(`user: ${user ?? 'not logged in'}`);
    this.out.line(`tracker: ${tracker ? formatHostPort(tracker) : 'not connected'}`);
    this.out.line(
      listening
        ? `serving chunks on: ${formatHostPort({ host: listening.address, port: listening.port })}`
        : `serving chunks on: not listening (${formatHostPort(this.config.get().self)} when started)`,
    );
    formatSettings(this.settings.snapshot()).forEach((line) => this.out.line(line));
    this.out.line(
      running.length === 0
        ? 'downloads: none running'
        : `downloads: ${running.length} running, ${formatRate(speed)} combined`,
    );
    this.out.line(
      user === undefined
        ? 'seeding: nothing (not logged in)'
        : `seeding: ${plural(registry.list(user).length, 'file')}`,
    );
    this.out.line(`connections served: ${server.connectionCount}`);
    return Promise.resolve();
  }
}
