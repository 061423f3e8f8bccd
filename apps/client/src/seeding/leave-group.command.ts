import { formatCommand } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { print } from '../commands/print-reply';
import { OUTPUT, OutputPort } from '../output/output.port';
import { TrackerClient } from '../tracker/tracker.client';
import { SharingService } from './sharing.service';

@Injectable()
export class LeaveGroupCommand implements LocalCommand {
  readonly name = 'leave_group';
  readonly args = ['group_id'];
  readonly summary = 'leave a group (or withdraw your request); your shares there stop';

  constructor(
    private readonly tracker: TrackerClient,
    private readonly sharing: SharingService,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId]: readonly string[]): Promise<void> {
    const reply = await this.tracker.request(formatCommand({ kind: 'leave_group', groupId }));
    if (reply.ok) await this.sharing.leftGroup(groupId);
    print(this.out, reply);
  }
}
