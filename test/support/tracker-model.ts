import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { quoteArg, Reply } from '@app/protocol';
import { RawConn } from './processes';

/*
 * A small in-memory model of the tracker's rules (README "Commands", "Rules", "Files", "Protocol") and the
 * fast-check commands that drive a real tracker and the model side by side, checking every answer.
 *
 * ============================================================================================================
 * EXPECTATIONS THAT OTHER WORK WILL CHANGE: every one of them is here, nowhere else. Flip them after merging.
 * ============================================================================================================
 */
export const EXPECT = {
  /** Code for `login` of a user that does not exist (one answer for both: 'LOGIN_FAILED'). */
  loginUnknownUserCode: 'LOGIN_FAILED',
  /** Code for `login` with a wrong password (one answer for both: 'LOGIN_FAILED'). */
  loginWrongPasswordCode: 'LOGIN_FAILED',
  /** File names with C1 controls (U+0080-U+009F) or bidi controls are refused at upload_file. */
  refuseC1AndBidiFileNames: true,
  /** The code such a name gets, once refused. */
  refusedFileNameCode: 'INVALID_NAME',
  /** A seeder's host is the one its connection comes from; an IP typed into `my_port` is ignored. */
  seederHostFromConnectionOnly: true,
  /** `seeder_file_paths` carries opaque tokens (no spaces or commas) instead of the seeders' real paths. */
  seederPathsAreTokens: true,
  /**
   * Whom a request id (`#id`) belongs to: 'global' (any earlier change with that id, from anyone, answers
   * `OK 0 done`) or 'user' (only a change made by the same user, or before login on the same connection).
   */
  requestIdScope: 'user' as 'global' | 'user',
  /** The answer to a sync line (`123456789 ...`) from a peer that has not done the handshake. */
  syncLineRefusalCode: 'FORBIDDEN',
  /** Send `upload_file ... @N` plus N continuation lines on connections that are not logged in. */
  continuationBeforeLogin: true,
  /** A session whose connection dropped without `logout` can be resumed with its token on a new connection. */
  resumeAfterDrop: true,
  /** The only `OK` message a sync line from a peer without the network key may get (the challenge). */
  keylessSyncOk: /^prove it$/,
};

/**
 * Extra flags for the tracker under test, e.g. `['--login-backoff-after', '1000000']` once login backoff exists
 * (the fuzz tries wrong passwords on purpose and must not be slowed down or locked out by it).
 */
export const TRACKER_EXTRA_FLAGS: readonly string[] = [
  '--login-backoff-after',
  '1000000',
  '--idle-timeout-login',
  '10m',
];

/** Host of the seeder that announced with `my_port` variant `given` (undefined: bare PORT or wildcard). */
function expectedSeederHost(given: string | undefined, connectionHost: string): string {
  if (EXPECT.seederHostFromConnectionOnly || given === undefined) return connectionHost;
  return given;
}

/** Why a file name is refused at upload (a code), or undefined when it is accepted. */
function fileNameRefusal(name: string): string | undefined {
  const chars = [...name].length;
  if (chars < 1 || chars > 255 || name === '.' || name === '..') {
    return EXPECT.refuseC1AndBidiFileNames ? EXPECT.refusedFileNameCode : 'BAD_FILE_METADATA';
  }
  // controls (C0, DEL, C1), every format character (bidi, zero-width, ...) and the line/paragraph separators
  if (EXPECT.refuseC1AndBidiFileNames && /[\p{Cc}\p{Cf}\u2028\u2029]/u.test(name)) return EXPECT.refusedFileNameCode;
  return undefined;
}

/**
 * The four `partial_seeder*` lines for these partial seeders (their capabilities, `PARTIAL_PATHS`, as
 * `partialPathsProblem` checks them), then the two fingerprint lines: the model's connections are plain (no
 * STARTTLS), so no seeder of theirs has a fingerprint.
 */
function partialLines(
  seeders: readonly unknown[],
  partial: readonly { user: string; address: { host: string; port: number } }[],
): string[] {
  return [
    `partial_seeders:${partial.map((x) => x.user).join(',')}`,
    `partial_seeder_hosts:${partial.map((x) => x.address.host).join(',')}`,
    `partial_seeder_ports:${partial.map((x) => x.address.port).join(',')}`,
    PARTIAL_PATHS,
    `seeder_fingerprints:${seeders.map(() => '-').join(',')}`,
    `partial_seeder_fingerprints:${partial.map(() => '-').join(',')}`,
  ];
}

const PARTIAL_PATHS = 'partial_seeder_file_paths:';

/** The `partial_seeder_file_paths:` line: one opaque capability per partial seeder; a problem or ''. */
function partialPathsProblem(line: string, count: number): string {
  if (!line.startsWith('partial_seeder_file_paths:')) return `'${line.slice(0, 60)}' is not partial_seeder_file_paths:`;
  const field = line.slice('partial_seeder_file_paths:'.length);
  const items = field === '' ? [] : field.split(',');
  if (items.length !== count) return `${items.length} capabilities for ${count} partial seeders`;
  return items.every((t) => /^[A-Za-z0-9_-]{40,}$/.test(t))
    ? ''
    : `partial_seeder_file_paths:${field} is not capabilities`;
}

/** Checks the `seeder_file_paths` field of download_file against the seeders' real paths; a problem or ''. */
function seederPathsProblem(field: string, realPaths: readonly string[]): string {
  if (!EXPECT.seederPathsAreTokens) {
    const want = realPaths.map((p) => p.replace(/%/g, '%25').replace(/,/g, '%2C')).join(',');
    return field === want ? '' : `seeder_file_paths:${field} instead of ${want}`;
  }
  const items = field === '' ? [] : field.split(',');
  if (items.length !== realPaths.length) return `${items.length} tokens for ${realPaths.length} seeders`;
  const leaked = items.find((t, i) => !/^[^\s,]+$/.test(t) || t === realPaths[i]);
  return leaked === undefined ? '' : `seeder_file_paths item '${leaked}' is not an opaque token`;
}

/** Whether a change sent with request id `id` on connection `conn` is answered `OK 0 done` instead of applied. */
function requestIdAlreadyApplied(model: TrackerModel, id: string, conn: number): boolean {
  const uses = model.appliedIds.get(id) ?? [];
  if (EXPECT.requestIdScope === 'global') return uses.length > 0;
  const user = model.connUser[conn];
  return uses.some((u) => (user === undefined ? u.user === undefined && u.conn === conn : u.user === user));
}

/* ========================================================================================================== */

/** How a connection's own address looks to the tracker (every fuzz connection comes from 127.0.0.1). */
const CONNECTION_HOST = '127.0.0.1';

export const CONNECTIONS = 3;
const USER_POOL = 4;
const GROUP_POOL = 4;

/** User refs 0..3 are the run's users; the others are ids nobody can create. */
const BAD_USER_IDS = ['-dash', 'u'.repeat(33), 'a b'];
/** Group refs 0..3 are the run's groups; the others are invalid ids. */
const BAD_GROUP_IDS = ['.dot', 'g/x', 'g'.repeat(33)];

const FILE_NAMES = [
  'a.txt',
  'my report.pdf',
  'r%s,v.bin',
  'invoice\u202efdp.exe',
  'c1\u0085x.dat',
  'ünï.dat',
  'say "hi" \\ bye.txt',
  '\u00e9'.repeat(255),
  'tab\there.txt',
  'n'.repeat(256),
  '..',
];

interface Content {
  readonly size: number;
  readonly hash: string;
  readonly chunks: readonly string[];
}

