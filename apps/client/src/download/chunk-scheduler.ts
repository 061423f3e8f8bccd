/** Chunks left at or under which a seeder with nothing new to fetch may duplicate a chunk in flight elsewhere. */
export const DEFAULT_END_GAME_THRESHOLD = 8;

export interface ChunkSchedulerOptions {
  /** Uniform in [0, 1); orders equally rare chunks so that several downloaders spread out. Default `Math.random`. */
  readonly random?: () => number;
  /** End-game starts when at most this many chunks are left, or when every chunk left is in flight. */
  readonly endGameThreshold?: number;
  /** False: never request a chunk twice at once (a slow last seeder then sets the pace). Default true. */
  readonly endGame?: boolean;
}

const OPEN = 0;
const IN_FLIGHT = 1;
const DONE = 2;

/** One bit per chunk, addressed by the chunk's rank (its place in the tie-break order). */
class RankBits {
  readonly words: Uint32Array;
  constructor(
    private readonly size: number,
    all = false,
  ) {
    this.words = new Uint32Array(Math.ceil(size / 32));
    if (all) {
      this.words.fill(0xffffffff);
      const spare = this.words.length * 32 - size;
      if (spare > 0) this.words[this.words.length - 1] = 0xffffffff >>> spare;
    }
  }
  copy(): RankBits {
    const copy = new RankBits(this.size);
    copy.words.set(this.words);
    return copy;
  }
  get(r: number): boolean {
    return (this.words[r >>> 5] & (1 << (r & 31))) !== 0;
  }
  set(r: number): void {
    this.words[r >>> 5] |= 1 << (r & 31);
  }
  clear(r: number): void {
    this.words[r >>> 5] &= ~(1 << (r & 31));
  }
}

/** The open chunks held by exactly `level` live seeders. */
interface Bucket {
  readonly bits: RankBits;
  size: number;
  /** Words before this one are zero. */
  cursor: number;
}

/** Open chunks by availability (index: live holders; level 0 is not kept). */
type Buckets = (Bucket | undefined)[];

function bucketAdd(buckets: Buckets, level: number, r: number, size: number): void {
  let bucket = buckets[level];
  if (!bucket) buckets[level] = bucket = { bits: new RankBits(size), size: 0, cursor: 0 };
  if (bucket.bits.get(r)) return;
  bucket.bits.set(r);
  bucket.size++;
  if (r >>> 5 < bucket.cursor) bucket.cursor = r >>> 5;
}

function bucketRemove(buckets: Buckets, level: number, r: number): void {
  const bucket = buckets[level];
  if (!bucket?.bits.get(r)) return;
  bucket.bits.clear(r);
  bucket.size--;
}

interface SeederState {
  /** Chunks this seeder has (by rank); undefined means all of them. */
  has: RankBits | undefined;
  /** With `has`: the open chunks it holds, by availability. */
  buckets: Buckets;
  /** Chunks requested from this seeder and not yet completed or failed by it. */
  readonly inFlight: Set<number>;
}

/**
 * Decides which chunk each seeder fetches next, for one file of `chunkCount`
 * chunks. Pure bookkeeping: no I/O, no timers.
 *
 * A chunk is missing (open), in flight (requested from one or more seeders)
 * or done. `next(seeder)` hands out the rarest open chunk the seeder has
 * (fewest live seeders holding it; ties in a random order fixed per
 * scheduler), skipping chunks that seeder already failed while another live
 * seeder holds them. What a seeder holds may change at any time (`setHeld`,
 * `addChunks`, `lacks`: a partial seeder's have-list, its `HAVE`s, a chunk it
 * turned out not to hold), and the next pick follows at once. When nothing
 * open that some seeder holds is left for a seeder near the end of the file,
 * it may get a chunk already in flight elsewhere (end-game), and the first
 * `complete` of a chunk wins.
 *
 * Cost: open chunks are kept in one bitset per availability level, addressed
 * by tie-break rank, so a change of availability is O(1) and a pick scans the
 * levels from the rarest, 32 chunks a word, from the first word that is not
 * empty (for a seeder holding part of the file, ANDed with what it holds).
 */
