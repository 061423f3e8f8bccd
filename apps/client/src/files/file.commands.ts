import {
  CAPABILITY_KEY_FIELD,
  capabilityKeyOf,
  FileMetadata,
  fileNameProblem,
  formatCommand,
  okReply,
  parseFileMetadata,
  Reply,
  SeederInfo,
} from '@app/protocol';
import { Inject, Injectable, OnModuleInit } from '@nestjs/common';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT, OutputPort } from '../output/output.port';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { LocalCommand } from '../shell/local-command';
import { sessionTokenOf, withoutSessionToken } from '../tracker/session-token';
import { TrackerClient } from '../tracker/tracker.client';
import { ClientSession } from './client-session';
import { DownloadManager } from './download.manager';
import { SharingService } from './sharing.service';
import { formatBytes, formatRate } from './units';

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

  constructor(
    private readonly tracker: TrackerClient,
    private readonly session: ClientSession,
    private readonly downloads: DownloadManager,
    private readonly config: ClientConfigService,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  async run([groupId, fileName, destination]: readonly string[]): Promise<void> {
    const userId = this.session.requireUser();
    const metadata = await this.metadata(groupId, fileName);
    // the name may become a file here: one a tracker could never have accepted is not used
    const nameProblem = fileNameProblem(metadata.fileName);
    if (nameProblem) throw new Error(`the tracker sent an unusable name for ${fileName}: ${nameProblem}`);
    const { self, stallTimeoutMs } = this.config.get();
    const notSelf = (s: SeederInfo) => !(s.address.host === self.host && s.address.port === self.port);
    const seeders = metadata.seeders.filter(notSelf);
    if (seeders.length === 0)
      throw new Error(`no seeder is online for ${fileName} in group ${groupId}; try again later`);
    const destPath = await resolveDestination(destination, basename(metadata.fileName));
    if (this.downloads.isBusy(destPath)) throw new Error(`a download into ${destPath} is already running`);
    // fresh capabilities, and seeders that came online, come from asking the tracker again, in the background
    const renew = async (): Promise<readonly SeederInfo[]> => {
      const again = await this.metadata(groupId, fileName);
      if (again.fileHash !== metadata.fileHash) throw new Error(`${fileName} is now another file on the tracker`);
      return again.seeders.filter(notSelf);
    };
    this.downloads.start(groupId, userId, { ...metadata, seeders }, destPath, renew, { stallTimeoutMs });
    this.out.line(
      `downloading ${metadata.fileName} (${formatBytes(metadata.fileSize)}, ${metadata.chunkHashes.length} chunks) ` +
        `from ${seeders.length} seeder${seeders.length === 1 ? '' : 's'} to ${destPath}`,
    );
  }

  private async metadata(groupId: string, fileName: string): Promise<FileMetadata> {
    const reply = await this.tracker.request(formatCommand({ kind: 'download_file', groupId, fileName }));
    if (!reply.ok) throw new Error(reply.message || reply.code);
    return parseFileMetadata(reply.lines);
  }
}

/** A directory keeps the file's name; otherwise the path names the new file. Never an existing file. */
async function resolveDestination(destination: string, fileName: string): Promise<string> {
  const target = resolve(destination);
  const st = await stat(target).catch(() => undefined);
  if (/[\\/]$/.test(destination) && !st?.isDirectory()) throw new Error(`no such directory: ${target}`);
  const path = st?.isDirectory() ? join(target, fileName) : target;
  if (st && !st.isDirectory()) throw new Error(`${path} already exists; choose another destination`);
  if (st?.isDirectory() && (await stat(path).catch(() => undefined))) {
    throw new Error(`${path} already exists; choose another destination`);
  }
  const parent = await stat(dirname(path)).catch(() => undefined);
  if (!parent?.isDirectory()) throw new Error(`no such directory: ${dirname(path)}`);
  return path;
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
  readonly summary = "list this session's downloads: [D] running, [C] complete, [F] failed";

  constructor(
    private readonly downloads: DownloadManager,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  run(): Promise<void> {
    const entries = this.downloads.downloads;
    if (entries.length === 0) this.out.line('no downloads yet');
    for (const { groupId, job } of entries) {
      const p = job.progress;
      const head = `[${groupId}] ${p.fileName}`;
      if (p.state === 'complete') this.out.line(`[C] ${head} -> ${p.destPath}`);
      else if (p.state === 'failed') this.out.line(`[F] ${head} (${p.reason ?? 'failed'})`);
      else {
        const phase = p.verifying ? ' verifying' : p.waiting ? `, ${p.waiting}` : '';
        this.out.line(`[D] ${head} ${p.percent.toFixed(1)}% ${formatRate(p.speed)}${phase}`);
      }
    }
    return Promise.resolve();
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
];
