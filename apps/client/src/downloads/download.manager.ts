import { CHUNK_HASHER, ChunkHasher } from '@app/chunking';
import { FileMetadata, formatHostPort, SeederInfo } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { lstat } from 'node:fs/promises';
import { DownloadJob, DownloadJobOptions, DownloadProgress } from '../download/download.job';
import { PartResume } from '../download/part-resume';
import { OUTPUT, OutputPort } from '../output/output.port';
import { PartialShare, PartialShares } from '../seeding/partial-shares';
import { TransferSettings } from '../settings/transfer-settings.service';
import { SharingService } from '../seeding/sharing.service';
import { etaMs, formatBytes, formatDuration, formatRate } from '../common/units';

/** How often a running download's live line is redrawn. */
export const PROGRESS_REFRESH_MS = 250;

export interface DownloadEntry {
  readonly groupId: string;
  readonly userId: string;
  readonly job: DownloadJob;
  readonly done: Promise<void>;
  /** Its `.part` and chunk record, when they are kept for a later download to resume. */
  readonly resume?: PartResume;
  /** Stopped because the client quits (see `cancelAll`): it continues on the next login. */
  interrupted: boolean;
  /** What it serves of the chunks it holds while it runs (partial seeding), once its `.part` is open. */
  readonly serving: { share?: PartialShare };
}

/** What `run` needs of an entry. */
type RunningEntry = Omit<DownloadEntry, 'done' | 'interrupted'>;

/** The downloads of this client session, running in the background. */
@Injectable()
export class DownloadManager {
  private readonly entries: DownloadEntry[] = [];
  /** Numbers the live lines (`out.progress` keys): two downloads of one name each get their own. */
  private started = 0;
  /** Downloads stopped by `pause`: their `.part` and chunk record stay for `resume_download`. */
  private readonly paused = new WeakSet<DownloadJob>();

  constructor(
    private readonly sharing: SharingService,
    private readonly partials: PartialShares,
    private readonly settings: TransferSettings,
    @Inject(CHUNK_HASHER) private readonly hasher: ChunkHasher,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {
    // partial seeding turned off: running downloads stop serving what they hold (turned on: downloads started from
    // then on serve)
    settings.onChange((change) => {
      if (change.name !== 'partial_seeding' || change.value) return;
      for (const e of this.entries) void this.stopServing(e);
    });
  }

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
    const swarm = this.settings.partialSeeding;
    const serving: { share?: PartialShare } = {};
    const job = new DownloadJob(metadata, destPath, this.hasher, {
      ...options,
      renewCapabilities: renew,
      swarm,
      downloadPacer: this.settings.downloadPacer,
      // e.g. a seeder that is not who its tracker lists: said once, as it happens
      onNotice: (text) => this.out.error(`${text} (downloading ${metadata.fileName})`),
      onPartOpened: (partPath, present) => {
        if (swarm && this.settings.partialSeeding) this.startServing(base, partPath, present);
      },
      onChunkWritten: (index: number) => {
        resume?.written(index);
        serving.share?.held(index);
      },
      ...(resume && { openPart: () => resume.open(), keepPart: true }),
    });
    // a paused download into the same file is taken up by this one: it leaves the list
    const before = this.entries.findIndex((e) => this.paused.has(e.job) && e.job.destPath === destPath);
    if (before >= 0) this.entries.splice(before, 1);
    const base: RunningEntry = { groupId, userId, job, resume, serving };
    const entry: DownloadEntry = { ...base, done: this.run(base), interrupted: false };
    this.entries.push(entry);
    return entry;
  }

  /**
   * Serves the chunks the download holds (its `.part`, and the chunks already verified there) and has the tracker
   * list this client as a partial seeder of the file. A failure only means it does not serve: the download goes on.
   */
  private startServing(entry: RunningEntry, partPath: string, present: readonly number[]): void {
    const { metadata } = entry.job;
    try {
      entry.serving.share = this.partials.open({
        groupId: entry.groupId,
        userId: entry.userId,
        fileName: metadata.fileName,
        fileHash: metadata.fileHash,
        size: metadata.fileSize,
        chunkCount: metadata.chunkHashes.length,
        partPath,
        present,
      });
    } catch (err) {
      this.out.error(`cannot serve the chunks of ${metadata.fileName} while downloading it: ${errorText(err)}`);
      return;
    }
    void this.sharing.announcePartial(entry.groupId, metadata.fileName, entry.userId).catch((err: unknown) => {
      this.out.error(`cannot serve the chunks of ${metadata.fileName} while downloading it: ${errorText(err)}`);
    });
  }

