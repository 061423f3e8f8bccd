import { Injectable } from '@nestjs/common';
import { DownloadFileCommand } from './download-file.command';
import { DownloadManager } from './download.manager';
import { LocalCommand } from '../commands/local-command';

/** `resume_download <group_id> <file_name>`: continues a paused download from its `.part`, as `download_file` would. */
@Injectable()
export class ResumeDownloadCommand implements LocalCommand {
  readonly name = 'resume_download';
  readonly args = ['group_id', 'file_name'];
  readonly summary = 'continue a paused download from its .part';

  constructor(
    private readonly downloads: DownloadManager,
    private readonly downloadFile: DownloadFileCommand,
  ) {}

  async run([groupId, fileName]: readonly string[]): Promise<void> {
    const entry = this.downloads.find(groupId, fileName);
    if (!entry) throw new Error(`no download of ${fileName} in group ${groupId} in this session`);
    if (!this.downloads.isPaused(entry)) {
      const { state } = entry.job.progress;
      const now = state === 'downloading' ? 'running' : state === 'complete' ? 'complete' : 'failed';
      throw new Error(`the download of ${fileName} is not paused (it is ${now})`);
    }
    // the same destination: the .part and its chunk record are picked up, and only the missing chunks fetched
    await this.downloadFile.run([groupId, fileName, entry.job.destPath]);
  }
}
