import { ErrorCode, ProtocolError } from './errors';
import { HEX_VALUE } from './metadata';

/**
 * The kinds of replicated change, one codec each. A change is stored (the
 * `oplog` table's `kind` and JSON `args` columns) and sent between trackers
 * (see sync.ts) as its kind and positional text args; here they become named,
 * typed fields and back, and a change whose args do not fit its kind is
 * refused with a ProtocolError before any applier sees it. The encoded form is
 * a persisted format: a codec may accept more than it did, never less, and
 * must encode what it decodes back to the same text.
 */

/** The kinds of change, by name: the only place their wire names are written. */
export const OpKind = {
  CreateUser: 'create_user',
  SessionOpen: 'session_open',
  SessionClose: 'session_close',
  SessionResume: 'session_resume',
  SessionSeen: 'session_seen',
  CreateGroup: 'create_group',
  JoinGroup: 'join_group',
  LeaveGroup: 'leave_group',
  AcceptRequest: 'accept_request',
  UploadFile: 'upload_file',
  NewSeeder: 'new_seeder',
  StopShare: 'stop_share',
} as const;

export interface CreateUserOp {
  readonly kind: typeof OpKind.CreateUser;
  readonly userId: string;
  readonly passwordHash: string;
}
/** A login on the origin tracker: the session's token (by its SHA-256), held by the actor. */
export interface SessionOpenOp {
  readonly kind: typeof OpKind.SessionOpen;
  readonly tokenHash: string;
}
/** Logout: the token is revoked. */
export interface SessionCloseOp {
  readonly kind: typeof OpKind.SessionClose;
  readonly tokenHash: string;
}
/** The session was taken up (after a failover) on the origin tracker. */
export interface SessionResumeOp {
  readonly kind: typeof OpKind.SessionResume;
  readonly tokenHash: string;
}
/** The origin tracker's connection holding the session closed without logout: idle from the change's time. */
export interface SessionSeenOp {
  readonly kind: typeof OpKind.SessionSeen;
  readonly tokenHash: string;
}
export interface CreateGroupOp {
  readonly kind: typeof OpKind.CreateGroup;
  readonly groupId: string;
}
export interface JoinGroupOp {
  readonly kind: typeof OpKind.JoinGroup;
  readonly groupId: string;
}
export interface LeaveGroupOp {
  readonly kind: typeof OpKind.LeaveGroup;
  readonly groupId: string;
}
export interface AcceptRequestOp {
  readonly kind: typeof OpKind.AcceptRequest;
  readonly groupId: string;
  /** The user let in. */
  readonly candidate: string;
}
export interface UploadFileOp {
  readonly kind: typeof OpKind.UploadFile;
  readonly groupId: string;
  /** Absolute path on the uploader's machine; its basename names the file. */
  readonly filePath: string;
  readonly fileSize: number;
  readonly fileHash: string;
  /**
   * Hex SHA-1 of every chunk, comma-separated, as stored and sent (8.4 MB for
   * 204,800 chunks): kept as that one string, checked but never split or copied.
   */
  readonly chunkHashList: string;
}
export interface NewSeederOp {
  readonly kind: typeof OpKind.NewSeeder;
  readonly groupId: string;
  readonly fileName: string;
  readonly filePath: string;
}
export interface StopShareOp {
  readonly kind: typeof OpKind.StopShare;
  readonly groupId: string;
  readonly fileName: string;
}

/** What a change does: its kind and the fields of that kind. */
export type OpBody =
  | CreateUserOp
  | SessionOpenOp
  | SessionCloseOp
  | SessionResumeOp
  | SessionSeenOp
  | CreateGroupOp
  | JoinGroupOp
  | LeaveGroupOp
  | AcceptRequestOp
  | UploadFileOp
  | NewSeederOp
  | StopShareOp;

export type OpKind = OpBody['kind'];
export type OpBodyOf<K extends OpKind> = Extract<OpBody, { readonly kind: K }>;

