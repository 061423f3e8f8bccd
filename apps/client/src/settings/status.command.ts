import { formatHostPort } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { ClientConfigService } from '../config/client-config.service';
import { ClientIdentityService } from '../config/client-identity.service';
import { ClientSession } from '../session/client-session';
import { DownloadManager } from '../downloads/download.manager';
import { formatBytes, formatRate } from '../common/units';
import { OUTPUT, OutputPort } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { PartialShares } from '../seeding/partial-shares';
import { ShareRegistry } from '../seeding/share.registry';
import { LocalCommand } from '../commands/local-command';
import { TrackerClient } from '../tracker/tracker.client';
import { formatSettings } from './setting-values';
import { TransferSettings } from './transfer-settings.service';
import { UploadRate } from './upload-rate';

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * `status`: this client at a glance, one plain `name: value` line each: who is logged in, the tracker in use and
 * every tracker of the tracker info file (in use, or why the last try failed), whether tracker traffic is encrypted
 * (and the certificate of the tracker in use), this client's fingerprint, where chunks are served, the
 * transfer settings, the running downloads, the current download and upload rates, each file seeded (full shares
 * and downloads in progress) with the bytes uploaded of it, and the peers being served.
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
    private readonly partials: PartialShares,
    private readonly uploadRate: UploadRate,
    @Inject(OUTPUT) private readonly out: OutputPort,
    private readonly identity: ClientIdentityService,
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
    this.tracker.trackerStates().forEach(({ tracker: t, inUse, lastFailure }, i) => {
      const state = inUse ? 'in use' : lastFailure !== undefined ? `last try failed: ${lastFailure}` : 'standby';
      this.out.line(`tracker ${i + 1}: ${formatHostPort(t)} (${state})`);
    });
    const security = this.tracker.security;
    this.out.line(
      `tracker traffic: ${
        security?.kind === 'tls'
          ? `tls, tracker certificate ${security.fingerprint}`
          : security?.kind === 'plain' || this.config.get().noTls
            ? 'plain (--no-tls)'
            : 'tls (not connected)'
      }`,
    );
    this.out.line(`your fingerprint: ${this.identity.get().fingerprint}`);
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
    this.out.line(`download rate: ${formatRate(speed)}`);
    this.out.line(`upload rate: ${formatRate(this.uploadRate.bytesPerSecond())}`);
    if (user === undefined) {
      this.out.line('seeding: nothing (not logged in)');
    } else {
      const shares = registry.list(user);
      const partials = this.partials.list().filter((p) => p.userId === user && !p.closed);
      this.out.line(
        `seeding: ${plural(shares.length + partials.length, 'file')}` +
          (partials.length > 0 ? ` (${partials.length} partial)` : ''),
      );
      for (const share of shares) {
        const sent = server.uploadedBytesOf(share.groupId, share.fileHash);
        this.out.line(
          `seed [${share.groupId}] ${share.fileName}: ${formatBytes(share.size)}, uploaded ${formatBytes(sent)}`,
        );
      }
      for (const p of partials) {
        const sent = server.uploadedBytesOf(p.groupId, p.fileHash);
        this.out.line(
          `partial seed [${p.groupId}] ${p.fileName}: ${p.heldCount} of ${p.chunkCount} chunks of ` +
            `${formatBytes(p.size)}, uploaded ${formatBytes(sent)}`,
        );
      }
    }
    this.out.line(`connections served: ${server.connectionCount}`);
    this.out.line(`peers being served: ${server.servingConnections}`);
    return Promise.resolve();
  }
}
