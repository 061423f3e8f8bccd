import { ErrorCode, ProtocolError } from './errors';
import { joinArgs, tokenize } from './tokenize';

/** Command names exactly as they appear on the wire. */
export const Cmd = {
  CreateUser: 'create_user',
  Login: 'login',
  Logout: 'logout',
  CreateGroup: 'create_group',
  JoinGroup: 'join_group',
  LeaveGroup: 'leave_group',
  ListGroups: 'list_groups',
  ListRequests: 'list_requests',
  AcceptRequest: 'accept_request',
  UploadFile: 'upload_file',
  ListFiles: 'list_files',
  DownloadFile: 'download_file',
  NewSeeder: 'new_seeder',
  StopShare: 'stop_share',
  Resume: 'resume',
  PartialSeeder: 'partial_seeder',
  StopPartial: 'stop_partial',
  ListSeeders: 'list_seeders',
} as const;
export type CommandName = (typeof Cmd)[keyof typeof Cmd];

/** Prefix of a line that one tracker sends another to replicate a change. */
export const SYNC_MARKER = '123456789';

interface CommandSpec {
  readonly args: readonly string[];
  /** Trailing arguments that may be left out (they read as ''). */
  readonly optional?: readonly string[];
  readonly summary: string;
}

/** Argument names (snake_case, as in usage lines) and a one-line summary per command. */
export const COMMAND_SPECS = {
  create_user: { args: ['user_id', 'password'], summary: 'register a new user' },
  login: { args: ['user_id', 'password'], summary: 'log in on this connection' },
  logout: { args: [], summary: 'log out' },
  create_group: { args: ['group_id'], summary: 'create a group you own' },
  join_group: { args: ['group_id'], summary: 'ask the owner to let you in' },
  leave_group: { args: ['group_id'], summary: 'leave a group (or withdraw your request)' },
  list_groups: { args: [], summary: 'list every group' },
  list_requests: { args: ['group_id'], summary: 'list pending join requests (owner only)' },
  accept_request: { args: ['group_id', 'user_id'], summary: 'let a user into your group (owner only)' },
  upload_file: {
    args: ['group_id', 'file_path', 'file_size', 'file_hash', 'chunk_hashes', 'my_port'],
    summary: 'register a file you seed: its size, SHA-1 and chunk SHA-1s (comma list, or @N for N lines that follow)',
  },
  list_files: { args: ['group_id'], summary: 'list the files shared in a group' },
  download_file: {
    args: ['group_id', 'file_name'],
    optional: ['destination_path'],
    summary: 'get the metadata and online seeders of a file',
  },
  new_seeder: { args: ['group_id', 'file_name', 'file_path', 'my_port'], summary: 'announce that you seed a file' },
  stop_share: { args: ['group_id', 'file_name'], summary: 'stop seeding a file' },
  resume: { args: ['session_token'], summary: 'take up a session on another tracker after a failover' },
  partial_seeder: {
    args: ['group_id', 'file_name', 'my_port'],
    summary: 'announce that you serve the chunks you hold of a file you are downloading (extended form)',
  },
  stop_partial: { args: ['group_id', 'file_name'], summary: 'stop serving the chunks of a file you download' },
  list_seeders: {
    args: ['group_id', 'file_name'],
    summary: 'the online seeders and partial seeders of a file, without its chunk hashes (extended form)',
  },
} as const satisfies Record<CommandName, CommandSpec>;

type Camel<S extends string> = S extends `${infer H}_${infer T}` ? `${H}${Capitalize<Camel<T>>}` : S;
type ArgsObject<A extends readonly string[]> = { [K in A[number] as Camel<K>]: string };
type OptionalOf<S> = S extends { optional: infer O extends readonly string[] } ? O : [];

export type CommandOf<N extends CommandName> = { kind: N } & ArgsObject<(typeof COMMAND_SPECS)[N]['args']> &
  Partial<ArgsObject<OptionalOf<(typeof COMMAND_SPECS)[N]>>>;
export type Command = { [N in CommandName]: CommandOf<N> }[CommandName];

export type CreateUserCmd = CommandOf<'create_user'>;
export type LoginCmd = CommandOf<'login'>;
export type LogoutCmd = CommandOf<'logout'>;
export type CreateGroupCmd = CommandOf<'create_group'>;
export type JoinGroupCmd = CommandOf<'join_group'>;
export type LeaveGroupCmd = CommandOf<'leave_group'>;
export type ListGroupsCmd = CommandOf<'list_groups'>;
export type ListRequestsCmd = CommandOf<'list_requests'>;
export type AcceptRequestCmd = CommandOf<'accept_request'>;
/**
 * `chunkDigests`: the list already packed (20 raw bytes per chunk, in order),
 * as the tracker's transport hands over an inline list too long for a line,
 * read as it streamed in; `chunkHashes` is then ''.
 */
export type UploadFileCmd = CommandOf<'upload_file'> & { readonly chunkDigests?: Buffer };
export type ListFilesCmd = CommandOf<'list_files'>;
export type DownloadFileCmd = CommandOf<'download_file'>;
export type NewSeederCmd = CommandOf<'new_seeder'>;
export type StopShareCmd = CommandOf<'stop_share'>;
export type ResumeCmd = CommandOf<'resume'>;
export type PartialSeederCmd = CommandOf<'partial_seeder'>;
export type StopPartialCmd = CommandOf<'stop_partial'>;
export type ListSeedersCmd = CommandOf<'list_seeders'>;

const camel = (s: string): string => s.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

export function isCommandName(name: string): name is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMAND_SPECS, name);
}

const specOf = (name: CommandName): CommandSpec => COMMAND_SPECS[name];

export function usage(name: CommandName): string {
  const spec = specOf(name);
  return [name, ...spec.args.map((a) => `<${a}>`), ...(spec.optional ?? []).map((a) => `[<${a}>]`)].join(' ');
}

/** Builds a typed command from a name and its already tokenised arguments. */
export function commandFromTokens(name: string, args: readonly string[]): Command {
  if (!isCommandName(name)) {
    throw new ProtocolError(ErrorCode.UnknownCommand, `unknown command '${name}'`);
  }
  const spec = specOf(name);
  const names = [...spec.args, ...(spec.optional ?? [])];
  if (args.length < spec.args.length || args.length > names.length) {
    throw new ProtocolError(ErrorCode.BadArguments, `usage: ${usage(name)}`);
  }
  const cmd: Record<string, string> = { kind: name };
  args.forEach((arg, i) => (cmd[camel(names[i])] = arg));
  return cmd as unknown as Command;
}

/** `parseCommand('join_group g1')` gives `{ kind: 'join_group', groupId: 'g1' }`. */
export function parseCommand(line: string): Command {
  const [name, ...args] = tokenize(line);
  if (name === undefined) throw new ProtocolError(ErrorCode.BadSyntax, 'empty command');
  return commandFromTokens(name, args);
}

/** Inverse of `parseCommand`. */
export function formatCommand(cmd: Command): string {
  const values = cmd as unknown as Record<string, string | undefined>;
  const spec = specOf(cmd.kind);
  const optional = (spec.optional ?? []).map((a) => values[camel(a)]).filter((v): v is string => v !== undefined);
  return joinArgs([cmd.kind, ...spec.args.map((a) => values[camel(a)] ?? ''), ...optional]);
}
