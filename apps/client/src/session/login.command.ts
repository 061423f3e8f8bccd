import { CAPABILITY_KEY_FIELD, capabilityKeyOf, formatCommand, okReply, Reply } from '@app/protocol';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { LocalCommand } from '../commands/local-command';
import { print } from '../commands/print-reply';
import { DownloadStarter } from '../downloads/download-starter';
import { OUTPUT, OutputPort } from '../output/output.port';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { SharingService } from '../seeding/sharing.service';
import { sessionTokenOf, withoutSessionToken } from '../tracker/session-token';
import { TrackerClient } from '../tracker/tracker.client';
import { ClientSession } from './client-session';

/** A `login` reply without the capability key line, which is for this client only. */
function withoutCapabilityKey(reply: Reply): Reply {
  if (!reply.ok) return reply;
  return okReply(
    reply.message,
    reply.lines.filter((l) => !l.startsWith(`${CAPABILITY_KEY_FIELD}:`)),
  );
}

@Injectable()
export class LoginCommand implements LocalCommand, OnModuleInit {
  readonly name = 'login';
  readonly args = ['user_id', 'password'];
  readonly summary = 'log in; files you shared from this client are offered again';
  /** Re-offers after failovers, one after the other. */
  private offering: Promise<void> = Promise.resolve();

  constructor(
    private readonly tracker: TrackerClient,
    private readonly session: ClientSession,
    private readonly sharing: SharingService,
    private readonly capabilities: CapabilityVerifier,
    private readonly starter: DownloadStarter,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  /** The session follows the tracker client through failovers. */
  onModuleInit(): void {
    this.tracker.onResumed(() => {
      this.offering = this.offering.then(() => this.offerAgain());
    });
    this.tracker.onSessionLost(() => {
      this.session.loggedOut();
      this.capabilities.forget();
    });
  }

  async run([userId, password]: readonly string[]): Promise<void> {
    const reply = await this.tracker.request(formatCommand({ kind: 'login', userId, password }));
    if (reply.ok) this.tracker.setSessionToken(sessionTokenOf(reply));
    print(this.out, withoutCapabilityKey(withoutSessionToken(reply)));
    this.session.loggedIn(userId);
    // seeding from now on: capabilities signed with the trackers' key, for this user
    this.capabilities.trust(userId, reply.ok ? capabilityKeyOf(reply.lines) : undefined);
    const { offered, dropped } = await this.sharing.reoffer(userId);
    if (offered > 0) this.out.line(`seeding ${offered} file${offered === 1 ? '' : 's'} again`);
    for (const d of dropped) this.out.line(`no longer sharing ${d}`);
    if (reply.ok) await this.starter.resumeRunning(userId);
  }

  /**
   * The session moved to another tracker, which knows nothing yet of the files
   * this client seeds: offer them again there. Quiet unless something is dropped.
   */
  private async offerAgain(): Promise<void> {
    const userId = this.session.user;
    if (userId === undefined) return;
    try {
      const { dropped } = await this.sharing.reoffer(userId);
      for (const d of dropped) this.out.line(`no longer sharing ${d}`);
    } catch (err) {
      this.out.error(`could not offer your files again: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