export class ChunkScheduler {
  private readonly endGameThreshold: number;
  private readonly endGame: boolean;
  private readonly state: Uint8Array;
  /** Live seeders holding each chunk. */
  private readonly avail: Uint32Array;
  /** Tie-break rank of each chunk, and the chunk of each rank. */
  private readonly rank: Uint32Array;
  private readonly byRank: Uint32Array;
  /** Open chunks by availability, of all seeders (what a seeder holding the whole file may take). */
  private readonly buckets: Buckets = [];
  /** Seeders holding part of the file: each keeps its own buckets. */
  private readonly partial = new Set<SeederState>();
  /** Open chunks some live seeder holds. */
  private openHeld = 0;
  /** Missing (not done) chunks no live seeder holds. */
  private unheld: number;
  private readonly seeders = new Map<string, SeederState>();
  /** Seeders each in-flight chunk is requested from. */
  private readonly requesters = new Map<number, Set<string>>();
  /** Live seeders holding each chunk that failed it. */
  private readonly failedBy = new Map<number, Set<string>>();
  private done = 0;

  constructor(
    readonly chunkCount: number,
    options: ChunkSchedulerOptions = {},
  ) {
    if (!Number.isSafeInteger(chunkCount) || chunkCount < 0) throw new RangeError(`bad chunk count ${chunkCount}`);
    const random = options.random ?? Math.random;
    this.endGameThreshold = options.endGameThreshold ?? DEFAULT_END_GAME_THRESHOLD;
    this.endGame = options.endGame ?? true;
    this.state = new Uint8Array(chunkCount);
    this.avail = new Uint32Array(chunkCount);
    this.unheld = chunkCount;
    this.byRank = tieOrder(chunkCount, random);
    this.rank = new Uint32Array(chunkCount);
    for (let r = 0; r < chunkCount; r++) this.rank[this.byRank[r]] = r;
  }

  get doneCount(): number {
    return this.done;
  }

  get remainingCount(): number {
    return this.chunkCount - this.done;
  }

  get isDone(): boolean {
    return this.done === this.chunkCount;
  }

  /** Distinct chunks currently requested from at least one seeder. */
  get inFlightCount(): number {
    return this.requesters.size;
  }

  get seederIds(): string[] {
    return [...this.seeders.keys()];
  }

  hasSeeder(seederId: string): boolean {
    return this.seeders.has(seederId);
  }

  isChunkDone(index: number): boolean {
    return this.state[index] === DONE;
  }

  /** Live seeders holding chunk `index`. */
  availability(index: number): number {
    this.checkIndex(index);
    return this.avail[index];
  }

  /** Whether `seederId` is live and holds chunk `index`. */
  holds(seederId: string, index: number): boolean {
    const seeder = this.seeders.get(seederId);
    return seeder !== undefined && this.has(seeder, index);
  }

  /** How many chunks `seederId` holds (0 when unknown). */
  heldCount(seederId: string): number {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return 0;
    if (!seeder.has) return this.chunkCount;
    let n = 0;
    for (const w of seeder.has.words) n += popcount(w);
    return n;
  }

  /**
   * Records chunk `index` as done before any seeder is asked for it: it was on disk already (a resumed download).
   * True when it was not done yet. Only for a chunk nobody is fetching.
   */
  markPresent(index: number): boolean {
    this.checkIndex(index);
    if (this.state[index] === DONE) return false;
    if (this.requesters.has(index)) throw new Error(`chunk ${index} is in flight`);
    this.setState(index, DONE);
    return true;
  }

  /** Chunks requested from `seederId` and not yet answered. */
  inFlightOf(seederId: string): number[] {
    return [...(this.seeders.get(seederId)?.inFlight ?? [])];
  }

  /** Registers a live seeder holding every chunk, or only `chunks`. */
  addSeeder(seederId: string, chunks?: Iterable<number>): void {
    if (this.seeders.has(seederId)) throw new Error(`seeder ${seederId} is already registered`);
    const seeder: SeederState = { has: undefined, buckets: [], inFlight: new Set() };
    if (chunks === undefined) {
      for (let i = 0; i < this.chunkCount; i++) this.changeAvail(i, 1);
    } else {
      seeder.has = new RankBits(this.chunkCount);
      this.partial.add(seeder);
      for (const i of chunks) this.gain(seeder, i);
    }
    this.seeders.set(seederId, seeder);
  }

