import { ErrorCode, quoteArg } from '@app/protocol';
import { DomainError } from '../common/domain.error';

/** A file name as the user would type it back (quoted when it has spaces), cut short if absurdly long. */
export function shownName(name: string): string {
  const short = name.length > 300 ? `${name.slice(0, 300)}...` : name;
  try {
    return quoteArg(short);
  } catch {
    return JSON.stringify(short);
  }
}

export class UnknownFileError extends DomainError {
  constructor(groupId: string, fileName: string) {
    super(ErrorCode.UnknownFile, `no file named ${shownName(fileName)} in group ${groupId}`);
  }
}
export class FileConflictError extends DomainError {
  constructor(groupId: string, fileName: string) {
    super(
      ErrorCode.FileConflict,
      `a different file named ${shownName(fileName)} is already shared in group ${groupId}`,
    );
  }
}
export class NotSeedingError extends DomainError {
  constructor(groupId: string, fileName: string) {
    super(ErrorCode.NotSeeding, `you are not seeding ${shownName(fileName)} in group ${groupId}`);
  }
}
export class BadFileMetadataError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.BadFileMetadata, message);
  }
}
export class InvalidFileNameError extends DomainError {
  constructor(problem: string) {
    super(ErrorCode.InvalidName, `file_path must end in a valid file name: ${problem}`);
  }
}
export class TrackerAddressAsSeederError extends DomainError {
  constructor(address: string) {
    super(
      ErrorCode.BadArguments,
      `my_port: ${address} is where a tracker of this network listens, not a chunk server; give the port your client serves chunks on`,
    );
  }
}
/** A command of this project's extended form, sent on a seed-form connection (one that began without HELLO). */
export class ExtendedFormOnlyError extends DomainError {
  constructor(command: string) {
    super(ErrorCode.UnknownCommand, `${command} needs the extended form: send HELLO p2p-share/2 as the first line`);
  }
}
