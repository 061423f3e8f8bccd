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

interface SeederState {
  /** Chunks this seeder has; undefined means all of them. */
  readonly has: Uint8Array | undefined;
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
 * seeder holds them. When nothing open is left for a seeder near the end of
 * the file, it may get a chunk already in flight elsewhere (end-game), and
 * the first `complete` of a chunk wins.
 */
export class ChunkScheduler {
  private readonly random: () => number;
  private readonly endGameThreshold: number;
  private readonly endGame: boolean;
  private readonly state: Uint8Array;
  /** Live seeders holding each chunk. */
  private readonly avail: Uint32Array;
  /** Random tie-break key per chunk. */
  private readonly key: Float64Array;
  /** Chunk indexes, rarest first (chunks nobody has go last); rebuilt lazily when seeders change. */
  private order: Uint32Array;
  private orderDirty = true;
  /** Positions in `order` before this hold no open chunk. */
  private cursor = 0;
  private position: Uint32Array;
  private readonly seeders = new Map<string, SeederState>();
  /** Seeders each in-flight chunk is requested from. */
  private readonly requesters = new Map<number, Set<string>>();
  /** Live seeders that failed each chunk. */
  private readonly failedBy = new Map<number, Set<string>>();
  private done = 0;

  constructor(
    readonly chunkCount: number,
    options: ChunkSchedulerOptions = {},
  ) {
    if (!Number.isSafeInteger(chunkCount) || chunkCount < 0) throw new RangeError(`bad chunk count ${chunkCount}`);
    this.random = options.random ?? Math.random;
    this.endGameThreshold = options.endGameThreshold ?? DEFAULT_END_GAME_THRESHOLD;
    this.endGame = options.endGame ?? true;
    this.state = new Uint8Array(chunkCount);
    this.avail = new Uint32Array(chunkCount);
    this.key = new Float64Array(chunkCount);
    for (let i = 0; i < chunkCount; i++) this.key[i] = this.random();
    this.order = new Uint32Array(chunkCount);
    this.position = new Uint32Array(chunkCount);
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

  /**
   * Records chunk `index` as done before any seeder is asked for it: it was on disk already (a resumed download).
   * True when it was not done yet. Only for a chunk nobody is fetching.
   */
  markPresent(index: number): boolean {
    this.checkIndex(index);
    if (this.state[index] === DONE) return false;
    if (this.requesters.has(index)) throw new Error(`chunk ${index} is in flight`);
    this.state[index] = DONE;
    this.done++;
    return true;
  }

  /** Chunks requested from `seederId` and not yet answered. */
  inFlightOf(seederId: string): number[] {
    return [...(this.seeders.get(seederId)?.inFlight ?? [])];
  }

  /** Registers a live seeder holding every chunk, or only `chunks`. */
  addSeeder(seederId: string, chunks?: Iterable<number>): void {
    if (this.seeders.has(seederId)) throw new Error(`seeder ${seederId} is already registered`);
    let has: Uint8Array | undefined;
    if (chunks === undefined) {
      for (let i = 0; i < this.chunkCount; i++) this.avail[i]++;
    } else {
      has = new Uint8Array(this.chunkCount);
      for (const i of chunks) {
        this.checkIndex(i);
        if (has[i]) continue;
        has[i] = 1;
        this.avail[i]++;
      }
    }
    this.seeders.set(seederId, { has, inFlight: new Set() });
    this.orderDirty = true;
  }

  /** Forgets a seeder; returns the chunks that were in flight only with it, now missing again. */
  removeSeeder(seederId: string): number[] {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return [];
    const returned: number[] = [];
    for (const index of seeder.inFlight) {
      if (this.release(index, seederId)) returned.push(index);
    }
    for (let i = 0; i < this.chunkCount; i++) if (!seeder.has || seeder.has[i]) this.avail[i]--;
    for (const [index, failed] of this.failedBy) {
      failed.delete(seederId);
      if (failed.size === 0) this.failedBy.delete(index);
    }
    this.seeders.delete(seederId);
    this.orderDirty = true;
    return returned.sort((a, b) => a - b);
  }

  /**
   * The chunk `seederId` should request now (marked in flight with it), or
   * undefined when it has nothing useful to fetch at the moment.
   */
  next(seederId: string): number | undefined {
    const seeder = this.seeders.get(seederId);
    if (!seeder) return undefined;
    this.rebuildOrder();
    const index = this.nextOpen(seederId, seeder) ?? this.nextEndGame(seederId, seeder);
    if (index === undefined) return undefined;
    this.state[index] = IN_FLIGHT;
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
    this.state[index] = DONE;
    this.done++;
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
    if (seeder && (!seeder.has || seeder.has[index])) {
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

  /** A missing chunk that no live seeder holds, if there is one: the download cannot finish. */
  unavailableChunk(): number | undefined {
    for (let i = 0; i < this.chunkCount; i++) if (this.state[i] !== DONE && this.avail[i] === 0) return i;
    return undefined;
  }

  /** Whether the live seeders together still hold every missing chunk. */
  get canFinish(): boolean {
    return this.unavailableChunk() === undefined;
  }

  /** Takes `seederId` off chunk `index`; true when that left the chunk missing with nobody fetching it. */
  private release(index: number, seederId: string): boolean {
    this.seeders.get(seederId)?.inFlight.delete(index);
    const requesters = this.requesters.get(index);
    if (!requesters?.delete(seederId) || requesters.size > 0) return false;
    this.requesters.delete(index);
    this.state[index] = OPEN;
    const at = this.position[index];
    if (!this.orderDirty && at < this.cursor) this.cursor = at;
    return true;
  }

  private nextOpen(seederId: string, seeder: SeederState): number | undefined {
    const n = this.chunkCount;
    while (this.cursor < n && this.state[this.order[this.cursor]] !== OPEN) this.cursor++;
    for (let at = this.cursor; at < n; at++) {
      const index = this.order[at];
      if (this.state[index] !== OPEN) continue;
      if (this.avail[index] === 0) break; // the rest are held by nobody
      if (seeder.has && !seeder.has[index]) continue;
      if (this.barred(index, seederId)) continue;
      return index;
    }
    return undefined;
  }

  private nextEndGame(seederId: string, seeder: SeederState): number | undefined {
    const left = this.remainingCount;
    if (!this.endGame || left === 0) return undefined;
    if (left > this.endGameThreshold && this.requesters.size < left) return undefined;
    let best: number | undefined;
    let bestLoad = Infinity;
    for (const [index, requesters] of this.requesters) {
      if (requesters.has(seederId) || (seeder.has && !seeder.has[index])) continue;
      if (this.failedBy.get(index)?.has(seederId)) continue;
      const load = requesters.size;
      if (load < bestLoad || (load === bestLoad && this.position[index] < this.position[best!])) {
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

  private rebuildOrder(): void {
    if (!this.orderDirty) return;
    const { avail, key } = this;
    const rank = (i: number) => (avail[i] === 0 ? Infinity : avail[i]);
    const order = Array.from({ length: this.chunkCount }, (_, i) => i);
    order.sort((a, b) => rank(a) - rank(b) || key[a] - key[b] || a - b);
    this.order = Uint32Array.from(order);
    order.forEach((index, at) => (this.position[index] = at));
    this.cursor = 0;
    this.orderDirty = false;
  }

  private checkIndex(index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.chunkCount) {
      throw new RangeError(`chunk ${index} is outside 0..${this.chunkCount - 1}`);
    }
  }
}