  /**
   * What `seederId` holds, replacing what was known or assumed (a have-list: one byte per chunk, non-zero where
   * held; `all`: the whole file, as when a partial seeder finished). Chunks in flight with it that it does not hold
   * go back to the pool without blame; returns them.
   */
  setHeld(seederId: string, held: Uint8Array | 'all'): number[] {
    const seeder = this.seeders.get(seederId);
    if (!seeder) throw new Error(`seeder ${seederId} is not registered`);
    if (held === 'all') {
      if (!seeder.has) return [];
      for (let i = 0; i < this.chunkCount; i++) this.gain(seeder, i);
      seeder.has = undefined;
      seeder.buckets.length = 0;
      this.partial.delete(seeder);
      return [];
    }
    if (held.length !== this.chunkCount) {
      throw new RangeError(`a have-list of ${held.length} chunks for a file of ${this.chunkCount}`);
    }
    const returned: number[] = [];
    this.makePartial(seeder);
    for (let i = 0; i < this.chunkCount; i++) {
      if (held[i]) this.gain(seeder, i);
      else if (this.has(seeder, i)) returned.push(...this.loseChunk(seederId, seeder, i));
    }
    return returned;
  }

  /** `seederId` gained these chunks (a `HAVE`). Unknown seeders and chunks it holds already are ignored. */
  addChunks(seederId: string, indexes: Iterable<number>): void {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return;
    for (const i of indexes) this.gain(seeder, i);
  }

  /**
   * `seederId` does not hold chunk `index` after all (it answered `NOT_HELD`): the chunk goes back to the pool
   * without blame, and the seeder is not asked for it again until it says it has it.
   */
  lacks(seederId: string, index: number): void {
    this.checkIndex(index);
    const seeder = this.seeders.get(seederId);
    if (!seeder) return;
    this.makePartial(seeder);
    if (this.has(seeder, index)) this.loseChunk(seederId, seeder, index);
    else if (seeder.inFlight.has(index)) this.release(index, seederId);
  }

  /** Forgets a seeder; returns the chunks that were in flight only with it, now missing again. */
  removeSeeder(seederId: string): number[] {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return [];
    const returned: number[] = [];
    for (const index of seeder.inFlight) {
      if (this.release(index, seederId)) returned.push(index);
    }
    this.partial.delete(seeder);
    for (let i = 0; i < this.chunkCount; i++) if (this.has(seeder, i)) this.changeAvail(i, -1);
    for (const [index, failed] of this.failedBy) {
      failed.delete(seederId);
      if (failed.size === 0) this.failedBy.delete(index);
    }
    this.seeders.delete(seederId);
    return returned.sort((a, b) => a - b);
  }

  /**
   * The chunk `seederId` should request now (marked in flight with it), or
   * undefined when it has nothing useful to fetch at the moment.
   */
  next(seederId: string): number | undefined {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return undefined;
    const index = this.nextOpen(seederId, seeder) ?? this.nextEndGame(seederId, seeder);
    if (index === undefined) return undefined;
    if (this.state[index] === OPEN) this.setState(index, IN_FLIGHT);
    seeder.inFlight.add(index);
    let requesters = this.requesters.get(index);
    if (!requesters) this.requesters.set(index, (requesters = new Set()));
    requesters.add(seederId);
    return index;
  }

  /**
   * Records chunk `index` as received and verified from `seederId`. True
   * when this is its first completion; later duplicates only release the
   * seeder's request and return false.
   */
  complete(index: number, seederId: string): boolean {
    this.checkIndex(index);
    if (this.state[index] === DONE) {
      this.seeders.get(seederId)?.inFlight.delete(index);
      return false;
    }
    for (const id of this.requesters.get(index) ?? []) this.seeders.get(id)?.inFlight.delete(index);
    this.requesters.delete(index);
    this.failedBy.delete(index);
    this.setState(index, DONE);
    return true;
  }

