import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { OUTPUT, OutputPort } from '../output/output.port';
import { DownloadManager } from './download.manager';

@Injectable()
export class CancelDownloadCommand implements LocalCommand {
  readonly name = 'cancel_download';
  readonly args = ['group_id', 'file_name'];
  readonly optional = ['--discard'];
  readonly summary = 'stop a download; its .part stays for download_file to resume, unless --discard';

  constructor(
    private readonly downloads: DownloadManager,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId, fileName, flag]: readonly string[]): Promise<void> {
    if (flag !== undefined && flag !== '--discard') {
      throw new Error(`unknown option '${flag}'; usage: cancel_download <group_id> <file_name> [--discard]`);
    }
    const discard = flag === '--discard';
    const entry = this.downloads.find(groupId, fileName);
    if (!entry) throw new Error(`no download of ${fileName} in group ${groupId} in this session`);
    const { state } = entry.job.progress;
    if (state === 'complete') throw new Error(`the download of ${fileName} is complete`);
    if (state === 'failed' && !discard) throw new Error(`the download of ${fileName} is not running`);
    entry.job.cancel();
    await entry.done;
    const part = `${entry.job.destPath}.part`;
    if (discard) {
      await entry.resume?.discard();
      this.out.line(`deleted ${part} and its chunk record`);
    } else if (entry.resume) {
      this.out.line(`kept ${part}: download_file ${groupId} ${fileName} ${entry.job.destPath} resumes it`);
    }
  }
}
