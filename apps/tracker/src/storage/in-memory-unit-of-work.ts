import { Injectable } from '@nestjs/common';
import { UnitOfWork } from './unit-of-work';

/** Puts a store back as it was when the checkpoint was taken. */
export type Restore = () => void;

/** An in-memory store that can take a checkpoint of its whole state and be put back to it. */
export interface Checkpointable {
  checkpoint(): Restore;
}

/** Runs `work`; when it throws, puts `store` back as it was before and rethrows. */
export function restoringOnError<T>(store: Checkpointable, work: () => T): T {
  const restore = store.checkpoint();
  try {
    return work();
  } catch (err) {
    restore();
    throw err;
  }
}

/**
 * The unit of work of the in-memory stores: each run takes a checkpoint of
 * every store enlisted with it (in-memory stores enlist themselves when this
 * is provided beside them) and, when the work throws, puts every one of them
 * back before the error goes on. Checkpoints copy the stores' maps, not the
 * records in them: fine for tests, not for millions of rows.
 */
@Injectable()
export class InMemoryUnitOfWork implements UnitOfWork {
  private readonly stores: Checkpointable[] = [];

  enlist(store: Checkpointable): void {
    if (!this.stores.includes(store)) this.stores.push(store);
  }

  get enlisted(): number {
    return this.stores.length;
  }

  run<T>(work: () => T): T {
    const restores = this.stores.map((s) => s.checkpoint());
    try {
      return work();
    } catch (err) {
      for (const restore of restores.reverse()) restore();
      throw err;
    }
  }
}
