import fc from 'fast-check';
import { ChunkScheduler } from './chunk-scheduler';

/** Small deterministic PRNG (mulberry32) for repeatable "random" choices. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Takes chunks for `seeder` until the scheduler has nothing more for it. */
function drain(s: ChunkScheduler, seeder: string): number[] {
  const got: number[] = [];
  for (let i = s.next(seeder); i !== undefined; i = s.next(seeder)) got.push(i);
  return got;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/**
 * Runs seeders with `slots` requests each until done: every step completes
 * one random outstanding request and lets that seeder ask again.
 */
function simulate(s: ChunkScheduler, seeders: string[], slots: number, random: () => number) {
  const outstanding: { seeder: string; index: number; remainingAtRequest: number }[] = [];
  const requests: typeof outstanding = [];
  const refill = (seeder: string) => {
    while (outstanding.filter((o) => o.seeder === seeder).length < slots) {
      const index = s.next(seeder);
      if (index === undefined) return;
      const req = { seeder, index, remainingAtRequest: s.remainingCount };
      outstanding.push(req);
      requests.push(req);
    }
  };
  seeders.forEach(refill);
  let firstCompletions = 0;
  while (outstanding.length > 0) {
    const [req] = outstanding.splice(Math.floor(random() * outstanding.length), 1);
    if (s.complete(req.index, req.seeder)) firstCompletions++;
    seeders.forEach(refill);
  }
  return { requests, firstCompletions };
}

describe(ChunkScheduler.name, () => {
  it('hands each seeder the rarest chunk it has first', () => {
    const s = new ChunkScheduler(6, { random: seeded(1), endGame: false });
    s.addSeeder('a');
    s.addSeeder('b', [0, 1, 2]);
    s.addSeeder('c', [0, 1]);
    const order = drain(s, 'a');
    expect(order.slice(0, 3).sort()).toEqual([3, 4, 5]); // only a has them
    expect(order[3]).toBe(2); // a and b
    expect(order.slice(4).sort()).toEqual([0, 1]); // everyone
    expect(drain(s, 'c')).toEqual([]);
  });

  it('orders equally rare chunks by the random source, so downloaders spread out', () => {
    const keys = [0.9, 0.1, 0.5, 0.3];
    const s = new ChunkScheduler(4, { random: () => keys.shift()!, endGame: false });
    s.addSeeder('a');
    expect(drain(s, 'a')).toEqual([1, 3, 2, 0]);

    const firstPicks = new Set(
      range(20).map((seed) => {
        const t = new ChunkScheduler(100, { random: seeded(seed) });
        t.addSeeder('a');
        return t.next('a');
      }),
    );
    expect(firstPicks.size).toBeGreaterThan(10);
  });

  it('requests every chunk exactly once when seeders work to completion without end-game', () => {
    const random = seeded(7);
    const s = new ChunkScheduler(300, { random, endGame: false });
    ['a', 'b', 'c'].forEach((id) => s.addSeeder(id));
    const { requests, firstCompletions } = simulate(s, ['a', 'b', 'c'], 4, random);
    expect(requests).toHaveLength(300);
    expect(new Set(requests.map((r) => r.index)).size).toBe(300);
    expect(firstCompletions).toBe(300);
    expect(s.isDone).toBe(true);
    expect(new Set(requests.map((r) => r.seeder))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('with end-game on, duplicates a chunk only in the last few and counts each chunk done once', () => {
    const random = seeded(11);
    const s = new ChunkScheduler(300, { random, endGameThreshold: 5 });
    ['a', 'b', 'c'].forEach((id) => s.addSeeder(id));
    const { requests, firstCompletions } = simulate(s, ['a', 'b', 'c'], 4, random);
    const seen = new Set<number>();
    const duplicates = requests.filter((r) => (seen.has(r.index) ? true : (seen.add(r.index), false)));
    expect(seen.size).toBe(300);
    expect(firstCompletions).toBe(300);
    expect(s.doneCount).toBe(300);
    // a duplicate is only ever issued once every chunk left is in flight (3 seeders x 4) or under the threshold
    for (const d of duplicates) expect(d.remainingAtRequest).toBeLessThanOrEqual(12);
    expect(duplicates.length).toBeGreaterThan(0);
    expect(duplicates.length).toBeLessThanOrEqual(12 * 2);
  });

  it('gives a failed chunk to another seeder, not back to the one that failed it', () => {
    const s = new ChunkScheduler(3, { random: seeded(3), endGame: false });
    s.addSeeder('a');
    s.addSeeder('b');
    const c = s.next('a')!;
    s.fail(c, 'a');
    expect(drain(s, 'a')).not.toContain(c);
    expect(s.next('b')).toBe(c);
  });

  it('takes back a cancelled chunk without holding it against the seeder, and keeps the seeder a holder', () => {
    const s = new ChunkScheduler(2, { random: seeded(3), endGame: false });
    s.addSeeder('a');
    s.addSeeder('b');
    const c = s.next('a')!;
    s.cancel(c, 'a');
    expect(s.inFlightOf('a')).toEqual([]);
    expect(s.inFlightCount).toBe(0);
    // a may have it again, ahead of the other chunk, as if never asked
    expect(s.next('a')).toBe(c);
    s.cancel(c, 'a');
    s.cancel(c, 'a'); // twice is harmless
    s.removeSeeder('b');
    expect(s.canFinish).toBe(true);
    s.complete(s.next('a')!, 'a');
    s.cancel(c, 'a');
    expect(s.doneCount).toBe(1);
  });

  it('lets the seeder that failed a chunk retry it once every holder has failed it', () => {
    const s = new ChunkScheduler(1, { random: seeded(3) });
    s.addSeeder('a');
    s.addSeeder('b');
    expect(s.next('a')).toBe(0);
    s.fail(0, 'a');
    expect(s.next('a')).toBeUndefined();
    expect(s.next('b')).toBe(0);
    s.fail(0, 'b');
    expect(s.next('a')).toBe(0);
    // and after b leaves, a is the only holder: it may retry
    s.fail(0, 'a');
    s.removeSeeder('b');
    expect(s.next('a')).toBe(0);
  });

  it('lets a seeder with nothing else duplicate an in-flight chunk only near the end; the first completion wins', () => {
    const s = new ChunkScheduler(20, { random: seeded(5), endGameThreshold: 3 });
    s.addSeeder('a');
    s.addSeeder('slow', [0]);
    const a = drain(s, 'a'); // everything is now in flight with a
    expect(a).toHaveLength(20);
    // 20 chunks left, all in flight: end-game, slow may duplicate its only chunk
    expect(s.next('slow')).toBe(0);
    expect(s.complete(0, 'slow')).toBe(true);
    expect(s.complete(0, 'a')).toBe(false);
    expect(s.doneCount).toBe(1);

    // chunk 0 sorts first while a is the only seeder, so a takes it at once
    const keys = range(20).map((i) => (i === 0 ? 0 : 0.5));
    const t = new ChunkScheduler(20, { random: () => keys.shift()!, endGameThreshold: 3 });
    t.addSeeder('a');
    expect(t.next('a')).toBe(0);
    t.addSeeder('slow', [0]);
    // chunk 0 is in flight with a, 19 are still open: no duplicate yet
    expect(t.next('slow')).toBeUndefined();
    // a finishes everything but chunk 0: 1 left, under the threshold
    for (let i = t.next('a'); i !== undefined; i = t.next('a')) t.complete(i, 'a');
    expect(t.remainingCount).toBe(1);
    expect(t.next('slow')).toBe(0);
    expect(t.next('slow')).toBeUndefined(); // never twice to the same seeder
    expect(t.complete(0, 'a')).toBe(true);
    expect(t.complete(0, 'slow')).toBe(false);
    expect(t.isDone).toBe(true);
  });

  it('returns the chunks of a removed seeder to the pool, except those still in flight elsewhere', () => {
    const s = new ChunkScheduler(4, { random: seeded(9), endGameThreshold: 4 });
    s.addSeeder('a');
    s.addSeeder('b');
    const a = [s.next('a')!, s.next('a')!];
    const b = [s.next('b')!, s.next('b')!];
    const dup = s.next('b')!; // end-game: 4 left, all in flight
    expect(a).toContain(dup);
    const returned = s.removeSeeder('a');
    expect(returned).toEqual(a.filter((i) => i !== dup));
    expect(s.next('b')).toBe(returned[0]);
    expect(s.inFlightOf('b').sort()).toEqual([...b, dup, returned[0]].sort());
  });

  it('knows when no live seeder can supply a missing chunk', () => {
    const s = new ChunkScheduler(3);
    s.addSeeder('a', [0, 1]);
    s.addSeeder('b', [2]);
    expect(s.canFinish).toBe(true);
    s.removeSeeder('b');
    expect(s.canFinish).toBe(false);
    expect(s.unavailableChunk()).toBe(2);
    expect(drain(s, 'a').sort()).toEqual([0, 1]);

    const t = new ChunkScheduler(3);
    t.addSeeder('a', [0, 1]);
    t.addSeeder('b', [2]);
    t.complete(t.next('b')!, 'b');
    t.removeSeeder('b');
    expect(t.canFinish).toBe(true);
  });

  it('counts done and remaining chunks and refuses indexes outside the file', () => {
    const s = new ChunkScheduler(2);
    expect(s.isDone).toBe(false);
    s.addSeeder('a');
    s.complete(s.next('a')!, 'a');
    expect([s.doneCount, s.remainingCount]).toEqual([1, 1]);
    expect(() => s.complete(2, 'a')).toThrow(RangeError);
    expect(new ChunkScheduler(0).isDone).toBe(true);
  });

  it('starting with chunks present (a resumed download), hands out only the missing ones', () => {
    const s = new ChunkScheduler(6, { endGame: false });
    for (const i of [0, 2, 3]) expect(s.markPresent(i)).toBe(true);
    expect(s.markPresent(2)).toBe(false);
    expect([s.doneCount, s.remainingCount]).toEqual([3, 3]);
    s.addSeeder('a');
    s.addSeeder('b', [1]);
    expect(drain(s, 'b')).toEqual([1]);
    expect(drain(s, 'a').sort()).toEqual([4, 5]);
    expect(s.unavailableChunk()).toBeUndefined();
    for (const i of [1, 4, 5]) expect(s.complete(i, i === 1 ? 'b' : 'a')).toBe(true);
    expect(s.isDone).toBe(true);

    const all = new ChunkScheduler(2);
    all.markPresent(0);
    all.markPresent(1);
    expect(all.isDone).toBe(true);
    all.addSeeder('a');
    expect(all.next('a')).toBeUndefined();
    // a present chunk no seeder holds does not stop the download
    const partial = new ChunkScheduler(2);
    partial.addSeeder('a', [1]);
    expect(partial.unavailableChunk()).toBe(0);
    partial.markPresent(0);
    expect(partial.unavailableChunk()).toBeUndefined();
    expect(() => partial.markPresent(2)).toThrow(RangeError);
    partial.next('a');
    expect(() => partial.markPresent(1)).toThrow(/in flight/);
  });

  it('never hands out a done chunk, a chunk the seeder lacks, or one it already has in flight', () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('next' as const), s: fc.nat(2) }),
      fc.record({ t: fc.constant('complete' as const), s: fc.nat(2), k: fc.nat(20) }),
      fc.record({ t: fc.constant('fail' as const), s: fc.nat(2), k: fc.nat(20) }),
      fc.record({ t: fc.constant('remove' as const), s: fc.nat(2) }),
      fc.record({ t: fc.constant('have' as const), s: fc.nat(2), k: fc.nat(11) }),
      fc.record({ t: fc.constant('lacks' as const), s: fc.nat(2), k: fc.nat(11) }),
      fc.record({ t: fc.constant('setHeld' as const), s: fc.nat(2), h: fc.subarray(range(12)) }),
    );
    fc.assert(
      fc.property(fc.array(fc.subarray(range(12)), { minLength: 3, maxLength: 3 }), fc.array(op), (holds, ops) => {
        const s = new ChunkScheduler(12, { random: seeded(1), endGameThreshold: 4 });
        const ids = ['a', 'b', 'c'];
        holds.forEach((h, i) => s.addSeeder(ids[i], h));
        const held = holds.map((h) => new Set(h));
        const done = new Set<number>();
        for (const o of ops) {
          const id = ids[o.s];
          if (o.t === 'next') {
            const before = s.inFlightOf(id);
            const k = s.next(id);
            if (k === undefined) continue;
            expect(done.has(k)).toBe(false);
            expect(before).not.toContain(k);
            expect(s.hasSeeder(id) && held[o.s].has(k)).toBe(true);
          } else if (o.t === 'complete' && o.k < 12) {
            if (s.complete(o.k, id)) done.add(o.k);
          } else if (o.t === 'fail' && o.k < 12) {
            s.fail(o.k, id);
          } else if (o.t === 'remove') {
            s.removeSeeder(id);
          } else if (o.t === 'have') {
            s.addChunks(id, [o.k]);
            if (s.hasSeeder(id)) held[o.s].add(o.k);
          } else if (o.t === 'lacks') {
            s.lacks(id, o.k);
            held[o.s].delete(o.k);
          } else if (o.t === 'setHeld' && s.hasSeeder(id)) {
            s.setHeld(
              id,
              Uint8Array.from(range(12), (i) => (o.h.includes(i) ? 1 : 0)),
            );
            held[o.s] = new Set(o.h);
          }
          for (const [i, h] of held.entries()) {
            if (!s.hasSeeder(ids[i])) continue;
            for (const k of s.inFlightOf(ids[i])) expect(h.has(k)).toBe(true);
          }
          for (let k = 0; k < 12; k++) {
            const holders = held.filter((h, i) => s.hasSeeder(ids[i]) && h.has(k)).length;
            expect(s.availability(k)).toBe(holders);
          }
          expect(s.doneCount).toBe(done.size);
        }
      }),
    );
  });

  describe('peers that hold part of the file', () => {
    it('takes first the chunk only one peer holds, and follows HAVEs as availability changes', () => {
      const s = new ChunkScheduler(8, { random: () => 0, endGame: false });
      s.addSeeder('full');
      s.addSeeder('p', []);
      s.addSeeder('q', []);
      s.setHeld('p', Uint8Array.from([1, 1, 1, 0, 0, 0, 0, 0]));
      s.setHeld('q', Uint8Array.from([1, 1, 0, 0, 0, 0, 0, 0]));
      // 3..7 are held by full alone, 2 by two, 0 and 1 by three: rarest first, file order among equals
      expect(s.next('full')).toBe(3);
      s.addChunks('p', [4, 5]);
      s.addChunks('q', [4, 6]);
      // now 7 is the only chunk one peer holds; 5 and 6 two, 4 three
      expect(s.next('full')).toBe(7);
      expect(s.next('full')).toBe(2);
      expect(s.next('p')).toBe(5);
      expect(s.next('q')).toBe(6);
      expect(s.next('p')).toBe(0);
      // a chunk nobody held comes within reach as soon as a peer says it has it
      const t = new ChunkScheduler(4, { random: () => 0, endGame: false });
      t.addSeeder('p', [3]);
      expect(t.unavailableChunk()).toBe(0);
      expect(t.next('p')).toBe(3);
      expect(t.next('p')).toBeUndefined();
      t.addChunks('p', [1]);
      expect(t.next('p')).toBe(1);
      t.addChunks('p', [0, 2]);
      expect(t.canFinish).toBe(true);
      expect(drain(t, 'p')).toEqual([0, 2]);
    });

    it('a have-list replaces the whole file assumed on connecting, giving back what the peer lacks', () => {
      const s = new ChunkScheduler(4, { random: () => 0, endGame: false });
      s.addSeeder('p');
      expect(s.next('p')).toBe(0);
      expect(s.next('p')).toBe(1);
      expect(s.setHeld('p', Uint8Array.from([0, 1, 1, 0]))).toEqual([0]);
      expect(s.inFlightOf('p')).toEqual([1]);
      expect(s.heldCount('p')).toBe(2);
      expect(s.unavailableChunk()).toBe(0);
      expect(drain(s, 'p')).toEqual([2]);
      // it finished: it holds everything from now on
      s.setHeld('p', 'all');
      expect(s.heldCount('p')).toBe(4);
      expect(drain(s, 'p')).toEqual([0, 3]);
      expect(s.canFinish).toBe(true);
      expect(() => s.setHeld('p', new Uint8Array(3))).toThrow(RangeError);
    });

    it('a NOT_HELD answer puts the chunk back without blame and never asks that peer for it again', () => {
      const s = new ChunkScheduler(2, { random: () => 0, endGameThreshold: 0 });
      s.addSeeder('p');
      s.addSeeder('q', [0]);
      expect(s.next('p')).toBe(1); // rarest
      expect(s.next('p')).toBe(0);
      s.lacks('p', 0);
      expect(s.inFlightOf('p')).toEqual([1]);
      expect(s.availability(0)).toBe(1);
      // not failed by q, not barred for anyone: q takes it at once
      expect(s.next('q')).toBe(0);
      s.cancel(0, 'q');
      expect(s.next('p')).toBeUndefined();
      expect(s.next('q')).toBe(0);
      // p gets it later and may then be asked for it
      s.cancel(0, 'q');
      s.addChunks('p', [0]);
      expect(s.next('p')).toBe(0);
      // and q, which lacks it too, leaves it unheld but not failed
      s.lacks('q', 0);
      s.lacks('p', 0);
      expect(s.unavailableChunk()).toBe(0);
      expect(s.remainingCount).toBe(2);
    });

    it('end-game duplicates only chunks the asking peer holds, once no open chunk is held by anyone', () => {
      const s = new ChunkScheduler(20, { random: () => 0, endGameThreshold: 2 });
      s.addSeeder('a', range(10));
      s.addSeeder('b', []);
      expect(drain(s, 'a')).toEqual(range(10));
      // 10 chunks nobody holds are missing, but none held is open: b may duplicate what it holds
      expect(s.next('b')).toBeUndefined();
      s.addChunks('b', [7]);
      expect(s.next('b')).toBe(7);
      s.addChunks('b', [15]);
      // an open chunk b holds comes before any duplicate
      expect(s.next('b')).toBe(15);
      s.addChunks('b', [3]);
      expect(s.next('b')).toBe(3);
    });

    it('with random ties, two schedulers over the same seeders start far apart', () => {
      const a = new ChunkScheduler(200, { random: seeded(21) });
      const b = new ChunkScheduler(200, { random: seeded(22) });
      for (const s of [a, b]) s.addSeeder('seed');
      const firstA = new Set(range(20).map(() => a.next('seed')!));
      const firstB = range(20).map(() => b.next('seed')!);
      // in file order both would take 0..19; at random the overlap of 20 out of 200 is about 2
      expect(firstB.filter((i) => firstA.has(i)).length).toBeLessThan(10);
      expect([...firstA].some((i) => i >= 20)).toBe(true);
    });

    it('stays fast on 204,800 chunks with partial peers sending HAVEs', () => {
      const n = 204_800;
      const random = seeded(5);
      const shuffled = () => {
        const a = range(n);
        for (let i = n - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [a[i], a[j]] = [a[j], a[i]];
        }
        return a;
      };
      const peers = ['p1', 'p2', 'p3'];
      // the peers gain chunks in their own random orders, 10 at a time, while every peer picks between HAVEs
      const orders = peers.map(shuffled);
      const started = Date.now();
      const s = new ChunkScheduler(n, { random });
      s.addSeeder('seed');
      for (const p of peers) s.addSeeder(p, []);
      let picks = 0;
      let haves = 0;
      for (let round = 0; round < 4_000; round++) {
        for (const [k, p] of peers.entries()) {
          s.addChunks(p, orders[k].slice(round * 10, round * 10 + 10));
          haves++;
          const i = s.next(p);
          if (i === undefined) continue;
          s.complete(i, p);
          picks++;
        }
        const i = s.next('seed');
        if (i === undefined) continue;
        s.complete(i, 'seed');
        picks++;
      }
      const ms = Date.now() - started;
      expect(picks).toBeGreaterThan(15_000);
      expect(haves).toBe(12_000);
      // about 0.4 s here (0.1 s of it the tie order of 204,800 random keys); a scan of the file per pick would
      // take tens of seconds
      expect(ms).toBeLessThan(20_000);
    });
  });
});
