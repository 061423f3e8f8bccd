import { compareOps, StampedOp, VersionVector } from '@app/protocol';
import { Injectable, Optional } from '@nestjs/common';
import { Checkpointable, InMemoryUnitOfWork, Restore, restoringOnError } from '../storage/in-memory-unit-of-work';
import { OpLogStore, REQUEST_MEMORY_MS, SnapshotCut, SnapshotEntry } from './oplog.store';

@Injectable()
export class InMemoryOpLogStore implements OpLogStore, Checkpointable {
  private ops: StampedOp[] = [];
  private readonly keys = new Set<string>();
  private cut: SnapshotCut | undefined;
  private rows: SnapshotEntry[] = [];
  private incoming: SnapshotEntry[] = [];
  /** `${actor} ${requestId}` -> time, of compacted ops. */
  private compactedRequests = new Map<string, number>();

  /** Enlists with the in-memory unit of work when one is provided beside it, so that a failed change undoes it too. */
  constructor(@Optional() work?: InMemoryUnitOfWork) {
    work?.enlist(this);
  }

  transaction<T>(work: () => T): T {
    return restoringOnError(this, work);
  }

  checkpoint(): Restore {
    const ops = [...this.ops];
    const keys = new Set(this.keys);
    const { cut, rows } = this;
    const incoming = [...this.incoming];
    const compactedRequests = new Map(this.compactedRequests);
    return () => {
      this.ops = ops;
      this.keys.clear();
      keys.forEach((k) => this.keys.add(k));
      this.cut = cut;
      this.rows = rows;
      this.incoming = incoming;
      this.compactedRequests = compactedRequests;
    };
  }

  append(op: StampedOp): boolean {
    const key = `${op.origin}/${op.seq}`;
    if (this.keys.has(key)) return false;
    this.keys.add(key);
    this.ops.push(op);
    this.ops.sort(compareOps);
    return true;
  }

  all(): Iterable<StampedOp> {
    return [...this.ops];
  }

  after(vv: VersionVector, limit: number): StampedOp[] {
    return this.ops.filter((op) => op.seq > (vv.get(op.origin) ?? 0)).slice(0, limit);
  }

  following(op: StampedOp, limit: number): StampedOp[] {
    return this.ops.filter((other) => compareOps(other, op) > 0).slice(0, limit);
  }

  versionVector(): Map<number, number> {
    const vv = new Map<number, number>();
    for (const op of this.ops) vv.set(op.origin, Math.max(vv.get(op.origin) ?? 0, op.seq));
    return vv;
  }

  last(): StampedOp | undefined {
    return this.ops[this.ops.length - 1];
  }

  maxLamport(): number {
    return this.ops.reduce((m, op) => Math.max(m, op.lamport), 0);
  }

  hasRequest(requestId: string, actor: string): boolean {
    if (requestId === '' || actor === '') return false;
    return (
      this.ops.some((op) => op.requestId === requestId && op.actor === actor) ||
      this.compactedRequests.has(`${actor} ${requestId}`)
    );
  }

  count(): number {
    return this.ops.length;
  }

  snapshot(): SnapshotCut | undefined {
    return this.cut;
  }

  snapshotRows(after = 0): Iterable<SnapshotEntry & { readonly n: number }> {
    return this.rows.map((r, i) => ({ ...r, n: i + 1 })).slice(after);
  }

  replaceSnapshot(cut: Omit<SnapshotCut, 'opCount' | 'rows'>, rows: Iterable<SnapshotEntry>): number {
    const covered = (op: StampedOp) => op.seq <= (cut.versionVector.get(op.origin) ?? 0);
    const deleted = this.ops.filter(covered);
    const since = cut.takenAt - REQUEST_MEMORY_MS;
    for (const [key, time] of this.compactedRequests) if (time < since) this.compactedRequests.delete(key);
    for (const op of deleted) {
      if (op.requestId !== '' && op.actor !== '' && op.time >= since) {
        this.compactedRequests.set(`${op.actor} ${op.requestId}`, op.time);
      }
    }
    this.ops = this.ops.filter((op) => !covered(op));
    for (const op of deleted) this.keys.delete(`${op.origin}/${op.seq}`);
    const opCount = (this.cut?.opCount ?? 0) + deleted.length;
    this.rows = [...rows].map(({ part, row }) => ({ part, row: [...row] }));
    this.cut = { ...cut, versionVector: new Map(cut.versionVector), opCount, rows: this.rows.length };
    return deleted.length;
  }

  stageSnapshotRows(rows: readonly SnapshotEntry[], fresh: boolean): void {
    if (fresh) this.incoming = [];
    this.incoming.push(...rows);
  }

  stagedSnapshotRows(): Iterable<SnapshotEntry> {
    return [...this.incoming];
  }

  clearStagedSnapshot(): void {
    this.incoming = [];
  }
}
