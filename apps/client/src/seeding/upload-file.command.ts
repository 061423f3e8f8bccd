import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { print } from '../commands/print-reply';
import { OUTPUT, OutputPort } from '../output/output.port';
import { SharingService } from './sharing.service';

@Injectable()
export class UploadFileCommand implements LocalCommand {
  readonly name = 'upload_file';
  readonly args = ['group_id', 'file_path'];
  readonly summary = 'share a file with a group: hashes it and seeds it from this client';

  constructor(
    private readonly sharing: SharingService,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId, filePath]: readonly string[]): Promise<void> {
    print(this.out, await this.sharing.upload(groupId, filePath));
  }
}