const sha1 = (s: string) => createHash('sha1').update(s).digest('hex');
const CHUNK = 512 * 1024;
const CONTENTS: readonly Content[] = [0, 1, CHUNK + 1, 3 * CHUNK + 17, 599 * CHUNK + 1000].map((size, k) => {
  const count = Math.ceil(size / CHUNK);
  return { size, hash: sha1(`content-${k}`), chunks: Array.from({ length: count }, (_, i) => sha1(`c${k}/${i}`)) };
});

type PortVariant = 'bare' | 'loopback' | 'wildcard' | 'typed-ip' | 'hostname' | 'bad-port' | 'bad-text';

const FLAWS = [
  'none',
  'emptyPath',
  'dirOnly',
  'badSize',
  'badHash',
  'upperHash',
  'wrongCount',
  'badChunk',
  'otherChunks',
] as const;
type Flaw = (typeof FLAWS)[number];

type PasswordVariant = 'std' | 'spaced' | 'quotes' | 'max' | 'empty' | 'long';

const JUNK = [
  'unknown',
  'upper',
  'extra-args',
  'missing-args',
  'short-upload',
  'long-download',
  'unterminated',
  'glued-quote',
  'backslash',
  'control',
  'del',
  'bad-rid',
  'lonely-rid',
  'blank',
  'crlf',
  'sync-op',
  'sync-fetch',
  'at-zero',
  'at-text',
] as const;
type Junk = (typeof JUNK)[number];

/** How a request's words are written: each spelling must mean the same to the tracker. */
type Spelling = 'plain' | 'tabs' | 'spaces' | 'quoted' | 'crlf';

function spell(words: readonly string[], how: Spelling | undefined): string {
  switch (how) {
    case 'tabs':
      return words.map(quoteArg).join('\t');
    case 'spaces':
      return ` ${words.map(quoteArg).join('   ')}  `;
    case 'quoted':
      return words.map((w) => `"${w.replace(/[\\"]/g, (c) => `\\${c}`)}"`).join(' ');
    case 'crlf':
      return `${words.map(quoteArg).join(' ')}\r`;
    default:
      return words.map(quoteArg).join(' ');
  }
}

type Rid = { readonly kind: 'none' } | { readonly kind: 'fresh' } | { readonly kind: 'reuse'; readonly pick: number };

export type StepSpec = { readonly c: number; readonly rid: Rid; readonly spell?: Spelling } & (
  | { readonly t: 'create_user'; readonly u: number; readonly pw: PasswordVariant }
  | { readonly t: 'login'; readonly u: number; readonly right: boolean }
  | { readonly t: 'logout' }
  | { readonly t: 'list_groups' }
  | {
      readonly t: 'create_group' | 'join_group' | 'leave_group' | 'list_requests' | 'list_files';
      readonly g: number;
    }
  | { readonly t: 'accept_request'; readonly g: number; readonly u: number }
  | {
      readonly t: 'upload_file';
      readonly g: number;
      readonly name: number;
      readonly content: number;
      readonly dir: number;
      readonly lines: number;
      readonly port: PortVariant;
      readonly pp: number;
      readonly flaw: Flaw;
    }
  | { readonly t: 'download_file'; readonly g: number; readonly name: number; readonly dest: boolean }
  | {
      readonly t: 'new_seeder';
      readonly g: number;
      readonly name: number;
      readonly dir: number;
      readonly port: PortVariant;
      readonly pp: number;
    }
  | { readonly t: 'stop_share'; readonly g: number; readonly name: number }
  | {
      readonly t: 'partial_seeder';
      readonly g: number;
      readonly name: number;
      readonly port: PortVariant;
      readonly pp: number;
    }
  | { readonly t: 'stop_partial' | 'list_seeders'; readonly g: number; readonly name: number }
  | { readonly t: 'resume'; readonly token: 'live' | 'junk' | 'not-hex'; readonly pick: number }
  | { readonly t: 'reconnect' }
  | { readonly t: 'junk'; readonly junk: Junk }
);

interface ModelFile {
  readonly size: number;
  readonly hash: string;
  readonly chunks: readonly string[];
  /** In the order they first became seeders. */
  readonly seeders: { user: string; path: string }[];
}

interface ModelGroup {
  owner: string;
  /** In the order they joined; the owner who leaves hands the group to the first of the others. */
  readonly members: string[];
  readonly requests: string[];
}

interface Address {
  readonly host: string;
  readonly port: number;
}

/** What the tracker should hold for one run's users, groups and files. */
export class TrackerModel {
  readonly users = new Map<string, string>();
  readonly connUser: (string | undefined)[];
  /** The token of each connection's session (to revoke it at logout). */
  readonly connToken: (string | undefined)[];
  /** Where each connection's client last said it serves chunks (reset when its session ends). */
  readonly connAddress: (Address | undefined)[];
  readonly groups = new Map<string, ModelGroup>();
  /** group -> file name -> file */
  readonly files = new Map<string, Map<string, ModelFile>>();
  /** `group/name` -> user -> the connection whose session announced it. */
  readonly online = new Map<string, Map<string, number>>();
  /** `group/name` -> user -> the connection whose session announced it downloads the file and serves its part. */
  readonly partial = new Map<string, Map<string, number>>();
  /** Request ids of committed changes, with who sent them. */
  readonly appliedIds = new Map<string, { conn: number; user: string | undefined }[]>();
  /** Request ids sent so far (applied or not), for reuse. */
  readonly sentIds: string[] = [];
  /** Session tokens handed out, and whether they still stand. */
  readonly tokens: { token: string; user: string; live: boolean }[] = [];
  private nextId = 0;

  /** A deep copy, to try what one order of concurrent requests would give without touching this model. */
  clone(): TrackerModel {
    const copy = Object.assign(
      Object.create(TrackerModel.prototype) as TrackerModel,
      structuredClone({ ...this, alternatives: [] }),
    );
    copy.alternatives = [];
    return copy;
  }

  /**
   * Other states the tracker may be in: two concurrent requests whose answers do not tell which came first
   * (two members sharing the same new file at once) leave one state per order, until an answer tells them apart.
   */
  alternatives: TrackerModel[] = [];

  /** The state and its alternatives. */
  candidates(): TrackerModel[] {
    return [this, ...this.alternatives];
  }

  /** Becomes the first of `states`, with the others as alternatives (duplicates dropped). */
  adopt(states: readonly TrackerModel[]): void {
    const seen = new Set<string>();
    const unique = states.filter((x) => {
      const key = x.fingerprint();
      return seen.has(key) ? false : (seen.add(key), true);
    });
    Object.assign(this, unique[0].clone());
    this.alternatives = unique.slice(1).map((x) => x.clone());
  }

