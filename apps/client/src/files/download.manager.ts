import { CHUNK_HASHER, ChunkHasher } from '@app/chunking';
import { FileMetadata, formatHostPort, SeederInfo } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { lstat } from 'node:fs/promises';
import { DownloadJob, DownloadJobOptions } from '../download/download.job';
import { PartResume } from '../download/part-resume';
import { OUTPUT, OutputPort } from '../output/output.port';
import { SharingService } from './sharing.service';
import { formatBytes, formatRate } from './units';

export interface DownloadEntry {
  readonly groupId: string;
  readonly userId: string;
  readonly job: DownloadJob;
  readonly done: Promise<void>;
  /** Its `.part` and chunk record, when they are kept for a later download to resume. */
  readonly resume?: PartResume;
  /** Stopped because the client quits (see `cancelAll`): it continues on the next login. */
  interrupted: boolean;
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
   * DownloadJob). With `resume`, the download writes into the `.part` it found or makes (chunks already in it are
   * not fetched), records its chunks, and a failure or cancel keeps both (see `PartResume`). `options` are the
   * job's other settings (the stall timeout).
   */
  start(
    groupId: string,
    userId: string,
    metadata: FileMetadata,
    destPath: string,
    renew?: () => Promise<readonly SeederInfo[]>,
    resume?: PartResume,
    options: DownloadJobOptions = {},
  ): DownloadEntry {
    const job = new DownloadJob(metadata, destPath, this.hasher, {
      ...options,
      renewCapabilities: renew,
      ...(resume && {
        openPart: () => resume.open(),
        onChunkWritten: (index: number) => resume.written(index),
        keepPart: true,
      }),
    });
    const done = this.run(groupId, userId, job, resume);
    const entry: DownloadEntry = { groupId, userId, job, done, resume, interrupted: false };
    this.entries.push(entry);
    return entry;
  }

  /**
   * Looks at what an earlier download left at `destPath` (`<dest>.part` and its chunk record) without changing it:
   * what `start` needs to resume it, or a `DownloadError` saying why the `.part` there cannot be used.
   */
  prepareResume(metadata: FileMetadata, destPath: string): Promise<PartResume> {
    return PartResume.prepare(destPath, metadata, this.hasher);
  }

  /** The latest download of `fileName` in `groupId` this session. */
  find(groupId: string, fileName: string): DownloadEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      const e = this.entries[i];
      if (e.groupId === groupId && e.job.metadata.fileName === fileName) return e;
    }
    return undefined;
  }

  /** Resolves once every download has ended, including the seeding of the ones that completed. */
  async idle(): Promise<void> {
    for (let seen = -1; seen !== this.entries.length;) {
      seen = this.entries.length;
      await Promise.all(this.entries.map((e) => e.done));
    }
  }

  /** The client quits: running downloads stop, keeping what they have for the next session (`interrupted`). */
  cancelAll(): void {
    for (const e of this.entries) {
      if (e.job.progress.state !== 'downloading') continue;
      e.interrupted = true;
      e.job.cancel();
    }
  }

  private async run(groupId: string, userId: string, job: DownloadJob, resume?: PartResume): Promise<void> {
    const { metadata } = job;
    try {
      await job.run();
    } catch (err) {
      await resume?.end();
      const kept = resume && (await exists(resume.partPath)) ? `; kept ${resume.partPath} to resume from` : '';
      this.out.error(`download of ${metadata.fileName} failed: ${job.progress.reason ?? errorText(err)}${kept}`);
      return;
    }
    // the .part has its name now: the record goes
    await resume?.end();
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
    const fetchedBytes = metadata.fileSize - (p.resumedBytes ?? 0);
    const resumed = p.resumedChunks
      ? `; resumed ${p.resumedChunks} of ${p.chunkCount} chunks from ${job.destPath}.part, fetched ${p.chunkCount - p.resumedChunks}`
      : '';
    this.out.line(
      `downloaded [${groupId}] ${metadata.fileName} to ${job.destPath}: ${formatBytes(metadata.fileSize)} in ${seconds.toFixed(1)} s ` +
        `(${formatRate(fetchedBytes / seconds)}), SHA-1 verified; chunks from ${from || 'nobody (empty file)'}` +
        resumed +
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

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
export const seederList = (m: FileMetadata) =>
  m.seeders.map((s) => `${s.userId}@${formatHostPort(s.address)}`).join(', ');
