import { CHUNK_HASHER, ChunkHasher } from '@app/chunking';
import { FileMetadata, formatHostPort, SeederInfo } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { DownloadJob, DownloadJobOptions } from '../download/download.job';
import { OUTPUT, OutputPort } from '../output/output.port';
import { SharingService } from './sharing.service';
import { formatBytes, formatRate } from './units';

export interface DownloadEntry {
  readonly groupId: string;
  readonly userId: string;
  readonly job: DownloadJob;
  readonly done: Promise<void>;
}

/** The downloads of this client session, running in the background. */
@Injectable()
export class DownloadManager {
  private readonly entries: DownloadEntry[] = [];

  constructor(
    private readonly sharing: SharingService,
    @Inject(CHUNK_HASHER) private readonly hasher: ChunkHasher,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  get downloads(): readonly DownloadEntry[] {
    return this.entries;
  }

  /** True while a download into `destPath` is running. */
  isBusy(destPath: string): boolean {
    return this.entries.some((e) => e.job.destPath === destPath && e.job.progress.state === 'downloading');
  }

  /**
   * Starts a download; `renew` asks the tracker for the file's seeders again, with fresh capabilities (see
   * DownloadJob); `options` are the job's other settings (the stall timeout).
   */
  start(
    groupId: string,
    userId: string,
    metadata: FileMetadata,
    destPath: string,
    renew?: () => Promise<readonly SeederInfo[]>,
    options: DownloadJobOptions = {},
  ): DownloadEntry {
    const job = new DownloadJob(metadata, destPath, this.hasher, { ...options, renewCapabilities: renew });
    const done = this.run(groupId, userId, job);
    const entry = { groupId, userId, job, done };
    this.entries.push(entry);
    return entry;
  }

  /** Resolves once every download has ended, including the seeding of the ones that completed. */
  async idle(): Promise<void> {
    for (let seen = -1; seen !== this.entries.length;) {
      seen = this.entries.length;
      await Promise.all(this.entries.map((e) => e.done));
    }
  }

  cancelAll(): void {
    for (const e of this.entries) if (e.job.progress.state === 'downloading') e.job.cancel();
  }

  private async run(groupId: string, userId: string, job: DownloadJob): Promise<void> {
    const { metadata } = job;
    try {
      await job.run();
    } catch (err) {
      this.out.error(`download of ${metadata.fileName} failed: ${job.progress.reason ?? errorText(err)}`);
      return;
    }
    const p = job.progress;
    const seconds = Math.max(p.elapsedMs, 1) / 1000;
    const from = p.seeders
      .filter((s) => s.chunks > 0)
      .map((s) => `${s.userId} ${s.chunks}`)
      .join(', ');
    const rejected = p.seeders.filter((s) => s.corrupt > 0).map((s) => `${s.corrupt} from ${s.userId}`);
    const retried = p.seeders
      .filter((s) => s.retries > 0 && s.state !== 'dropped')
      .map(
        (s) => `${s.userId} ${s.retries === 1 ? 'once' : `${s.retries} times`} (last: ${s.retryReason ?? 'failed'})`,
      );
    const dropped = p.seeders.filter((s) => s.state === 'dropped').map((s) => `${s.userId} (${s.reason ?? 'failed'})`);
    this.out.line(
      `downloaded [${groupId}] ${metadata.fileName} to ${job.destPath}: ${formatBytes(metadata.fileSize)} in ${seconds.toFixed(1)} s ` +
        `(${formatRate(metadata.fileSize / seconds)}), SHA-1 verified; chunks from ${from || 'nobody (empty file)'}` +
        (rejected.length ? `; rejected corrupt chunks: ${rejected.join(', ')}` : '') +
        (retried.length ? `; retried ${retried.join(', ')}` : '') +
        (dropped.length ? `; dropped ${dropped.join(', ')}` : ''),
    );
    try {
      await this.sharing.seedDownloaded({
        groupId,
        userId,
        fileName: metadata.fileName,
        path: job.destPath,
        fileHash: metadata.fileHash,
        chunkCount: metadata.chunkHashes.length,
      });
    } catch (err) {
      this.out.error(`downloaded ${metadata.fileName} but cannot seed it: ${errorText(err)}`);
    }
  }
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
export const seederList = (m: FileMetadata) =>
  m.seeders.map((s) => `${s.userId}@${formatHostPort(s.address)}`).join(', ');