  /** `seederId` could not deliver chunk `index` (corrupt or refused): it goes back to the pool. */
  fail(index: number, seederId: string): void {
    this.checkIndex(index);
    if (this.state[index] === DONE) {
      this.seeders.get(seederId)?.inFlight.delete(index);
      return;
    }
    const seeder = this.seeders.get(seederId);
    if (seeder && this.has(seeder, index)) {
      let failed = this.failedBy.get(index);
      if (!failed) this.failedBy.set(index, (failed = new Set()));
      failed.add(seederId);
    }
    this.release(index, seederId);
  }

  /**
   * `seederId` will not deliver chunk `index` through no fault of the chunk (its connection was lost, it is busy):
   * the chunk goes back to the pool and the seeder may be asked for it again later.
   */
  cancel(index: number, seederId: string): void {
    this.checkIndex(index);
    if (this.state[index] === DONE) {
      this.seeders.get(seederId)?.inFlight.delete(index);
      return;
    }
    this.release(index, seederId);
  }

  /** A missing chunk that no live seeder holds, if there is one: the download cannot finish (for now). */
  unavailableChunk(): number | undefined {
    if (this.unheld === 0) return undefined;
    for (let i = 0; i < this.chunkCount; i++) if (this.state[i] !== DONE && this.avail[i] === 0) return i;
    return undefined;
  }

  /** Whether the live seeders together still hold every missing chunk. */
  get canFinish(): boolean {
    return this.unheld === 0;
  }

  private has(seeder: SeederState, index: number): boolean {
    return !seeder.has || seeder.has.get(this.rank[index]);
  }

  /** A seeder taken so far as holding every chunk holds part of the file from now on (all of it, until told). */
  private makePartial(seeder: SeederState): void {
    if (seeder.has) return;
    seeder.has = new RankBits(this.chunkCount, true);
    this.partial.add(seeder);
    for (let level = 1; level < this.buckets.length; level++) {
      const bucket = this.buckets[level];
      if (bucket) seeder.buckets[level] = { bits: bucket.bits.copy(), size: bucket.size, cursor: bucket.cursor };
    }
  }

  /** `seeder` holds chunk `index` from now on. */
  private gain(seeder: SeederState, index: number): void {
    this.checkIndex(index);
    const has = seeder.has;
    if (!has) return;
    const r = this.rank[index];
    if (has.get(r)) return;
    this.changeAvail(index, 1, () => has.set(r));
  }

  /** `seeder` no longer holds chunk `index`; its request for it (if any) goes back without blame. */
  private loseChunk(seederId: string, seeder: SeederState, index: number): number[] {
    const failed = this.failedBy.get(index);
    if (failed?.delete(seederId) && failed.size === 0) this.failedBy.delete(index);
    const returned = seeder.inFlight.has(index) && this.release(index, seederId) ? [index] : [];
    this.changeAvail(index, -1, () => seeder.has!.clear(this.rank[index]));
    return returned;
  }

  /** Takes `seederId` off chunk `index`; true when that left the chunk missing with nobody fetching it. */
  private release(index: number, seederId: string): boolean {
    this.seeders.get(seederId)?.inFlight.delete(index);
    const requesters = this.requesters.get(index);
    if (!requesters?.delete(seederId) || requesters.size > 0) return false;
    this.requesters.delete(index);
    this.setState(index, OPEN);
    return true;
  }

  private setState(index: number, state: number): void {
    const was = this.state[index];
    if (was === state) return;
    if (was === OPEN) this.unlist(index);
    this.state[index] = state;
    if (state === OPEN) this.list(index);
    if (state === DONE) {
      this.done++;
      if (this.avail[index] === 0) this.unheld--;
    }
  }

  /** Availability of chunk `index` changes by `by`, as what a seeder holds changes by `mutate`. */
  private changeAvail(index: number, by: 1 | -1, mutate?: () => void): void {
    const open = this.state[index] === OPEN;
    if (open) this.unlist(index);
    mutate?.();
    const was = this.avail[index];
    this.avail[index] = was + by;
    if (this.state[index] !== DONE) {
      if (was === 0) this.unheld--;
      else if (was + by === 0) this.unheld++;
    }
    if (open) this.list(index);
  }