/** User and group ids: 1-32 characters, letters, digits, '.', '_' or '-', starting with a letter or digit. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;

const MAX_TEXT = 4096;
const CONTROL = /[\x00-\x1f\x7f]/;
const TOKEN_HASH = /^[0-9a-f]{64}$/;
const SHA1_HEX = /^[0-9a-fA-F]{40}$/;
const SIZE = /^(0|[1-9][0-9]{0,15})$/;

const bad = (kind: string, what: string): ProtocolError =>
  new ProtocolError(ErrorCode.BadArguments, `bad ${kind} change: ${what}`);

function id(kind: string, name: string, value: string): string {
  if (!ID_PATTERN.test(value)) throw bad(kind, `${name} '${value.slice(0, 40)}' is not an id`);
  return value;
}

function tokenHash(kind: string, value: string): string {
  if (!TOKEN_HASH.test(value)) throw bad(kind, 'token_hash is not 64 lowercase hex digits');
  return value;
}

/** Free text of 1-4096 characters without control characters (paths, names, password hashes). */
function text(kind: string, name: string, value: string): string {
  if (value.length < 1 || value.length > MAX_TEXT || CONTROL.test(value)) {
    throw bad(kind, `${name} must be 1-${MAX_TEXT} characters without control characters`);
  }
  return value;
}

function size(kind: string, value: string): number {
  const n = Number(value);
  if (!SIZE.test(value) || !Number.isSafeInteger(n)) throw bad(kind, `file_size '${value.slice(0, 20)}'`);
  return n;
}

function sha1(kind: string, value: string): string {
  if (!SHA1_HEX.test(value)) throw bad(kind, 'file_hash is not a 40-digit hex SHA-1');
  return value;
}

/** `<40 hex>,<40 hex>,...` or empty; checked in place, without building digests or an array of strings. */
function hashList(kind: string, value: string): string {
  const n = value.length;
  if (n > 0 && (n + 1) % 41 !== 0) throw bad(kind, 'chunk_hashes is not a list of SHA-1s');
  for (let start = 0; start < n; start += 41) {
    for (let at = start; at < start + 40; at++) {
      const c = value.charCodeAt(at);
      if (c > 255 || HEX_VALUE[c] < 0) throw bad(kind, `chunk_hashes is not a list of SHA-1s (at character ${at})`);
    }
    if (start + 40 < n && value.charCodeAt(start + 40) !== 0x2c) {
      throw bad(kind, `chunk_hashes is not a list of SHA-1s (at character ${start + 40})`);
    }
  }
  return value;
}

interface OpCodec<K extends OpKind> {
  /** Names of the positional args, in order: their count is the kind's arity. */
  readonly args: readonly string[];
  encode(op: OpBodyOf<K>): string[];
  /** Called with exactly `args.length` args; throws a ProtocolError for one that does not fit. */
  decode(args: readonly string[]): OpBodyOf<K>;
}

