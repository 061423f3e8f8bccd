import {
  ErrorCode,
  FileMetadata,
  fileNameProblem,
  formatCommand,
  joinArgs,
  parseFileMetadata,
  parseSeederLists,
  SeederInfo,
} from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT, OutputPort } from '../output/output.port';
import { TrackerClient } from '../tracker/tracker.client';
import { expectOk, refusedWith, TrackerReplyError } from '../tracker/tracker-reply.errors';
import { ClientSession } from '../session/client-session';
import { DownloadEntry, DownloadManager } from './download.manager';
import { RunningDownload, RunningDownloadsFile } from './running-downloads.file';
import { TransferSettings } from '../settings/transfer-settings.service';
import { formatBytes } from '../common/units';

/** While partial seeding is on, the tracker is asked this often for peers that started serving the file. */
export const SWARM_REDISCOVER_MS = 2_000;

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

/**
 * Starts downloads for `download_file`, and after a login the ones that were
 * running when this client last stopped. A download is listed in
 * `<dataDir>/downloads.json` while it runs (see `RunningDownloadsFile`) and
 * stays listed when it stops because the client quits or dies.
 */
@Injectable()
export class DownloadStarter {
  constructor(
    private readonly tracker: TrackerClient,
    private readonly session: ClientSession,
    private readonly downloads: DownloadManager,
    private readonly config: ClientConfigService,
    private readonly settings: TransferSettings,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  /**
   * Continues, for `userId` who just logged in, the downloads that were running when this client last stopped
   * (listed in `<dataDir>/downloads.json`), from their `.part` files; says which, and why one cannot go on.
   */
  async resumeRunning(userId: string): Promise<void> {
    const list = this.runningList();
    for (const d of await list.list()) {
      if (d.userId !== userId || this.downloads.isBusy(d.destPath)) continue;
      this.out.line(`resuming the download of ${d.fileName} in group ${d.groupId} to ${d.destPath}`);
      try {
        await this.start(d.groupId, d.fileName, d.destPath);
      } catch (err) {
        await list.remove(d).catch(() => undefined);
        this.out.error(
          `cannot resume the download of ${d.fileName}: ${errorText(err)}` +
            ` (download_file ${d.groupId} ${d.fileName} ${d.destPath} tries again)`,
        );
      }
    }
  }

  private runningList(): RunningDownloadsFile {
    return new RunningDownloadsFile(this.config.get().dataDir);
  }

  /** Asks the tracker for the file and starts downloading it to `destination` (a folder or a new file's path). */
  async start(groupId: string, fileName: string, destination: string): Promise<void> {
    const userId = this.session.requireUser();
    const metadata = await this.metadata(groupId, fileName);
    // the name may become a file here: one a tracker could never have accepted is not used
    const nameProblem = fileNameProblem(metadata.fileName);
    if (nameProblem) throw new Error(`the tracker sent an unusable name for ${fileName}: ${nameProblem}`);
    const { self, stallTimeoutMs } = this.config.get();
    const notSelf = (s: SeederInfo) => !(s.address.host === self.host && s.address.port === self.port);
    const seeders = metadata.seeders.filter(notSelf);
    const partial = (metadata.partialSeeders ?? []).filter(notSelf);
    if (seeders.length + partial.length === 0)
      throw new Error(`no seeder is online for ${fileName} in group ${groupId}; try again later`);
    const destPath = await resolveDestination(destination, basename(metadata.fileName));
    if (this.downloads.isBusy(destPath)) throw new Error(`a download into ${destPath} is already running`);
    // fresh capabilities, and seeders and partial seeders that came online, come from asking the tracker again, in
    // the background: for the seeder lists only (no chunk hashes), unless the tracker does not know list_seeders
    const renew = async (): Promise<readonly SeederInfo[]> => {
      const again = await this.seederLists(groupId, fileName);
      if (again.fileHash !== metadata.fileHash) throw new Error(`${fileName} is now another file on the tracker`);
      return [...again.seeders, ...again.partialSeeders].filter(notSelf);
    };
    // a .part left by an earlier download is resumed if it is of this file, and refused otherwise
    const resume = await this.downloads.prepareResume(metadata, destPath);
    const swarm = this.settings.partialSeeding;
    const entry = this.downloads.start(
      groupId,
      userId,
      { ...metadata, seeders, partialSeeders: partial.length > 0 ? partial : undefined },
      destPath,
      renew,
      resume,
      { stallTimeoutMs, ...(swarm && { rediscoverEveryMs: SWARM_REDISCOVER_MS }) },
    );
    const from =
      count(seeders.length, 'seeder') + (partial.length > 0 ? ` and ${count(partial.length, 'partial seeder')}` : '');
    this.out.line(
      `downloading ${metadata.fileName} (${formatBytes(metadata.fileSize)}, ${metadata.chunkHashes.length} chunks) ` +
        `from ${from} to ${destPath}` +
        (resume.resuming ? `, resuming from ${resume.partPath} (${resume.listedCount} chunks recorded there)` : ''),
    );
    await this.listWhileRunning({ userId, groupId, fileName: metadata.fileName, destPath }, entry);
  }

  /** Lists the download in `downloads.json` until it ends, unless it ends because the client quits. */
  private async listWhileRunning(d: RunningDownload, entry: DownloadEntry): Promise<void> {
    const list = this.runningList();
    try {
      await list.add(d);
    } catch (err) {
      this.out.error(
        `cannot list the download in ${list.path} (it will not continue after a restart): ${errorText(err)}`,
      );
    }
    void entry.done.then(async () => {
      if (!entry.interrupted) await list.remove(d).catch(() => undefined);
    });
  }

  /** The file's seeders and partial seeders with fresh capabilities: `list_seeders`, or `download_file` where unknown. */
  private async seederLists(groupId: string, fileName: string): Promise<ReturnType<typeof parseSeederLists>> {
    const reply = await this.tracker.request(joinArgs(['list_seeders', groupId, fileName]));
    if (reply.ok) return parseSeederLists(reply.lines);
    if (!refusedWith(reply, ErrorCode.UnknownCommand)) throw new TrackerReplyError(reply);
    const metadata = await this.metadata(groupId, fileName);
    return { fileHash: metadata.fileHash, seeders: metadata.seeders, partialSeeders: metadata.partialSeeders ?? [] };
  }

  private async metadata(groupId: string, fileName: string): Promise<FileMetadata> {
    const reply = await this.tracker.request(formatCommand({ kind: 'download_file', groupId, fileName }));
    return parseFileMetadata(expectOk(reply).lines);
  }
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** A directory keeps the file's name; otherwise the path names the new file. Never an existing file. */
async function resolveDestination(destination: string, fileName: string): Promise<string> {
  const target = resolve(destination);
  const st = await stat(target).catch(() => undefined);
  if (/[\\/]$/.test(destination) && !st?.isDirectory()) throw new Error(`no such directory: ${target}`);
  const path = st?.isDirectory() ? join(target, fileName) : target;
  if (st && !st.isDirectory()) throw new Error(`${path} already exists; choose another destination`);
  if (st?.isDirectory() && (await stat(path).catch(() => undefined))) {
    throw new Error(`${path} already exists; choose another destination`);
  }
  const parent = await stat(dirname(path)).catch(() => undefined);
  if (!parent?.isDirectory()) throw new Error(`no such directory: ${dirname(path)}`);
  return path;
}