  fingerprint(): string {
    // maps in key order: the same state reached in another order is the same state (and not `instanceof Map`:
    // structuredClone makes its maps in another realm than Jest's)
    const isMap = (v: unknown): v is Map<string, unknown> => Object.prototype.toString.call(v) === '[object Map]';
    return JSON.stringify({ ...this, alternatives: [] }, (_k, v: unknown) =>
      isMap(v) ? [...v].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)) : v,
    );
  }

  constructor(readonly prefix: string) {
    this.connUser = Array.from({ length: CONNECTIONS }, () => undefined);
    this.connToken = Array.from({ length: CONNECTIONS }, () => undefined);
    this.connAddress = Array.from({ length: CONNECTIONS }, () => undefined);
  }

  userId(ref: number): string {
    return ref < USER_POOL ? `${this.prefix}u${ref}` : BAD_USER_IDS[(ref - USER_POOL) % BAD_USER_IDS.length];
  }

  groupId(ref: number): string {
    return ref < GROUP_POOL ? `${this.prefix}g${ref}` : BAD_GROUP_IDS[(ref - GROUP_POOL) % BAD_GROUP_IDS.length];
  }

  ownGroupIds(): Set<string> {
    return new Set(Array.from({ length: GROUP_POOL }, (_, i) => this.groupId(i)));
  }

  freshId(): string {
    const id = `${this.prefix}-${this.nextId++}`;
    this.sentIds.push(id);
    return id;
  }

  markOnline(conn: number, user: string, group: string, name: string, address: Address): void {
    const key = `${group}/${name}`;
    let users = this.online.get(key);
    if (!users) this.online.set(key, (users = new Map<string, number>()));
    users.set(user, conn);
    this.connAddress[conn] = address;
    this.dropPartial(group, name, user); // a full seeder is no partial one
  }

  markPartial(conn: number, user: string, group: string, name: string, address: Address): void {
    const key = `${group}/${name}`;
    let users = this.partial.get(key);
    if (!users) this.partial.set(key, (users = new Map<string, number>()));
    users.set(user, conn);
    this.connAddress[conn] = address;
  }

  /** Whether `user` was a partial seeder of the file (and no longer is). */
  dropPartial(group: string, name: string, user: string): boolean {
    const key = `${group}/${name}`;
    const had = this.partial.get(key)?.delete(user) ?? false;
    if (this.partial.get(key)?.size === 0) this.partial.delete(key);
    return had;
  }

  /** A member left the group: it serves no part of the group's files. */
  dropPartialsIn(group: string, user: string): void {
    for (const key of [...this.partial.keys()]) {
      if (key.startsWith(`${group}/`)) this.dropPartial(group, key.slice(group.length + 1), user);
    }
  }

  markOffline(group: string, name: string, user: string): void {
    const key = `${group}/${name}`;
    this.online.get(key)?.delete(user);
    if (this.online.get(key)?.size === 0) this.online.delete(key);
  }

  /** The session on `conn` ended (logout or closed connection): what it announced is offline. */
  endSession(conn: number): void {
    const user = this.connUser[conn];
    if (user === undefined) return;
    for (const [key, users] of [...this.online]) {
      if (users.get(user) !== conn) continue;
      users.delete(user);
      if (users.size === 0) this.online.delete(key);
    }
    for (const [key, users] of [...this.partial]) {
      if (users.get(user) !== conn) continue;
      users.delete(user);
      if (users.size === 0) this.partial.delete(key);
    }
    this.connAddress[conn] = undefined;
    this.connUser[conn] = undefined;
    this.connToken[conn] = undefined;
  }

  putSeeder(group: string, name: string, user: string, path: string): void {
    const file = this.files.get(group)!.get(name)!;
    const seeder = file.seeders.find((s) => s.user === user);
    if (seeder) seeder.path = path;
    else file.seeders.push({ user, path });
  }

  /** A seeder goes; the file goes with its last seeder. */
  removeSeeder(group: string, name: string, user: string): void {
    const file = this.files.get(group)?.get(name);
    if (!file) return;
    const i = file.seeders.findIndex((s) => s.user === user);
    if (i < 0) return;
    file.seeders.splice(i, 1);
    this.markOffline(group, name, user);
    if (file.seeders.length === 0) this.deleteFile(group, name);
  }

  deleteFile(group: string, name: string): void {
    this.files.get(group)?.delete(name);
    this.online.delete(`${group}/${name}`);
    this.partial.delete(`${group}/${name}`);
  }

  /**
   * The seeder lines of download_file's extended reply after `seeder_file_paths`, for `asker`, checked as `want`
   * lists them: the online full seeders, then the partial seeders that are neither among them nor the asker, by id.
   */
  seederLines(group: string, name: string, asker: string) {
    const f = this.files.get(group)!.get(name)!;
    const key = `${group}/${name}`;
    const seeders = f.seeders.flatMap((sd) => {
      const conn = this.online.get(key)?.get(sd.user);
      const address = conn === undefined ? undefined : this.connAddress[conn];
      return address ? [{ ...sd, address }] : [];
    });
    const partial = [...(this.partial.get(key) ?? [])]
      .filter(([user]) => user !== asker && !seeders.some((x) => x.user === user))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .flatMap(([user, conn]) => {
        const address = this.connAddress[conn];
        return address ? [{ user, address }] : [];
      });
    return { f, seeders, partial };
  }

  onlineCount(group: string, name: string): number {
    return this.online.get(`${group}/${name}`)?.size ?? 0;
  }
}

/** What the model says a request must get. */
type Outcome =
  | { readonly ok: false; readonly code: string }
  | {
      readonly ok: true;
      /** The exact body, or a check of it that returns a problem ('' when fine). */
      readonly body: readonly string[] | ((lines: readonly string[]) => string);
      /** Only the body lines this run owns are compared (list_groups sees other runs' groups). */
      readonly bodyFilter?: (line: string) => boolean;
      /** Applies the change to the model once the tracker has answered as expected. */
      readonly apply?: (reply: Reply) => void;
    };

class Refused extends Error {
  constructor(readonly code: string) {
    super(code);
  }
}

const refuse = (code: string): never => {
  throw new Refused(code);
};
type OkOutcome = Extract<Outcome, { ok: true }>;
const ok = (body: OkOutcome['body'] = [], apply?: (reply: Reply) => void): Outcome => ({
  ok: true,
  body,
  apply,
});

const VALID_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$/;
/** Paths may not hold control characters (a tab gets through the tokenizer inside quotes). */
const CONTROL = /[\x00-\x1f\x7f]/;

/** Commands that change replicated state: a retried one (same request id) is answered without being applied. */
const CHANGES = new Set([
  'create_user',
  'create_group',
  'join_group',
  'leave_group',
  'accept_request',
  'upload_file',
  'new_seeder',
  'stop_share',
]);

/** One request as sent: its lines, and the model's verdict on it. */
interface Rendered {
  readonly lines: string[];
  readonly outcome: Outcome;
  /** The request id it carries ('' for none). */
  readonly rid: string;
}

function fakePort(c: number, pp: number): number {
  return 41000 + c * 10 + pp;
}

function myPortText(v: PortVariant, c: number, pp: number): { text: string; host?: string; bad?: boolean } {
  const port = fakePort(c, pp);
  switch (v) {
    case 'bare':
      return { text: String(port) };
    case 'loopback':
      return { text: `127.0.0.1:${port}`, host: '127.0.0.1' };
    case 'wildcard':
      return { text: `0.0.0.0:${port}` };
    case 'typed-ip':
      return { text: `10.9.8.7:${port}`, host: '10.9.8.7' };
    case 'hostname':
      return { text: `seed.example:${port}`, host: 'seed.example' };
    case 'bad-port':
      return { text: '70000', bad: true };
    case 'bad-text':
      return { text: 'nope', bad: true };
  }
}

function pathFor(dir: number, user: string, name: string): string {
  const dirs = [`/home/${user}/share`, `/srv/${user}/a,b%c`, `/tmp/${user} sp`, `rel/${user}`];
  return `${dirs[dir % dirs.length]}/${name}`;
}

/** Splits a chunk list into `lines` continuation lines (at least one hash a line when there are any). */
function continuation(chunks: readonly string[], lines: number): string[] {
  const n = Math.max(1, Math.min(lines, chunks.length));
  const out: string[] = [];
  const per = Math.ceil(chunks.length / n);
  for (let i = 0; i < n; i++) out.push(chunks.slice(i * per, (i + 1) * per).join(','));
  return out.filter((l, i) => l !== '' || i === 0);
}

