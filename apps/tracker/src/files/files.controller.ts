import {
  Cmd,
  DownloadFileCmd,
  ErrorCode,
  formatHostPort,
  formatSeederLists,
  metadataReplyLines,
  ListFilesCmd,
  ListSeedersCmd,
  NewSeederCmd,
  okReply,
  OkReply,
  parseChunkHashes,
  PartialSeederCmd,
  ProtocolError,
  quoteArg,
  ReplyLine,
  StopPartialCmd,
  StopShareCmd,
  UploadFileCmd,
} from '@app/protocol';
import { Controller, Logger } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Replicated } from '../sync/replicated.decorator';
import { PeerContext } from '../transport/peer.context';
import { ExtendedFormOnlyError, shownName } from './files.errors';
import { Announcer, FilesService } from './files.service';
import { SeederAddressRule } from './seeder-address.rule';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

@Controller()
export class FilesController {
  private readonly logger = new Logger(FilesController.name);

  constructor(
    private readonly files: FilesService,
    private readonly seederAddress: SeederAddressRule,
  ) {}

  @MessagePattern(Cmd.UploadFile)
  @Replicated()
  upload(@Payload() cmd: UploadFileCmd, @Ctx() ctx: PeerContext): OkReply {
    const by = this.announcer(ctx, cmd.myPort);
    const { fileName, chunkCount, created } = this.files.share(by, {
      groupId: cmd.groupId,
      filePath: cmd.filePath,
      fileSize: parseFileSize(cmd.fileSize),
      fileHash: cmd.fileHash,
      ...(cmd.chunkDigests ? { chunkDigests: cmd.chunkDigests } : { chunkHashes: parseChunkHashes(cmd.chunkHashes) }),
    });
    const shared = `shared ${shownName(fileName)} in group ${cmd.groupId} (${plural(chunkCount, 'chunk')})`;
    this.logger.log({
      message: `${by.userId} ${created ? 'uploaded' : 'seeds too'} ${shownName(fileName)} in group ${cmd.groupId}`,
      user: by.userId,
      group: cmd.groupId,
      file: fileName,
      size: parseFileSize(cmd.fileSize),
      chunks: chunkCount,
      seeder: formatHostPort(by.address),
      created,
    });
    return okReply(created ? shared : `${shared}; it was already shared, you seed it too now`);
  }

  @MessagePattern(Cmd.ListFiles)
  list(@Payload() cmd: ListFilesCmd, @Ctx() ctx: PeerContext): OkReply {
    const files = this.files.list(ctx.requireUser(), cmd.groupId);
    return okReply(
      files.length === 0
        ? `no files in group ${cmd.groupId}`
        : `${plural(files.length, 'file')} in group ${cmd.groupId}`,
      files.map((f) => `${quoteArg(f.fileName)} size=${f.fileSize} seeders=${f.onlineSeeders}`),
    );
  }

  /** The destination path is the client's business. The seed form sees only the seven metadata lines. */
  @MessagePattern(Cmd.DownloadFile)
  download(@Payload() cmd: DownloadFileCmd, @Ctx() ctx: PeerContext): OkReply<ReplyLine> {
    const meta = this.files.download(ctx.requireUser(), cmd.groupId, cmd.fileName);
    return okReply(
      `${shownName(meta.fileName)}: ${plural(meta.fileSize, 'byte')}, ${plural(meta.seeders.length, 'online seeder')}`,
      metadataReplyLines(meta),
      'metadata', // the seed form: exactly its seven lines, nothing before them
    );
  }

  @MessagePattern(Cmd.NewSeeder)
  @Replicated()
  newSeeder(@Payload() cmd: NewSeederCmd, @Ctx() ctx: PeerContext): OkReply {
    const by = this.announcer(ctx, cmd.myPort);
    this.files.addSeeder(by, cmd.groupId, cmd.fileName, cmd.filePath);
    this.logger.log({
      message: `${by.userId} seeds ${shownName(cmd.fileName)} in group ${cmd.groupId}`,
      user: by.userId,
      group: cmd.groupId,
      file: cmd.fileName,
      seeder: formatHostPort(by.address),
    });
    return okReply(`now seeding ${shownName(cmd.fileName)} in group ${cmd.groupId}`);
  }

