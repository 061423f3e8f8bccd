import { StampedOp, VersionVector } from '@app/protocol';
import { SnapshotRow } from '../storage/snapshot-row';

/** Every replicated change this tracker knows of, from every origin, durably. */
export interface OpLogStore extends SnapshotStore {
  transaction<T>(work: () => T): T;
  /** Stores the change; false when (origin, seq) is already there. */
  append(op: StampedOp): boolean;
  /** Every change in the total order (Lamport clock, origin, seq). */
  all(): Iterable<StampedOp>;
  /** Changes whose seq is above `vv[origin]` (every change of an origin missing from vv), in the total order. */
  after(vv: VersionVector, limit: number): StampedOp[];
  /** Up to `limit` changes that sort after `op` (which need not be stored), in the total order. */
  following(op: StampedOp, limit: number): StampedOp[];
  /** Highest seq stored per origin. */
  versionVector(): Map<number, number>;
  /** The last change in the total order. */
  last(): StampedOp | undefined;
  maxLamport(): number;
  /** Whether `actor` (a logged-in user, never '') made a change with this request id (compacted ones included). */
  hasRequest(requestId: string, actor: string): boolean;
  count(): number;
}

/** How long the request ids of compacted ops are kept: a client retries a request within seconds, not hours. */
export const REQUEST_MEMORY_MS = 60 * 60_000;

/** Where the op log was compacted: the ops it no longer holds, all in the snapshot of the state at that point. */
export interface SnapshotCut {
  /** Highest seq per origin the snapshot holds: it holds every op up to there, and no other. */
  readonly versionVector: VersionVector;
  /** The last op the snapshot holds, in the total order. */
  readonly lamport: number;
  readonly origin: number;
  readonly seq: number;
  /** How many ops the snapshot stands for. */
  readonly opCount: number;
  /** How many rows it has. */
  readonly rows: number;
  /** Epoch ms when this tracker took or received it. */
  readonly takenAt: number;
}

/** One row of the snapshot: which part of the state (a participant's name) and the row. */
export interface SnapshotEntry {
  readonly part: string;
  readonly row: SnapshotRow;
}

/** What an op log that can be compacted keeps besides the ops: the snapshot at the cut. */
export interface SnapshotStore {
  /** The cut the log was compacted at, if it ever was. */
  snapshot(): SnapshotCut | undefined;
  /** The rows of the snapshot in their order, numbered from 1, after row `after`; read a page at a time. */
  snapshotRows(after?: number): Iterable<SnapshotEntry & { readonly n: number }>;
  /**
   * Replaces the snapshot by `cut` and `rows` (written as they are read) and deletes every op the cut's version
   * vector covers, keeping the request ids of those made since `cut.takenAt - REQUEST_MEMORY_MS` (and forgetting
   * older ones kept before). Returns how many ops it deleted. Call inside `transaction`.
   */
  replaceSnapshot(cut: Omit<SnapshotCut, 'opCount' | 'rows'>, rows: Iterable<SnapshotEntry>): number;
  /** Keeps rows of a snapshot that is coming in (`fresh`: forget those kept before). */
  stageSnapshotRows(rows: readonly SnapshotEntry[], fresh: boolean): void;
  /** The rows kept by `stageSnapshotRows`, in order; read a page at a time. */
  stagedSnapshotRows(): Iterable<SnapshotEntry>;
  clearStagedSnapshot(): void;
}
