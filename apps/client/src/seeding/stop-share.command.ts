import { ErrorCode, formatCommand } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { print } from '../commands/print-reply';
import { OUTPUT, OutputPort } from '../output/output.port';
import { TrackerClient } from '../tracker/tracker.client';
import { refusedWith } from '../tracker/tracker-reply.errors';
import { SharingService } from './sharing.service';

@Injectable()
export class StopShareCommand implements LocalCommand {
  readonly name = 'stop_share';
  readonly args = ['group_id', 'file_name'];
  readonly summary = 'stop seeding a file in a group';

  constructor(
    private readonly tracker: TrackerClient,
    private readonly sharing: SharingService,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId, fileName]: readonly string[]): Promise<void> {
    const reply = await this.tracker.request(formatCommand({ kind: 'stop_share', groupId, fileName }));
    if (reply.ok || refusedWith(reply, ErrorCode.NotSeeding)) await this.sharing.stopped(groupId, fileName);
    print(this.out, reply);
  }
}