/** Builds the request of a step from the model's current state and says what the tracker must answer. */
export function render(m: TrackerModel, s: StepSpec): Rendered {
  let rid = '';
  if (s.t !== 'junk' && s.t !== 'reconnect') {
    if (s.rid.kind === 'fresh') rid = m.freshId();
    else if (s.rid.kind === 'reuse') rid = m.sentIds.length ? m.sentIds[s.rid.pick % m.sentIds.length] : m.freshId();
  }
  const head = rid ? `#${rid} ` : '';
  const { line, extra, outcome } = build(m, s, rid);
  return { lines: [head + line, ...extra], outcome, rid };
}

function build(m: TrackerModel, s: StepSpec, rid: string): { line: string; extra: string[]; outcome: Outcome } {
  const c = s.c;
  const me = m.connUser[c];
  const line = (...words: string[]) => spell(words, s.spell);
  const verdict = (decide: () => Outcome): Outcome => {
    try {
      // before login only create_user can change anything: every other change is NOT_LOGGED_IN whatever its id
      const dedupes = EXPECT.requestIdScope === 'global' || me !== undefined || s.t === 'create_user';
      if (CHANGES.has(s.t) && rid && dedupes && requestIdAlreadyApplied(m, rid, c)) return ok([]);
      return decide();
    } catch (err) {
      if (err instanceof Refused) return { ok: false, code: err.code };
      throw err;
    }
  };
  const recordId = () => {
    if (!rid) return;
    const uses = m.appliedIds.get(rid) ?? [];
    uses.push({ conn: c, user: m.connUser[c] });
    m.appliedIds.set(rid, uses);
  };
  const needUser = (): string => me ?? refuse('NOT_LOGGED_IN');
  const needGroup = (g: string): ModelGroup => {
    if (!VALID_ID.test(g)) refuse('INVALID_ID');
    return m.groups.get(g) ?? refuse('UNKNOWN_GROUP');
  };
  const needMember = (u: string, g: string): ModelGroup => {
    const group = needGroup(g);
    if (!group.members.includes(u)) refuse('NOT_MEMBER');
    return group;
  };
  const needOwner = (u: string, g: string): ModelGroup => {
    const group = needGroup(g);
    if (group.owner !== u) refuse('NOT_OWNER');
    return group;
  };

  switch (s.t) {
    case 'create_user': {
      const u = m.userId(s.u);
      const pw = {
        std: `pw-${s.u}`,
        spaced: `p w ${s.u}`,
        quotes: `p"w\\${s.u}`,
        max: 'm'.repeat(128),
        empty: '',
        long: 'l'.repeat(129),
      }[s.pw];
      return {
        line: line('create_user', u, pw),
        extra: [],
        outcome: verdict(() => {
          if (!VALID_ID.test(u)) refuse('INVALID_ID');
          if (pw.length < 1 || pw.length > 128) refuse('INVALID_PASSWORD');
          if (m.users.has(u)) refuse('USER_EXISTS');
          return ok([], () => {
            m.users.set(u, pw);
            // an account is made by nobody: its id is the connection's before login, and nobody's after
            if (me === undefined) recordId();
          });
        }),
      };
    }
    case 'login': {
      const ref = s.u < 0 ? c : s.u; // -1: the user this connection usually is
      const u = m.userId(ref);
      const pw = s.right ? (m.users.get(u) ?? `pw-${ref}`) : 'wrong-pw';
      return {
        line: line('login', u, pw),
        extra: [],
        outcome: verdict(() => {
          if (me !== undefined) refuse('ALREADY_LOGGED_IN');
          if (!m.users.has(u)) refuse(EXPECT.loginUnknownUserCode);
          if (m.users.get(u) !== pw) refuse(EXPECT.loginWrongPasswordCode);
          if (m.connUser.includes(u)) refuse('ALREADY_LOGGED_IN');
          return ok(
            (lines) =>
              lines.length === 2 &&
              /^session_token:[0-9a-f]{64}$/.test(lines[0]) &&
              /^capability_key:[A-Za-z0-9_-]{43}$/.test(lines[1])
                ? ''
                : 'no session_token and capability_key',
            (reply) => {
              // the login's id was the connection's, which has a user from now on: it binds nothing
              const token = (reply.ok ? (reply.lines[0] ?? '') : '').slice('session_token:'.length);
              m.connUser[c] = u;
              m.connToken[c] = token;
              m.tokens.push({ token, user: u, live: true });
              m.tokens.sort((x, y) => (x.token < y.token ? -1 : 1)); // in token order, whatever order logins came in
            },
          );
        }),
      };
    }
    case 'logout':
      return {
        line: line('logout'),
        extra: [],
        outcome: verdict(() => {
          needUser();
          return ok([], () => {
            recordId();
            const t = m.tokens.find((x) => x.token === m.connToken[c]);
            if (t) t.live = false;
            m.endSession(c);
          });
        }),
      };
    case 'resume': {
      // picked in token order, so that states differing only in the order of logins pick the same token
      const byToken = [...m.tokens].sort((x, y) => (x.token < y.token ? -1 : 1));
      const live = byToken.length ? byToken[s.pick % byToken.length] : undefined;
      const token =
        s.token === 'live' && live
          ? live.token
          : s.token === 'not-hex'
            ? 'not-a-token'
            : sha1(`junk${s.pick}`) + 'ab'.repeat(12);
      return {
        line: line('resume', token),
        extra: [],
        outcome: verdict(() => {
          if (me !== undefined) refuse('ALREADY_LOGGED_IN');
          const t = m.tokens.find((x) => x.token === token && x.live);
          if (!t) refuse('UNKNOWN_SESSION');
          if (m.connUser.includes(t!.user)) refuse('ALREADY_LOGGED_IN');
          return ok([], () => {
            m.connUser[c] = t!.user;
            m.connToken[c] = token;
          });
        }),
      };
    }
    case 'list_groups':
      return {
        line: line('list_groups'),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          const body = [...m.groups.entries()]
            .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
            .map(([g, grp]) => {
              const you =
                grp.owner === u
                  ? 'owner'
                  : grp.members.includes(u)
                    ? 'member'
                    : grp.requests.includes(u)
                      ? 'requested'
                      : 'none';
              return `${g} owner=${grp.owner} members=${grp.members.length} you=${you}`;
            });
          const own = m.ownGroupIds();
          return { ok: true, body, bodyFilter: (l: string) => own.has(l.split(' ')[0]) };
        }),
      };
    case 'create_group': {
      const g = m.groupId(s.g);
      return {
        line: line('create_group', g),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          if (!VALID_ID.test(g)) refuse('INVALID_ID');
          if (m.groups.has(g)) refuse('GROUP_EXISTS');
          return ok([], () => {
            recordId();
            m.groups.set(g, { owner: u, members: [u], requests: [] });
            m.files.set(g, new Map());
          });
        }),
      };
    }
    case 'join_group': {
      const g = m.groupId(s.g);
      return {
        line: line('join_group', g),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          const grp = needGroup(g);
          if (grp.members.includes(u)) refuse('ALREADY_MEMBER');
          if (grp.requests.includes(u)) refuse('REQUEST_PENDING');
          return ok([], () => {
            recordId();
            grp.requests.push(u);
          });
        }),
      };
    }
    case 'leave_group': {
      const g = m.groupId(s.g);
      return {
        line: line('leave_group', g),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          const grp = needGroup(g);
          if (!grp.members.includes(u) && !grp.requests.includes(u)) refuse('NOT_MEMBER');
          return ok([], () => {
            recordId();
            if (!grp.members.includes(u)) {
              grp.requests.splice(grp.requests.indexOf(u), 1);
              return;
            }
            grp.members.splice(grp.members.indexOf(u), 1);
            for (const name of [...m.files.get(g)!.keys()]) m.removeSeeder(g, name, u);
            m.dropPartialsIn(g, u);
            if (grp.owner === u) {
              if (grp.members.length === 0) {
                for (const name of [...m.files.get(g)!.keys()]) m.deleteFile(g, name);
                m.groups.delete(g);
                m.files.delete(g);
              } else {
                grp.owner = grp.members[0];
              }
            }
          });
        }),
      };
    }
    case 'list_requests': {
      const g = m.groupId(s.g);
      return {
        line: line('list_requests', g),
        extra: [],
        outcome: verdict(() => ok([...needOwner(needUser(), g).requests])),
      };
    }
    case 'accept_request': {
      const g = m.groupId(s.g);
      const cand = m.userId(s.u);
      return {
        line: line('accept_request', g, cand),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          if (!VALID_ID.test(cand)) refuse('INVALID_ID');
          const grp = needOwner(u, g);
          if (grp.members.includes(cand)) refuse('ALREADY_MEMBER');
          if (!grp.requests.includes(cand)) refuse('NO_SUCH_REQUEST');
          return ok([], () => {
            recordId();
            grp.requests.splice(grp.requests.indexOf(cand), 1);
            grp.members.push(cand);
          });
        }),
      };
    }
    case 'list_files': {
      const g = m.groupId(s.g);
      return {
        line: line('list_files', g),
        extra: [],
        outcome: verdict(() => {
          needMember(needUser(), g);
          const files = [...m.files.get(g)!.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
          return ok(files.map(([name, f]) => `${quoteArg(name)} size=${f.size} seeders=${m.onlineCount(g, name)}`));
        }),
      };
    }
    case 'upload_file':
      return buildUpload(m, s, verdict, needUser, needMember, recordId);
    case 'download_file': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      return {
        line: line('download_file', g, name, ...(s.dest ? ['/tmp/dest dir'] : [])),
        extra: [],
        outcome: verdict(() => {
          needMember(needUser(), g);
          if (!m.files.get(g)!.get(name)) refuse('UNKNOWN_FILE');
          const { f, seeders, partial } = m.seederLines(g, name, me!);
          const want = [
            `file_name:${name}`,
            `file_size:${f.size}`,
            `file_hash:${f.hash}`,
            `chunk_hashes:${f.chunks.join(',')}`,
            `seeders:${seeders.map((x) => x.user).join(',')}`,
            `seeder_ports:${seeders.map((x) => x.address.port).join(',')}`,
            'seeder_file_paths:',
            `seeder_hosts:${seeders.map((x) => x.address.host).join(',')}`,
            // the model's connections begin with HELLO p2p-share/2: every seeder is one of ours
            `seeder_protocols:${seeders.map(() => 'p2p-share/2').join(',')}`,
            ...partialLines(seeders, partial),
          ];
          return ok((lines) => {
            if (lines.length !== want.length) return `${lines.length} lines instead of ${want.length}`;
            for (let i = 0; i < want.length; i++) {
              if (i === 6) {
                const problem = lines[6].startsWith('seeder_file_paths:')
                  ? seederPathsProblem(
                      lines[6].slice('seeder_file_paths:'.length),
                      seeders.map((x) => x.path),
                    )
                  : `line 6 is '${lines[6]}'`;
                if (problem) return problem;
              } else if (want[i] === PARTIAL_PATHS) {
                const problem = partialPathsProblem(lines[i], partial.length);
                if (problem) return problem;
              } else if (lines[i] !== want[i]) return `line ${i} is '${lines[i]}' instead of '${want[i]}'`;
            }
            return '';
          });
        }),
      };
    }
    case 'new_seeder': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      const port = myPortText(s.port, c, s.pp);
      const path = pathFor(s.dir, me ?? 'nobody', `copy of ${name}`);
      return {
        line: line('new_seeder', g, name, path, port.text),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          if (port.bad) refuse('BAD_ARGUMENTS');
          needMember(u, g);
          if (CONTROL.test(path)) refuse('BAD_FILE_METADATA');
          if (!m.files.get(g)!.has(name)) refuse('UNKNOWN_FILE');
          return ok([], () => {
            recordId();
            m.putSeeder(g, name, u, path);
            m.markOnline(c, u, g, name, {
              host: expectedSeederHost(port.host, CONNECTION_HOST),
              port: fakePort(c, s.pp),
            });
          });
        }),
      };
    }
    case 'stop_share': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      return {
        line: line('stop_share', g, name),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          needMember(u, g);
          const f = m.files.get(g)!.get(name);
          if (!f || !f.seeders.some((x) => x.user === u)) refuse('NOT_SEEDING');
          return ok([], () => {
            recordId();
            m.removeSeeder(g, name, u);
          });
        }),
      };
    }
    case 'partial_seeder': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      const port = myPortText(s.port, c, s.pp);
      return {
        line: line('partial_seeder', g, name, port.text),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          if (port.bad) refuse('BAD_ARGUMENTS');
          needMember(u, g);
          if (!m.files.get(g)!.has(name)) refuse('UNKNOWN_FILE');
          return ok([], () =>
            m.markPartial(c, u, g, name, {
              host: expectedSeederHost(port.host, CONNECTION_HOST),
              port: fakePort(c, s.pp),
            }),
          );
        }),
      };
    }
    case 'stop_partial': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      return {
        line: line('stop_partial', g, name),
        extra: [],
        outcome: verdict(() => {
          const u = needUser();
          needMember(u, g);
          return ok([], () => void m.dropPartial(g, name, u));
        }),
      };
    }
    case 'list_seeders': {
      const g = m.groupId(s.g);
      const name = FILE_NAMES[s.name % FILE_NAMES.length];
      return {
        line: line('list_seeders', g, name),
        extra: [],
        outcome: verdict(() => {
          needMember(needUser(), g);
          if (!m.files.get(g)!.get(name)) refuse('UNKNOWN_FILE');
          const { f, seeders, partial } = m.seederLines(g, name, me!);
          const want = [
            `file_hash:${f.hash}`,
            `seeders:${seeders.map((x) => x.user).join(',')}`,
            `seeder_ports:${seeders.map((x) => x.address.port).join(',')}`,
            'seeder_file_paths:',
            `seeder_hosts:${seeders.map((x) => x.address.host).join(',')}`,
            `seeder_protocols:${seeders.map(() => 'p2p-share/2').join(',')}`,
            ...partialLines(seeders, partial),
          ];
          return ok((lines) => {
            if (lines.length !== want.length) return `${lines.length} lines instead of ${want.length}`;
            for (let i = 0; i < want.length; i++) {
              const problem =
                i === 3
                  ? lines[3].startsWith('seeder_file_paths:')
                    ? seederPathsProblem(
                        lines[3].slice('seeder_file_paths:'.length),
                        seeders.map((x) => x.path),
                      )
                    : `line 3 is '${lines[3]}'`
                  : want[i] === PARTIAL_PATHS
                    ? partialPathsProblem(lines[i], partial.length)
                    : lines[i] !== want[i]
                      ? `line ${i} is '${lines[i]}' instead of '${want[i]}'`
                      : '';
              if (problem) return problem;
            }
            return '';
          });
        }),
      };
    }
    case 'reconnect':
      return { line: '', extra: [], outcome: ok([]) };
    case 'junk':
      return buildJunk(m, s.junk);
  }
}

