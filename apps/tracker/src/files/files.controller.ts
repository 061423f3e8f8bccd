import {
  Cmd,
  DownloadFileCmd,
  ErrorCode,
  formatFileMetadata,
  HostPort,
  ListFilesCmd,
  NewSeederCmd,
  okReply,
  OkReply,
  parseChunkHashes,
  parseHostPort,
  parsePort,
  ProtocolError,
  quoteArg,
  StopShareCmd,
  UploadFileCmd,
} from '@app/protocol';
import { Controller } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Replicated } from '../sync/replicated.decorator';
import { PeerContext } from '../transport/peer.context';
import { shownName } from './files.errors';
import { Announcer, FilesService } from './files.service';

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

@Controller()
export class FilesController {
  constructor(private readonly files: FilesService) {}

  @MessagePattern(Cmd.UploadFile)
  @Replicated()
  upload(@Payload() cmd: UploadFileCmd, @Ctx() ctx: PeerContext): OkReply {
    const by = announcer(ctx, cmd.myPort);
    const { fileName, chunkCount, created } = this.files.share(by, {
      groupId: cmd.groupId,
      filePath: cmd.filePath,
      fileSize: parseFileSize(cmd.fileSize),
      fileHash: cmd.fileHash,
      chunkHashes: parseChunkHashes(cmd.chunkHashes),
    });
    const shared = `shared ${shownName(fileName)} in group ${cmd.groupId} (${plural(chunkCount, 'chunk')})`;
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

  /** The destination path is the client's business. */
  @MessagePattern(Cmd.DownloadFile)
  download(@Payload() cmd: DownloadFileCmd, @Ctx() ctx: PeerContext): OkReply {
    const meta = this.files.download(ctx.requireUser(), cmd.groupId, cmd.fileName);
    return okReply(
      `${shownName(meta.fileName)}: ${plural(meta.fileSize, 'byte')}, ${plural(meta.seeders.length, 'online seeder')}`,
      formatFileMetadata(meta),
    );
  }

  @MessagePattern(Cmd.NewSeeder)
  @Replicated()
  newSeeder(@Payload() cmd: NewSeederCmd, @Ctx() ctx: PeerContext): OkReply {
    this.files.addSeeder(announcer(ctx, cmd.myPort), cmd.groupId, cmd.fileName, cmd.filePath);
    return okReply(`now seeding ${shownName(cmd.fileName)} in group ${cmd.groupId}`);
  }

  @MessagePattern(Cmd.StopShare)
  @Replicated()
  stopShare(@Payload() cmd: StopShareCmd, @Ctx() ctx: PeerContext): OkReply {
    const { fileDeleted } = this.files.stopShare(ctx.requireUser(), cmd.groupId, cmd.fileName);
    const stopped = `stopped sharing ${shownName(cmd.fileName)} in group ${cmd.groupId}`;
    return okReply(fileDeleted ? `${stopped}; nobody else seeds it, so it is no longer listed` : stopped);
  }
}

function announcer(ctx: PeerContext, myPort: string): Announcer {
  return { userId: ctx.requireUser(), connectionId: ctx.connectionId, address: peerAddress(myPort, ctx.remoteAddress) };
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

/**
 * Where a client serves chunks: `my_port` is `IP:PORT`, or just `PORT` on the
 * IP the connection comes from (also used for a wildcard IP like 0.0.0.0).
 */
export function peerAddress(myPort: string, remoteAddress: string): HostPort {
  const port = parsePort(myPort);
  if (port !== undefined) return { host: remoteHost(remoteAddress), port };
  const given = parseHostPort(myPort);
  if (!given)
    throw new ProtocolError(ErrorCode.BadArguments, `my_port must be PORT or IP:PORT, not '${myPort.slice(0, 60)}'`);
  return given.host === '0.0.0.0' || given.host === '::'
    ? { host: remoteHost(remoteAddress), port: given.port }
    : given;
}

/** The IP of a `remoteAddress` written `ip:port`, IPv4-mapped IPv6 turned back into IPv4. */
function remoteHost(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  const host = (colon < 0 ? remoteAddress : remoteAddress.slice(0, colon)).replace(/^\[(.*)\]$/, '$1');
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(host) ? host.slice('::ffff:'.length) : host;
}