  /** Puts open chunk `index` in the buckets of its availability (the global ones and its holders'). */
  private list(index: number): void {
    const level = this.avail[index];
    if (level === 0) return;
    const r = this.rank[index];
    bucketAdd(this.buckets, level, r, this.chunkCount);
    for (const seeder of this.partial) if (seeder.has!.get(r)) bucketAdd(seeder.buckets, level, r, this.chunkCount);
    this.openHeld++;
  }

  private unlist(index: number): void {
    const level = this.avail[index];
    if (level === 0) return;
    const r = this.rank[index];
    bucketRemove(this.buckets, level, r);
    for (const seeder of this.partial) bucketRemove(seeder.buckets, level, r);
    this.openHeld--;
  }

  private nextOpen(seederId: string, seeder: SeederState): number | undefined {
    const buckets = seeder.has ? seeder.buckets : this.buckets;
    for (let level = 1; level < buckets.length; level++) {
      const bucket = buckets[level];
      if (!bucket || bucket.size === 0) continue;
      const words = bucket.bits.words;
      while (bucket.cursor < words.length && words[bucket.cursor] === 0) bucket.cursor++;
      for (let w = bucket.cursor; w < words.length; w++) {
        let word = words[w];
        while (word !== 0) {
          const low = word & -word;
          const index = this.byRank[w * 32 + 31 - Math.clz32(low)];
          if (!this.barred(index, seederId)) return index;
          word ^= low;
        }
      }
    }
    return undefined;
  }

  private nextEndGame(seederId: string, seeder: SeederState): number | undefined {
    const left = this.remainingCount;
    if (!this.endGame || left === 0 || this.requesters.size === 0) return undefined;
    // end-game once few are left, or once every chunk left that someone holds is in flight
    if (left > this.endGameThreshold && this.openHeld > 0) return undefined;
    let best: number | undefined;
    let bestLoad = Infinity;
    for (const [index, requesters] of this.requesters) {
      if (requesters.has(seederId) || !this.has(seeder, index)) continue;
      if (this.failedBy.get(index)?.has(seederId)) continue;
      const load = requesters.size;
      if (load < bestLoad || (load === bestLoad && this.rank[index] < this.rank[best!])) {
        best = index;
        bestLoad = load;
      }
    }
    return best;
  }

  /** Whether `seederId` failed chunk `index` while some other live holder has not. */
  private barred(index: number, seederId: string): boolean {
    const failed = this.failedBy.get(index);
    if (!failed?.has(seederId)) return false;
    // every entry of `failed` is a live seeder holding the chunk
    return failed.size < this.avail[index];
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.chunkCount) {
      throw new RangeError(`chunk ${index} is outside 0..${this.chunkCount - 1}`);
    }
  }
}

/** Chunk indexes by a random key each (`random()`), ties by index. */
function tieOrder(count: number, random: () => number): Uint32Array {
  const key = new Float64Array(count);
  let tied = true;
  let unit = true;
  for (let i = 0; i < count; i++) {
    const k = (key[i] = random());
    if (k !== key[0]) tied = false;
    if (!(k >= 0 && k < 1)) unit = false;
  }
  const order = new Uint32Array(count);
  if (tied) {
    for (let i = 0; i < count; i++) order[i] = i;
  } else if (unit && count <= 1 << 21) {
    // the key's first 31 bits and the index in one number, so that the native numeric sort does it all
    const packed = new Float64Array(count);
    for (let i = 0; i < count; i++) packed[i] = Math.floor(key[i] * 2 ** 31) * 2 ** 21 + i;
    packed.sort();
    for (let r = 0; r < count; r++) order[r] = packed[r] % 2 ** 21;
  } else {
    for (let i = 0; i < count; i++) order[i] = i;
    order.sort((a, b) => key[a] - key[b] || a - b);
  }
  return order;
}

function popcount(w: number): number {
  w -= (w >>> 1) & 0x55555555;
  w = (w & 0x33333333) + ((w >>> 2) & 0x33333333);
  return (Math.imul((w + (w >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24) & 0xff;
}