function buildUpload(
  m: TrackerModel,
  s: StepSpec & { t: 'upload_file' },
  verdict: (decide: () => Outcome) => Outcome,
  needUser: () => string,
  needMember: (u: string, g: string) => ModelGroup,
  recordId: () => void,
): { line: string; extra: string[]; outcome: Outcome } {
  const c = s.c;
  const me = m.connUser[c];
  const g = m.groupId(s.g);
  // content -1: the content that usually goes with this name, so that several members seed one file
  const content = CONTENTS[(s.content < 0 ? s.name : s.content) % CONTENTS.length];
  const name = FILE_NAMES[s.name % FILE_NAMES.length];
  let path = pathFor(s.dir, me ?? 'nobody', name);
  let sizeText = String(content.size);
  let hash = content.hash;
  let chunks = [...content.chunks];
  switch (s.flaw) {
    case 'emptyPath':
      path = '';
      break;
    case 'dirOnly':
      path = pathFor(s.dir, me ?? 'nobody', '');
      break;
    case 'badSize':
      sizeText = `${content.size}x`;
      break;
    case 'badHash':
      hash = 'xyz';
      break;
    case 'upperHash':
      hash = hash.toUpperCase();
      chunks = chunks.map((h) => h.toUpperCase());
      break;
    case 'wrongCount':
      chunks = chunks.length ? chunks.slice(1) : [sha1('extra')];
      break;
    case 'badChunk':
      chunks = [...chunks, 'zz'];
      break;
    case 'otherChunks':
      if (chunks.length) chunks[chunks.length - 1] = sha1('other');
      break;
    case 'none':
      break;
  }
  const port = myPortText(s.port, c, s.pp);
  const useLines = s.lines > 0 && (me !== undefined || EXPECT.continuationBeforeLogin);
  const extra = useLines ? continuation(chunks, s.lines) : [];
  const hashesArg = useLines ? `@${extra.length}` : chunks.length ? chunks.join(',') : s.pp % 2 ? '-' : '';
  const words = ['upload_file', g, path, sizeText, hash, hashesArg, port.text];
  const outcome = verdict(() => {
    const u = needUser();
    if (port.bad) refuse('BAD_ARGUMENTS');
    if (s.flaw === 'badSize' || s.flaw === 'badChunk') refuse('BAD_FILE_METADATA');
    needMember(u, g);
    if (path === '' || CONTROL.test(path)) refuse('BAD_FILE_METADATA');
    const baseName = path.slice(path.lastIndexOf('/') + 1);
    const nameRefusal = fileNameRefusal(baseName);
    if (nameRefusal) refuse(nameRefusal);
    if (s.flaw === 'badHash' || s.flaw === 'wrongCount') refuse('BAD_FILE_METADATA');
    const lowerChunks = chunks.map((h) => h.toLowerCase());
    const existing = m.files.get(g)!.get(name);
    if (existing) {
      if (existing.hash !== hash.toLowerCase() || existing.size !== content.size) refuse('FILE_CONFLICT');
      if (existing.chunks.join(',') !== lowerChunks.join(',')) refuse('BAD_FILE_METADATA');
    }
    return ok([], () => {
      recordId();
      if (!existing) {
        m.files.get(g)!.set(name, { size: content.size, hash: hash.toLowerCase(), chunks: lowerChunks, seeders: [] });
      }
      m.putSeeder(g, name, u, path);
      m.markOnline(c, u, g, name, { host: expectedSeederHost(port.host, CONNECTION_HOST), port: fakePort(c, s.pp) });
    });
  });
  return { line: spell(words, s.spell), extra, outcome };
}

