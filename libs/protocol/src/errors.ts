/**
 * Stable error codes that travel on the wire as `ERR <CODE> <message>`.
 * Codes never change meaning; messages are for people.
 */
export const ErrorCode = {
  UnknownCommand: 'UNKNOWN_COMMAND',
  BadArguments: 'BAD_ARGUMENTS',
  BadSyntax: 'BAD_SYNTAX',
  LineTooLong: 'LINE_TOO_LONG',
  Internal: 'INTERNAL',
  NotLoggedIn: 'NOT_LOGGED_IN',
  AlreadyLoggedIn: 'ALREADY_LOGGED_IN',
  UserExists: 'USER_EXISTS',
  InvalidId: 'INVALID_ID',
  InvalidPassword: 'INVALID_PASSWORD',
  GroupExists: 'GROUP_EXISTS',
  UnknownGroup: 'UNKNOWN_GROUP',
  NotMember: 'NOT_MEMBER',
  AlreadyMember: 'ALREADY_MEMBER',
  RequestPending: 'REQUEST_PENDING',
  NoSuchRequest: 'NO_SUCH_REQUEST',
  NotOwner: 'NOT_OWNER',
  Forbidden: 'FORBIDDEN',
  UnknownFile: 'UNKNOWN_FILE',
  FileConflict: 'FILE_CONFLICT',
  NotSeeding: 'NOT_SEEDING',
  BadFileMetadata: 'BAD_FILE_METADATA',
  NotShared: 'NOT_SHARED',
  NoSuchChunk: 'NO_SUCH_CHUNK',
  FileChanged: 'FILE_CHANGED',
  Busy: 'BUSY',
  UnknownSession: 'UNKNOWN_SESSION',
  SessionExpired: 'SESSION_EXPIRED',
  LoginFailed: 'LOGIN_FAILED',
  TryLater: 'TRY_LATER',
  // connection limits: a peer past one gets this line, then the connection is closed
  TooManyConnections: 'TOO_MANY_CONNECTIONS',
  IdleTimeout: 'IDLE_TIMEOUT',
  /** A file name with a control, bidi or invisible format character, '/', or '.'/'..' (see `fileNameProblem`). */
  InvalidName: 'INVALID_NAME',
  RequestTooLarge: 'REQUEST_TOO_LARGE',
  /** A seeder's one refusal: no valid capability for a file it shares (nothing more is said). */
  Denied: 'DENIED',
  /** A partial seeder asked for a chunk it does not hold (yet): cheap, nothing is read. */
  NotHeld: 'NOT_HELD',
  /** Tracker sync: the asker lacks changes the other tracker holds only in its snapshot (`sync_snapshot` first). */
  SnapshotNeeded: 'SNAPSHOT_NEEDED',
  /** A tracker run with `--require-tls` refuses `login`, `resume` and `create_user` outside TLS (docs/PROTOCOL.md 8). */
  TlsRequired: 'TLS_REQUIRED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * The refusal of a login outside TLS by a tracker run with `--require-tls`:
 * `ERR TLS_REQUIRED <this>` in the extended form, `error: <this>` in the seed form.
 */
export const TLS_REQUIRED_MESSAGE = 'this tracker requires TLS: connect with STARTTLS (docs/PROTOCOL.md 8)';

/** Anything that could not be turned into a well-formed protocol value. */
export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message);
  }
}
