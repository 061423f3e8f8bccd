import { Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { DownloadStarter } from './download-starter';

@Injectable()
export class DownloadFileCommand implements LocalCommand {
  readonly name = 'download_file';
  readonly args = ['group_id', 'file_name', 'destination_path'];
  readonly summary = 'download a file from every online seeder, in the background (see show_downloads)';

  constructor(private readonly starter: DownloadStarter) {}

  async run([groupId, fileName, destination]: readonly string[]): Promise<void> {
    await this.starter.start(groupId, fileName, destination);
  }
}