function buildJunk(m: TrackerModel, junk: Junk): { line: string; extra: string[]; outcome: Outcome } {
  const err = (code: string) => ({ ok: false as const, code });
  const g = m.groupId(0);
  const hash = sha1('x');
  const table: Record<Junk, [string, Outcome]> = {
    unknown: ['frobnicate now', err('UNKNOWN_COMMAND')],
    upper: ['LIST_GROUPS', err('UNKNOWN_COMMAND')],
    'extra-args': ['list_groups please', err('BAD_ARGUMENTS')],
    'missing-args': [`accept_request ${g}`, err('BAD_ARGUMENTS')],
    'short-upload': [`upload_file ${g} /x/y 1 ${hash}`, err('BAD_ARGUMENTS')],
    'long-download': [`download_file ${g} a b c`, err('BAD_ARGUMENTS')],
    unterminated: ['create_group "abc', err('BAD_SYNTAX')],
    'glued-quote': ['create_group "a"b', err('BAD_SYNTAX')],
    backslash: ['create_group a\\b', err('BAD_SYNTAX')],
    control: ['create_group a\u0001b', err('BAD_SYNTAX')],
    del: ['join_group a\u007fb', err('BAD_SYNTAX')],
    'bad-rid': ['#bad! list_groups', err('BAD_SYNTAX')],
    'lonely-rid': [`#${m.prefix}-lonely`, err('BAD_SYNTAX')],
    blank: ['', err('UNKNOWN_COMMAND')],
    crlf: ['frobnicate\r', err('UNKNOWN_COMMAND')],
    'sync-op': [`123456789 create_group ${g} ${m.userId(0)} 1/1/1/1/-`, err(EXPECT.syncLineRefusalCode)],
    'sync-fetch': ['123456789 sync_fetch - 10', err(EXPECT.syncLineRefusalCode)],
    'at-zero': [`upload_file ${g} /x/y 1 ${hash} @0 7000`, err('BAD_ARGUMENTS')],
    'at-text': [`upload_file ${g} /x/y 1 ${hash} @many 7000`, err('BAD_ARGUMENTS')],
  };
  const [line, outcome] = table[junk];
  // a blank line gets no answer at all: the next line's answer must be the next one read
  if (junk === 'blank') return { line: '', extra: ['  \t ', 'frobnicate'], outcome };
  return { line, extra: [], outcome };
}

/* ----------------------------------------- the real side and the steps ---------------------------------------- */

export interface RealTracker {
  readonly port: number;
  conns: RawConn[];
}

export function describeStep(s: StepSpec): string {
  const { t, c, rid, ...rest } = s as StepSpec & Record<string, unknown>;
  const r = rid.kind === 'none' ? '' : rid.kind === 'fresh' ? ' #fresh' : ` #reuse${rid.pick}`;
  return `c${c}${r} ${t} ${JSON.stringify(rest)}`;
}

/** Compares a reply with the model's verdict; a description of the mismatch, or ''. */
function mismatch(outcome: Outcome, reply: Reply): string {
  if (!outcome.ok) {
    if (reply.ok) return `expected ERR ${outcome.code}, got OK ${reply.lines.length} ${reply.message}`;
    return reply.code === outcome.code ? '' : `expected ERR ${outcome.code}, got ERR ${reply.code} ${reply.message}`;
  }
  if (!reply.ok) return `expected OK, got ERR ${reply.code} ${reply.message}`;
  const lines = outcome.bodyFilter ? reply.lines.filter(outcome.bodyFilter) : reply.lines;
  if (typeof outcome.body === 'function') return outcome.body(lines);
  const want = outcome.body;
  if (lines.length === want.length && lines.every((l, i) => l === want[i])) return '';
  return `body differs:\n  expected ${JSON.stringify(want)}\n  got      ${JSON.stringify(lines)}`;
}

/** How often each command got each answer (`upload_file OK`, `login ERR WRONG_PASSWORD`...), over all runs. */
export const outcomeCounts = new Map<string, number>();
const count = (key: string) => outcomeCounts.set(key, (outcomeCounts.get(key) ?? 0) + 1);

/** Throws when the reply is not what the model said; counts the outcome. */
function check(
  m: TrackerModel,
  spec: StepSpec,
  lines: readonly string[],
  outcome: Outcome,
  reply: Reply,
  counted = true,
): void {
  const problem = mismatch(outcome, reply);
  if (problem) {
    throw new Error(
      `tracker and model disagree on c${spec.c} (${m.connUser[spec.c] ?? 'not logged in'}):\n` +
        `  sent ${JSON.stringify(lines.join('\n').slice(0, 300))}\n  ${problem}`,
    );
  }
  if (counted) count(`${spec.t === 'junk' ? `junk:${spec.junk}` : spec.t} ${reply.ok ? 'OK' : `ERR ${reply.code}`}`);
}