/** The one place that knows each kind's positional form. */
const OP_CODECS: { readonly [K in OpKind]: OpCodec<K> } = {
  [OpKind.CreateUser]: {
    args: ['user_id', 'password_hash'],
    encode: (op) => [op.userId, op.passwordHash],
    decode: ([userId, passwordHash]) => ({
      kind: OpKind.CreateUser,
      userId: id(OpKind.CreateUser, 'user_id', userId),
      passwordHash: text(OpKind.CreateUser, 'password_hash', passwordHash),
    }),
  },
  [OpKind.SessionOpen]: {
    args: ['token_hash'],
    encode: (op) => [op.tokenHash],
    decode: ([hash]) => ({ kind: OpKind.SessionOpen, tokenHash: tokenHash(OpKind.SessionOpen, hash) }),
  },
  [OpKind.SessionClose]: {
    args: ['token_hash'],
    encode: (op) => [op.tokenHash],
    decode: ([hash]) => ({ kind: OpKind.SessionClose, tokenHash: tokenHash(OpKind.SessionClose, hash) }),
  },
  [OpKind.SessionResume]: {
    args: ['token_hash'],
    encode: (op) => [op.tokenHash],
    decode: ([hash]) => ({ kind: OpKind.SessionResume, tokenHash: tokenHash(OpKind.SessionResume, hash) }),
  },
  [OpKind.SessionSeen]: {
    args: ['token_hash'],
    encode: (op) => [op.tokenHash],
    decode: ([hash]) => ({ kind: OpKind.SessionSeen, tokenHash: tokenHash(OpKind.SessionSeen, hash) }),
  },
  [OpKind.CreateGroup]: {
    args: ['group_id'],
    encode: (op) => [op.groupId],
    decode: ([groupId]) => ({ kind: OpKind.CreateGroup, groupId: id(OpKind.CreateGroup, 'group_id', groupId) }),
  },
  [OpKind.JoinGroup]: {
    args: ['group_id'],
    encode: (op) => [op.groupId],
    decode: ([groupId]) => ({ kind: OpKind.JoinGroup, groupId: id(OpKind.JoinGroup, 'group_id', groupId) }),
  },
  [OpKind.LeaveGroup]: {
    args: ['group_id'],
    encode: (op) => [op.groupId],
    decode: ([groupId]) => ({ kind: OpKind.LeaveGroup, groupId: id(OpKind.LeaveGroup, 'group_id', groupId) }),
  },
  [OpKind.AcceptRequest]: {
    args: ['group_id', 'user_id'],
    encode: (op) => [op.groupId, op.candidate],
    decode: ([groupId, candidate]) => ({
      kind: OpKind.AcceptRequest,
      groupId: id(OpKind.AcceptRequest, 'group_id', groupId),
      candidate: id(OpKind.AcceptRequest, 'user_id', candidate),
    }),
  },
  [OpKind.UploadFile]: {
    args: ['group_id', 'file_path', 'file_size', 'file_hash', 'chunk_hashes'],
    encode: (op) => [op.groupId, op.filePath, String(op.fileSize), op.fileHash, op.chunkHashList],
    decode: ([groupId, filePath, fileSize, fileHash, chunkHashList]) => ({
      kind: OpKind.UploadFile,
      groupId: id(OpKind.UploadFile, 'group_id', groupId),
      filePath: text(OpKind.UploadFile, 'file_path', filePath),
      fileSize: size(OpKind.UploadFile, fileSize),
      fileHash: sha1(OpKind.UploadFile, fileHash),
      chunkHashList: hashList(OpKind.UploadFile, chunkHashList),
    }),
  },
  [OpKind.NewSeeder]: {
    args: ['group_id', 'file_name', 'file_path'],
    encode: (op) => [op.groupId, op.fileName, op.filePath],
    decode: ([groupId, fileName, filePath]) => ({
      kind: OpKind.NewSeeder,
      groupId: id(OpKind.NewSeeder, 'group_id', groupId),
      fileName: text(OpKind.NewSeeder, 'file_name', fileName),
      filePath: text(OpKind.NewSeeder, 'file_path', filePath),
    }),
  },
  [OpKind.StopShare]: {
    args: ['group_id', 'file_name'],
    encode: (op) => [op.groupId, op.fileName],
    decode: ([groupId, fileName]) => ({
      kind: OpKind.StopShare,
      groupId: id(OpKind.StopShare, 'group_id', groupId),
      fileName: text(OpKind.StopShare, 'file_name', fileName),
    }),
  },
};

/** Every kind of change, in no particular order. */
export const OP_KINDS = Object.keys(OP_CODECS) as OpKind[];

export const isOpKind = (kind: string): kind is OpKind => Object.prototype.hasOwnProperty.call(OP_CODECS, kind);

/** The change's positional args, as stored and sent. Huge args (the chunk hash list) are the op's own strings. */
export function encodeOpArgs(op: OpBody): string[] {
  return (OP_CODECS[op.kind] as OpCodec<OpKind>).encode(op);
}

/** The change a kind and its positional args stand for; a ProtocolError when they are not a valid change. */
export function decodeOpBody(kind: string, args: readonly string[]): OpBody {
  if (!isOpKind(kind)) throw new ProtocolError(ErrorCode.BadArguments, `unknown change kind '${kind.slice(0, 40)}'`);
  const codec = OP_CODECS[kind] as OpCodec<OpKind>;
  if (args.length !== codec.args.length) {
    throw bad(
      kind,
      `takes ${codec.args.length} arg${codec.args.length === 1 ? '' : 's'} (${codec.args.join(' ')}), not ${args.length}`,
    );
  }
  return codec.decode(args);
}
