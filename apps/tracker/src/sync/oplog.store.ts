import { StampedOp, VersionVector } from '@app/protocol';

/** Every replicated change this tracker knows of, from every origin, durably. */
export interface OpLogStore {
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
  /** Whether `actor` (a logged-in user, never '') made a change with this request id. */
  hasRequest(requestId: string, actor: string): boolean;
  count(): number;
}