/**
 * Two requests on two connections written at the same moment: the tracker may take them in either order, but
 * its answers must be those of one order or the other, and its state that of the same order.
 */
export class RacingSteps implements fc.AsyncCommand<TrackerModel, RealTracker> {
  constructor(
    readonly a: StepSpec,
    readonly b: StepSpec,
  ) {}

  check(): boolean {
    return true;
  }

  async run(m: TrackerModel, r: RealTracker): Promise<void> {
    const [first, second] = [render(m.clone(), this.a), render(m.clone(), this.b)];
    const text = (x: Rendered) => x.lines.map((l) => `${l}\n`).join('');
    r.conns[this.a.c].write(text(first));
    r.conns[this.b.c].write(text(second));
    const [ra, rb] = await Promise.all([r.conns[this.a.c].reply(15_000), r.conns[this.b.c].reply(15_000)]);
    const wire = JSON.stringify([first.lines, second.lines]);
    // every state the tracker may have been in, taking the two requests in either order
    const survivors: TrackerModel[] = [];
    const problems: string[] = [];
    for (const candidate of m.candidates()) {
      for (const order of [
        [this.a, ra, this.b, rb],
        [this.b, rb, this.a, ra],
      ] as const) {
        const trial = candidate.clone();
        try {
          const x = playOne(trial, order[0], order[1], false);
          const y = playOne(trial, order[2], order[3], false);
          const [lineA, lineB] = order[0] === this.a ? [x.lines, y.lines] : [y.lines, x.lines];
          if (JSON.stringify([lineA, lineB]) !== wire) throw new Error('the state would have sent other lines');
          survivors.push(trial);
        } catch (err) {
          problems.push((err as Error).message);
        }
      }
    }
    if (survivors.length === 0) {
      throw new Error(`no order of two concurrent requests explains the answers:\n${problems.join('\n')}`);
    }
    count('race');
    m.adopt(survivors);
  }

  toString(): string {
    return `race[${describeStep(this.a)} | ${describeStep(this.b)}]`;
  }
}

/**
 * Several requests written at once on one connection, before any answer: the answers must come in order, each
 * as the model says. Logins are left out (the model needs a login's token before the next request is built).
 */
export class PipelinedSteps implements fc.AsyncCommand<TrackerModel, RealTracker> {
  constructor(readonly specs: readonly StepSpec[]) {}

  check(): boolean {
    return true;
  }

  async run(m: TrackerModel, r: RealTracker): Promise<void> {
    const conn = r.conns[this.specs[0].c];
    count('pipelined batch');
    await settle(
      m,
      async (requests) => {
        conn.write(requests.flatMap((x) => x.lines.map((l) => `${l}\n`)).join(''));
        const replies: Reply[] = [];
        for (let i = 0; i < requests.length; i++) replies.push(await conn.reply(15_000));
        return replies;
      },
      // without replies the model moves on as if each answer were as expected, to build the next request
      (state, replies) => this.specs.map((spec, i) => playOne(state, spec, replies?.[i], false)),
    );
  }

  toString(): string {
    return `pipelined[${this.specs.map(describeStep).join(' | ')}]`;
  }
}

/**
 * Sends requests built from the model and checks the answers against every state the tracker may be in: those
 * states that explain every answer live on; none means the tracker is wrong. `play` builds the requests on a
 * state, checks the replies (throwing on a mismatch) and applies them; it gets no replies on the first call,
 * which only builds what is sent.
 */
async function settle(
  m: TrackerModel,
  send: (requests: Rendered[]) => Promise<Reply[]>,
  play: (state: TrackerModel, replies: Reply[] | undefined) => Rendered[],
): Promise<void> {
  const requests = play(m.clone(), undefined);
  const replies = await send(requests);
  const wire = JSON.stringify(requests.map((x) => x.lines));
  const survivors: TrackerModel[] = [];
  let firstProblem: Error | undefined;
  for (const candidate of m.candidates()) {
    const trial = candidate.clone();
    try {
      const built = play(trial, replies);
      if (JSON.stringify(built.map((x) => x.lines)) !== wire) throw new Error('the state would have sent other lines');
      survivors.push(trial);
    } catch (err) {
      firstProblem ??= err as Error;
    }
  }
  if (survivors.length === 0) throw firstProblem!;
  m.adopt(survivors);
}

/** Builds one request on `state` and, given its reply, checks and applies it. */
function playOne(state: TrackerModel, spec: StepSpec, reply: Reply | undefined, counted: boolean): Rendered {
  const rendered = render(state, spec);
  const { lines, outcome } = rendered;
  if (reply) check(state, spec, lines, outcome, reply, counted);
  if (outcome.ok) outcome.apply?.(reply ?? { ok: true, message: '', lines: [] });
  return rendered;
}

export class TrackerStep implements fc.AsyncCommand<TrackerModel, RealTracker> {
  constructor(readonly spec: StepSpec) {}

  check(): boolean {
    return true;
  }

  async run(m: TrackerModel, r: RealTracker): Promise<void> {
    if (this.spec.t === 'reconnect') {
      count('reconnect');
      return this.reconnect(m, r);
    }
    const conn = r.conns[this.spec.c];
    let counted = false;
    await settle(
      m,
      async ([request]) => {
        conn.write(request.lines.map((l) => `${l}\n`).join(''));
        return [await conn.reply(15_000)];
      },
      (state, replies) => {
        const once = replies !== undefined && !counted;
        if (once) counted = true;
        return [playOne(state, this.spec, replies?.[0], once)];
      },
    );
  }

  /** Drops the connection without logout and opens a new one; a logged-in session is resumed with its token. */
  private async reconnect(m: TrackerModel, r: RealTracker): Promise<void> {
    const c = this.spec.c;
    const user = m.connUser[c];
    const token = m.connToken[c];
    r.conns[c].close();
    r.conns[c] = await RawConn.open(r.port);
    const states = m.candidates();
    states.forEach((x) => x.endSession(c));
    if (user === undefined || token === undefined) return;
    // the tracker ends the old session when it sees the close; until then the user counts as logged in
    const deadline = Date.now() + 10_000;
    for (;;) {
      const reply = await r.conns[c].request(`resume ${token}`);
      if (reply.ok) break;
      if (reply.code === 'ALREADY_LOGGED_IN' && Date.now() < deadline) {
        await new Promise((res) => setTimeout(res, 20));
        continue;
      }
      if (EXPECT.resumeAfterDrop)
        throw new Error(`resume after a dropped connection: ERR ${reply.code} ${reply.message}`);
      for (const x of states) {
        const t = x.tokens.find((y) => y.token === token);
        if (t) t.live = false;
      }
      return;
    }
    for (const x of states) {
      x.connUser[c] = user;
      x.connToken[c] = token;
    }
  }

  toString(): string {
    return describeStep(this.spec);
  }
}

/**
 * A common start, so that runs reach files and seeders quickly: users 0-2 exist and are logged in on
 * connections 0-2, user 0 owns group 0, users 1 and 2 are in it, user 0 shares a file in it. User 3 and groups 1-3 are left for the run to create.
 */
export function warmStart(): TrackerStep[] {
  const none: Rid = { kind: 'none' };
  const specs: StepSpec[] = [
    ...[0, 1, 2].map((u): StepSpec => ({ t: 'create_user', c: u, rid: none, u, pw: 'std' })),
    ...[0, 1, 2].map((u): StepSpec => ({ t: 'login', c: u, rid: none, u, right: true })),
    { t: 'create_group', c: 0, rid: none, g: 0 },
    { t: 'join_group', c: 1, rid: none, g: 0 },
    { t: 'join_group', c: 2, rid: none, g: 0 },
    { t: 'accept_request', c: 0, rid: none, g: 0, u: 1 },
    { t: 'accept_request', c: 0, rid: none, g: 0, u: 2 },
    {
      t: 'upload_file',
      c: 0,
      rid: none,
      g: 0,
      name: 0,
      content: -1,
      dir: 0,
      lines: 0,
      port: 'bare',
      pp: 0,
      flaw: 'none',
    },
  ];
  return specs.map((spec) => new TrackerStep(spec));
}

