import { VersionVector } from '@app/protocol';

/**
 * When the op log may be compacted without trackers diverging.
 *
 * Every tracker applies ops in one total order (Lamport clock, origin, seq). Once ops are folded into a snapshot,
 * an op that arrives later and sorts before the cut can no longer be put in its place. So this tracker compacts
 * its whole log (the state as it is, up to the last op it holds) only when, for every other tracker N of
 * tracker_info.txt, what N said it holds (its version vector, asked over the link just before):
 *
 * - covers every op this tracker holds: N holds the last op of the cut, so every op N makes from then on has a
 *   higher Lamport clock and sorts after the cut; and N never needs the compacted ops from this tracker;
 * - has no op of N's own that this tracker lacks: every op N made before that is here, inside the cut.
 *
 * Ops of a third tracker M are covered by M's own answer. A tracker that is not linked, or behind, holds
 * compaction back until it has caught up.
 */
export function compactionBlocker(
  mine: VersionVector,
  others: readonly number[],
  statuses: ReadonlyMap<number, VersionVector | undefined>,
): string | undefined {
  for (const n of others) {
    const theirs = statuses.get(n);
    if (!theirs) return `tracker ${n} is not linked`;
    for (const [origin, seq] of mine) {
      const held = theirs.get(origin) ?? 0;
      if (held < seq) return `tracker ${n} holds ${held} of the ${seq} changes of tracker ${origin}`;
    }
    const made = theirs.get(n) ?? 0;
    if (made > (mine.get(n) ?? 0)) return `tracker ${n} made changes this tracker has not received`;
  }
  return undefined;
}

/** The higher seq per origin of two version vectors. */
export function mergeVersionVectors(a: VersionVector, b: VersionVector | undefined): Map<number, number> {
  const merged = new Map(a);
  for (const [origin, seq] of b ?? []) merged.set(origin, Math.max(merged.get(origin) ?? 0, seq));
  return merged;
}

/** A snapshot from another tracker that cannot be taken; nothing of it was kept. */
export class SnapshotRefusedError extends Error {
  override readonly name = 'SnapshotRefusedError';
}