  @MessagePattern(Cmd.StopShare)
  @Replicated()
  stopShare(@Payload() cmd: StopShareCmd, @Ctx() ctx: PeerContext): OkReply {
    const userId = ctx.requireUser();
    const { fileDeleted } = this.files.stopShare(userId, cmd.groupId, cmd.fileName);
    this.logger.log({
      message: `${userId} stopped sharing ${shownName(cmd.fileName)} in group ${cmd.groupId}${fileDeleted ? '; no longer listed' : ''}`,
      user: userId,
      group: cmd.groupId,
      file: cmd.fileName,
      fileDeleted,
    });
    const stopped = `stopped sharing ${shownName(cmd.fileName)} in group ${cmd.groupId}`;
    return okReply(fileDeleted ? `${stopped}; nobody else seeds it, so it is no longer listed` : stopped);
  }

  /** The member downloads the file and serves the chunks it holds on `my_port` (extended form only). */
  @MessagePattern(Cmd.PartialSeeder)
  partialSeeder(@Payload() cmd: PartialSeederCmd, @Ctx() ctx: PeerContext): OkReply {
    requireExtended(ctx, Cmd.PartialSeeder);
    this.files.announcePartial(this.announcer(ctx, cmd.myPort), cmd.groupId, cmd.fileName);
    return okReply(`serving the chunks you hold of ${shownName(cmd.fileName)} in group ${cmd.groupId}`);
  }

  @MessagePattern(Cmd.StopPartial)
  stopPartial(@Payload() cmd: StopPartialCmd, @Ctx() ctx: PeerContext): OkReply {
    requireExtended(ctx, Cmd.StopPartial);
    const { withdrawn } = this.files.stopPartial(ctx.requireUser(), cmd.groupId, cmd.fileName);
    const what = `the chunks of ${shownName(cmd.fileName)} in group ${cmd.groupId}`;
    return okReply(withdrawn ? `no longer serving ${what}` : `you were not serving ${what}; nothing changed`);
  }

  /** The seeder lines of the extended `download_file` reply, with fresh capabilities, without the chunk hashes. */
  @MessagePattern(Cmd.ListSeeders)
  listSeeders(@Payload() cmd: ListSeedersCmd, @Ctx() ctx: PeerContext): OkReply {
    requireExtended(ctx, Cmd.ListSeeders);
    const listing = this.files.seeders(ctx.requireUser(), cmd.groupId, cmd.fileName);
    const { seeders, partialSeeders } = listing;
    return okReply(
      `${shownName(cmd.fileName)}: ${plural(seeders.length, 'online seeder')}, ${plural(partialSeeders.length, 'partial seeder')}`,
      formatSeederLists({ fileName: cmd.fileName, fileSize: 0, ...listing }),
    );
  }

  /**
   * The logged-in user, its session, where its client serves (this connection's
   * host, the client's port) and how: a connection without HELLO is a seed-form one.
   */
  private announcer(ctx: PeerContext, myPort: string): Announcer {
    const userId = ctx.requireUser();
    return {
      userId,
      connectionId: ctx.connectionId,
      address: this.seederAddress.resolve(myPort, ctx.remoteAddress),
      seedForm: !ctx.extended,
      // the certificate this member's client presented on this connection: downloaders accept only it from its seeder
      ...(ctx.extended && ctx.tls?.peerFingerprint && { fingerprint: ctx.tls.peerFingerprint }),
    };
  }
}

/** Refuses a command of the extended form on a seed-form connection, before anything else about it. */
function requireExtended(ctx: PeerContext, command: string): void {
  if (!ctx.extended) throw new ExtendedFormOnlyError(command);
}

/** `file_size` from the wire: a non-negative decimal integer. */
export function parseFileSize(text: string): number {
  const size = /^\d{1,16}$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(size)) {
    throw new ProtocolError(
      ErrorCode.BadFileMetadata,
      `file_size must be a non-negative integer, not '${text.slice(0, 40)}'`,
    );
  }
  return size;
}
