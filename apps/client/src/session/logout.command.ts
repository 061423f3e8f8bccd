import { ErrorCode } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { print } from '../commands/print-reply';
import { OUTPUT, OutputPort } from '../output/output.port';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { TrackerClient } from '../tracker/tracker.client';
import { refusedWith } from '../tracker/tracker-reply.errors';
import { ClientSession } from './client-session';

@Injectable()
export class LogoutCommand implements LocalCommand {
  readonly name = 'logout';
  readonly args = [];
  readonly summary = 'log out (your files stop being offered until you log in again)';

  constructor(
    private readonly tracker: TrackerClient,
    private readonly session: ClientSession,
    private readonly capabilities: CapabilityVerifier,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run(): Promise<void> {
    const reply = await this.tracker.request('logout');
    if (reply.ok || refusedWith(reply, ErrorCode.NotLoggedIn)) {
      this.session.loggedOut();
      this.capabilities.forget();
      this.tracker.setSessionToken(undefined);
    }
    print(this.out, reply);
  }
}
