import { compareOps, StampedOp, VersionVector } from '@app/protocol';
import { Injectable, Optional } from '@nestjs/common';
import { Checkpointable, InMemoryUnitOfWork, Restore } from '../storage/in-memory-unit-of-work';
import { OpLogStore } from './oplog.store';

@Injectable()
export class InMemoryOpLogStore implements OpLogStore, Checkpointable {
  private ops: StampedOp[] = [];
  private readonly keys = new Set<string>();

  /** Enlists with the in-memory unit of work when one is provided beside it, so that a failed change undoes it too. */
  constructor(@Optional() work?: InMemoryUnitOfWork) {
    work?.enlist(this);
  }

  transaction<T>(work: () => T): T {
    const restore = this.checkpoint();
    try {
      return work();
    } catch (err) {
      restore();
      throw err;
    }
  }

  checkpoint(): Restore {
    const ops = [...this.ops];
    const keys = new Set(this.keys);
    return () => {
      this.ops = ops;
      this.keys.clear();
      keys.forEach((k) => this.keys.add(k));
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
    return requestId !== '' && actor !== '' && this.ops.some((op) => op.requestId === requestId && op.actor === actor);
  }

  count(): number {
    return this.ops.length;
  }
}
