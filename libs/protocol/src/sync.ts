import { ErrorCode, ProtocolError } from './errors';
import { decodeOpBody, encodeOpArgs, OpBody, OpBodyOf, OpKind } from './ops';
import { joinArgs, tokenize } from './tokenize';

/**
 * Tracker-to-tracker lines start with SYNC_MARKER (`123456789`). A tracker
 * first proves it holds the network's key (`sync_hello`, `sync_auth`), then
 * pulls what it lacks (`sync_fetch`) and pushes every change as
 *
 *     123456789 <command> <args...> <actor> <origin>/<seq>/<lamport>/<time>/<request_id>
 *
 * e.g. `123456789 create_group team alice 1/17/42/1764140000000/c1-9`.
 */
export const SyncCmd = {
  Hello: 'sync_hello',
  Auth: 'sync_auth',
  Fetch: 'sync_fetch',
  Digest: 'sync_digest',
  PresenceReset: 'presence_reset',
  PresenceSet: 'presence_set',
  PresenceUnset: 'presence_unset',
  PresencePartialSet: 'presence_partial_set',
  PresencePartialUnset: 'presence_partial_unset',
  Status: 'sync_status',
  Snapshot: 'sync_snapshot',
} as const;
export type SyncCmdName = (typeof SyncCmd)[keyof typeof SyncCmd];

const SYNC_NAMES = new Set<string>(Object.values(SyncCmd));
export const isSyncCommand = (name: string): name is SyncCmdName => SYNC_NAMES.has(name);

/** Who made a change and when: the part of a change its kind does not decide. */
export interface OpMeta {
  /** The user who made the change ('' when nobody was logged in, as for create_user). */
  readonly actor: string;
  /** Epoch ms at the origin; used for every timestamp the change stores. */
  readonly time: number;
  /** The client's `#id`, so that a retried request is applied once. */
  readonly requestId: string;
}

/** Where a change sits in the total order. */
export interface OpStamp {
  /** Number of the tracker that accepted the change. */
  readonly origin: number;
  /** 1, 2, 3... per origin. */
  readonly seq: number;
  readonly lamport: number;
}

/** A replicated change, as applied on every tracker in the same total order: one of the kinds of ops.ts. */
export type Op = OpBody & OpMeta;
export type StampedOp = Op & OpStamp;
/** A stamped change of one kind, as its applier gets it. */
export type StampedOpOf<K extends OpKind> = OpBodyOf<K> & OpMeta & OpStamp;

/** Total order every tracker applies changes in: Lamport clock, then origin tracker, then sequence. */
export function compareOps(
  a: Pick<StampedOp, 'lamport' | 'origin' | 'seq'>,
  b: Pick<StampedOp, 'lamport' | 'origin' | 'seq'>,
): number {
  return a.lamport - b.lamport || a.origin - b.origin || a.seq - b.seq;
}

const STAMP = /^(\d{1,4})\/(\d{1,15})\/(\d{1,15})\/(\d{1,15})\/([A-Za-z0-9_-]{1,64}|-)$/;

export function encodeOp(op: StampedOp): string {
  const stamp = `${op.origin}/${op.seq}/${op.lamport}/${op.time}/${op.requestId || '-'}`;
  return joinArgs([op.kind, ...encodeOpArgs(op), op.actor || '-', stamp]);
}

/** A change from its tokens; a ProtocolError for a bad stamp, an unknown kind or args that do not fit it. */
export function decodeOpTokens(tokens: readonly string[]): StampedOp {
  if (tokens.length < 3)
    throw new ProtocolError(ErrorCode.BadArguments, 'a change needs a command, an actor and a stamp');
  const kind = tokens[0];
  const stamp = STAMP.exec(tokens[tokens.length - 1]);
  if (!stamp)
    throw new ProtocolError(ErrorCode.BadArguments, `bad change stamp '${tokens[tokens.length - 1].slice(0, 60)}'`);
  const actor = tokens[tokens.length - 2];
  const [origin, seq, lamport, time] = stamp.slice(1, 5).map(Number);
  if (origin < 1 || seq < 1 || lamport < 1) throw new ProtocolError(ErrorCode.BadArguments, 'bad change stamp');
  // onto the fresh body: an object spread of it costs about 5 µs a change, most of a catch-up's decoding
  return Object.assign(decodeOpBody(kind, tokens.slice(1, -2)), {
    actor: actor === '-' ? '' : actor,
    time,
    requestId: stamp[5] === '-' ? '' : stamp[5],
    origin,
    seq,
    lamport,
  });
}

export const decodeOp = (line: string): StampedOp => decodeOpTokens(tokenize(line));

/** Highest sequence number seen from each origin: `1:120,2:33`. */
export type VersionVector = ReadonlyMap<number, number>;

export function formatVersionVector(vv: VersionVector): string {
  return (
    [...vv.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([o, s]) => `${o}:${s}`)
      .join(',') || '-'
  );
}

export function parseVersionVector(text: string): Map<number, number> {
  const vv = new Map<number, number>();
  if (text === '-' || text === '') return vv;
  for (const part of text.split(',')) {
    const m = /^(\d{1,4}):(\d{1,15})$/.exec(part);
    if (!m) throw new ProtocolError(ErrorCode.BadArguments, `bad version vector entry '${part.slice(0, 40)}'`);
    vv.set(Number(m[1]), Number(m[2]));
  }
  return vv;
}

/** `#<id>` in front of a request line: the client's id for it, so that a retry is applied once. */
export const REQUEST_ID = /^#([A-Za-z0-9_-]{1,64})$/;

/** The head of a `sync_snapshot` reply: where the log was compacted, and how many rows the snapshot has. */
export interface SnapshotHead {
  readonly versionVector: VersionVector;
  /** The last op the snapshot holds, in the total order. */
  readonly lamport: number;
  readonly origin: number;
  readonly seq: number;
  readonly rows: number;
}

/** `<version_vector> <lamport>/<origin>/<seq> <rows>` */
export function formatSnapshotHead(head: SnapshotHead): string {
  return `${formatVersionVector(head.versionVector)} ${head.lamport}/${head.origin}/${head.seq} ${head.rows}`;
}

export function parseSnapshotHead(line: string): SnapshotHead {
  const m = /^(\S+) (\d{1,15})\/(\d{1,4})\/(\d{1,15}) (\d{1,15})$/.exec(line);
  if (!m) throw new ProtocolError(ErrorCode.BadArguments, `bad snapshot head '${line.slice(0, 60)}'`);
  const [lamport, origin, seq, rows] = m.slice(2).map(Number);
  return { versionVector: parseVersionVector(m[1]), lamport, origin, seq, rows };
}

/** One row of a snapshot on the wire: `<n> <part> <fields...>`, tokenised as a command line (2.1). */
export function formatSnapshotRow(n: number, part: string, row: readonly string[]): string {
  return joinArgs([String(n), part, ...row]);
}

export function parseSnapshotRow(line: string): { n: number; part: string; row: string[] } {
  const [nText = '', part = '', ...row] = tokenize(line);
  if (!/^[1-9]\d{0,14}$/.test(nText) || part === '') {
    throw new ProtocolError(ErrorCode.BadArguments, `bad snapshot row '${line.slice(0, 60)}'`);
  }
  return { n: Number(nText), part, row };
}
