import { Inject, Injectable } from '@nestjs/common';
import { DownloadManager } from './download.manager';
import { OUTPUT, OutputPort } from '../output/output.port';
import { LocalCommand } from '../commands/local-command';

/** `pause_download <group_id> <file_name>`: stops one running download, keeping its `.part` for `resume_download`. */
@Injectable()
export class PauseDownloadCommand implements LocalCommand {
  readonly name = 'pause_download';
  readonly args = ['group_id', 'file_name'];
  readonly summary = 'pause a running download, keeping its .part (resume_download continues it)';

  constructor(
    private readonly downloads: DownloadManager,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId, fileName]: readonly string[]): Promise<void> {
    const entry = this.downloads.find(groupId, fileName);
    if (!entry) throw new Error(`no download of ${fileName} in group ${groupId} in this session`);
    if (this.downloads.isPaused(entry)) throw new Error(`the download of ${fileName} is paused already`);
    const { state } = entry.job.progress;
    if (state !== 'downloading') {
      throw new Error(`the download of ${fileName} is not running (${state === 'complete' ? 'complete' : 'failed'})`);
    }
    await this.downloads.pause(entry);
    const p = entry.job.progress;
    this.out.line(
      `paused [${groupId}] ${fileName} at ${p.percent.toFixed(1)}% (${p.chunksDone} of ${p.chunkCount} chunks in ` +
        `${entry.job.destPath}.part); resume_download ${groupId} ${fileName} continues it`,
    );
  }
}