/* ------------------------------------------------ arbitraries ------------------------------------------------ */

const conn = fc.integer({ min: 0, max: CONNECTIONS - 1 });
const userRef = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: USER_POOL - 1 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: USER_POOL, max: USER_POOL + BAD_USER_IDS.length - 1 }),
  },
);
const groupRef = fc.oneof(
  { weight: 6, arbitrary: fc.constant(0) },
  { weight: 3, arbitrary: fc.constant(1) },
  { weight: 2, arbitrary: fc.integer({ min: 2, max: GROUP_POOL - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: GROUP_POOL, max: GROUP_POOL + BAD_GROUP_IDS.length - 1 }) },
);
/** Groups for file commands: mostly the one the common start made. */
const fileGroupRef = fc.oneof(
  { weight: 12, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 1, max: GROUP_POOL - 1 }) },
  { weight: 1, arbitrary: fc.integer({ min: GROUP_POOL, max: GROUP_POOL + BAD_GROUP_IDS.length - 1 }) },
);
const nameRef = fc.oneof(
  { weight: 6, arbitrary: fc.integer({ min: 0, max: 2 }) },
  {
    weight: 2,
    arbitrary: fc.integer({ min: 3, max: FILE_NAMES.length - 1 }),
  },
);
const rid: fc.Arbitrary<Rid> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'fresh' as const }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reuse' as const), pick: fc.nat(50) }) },
);
const portVariant = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom<PortVariant>('bare', 'loopback', 'wildcard', 'typed-ip', 'hostname') },
  { weight: 1, arbitrary: fc.constantFrom<PortVariant>('bad-port', 'bad-text') },
);

const spelling = fc.oneof(
  { weight: 12, arbitrary: fc.constant<Spelling>('plain') },
  { weight: 1, arbitrary: fc.constantFrom<Spelling>('tabs', 'spaces', 'quoted', 'crlf') },
);
const base = { c: conn, rid, spell: spelling };
/** The command each step arbitrary makes. */
const stepKinds = new Map<fc.Arbitrary<unknown>, string>();
const step = <T extends Record<string, fc.Arbitrary<unknown>>>(t: string, fields: T) => {
  const arb = fc
    .record({ t: fc.constant(t), ...base, ...fields })
    .map((spec) => new TrackerStep(spec as unknown as StepSpec));
  stepKinds.set(arb, t);
  return arb;
};

/** Every tracker command, valid and invalid, one request at a time. */
const singleSteps: fc.Arbitrary<TrackerStep>[] = [
  step('create_user', {
    u: userRef,
    pw: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom<PasswordVariant>('std', 'spaced', 'quotes', 'max') },
      { weight: 1, arbitrary: fc.constantFrom<PasswordVariant>('empty', 'long') },
    ),
  }),
  step('create_user', { u: userRef, pw: fc.constant<PasswordVariant>('std') }),
  step('login', { u: userRef, right: fc.boolean() }),
  step('login', { u: fc.constant(-1), right: fc.constant(true) }),
  step('login', { u: fc.constant(-1), right: fc.constant(true) }),
  step('logout', {}),
  step('list_groups', {}),
  step('create_group', { g: groupRef }),
  step('create_group', { g: groupRef }),
  step('join_group', { g: groupRef }),
  step('join_group', { g: groupRef }),
  step('leave_group', { g: groupRef }),
  step('list_requests', { g: groupRef }),
  step('accept_request', { g: groupRef, u: userRef }),
  step('accept_request', { g: groupRef, u: userRef }),
  ...[1, 2, 3, 4].map(() =>
    step('upload_file', {
      g: fileGroupRef,
      name: nameRef,
      content: fc.oneof(
        { weight: 4, arbitrary: fc.constant(-1) },
        { weight: 1, arbitrary: fc.nat(CONTENTS.length - 1) },
      ),
      dir: fc.nat(3),
      lines: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
      ),
      port: portVariant,
      pp: fc.nat(2),
      flaw: fc.oneof(
        { weight: 10, arbitrary: fc.constant<Flaw>('none') },
        { weight: 4, arbitrary: fc.constantFrom<Flaw>(...FLAWS) },
      ),
    }),
  ),
  step('list_files', { g: fileGroupRef }),
  step('list_files', { g: fileGroupRef }),
  ...[1, 2, 3, 4].map(() => step('download_file', { g: fileGroupRef, name: nameRef, dest: fc.boolean() })),
  step('new_seeder', { g: fileGroupRef, name: nameRef, dir: fc.nat(3), port: portVariant, pp: fc.nat(2) }),
  step('new_seeder', { g: fileGroupRef, name: nameRef, dir: fc.nat(3), port: portVariant, pp: fc.nat(2) }),
  step('stop_share', { g: fileGroupRef, name: nameRef }),
  step('stop_share', { g: fileGroupRef, name: nameRef }),
  step('partial_seeder', { g: fileGroupRef, name: nameRef, port: portVariant, pp: fc.nat(2) }),
  step('partial_seeder', { g: fileGroupRef, name: nameRef, port: portVariant, pp: fc.nat(2) }),
  step('stop_partial', { g: fileGroupRef, name: nameRef }),
  step('list_seeders', { g: fileGroupRef, name: nameRef }),
  step('resume', { token: fc.constantFrom('live' as const, 'junk' as const, 'not-hex' as const), pick: fc.nat(20) }),
  step('reconnect', {}),
  step('junk', { junk: fc.constantFrom<Junk>(...JUNK) }),
];

/** Requests that may go in a pipelined batch: all but login (see PipelinedSteps) and reconnect. */
const pipelinable = singleSteps.filter((arb) => !['login', 'reconnect'].includes(stepKinds.get(arb) ?? 'login'));

/** Requests that may race (see RacingSteps): all but reconnect, resume, and those with a request id. */
const raceable = singleSteps.filter((arb) => !['reconnect', 'resume'].includes(stepKinds.get(arb) ?? 'reconnect'));
const noRid: Rid = { kind: 'none' };

/** Every tracker command, valid and invalid, alone or pipelined, as fast-check commands. */
export const trackerSteps: fc.Arbitrary<fc.AsyncCommand<TrackerModel, RealTracker>>[] = [
  ...singleSteps,
  ...[1, 2].map(() =>
    fc
      .tuple(conn, fc.array(fc.oneof(...pipelinable), { minLength: 2, maxLength: 5 }))
      .map(([c, cmds]) => new PipelinedSteps(cmds.map((cmd) => ({ ...cmd.spec, c })))),
  ),
  // the same request from two connections at once, and two unrelated ones
  ...[1, 2].map(() =>
    fc.tuple(fc.oneof(...raceable), conn, fc.nat(1)).map(([cmd, c, k]) => {
      const other = (c + 1 + k) % CONNECTIONS;
      return new RacingSteps({ ...cmd.spec, c, rid: noRid }, { ...cmd.spec, c: other, rid: noRid });
    }),
  ),
  fc.tuple(fc.oneof(...raceable), fc.oneof(...raceable), conn, fc.nat(1)).map(([a, b, c, k]) => {
    const other = (c + 1 + k) % CONNECTIONS;
    return new RacingSteps({ ...a.spec, c, rid: noRid }, { ...b.spec, c: other, rid: noRid });
  }),
];
