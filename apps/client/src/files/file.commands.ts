import { CAPABILITY_KEY_FIELD, capabilityKeyOf, formatCommand, okReply, Reply } from '@app/protocol';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { OUTPUT, OutputPort } from '../output/output.port';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { LocalCommand } from '../shell/local-command';
import { sessionTokenOf, withoutSessionToken } from '../tracker/session-token';
import { TrackerClient } from '../tracker/tracker.client';
import { ClientSession } from './client-session';
import { DownloadManager } from './download.manager';
import { DownloadStarter } from './download-starter';
import { SharingService } from './sharing.service';
import { formatRate } from './units';

/** Prints a tracker reply the way the shell prints every reply; throws on ERR so the shell shows `error:`. */
function print(out: OutputPort, reply: Reply): void {
  if (!reply.ok) throw new Error(reply.message || reply.code);
  if (reply.message !== '') out.line(reply.message);
  reply.lines.forEach((l) => out.line(l));
}

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
    if (reply.ok || reply.code === 'NOT_LOGGED_IN') {
      this.session.loggedOut();
      this.capabilities.forget();
      this.tracker.setSessionToken(undefined);
    }
    print(this.out, reply);
  }
}

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
    if (reply.ok || reply.code === 'NOT_SEEDING') await this.sharing.stopped(groupId, fileName);
    print(this.out, reply);
  }
}

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

@Injectable()
export class ShowDownloadsCommand implements LocalCommand {
  readonly name = 'show_downloads';
  readonly args = [];
  readonly summary = "list this session's downloads: [D] running, [P] paused, [C] complete, [F] failed";

  constructor(
    private readonly downloads: DownloadManager,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  run(): Promise<void> {
    const entries = this.downloads.downloads;
    if (entries.length === 0) this.out.line('no downloads yet');
    for (const entry of entries) {
      const { groupId, job, resume } = entry;
      const p = job.progress;
      const head = `[${groupId}] ${p.fileName}`;
      if (this.downloads.isPaused(entry)) {
        this.out.line(
          `[P] ${head} ${p.percent.toFixed(1)}% paused; resume_download ${groupId} ${p.fileName} continues it`,
        );
      } else if (p.state === 'complete') this.out.line(`[C] ${head} -> ${p.destPath}`);
      else if (p.state === 'failed') this.out.line(`[F] ${head} (${p.reason ?? 'failed'})`);
      else if (resume?.isChecking) {
        this.out.line(
          `[D] ${head} checking ${resume.checkedCount} of ${resume.listedCount} chunks in ${resume.partPath}`,
        );
      } else {
        const phase = p.verifying ? ' verifying' : p.waiting ? `, ${p.waiting}` : '';
        const resumed = p.resumedChunks ? ` (resumed ${p.resumedChunks} of ${p.chunkCount} chunks)` : '';
        const sources = p.seeders.filter((s) => s.chunks > 0).map((s) => `${s.userId} ${s.chunks}`);
        const from = sources.length > 0 ? `; from ${sources.join(', ')}` : '';
        this.out.line(`[D] ${head} ${p.percent.toFixed(1)}% ${formatRate(p.speed)}${phase}${resumed}${from}`);
      }
    }
    return Promise.resolve();
  }
}

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

export const FILE_COMMANDS = [
  LoginCommand,
  LogoutCommand,
  UploadFileCommand,
  DownloadFileCommand,
  StopShareCommand,
  LeaveGroupCommand,
  ShowDownloadsCommand,
  CancelDownloadCommand,
];