  /** Stops serving what the download holds, at the tracker and here. */
  private async stopServing(entry: RunningEntry): Promise<void> {
    const serving = entry.serving.share;
    if (!serving) return;
    entry.serving.share = undefined;
    await this.sharing.withdrawPartial(entry.groupId, entry.job.metadata.fileName).catch(() => undefined);
    await serving.close();
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

  /** True for a download stopped by `pause`. */
  isPaused(entry: DownloadEntry): boolean {
    return this.paused.has(entry.job);
  }

  /**
   * Stops a running download keeping its `.part` and chunk record (as `cancel_download` does), marked paused; it
   * leaves `downloads.json`, so it does not continue by itself at the next login. Resolves once it has stopped.
   */
  async pause(entry: DownloadEntry): Promise<void> {
    this.paused.add(entry.job);
    entry.job.cancel();
    await entry.done;
  }

  /** The client quits: running downloads stop, keeping what they have for the next session (`interrupted`). */
  cancelAll(): void {
    for (const e of this.entries) {
      if (e.job.progress.state !== 'downloading') continue;
      e.interrupted = true;
      e.job.cancel();
    }
  }

  private async run(entry: RunningEntry): Promise<void> {
    const { groupId, userId, job, resume } = entry;
    const { metadata } = job;
    const key = `download ${++this.started}`;
    const draw = () => this.out.progress(key, liveLine(job.progress));
    const refresh = setInterval(draw, PROGRESS_REFRESH_MS);
    refresh.unref();
    const ran = job.run().finally(() => {
      clearInterval(refresh);
      this.out.progress(key, undefined);
    });
    draw();
    try {
      await ran;
    } catch (err) {
      await this.stopServing(entry);
      await resume?.end();
      if (this.paused.has(job)) return; // `pause` says so itself
      const kept = resume && (await exists(resume.partPath)) ? `; kept ${resume.partPath} to resume from` : '';
      this.out.error(`download of ${metadata.fileName} failed: ${job.progress.reason ?? errorText(err)}${kept}`);
      return;
    }
    // the .part has its name now: the record goes
    await resume?.end();
    const p = job.progress;
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
    const resumed = p.resumedChunks
      ? `; resumed ${p.resumedChunks} of ${p.chunkCount} chunks from ${job.destPath}.part, fetched ${p.chunkCount - p.resumedChunks}`
      : '';
    this.out.line(
      `downloaded [${groupId}] ${metadata.fileName} to ${job.destPath}: ${completeFigures(p)}, SHA-1 verified; ` +
        `chunks from ${from || 'nobody (empty file)'}` +
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
      await this.stopServing(entry);
      return;
    }
    // seeded whole now (the tracker dropped the partial listing with new_seeder): the full share serves from here on
    const served = entry.serving.share;
    entry.serving.share = undefined;
    this.sharing.partialDone(groupId, metadata.fileName);
    await served?.close();
  }
}

/**
 * A running download's figures, as its live line and `show_downloads` give them: `26.7% 53.4 MiB of 200.0 MiB,
 * 20.1 MiB/s, 3 peers (1 partial), ETA 7 s`. Peers are the seeders and partial seeders it is connected to; the time
 * left (at the current speed) is left out while it cannot be told (no speed, or verifying).
 */
export function runningFigures(p: DownloadProgress): string {
  const peers = p.seeders.filter((s) => s.state === 'active');
  const partial = peers.filter((s) => s.partial).length;
  const eta = p.verifying ? undefined : etaMs(p.totalBytes - p.bytesDone, p.speed);
  return (
    `${p.percent.toFixed(1)}% ${formatBytes(p.bytesDone)} of ${formatBytes(p.totalBytes)}, ${formatRate(p.speed)}, ` +
    `${peers.length} peer${peers.length === 1 ? '' : 's'}${partial > 0 ? ` (${partial} partial)` : ''}` +
    (eta === undefined ? '' : `, ETA ${formatDuration(eta)}`)
  );
}

/**
 * A complete download's size, time and mean speed: `200.0 MiB in 9.9 s (20.2 MiB/s)`. The speed counts the bytes
 * fetched, not those a resumed download found in its `.part`.
 */
export function completeFigures(p: DownloadProgress): string {
  const seconds = Math.max(p.elapsedMs, 1) / 1000;
  const fetchedBytes = p.totalBytes - (p.resumedBytes ?? 0);
  return `${formatBytes(p.totalBytes)} in ${seconds.toFixed(1)} s (${formatRate(fetchedBytes / seconds)})`;
}

/** The live line of a running download: its name, figures and what it waits for. */
export function liveLine(p: DownloadProgress): string {
  const phase = p.verifying ? ', verifying' : p.waiting ? `, ${p.waiting}` : '';
  return `${p.fileName} ${runningFigures(p)}${phase}`;
}

const exists = (path: string) =>
  lstat(path).then(
    () => true,
    () => false,
  );
const errorText = (err: unknown) => (err instanceof Error ? err.message : String(err));
export const seederList = (m: FileMetadata) =>
  m.seeders.map((s) => `${s.userId}@${formatHostPort(s.address)}`).join(', ');
