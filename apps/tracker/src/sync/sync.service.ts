import {
  compareOps,
  decodeOpBody,
  encodeOpArgs,
  formatHostPort,
  formatVersionVector,
  HostPort,
  OpBody,
  OpKind,
  OpMeta,
  SeederForm,
  StampedOp,
  StampedOpOf,
  VersionVector,
} from '@app/protocol';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown, Optional } from '@nestjs/common';
import type { Identity } from '@app/tls';
import { createHash } from 'node:crypto';
import { Clock, CLOCK, systemClock } from '../common/clock';
import { TRACKER_IDENTITY } from '../common/identity.tokens';
import { currentRequestId } from '../common/request-context';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { SnapshotRow } from '../storage/snapshot-row';
import { UNIT_OF_WORK, UnitOfWork } from '../storage/unit-of-work';
import { compactionBlocker, mergeVersionVectors, SnapshotRefusedError } from './compaction';
import { OpLogStore, SnapshotCut, SnapshotEntry } from './oplog.store';
import { DEFAULT_LINK_TIMINGS, PeerLinkTimings, PeerTrackerClient } from './peer-tracker.client';
import { CLUSTER_KEY, OPLOG_STORE } from './sync.tokens';

/** Applies one change to the stored state. Must be deterministic and do nothing when the change no longer fits. */
export type Applier<K extends OpKind = OpKind> = (op: StampedOpOf<K>) => void;

/**
 * The parts of the state an op of one kind reads or writes, as keys (`g:<group>`, `u:<user>`, `t:<token>`).
 * Two ops with no key in common commute: applied in either order they leave the same state.
 */
export type Footprint<K extends OpKind = OpKind> = (op: StampedOpOf<K>) => readonly string[];

/** A change made on this tracker: one of the kinds of ops.ts, with its actor; time and request id as commit says. */
export type Change = OpBody & Pick<OpMeta, 'actor'> & Partial<Pick<OpMeta, 'time' | 'requestId'>>;

/** Late changes are applied in place when at most this many applied ones sort after them; past that, a replay. */
const MAX_REORDER_DISTANCE = 64;

/** A part of the replicated state: it can be emptied (before a replay) and described (for the digest). */
export interface StateParticipant {
  readonly name: string;
  reset(): void;
  /** Canonical lines describing the state, independent of the order it was built in. */
  describe(): string[];
  /** Called after a replay rebuilt the state, to bring soft state in line with it. */
  afterReplay?(): void;
  /** The rows of this part of the state, for a snapshot (compaction); read a page at a time. */
  exportRows?(): Iterable<SnapshotRow>;
  /** Adds one row of a snapshot to this part of the state, emptied by `reset`; throws on a row it cannot read. */
  importRow?(row: SnapshotRow): void;
}

/** What one compaction did, or why it did not run. */
export type CompactionResult =
  | { readonly compacted: true; readonly ops: number; readonly rows: number; readonly cut: SnapshotCut }
  | { readonly compacted: false; readonly reason: string };

/** Who seeds what through this tracker's own sessions; soft state, pushed to peers, never logged. */
export interface PresenceEntry {
  readonly userId: string;
  readonly address: string;
  readonly groupId: string;
  readonly fileName: string;
  readonly filePath: string;
  /** How the seeder speaks: the form of the connection its session registered the file over. */
  readonly form: SeederForm;
  /**
   * `sha256:<hex>` of the TLS client certificate of the connection the seeder registered or announced over;
   * absent when that connection was plain (or seed form). Sent as the last word of the presence line.
   */
  readonly fingerprint?: string;
  /**
   * True for a member downloading the file that serves the chunks it holds (`partial_seeder`): always of our form,
   * with no path (`filePath` is ''); sent as `presence_partial_set`/`presence_partial_unset`.
   */
  readonly partial?: boolean;
}
export type PresenceChange =
  | { readonly on: true; readonly entry: PresenceEntry }
  | { readonly on: false; readonly entry: Omit<PresenceEntry, 'address' | 'filePath' | 'form' | 'fingerprint'> };

/** One peer tracker's link as `SyncService.peerLinks()` reports it. */
export interface PeerLinkState {
  readonly tracker: number;
  readonly address: HostPort;
  readonly linked: boolean;
  /** Ops this tracker holds that the peer is not known to hold. */
  readonly behind: number;
}

export interface SyncOptions {
  /** How long a client's reply may wait for peers to acknowledge its change. */
  readonly replicationWaitMs: number;
  /** How long start-up waits for reachable peers to hand over what this tracker missed. */
  readonly catchUpWaitMs: number;
  /** Connect and handshake deadlines, and the backoff between tries, of the links to other trackers. */
  readonly link: PeerLinkTimings;
  /** After a compaction could not run (a tracker not linked or behind), how long until the next try. */
  readonly compactionRetryMs: number;
}

export const DEFAULT_SYNC_OPTIONS: SyncOptions = {
  replicationWaitMs: 2000,
  catchUpWaitMs: 4000,
  link: DEFAULT_LINK_TIMINGS,
  compactionRetryMs: 2000,
};

/** Default `--compact-after`: the log is compacted once it holds this many ops past its snapshot. */
export const DEFAULT_COMPACT_AFTER_OPS = 50_000;

/**
 * Tracker replication. Every change is an op stamped (origin tracker, seq,
 * Lamport clock), stored in the op log in the same transaction that applies
 * it, and pushed to every other tracker, which stores and applies it exactly
 * once. All trackers apply ops in one total order (Lamport clock, origin,
 * seq); an op that arrives late and sorts before what is applied already makes
 * the tracker replay its whole log in that order, so every tracker that holds
 * the same ops holds the same state, whatever order they arrived in.
 */
@Injectable()
export class SyncService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(SyncService.name);
  private readonly appliers = new Map<OpKind, (op: StampedOp) => void>();
  private readonly footprints = new Map<OpKind, (op: StampedOp) => readonly string[]>();
  private readonly participants: StateParticipant[] = [];
  private readonly presenceSources: (() => PresenceEntry[])[] = [];
  private readonly remotePresenceListeners: ((tracker: number, change: PresenceChange | 'reset') => void)[] = [];
  private readonly peers: PeerTrackerClient[] = [];
  private readonly waiters = new Set<() => void>();
  private lamport = 0;
  private mySeq = 0;
  private lastApplied: Pick<StampedOp, 'lamport' | 'origin' | 'seq'> | undefined;
  /** Where the log was compacted: the ops up to here are in the snapshot, not in the log. */
  private cut: SnapshotCut | undefined;
  /** Ops in the log past the snapshot (what `--compact-after` counts). */
  private opsPastCut = 0;
  private compacting = false;
  private compactionRetry: NodeJS.Timeout | undefined;
  private heldBackFor = '';
  private replayingLog = false;
  private readyResolve!: () => void;
  /** Resolves once start-up catch-up is done (or gave up on unreachable peers). */
  readonly ready: Promise<void> = new Promise((r) => (this.readyResolve = r));
  private options: SyncOptions = DEFAULT_SYNC_OPTIONS;
  /** Per peer tracker whose link is down: since when (soft state; start-up counts as a drop). */
  private readonly linkDownSince = new Map<number, number>();
  private linkSampler: NodeJS.Timeout | undefined;

  constructor(
    @Inject(OPLOG_STORE) private readonly log: OpLogStore,
    @Inject(UNIT_OF_WORK) private readonly work: UnitOfWork,
    @Inject(TRACKER_CONFIG) private readonly config: TrackerConfig,
    @Inject(CLUSTER_KEY) private readonly key: Buffer,
    @Optional() @Inject(CLOCK) private readonly clock: Clock = systemClock,
    /** Presented on the links this tracker dials (unit tests may run without one). */
    @Optional() @Inject(TRACKER_IDENTITY) private readonly identity?: Identity,
  ) {
    this.loadPositions();
  }

  /** Clocks and positions from the log and its snapshot: at start-up, and after a snapshot came in. */
  private loadPositions(): void {
    this.cut = this.log.snapshot();
    this.opsPastCut = this.log.count();
    this.lamport = Math.max(this.log.maxLamport(), this.cut?.lamport ?? 0);
    this.mySeq = this.versionVector().get(this.config.trackerNumber) ?? 0;
    this.lastApplied = this.log.last() ?? this.cut;
  }

  /** True while the log is being replayed: appliers re-apply history and must leave soft state alone. */
  get replaying(): boolean {
    return this.replayingLog;
  }

  get trackerNumber(): number {
    return this.config.trackerNumber;
  }

  configure(options: Partial<SyncOptions>): void {
    this.options = { ...this.options, ...options };
  }

  /**
   * `footprint`: every key of the state the applier reads or writes. A change of a kind without one makes every
   * late change that sorts before it replay the log; with one, a late change that shares no key with the
   * changes applied after it is applied in place.
   */
  register<K extends OpKind>(kind: K, applier: Applier<K>, footprint?: Footprint<K>): void {
    if (this.appliers.has(kind)) throw new Error(`an applier for ${kind} is registered twice`);
    // the maps are keyed by kind: an op is only ever handed to the functions registered for its own kind
    this.appliers.set(kind, applier as (op: StampedOp) => void);
    if (footprint) this.footprints.set(kind, footprint as (op: StampedOp) => readonly string[]);
  }

  participate(participant: StateParticipant): void {
    this.participants.push(participant);
  }

  /**
   * Records and applies a change made on this tracker. Runs synchronously, in
   * one unit of work. The op carries the id of the request being served (what
   * makes a retried request "already applied"), unless `requestId` says
   * otherwise: '' for bookkeeping that is not the request's own change. A
   * change its kind's codec would refuse (so every peer would) is refused here
   * with a ProtocolError, before anything is written.
   */
  commit<C extends Change>(change: C): StampedOpOf<C['kind']> {
    const op = {
      ...change,
      time: change.time ?? this.clock.now(),
      requestId: change.requestId ?? currentRequestId(),
      origin: this.config.trackerNumber,
      seq: this.mySeq + 1,
      lamport: this.lamport + 1,
    } as StampedOp as StampedOpOf<C['kind']>;
    decodeOpBody(op.kind, encodeOpArgs(op)); // throws for a change no peer would take
    this.work.run(() => {
      this.log.append(op);
      this.apply(op);
    });
    this.mySeq = op.seq;
    this.lamport = op.lamport;
    this.lastApplied = op;
    this.opsPastCut++;
    this.wakePeers();
    this.considerCompaction();
    return op;
  }

  /** A change from another tracker: stored and applied once; 'duplicate' when it was here already. */
  receive(op: StampedOp): 'applied' | 'replayed' | 'duplicate' {
    if (op.origin === this.config.trackerNumber && op.seq <= this.mySeq) return 'duplicate';
    // compacted into the snapshot: held, though no longer in the log
    if (op.seq <= (this.cut?.versionVector.get(op.origin) ?? 0)) return 'duplicate';
    const outcome = this.work.run(() => {
      if (!this.log.append(op)) return 'duplicate' as const;
      if (!this.lastApplied || compareOps(op, this.lastApplied) > 0 || this.commutesWithLater(op)) {
        this.apply(op);
        return 'applied' as const;
      }
      this.replay();
      return 'replayed' as const;
    });
    if (outcome === 'duplicate') return outcome;
    this.lamport = Math.max(this.lamport, op.lamport);
    if (op.origin === this.config.trackerNumber) this.mySeq = Math.max(this.mySeq, op.seq);
    if (!this.lastApplied || compareOps(op, this.lastApplied) > 0) this.lastApplied = op;
    if (outcome === 'replayed') this.logger.log(`replayed the log: ${op.kind} from tracker ${op.origin} came in late`);
    this.opsPastCut++;
    this.wakePeers();
    this.considerCompaction();
    return outcome;
  }

  /**
   * Changes fetched from another tracker, stored and applied in one
   * transaction: a catch-up of thousands of changes syncs to disk once per
   * batch, not once per change. All or nothing: when one fails, none is kept.
   */
  receiveAll(ops: readonly StampedOp[]): void {
    const before = {
      lamport: this.lamport,
      mySeq: this.mySeq,
      lastApplied: this.lastApplied,
      opsPastCut: this.opsPastCut,
    };
    try {
      this.work.run(() => {
        for (const op of ops) this.receive(op);
      });
    } catch (err) {
      ({
        lamport: this.lamport,
        mySeq: this.mySeq,
        lastApplied: this.lastApplied,
        opsPastCut: this.opsPastCut,
      } = before);
      throw err;
    }
  }

  /** Whether `userId` already made a change with this request id (ids are scoped to the user who sent them). */
  hasRequest(requestId: string, userId: string): boolean {
    return requestId !== '' && userId !== '' && this.log.hasRequest(requestId, userId);
  }

  /**
   * Since when the link to tracker `n` has been down (start-up counts as a
   * drop), or undefined while it is up. This tracker itself is never down.
   */
  peerDownSince(n: number): number | undefined {
    if (n === this.config.trackerNumber) return undefined;
    const peer = this.peers.find((p) => p.number === n);
    if (peer?.connected) {
      this.linkDownSince.delete(n);
      return undefined;
    }
    if (!this.linkDownSince.has(n)) this.linkDownSince.set(n, this.clock.now());
    return this.linkDownSince.get(n);
  }

  /**
   * Each peer tracker: where this tracker reaches it, whether its link is up, and how many ops this tracker holds
   * that the peer is not known to hold (as of its last acknowledgement; kept while the link is down).
   */
  peerLinks(): PeerLinkState[] {
    const mine = this.versionVector();
    return this.peers.map((p) => {
      let behind = 0;
      for (const [origin, seq] of mine) behind += Math.max(0, seq - p.ackedSeq(origin));
      return { tracker: p.number, address: p.address, linked: p.connected, behind };
    });
  }

  /** Highest seq held per origin, in the log or in its snapshot. */
  versionVector(): Map<number, number> {
    return mergeVersionVectors(this.log.versionVector(), this.cut?.versionVector);
  }

  opsAfter(vv: VersionVector, limit: number): StampedOp[] {
    return this.log.after(vv, limit);
  }

  /** SHA-1 of the replicated state; equal on two trackers exactly when they hold the same state. */
  digest(): string {
    const hash = createHash('sha1');
    for (const p of this.participants) for (const line of p.describe()) hash.update(`${p.name} ${line}\n`);
    return hash.digest('hex');
  }

  /** Waits until every connected peer holds this tracker's changes so far, or the wait runs out. */
  async flush(): Promise<void> {
    const target = this.mySeq;
    const pending = () =>
      this.peers.filter(
        // a peer taking a snapshot gets changes only after it: writes do not wait for it
        (p) => p.connected && !p.awaitingSnapshot && p.ackedSeq(this.config.trackerNumber) < target,
      );
    if (target === 0 || pending().length === 0) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, this.options.replicationWaitMs);
      const check = () => {
        if (pending().length === 0) done();
      };
      function done() {
        clearTimeout(timer);
        waiters.delete(check);
        resolve();
      }
      const waiters = this.waiters;
      waiters.add(check);
    });
  }

  /** Tracker `n` proved the key on a link it dialed: it is up, so this tracker's own link to it need not wait. */
  peerDialedIn(n: number): void {
    this.peers.find((p) => p.number === n)?.retryNow();
  }

  /** A peer acknowledged changes, or its link went up or down. */
  peerProgress(): void {
    for (const peer of this.peers) this.peerDownSince(peer.number);
    for (const check of [...this.waiters]) check();
  }

  // compaction: a snapshot of the state stands for the log up to a cut every tracker holds (compaction.ts)

  snapshotCut(): SnapshotCut | undefined {
    return this.cut;
  }

  /** Ops in the log past the snapshot. */
  logLength(): number {
    return this.opsPastCut;
  }

  /** Whether a tracker holding `vv` lacks ops that only the snapshot holds: it needs the snapshot first. */
  needsSnapshot(vv: VersionVector): boolean {
    for (const [origin, seq] of this.cut?.versionVector ?? []) if ((vv.get(origin) ?? 0) < seq) return true;
    return false;
  }

  /** Rows of the snapshot after row `after`, in order, until about `maxBytes` of them (at least one). */
  snapshotPage(after: number, maxBytes: number): (SnapshotEntry & { readonly n: number })[] {
    const page: (SnapshotEntry & { readonly n: number })[] = [];
    let bytes = 0;
    for (const entry of this.log.snapshotRows(after)) {
      page.push(entry);
      bytes += entry.row.reduce((sum, field) => sum + field.length + 1, entry.part.length);
      if (bytes >= maxBytes) break;
    }
    return page;
  }

  /**
   * Asks every other tracker what it holds, then compacts the log if that is safe now. With
   * `--compact-offline-after`, a tracker whose link has been down that long is left out.
   */
  async compact(): Promise<CompactionResult> {
    const statuses = new Map<number, VersionVector | undefined>();
    await Promise.all(this.peers.map(async (p) => statuses.set(p.number, await p.status())));
    const offlineMs = this.config.compactOfflineAfterMs;
    const leftOut = new Set<number>();
    if (offlineMs !== undefined) {
      for (const n of this.config.trackers.keys()) {
        const down = statuses.get(n + 1) ? undefined : this.peerDownSince(n + 1);
        if (down !== undefined && this.clock.now() - down >= offlineMs) leftOut.add(n + 1);
      }
    }
    const result = this.compactWith(statuses, leftOut);
    if (result.compacted && leftOut.size > 0) {
      this.logger.warn(
        `compacted without tracker ${[...leftOut].join(', ')}, offline over ${offlineMs} ms: ` +
          'what it changed before the cut is applied after the snapshot when it is back',
      );
    }
    return result;
  }

  /**
   * Folds the whole log into a snapshot of the state as it is, in one transaction, when `statuses` (what each
   * other tracker holds; undefined for one that is not linked) show it safe (see `compactionBlocker`); trackers in
   * `leftOut` are not asked.
   */
  compactWith(
    statuses: ReadonlyMap<number, VersionVector | undefined>,
    leftOut: ReadonlySet<number> = new Set(),
  ): CompactionResult {
    const me = this.config.trackerNumber;
    const others = this.config.trackers.map((_, i) => i + 1).filter((n) => n !== me && !leftOut.has(n));
    const mine = this.versionVector();
    const last = this.log.last();
    const mute = this.participants.find((p) => !p.exportRows || !p.importRow);
    const reason =
      (mute && `the ${mute.name} state cannot be written to a snapshot`) ??
      (last ? compactionBlocker(mine, others, statuses) : 'no change past the last snapshot');
    if (reason || !last) return { compacted: false, reason: reason ?? '' };
    const cut = { versionVector: mine, lamport: last.lamport, origin: last.origin, seq: last.seq };
    let rows = 0;
    const ops = this.work.run(() =>
      this.log.replaceSnapshot(
        { ...cut, takenAt: this.clock.now() },
        this.exportState(() => rows++),
      ),
    );
    this.loadPositions();
    this.logger.log(`compacted the op log: ${ops} changes into a snapshot of ${rows} rows at ${formatCut(this.cut!)}`);
    return { compacted: true, ops, rows, cut: this.cut! };
  }

  /** Keeps a page of the snapshot another tracker is sending; `fresh` for its first page. */
  stageSnapshot(rows: readonly SnapshotEntry[], fresh: boolean): void {
    this.log.stageSnapshotRows(rows, fresh);
  }

  /**
   * Takes the snapshot staged from another tracker, in one transaction: the state becomes the snapshot, the ops it
   * covers leave the log, and the ops past it (such as this tracker's own, not yet sent) are applied on top. All
   * or nothing: a row that cannot be read leaves the state, the log and the snapshot as they were.
   */
  installSnapshot(cut: Pick<SnapshotCut, 'versionVector' | 'lamport' | 'origin' | 'seq'>): void {
    try {
      for (const [origin, seq] of this.cut?.versionVector ?? []) {
        if ((cut.versionVector.get(origin) ?? 0) < seq) {
          throw new SnapshotRefusedError('the snapshot lacks changes this tracker has compacted already');
        }
      }
      this.work.run(() => {
        this.log.replaceSnapshot({ ...cut, takenAt: this.clock.now() }, this.log.stagedSnapshotRows());
        this.replay();
      });
    } catch (err) {
      // every store rolled back with the unit of work; the replay brings what the replay touched beyond the
      // stores (positions, soft state) back in line with them
      this.work.run(() => this.replay());
      throw err;
    } finally {
      this.log.clearStagedSnapshot();
    }
    this.loadPositions();
    this.logger.log(`took a snapshot at ${formatCut(this.cut!)}; ${this.opsPastCut} changes of the log past it`);
    this.wakePeers();
  }

  /** Compacts once `--compact-after` ops are in the log past the snapshot; tries again later when held back. */
  private considerCompaction(): void {
    const every = this.config.compactAfterOps ?? DEFAULT_COMPACT_AFTER_OPS;
    if (every <= 0 || this.compacting || this.compactionRetry || this.opsPastCut < every) return;
    this.compacting = true;
    void this.compact()
      .then((result) => {
        if (result.compacted) return;
        if (result.reason !== this.heldBackFor) this.logger.log(`compaction held back: ${result.reason}`);
        this.heldBackFor = result.reason;
        this.compactionRetry = setTimeout(() => {
          this.compactionRetry = undefined;
          this.considerCompaction();
        }, this.options.compactionRetryMs).unref();
      })
      .catch((err: unknown) =>
        this.logger.error(`compaction failed: ${err instanceof Error ? err.message : String(err)}`),
      )
      .finally(() => (this.compacting = false));
  }

  private *exportState(counted: () => void): Iterable<SnapshotEntry> {
    for (const p of this.participants) {
      for (const row of p.exportRows!()) {
        counted();
        yield { part: p.name, row };
      }
    }
  }

  private importRows(entries: Iterable<SnapshotEntry>): void {
    const byName = new Map(this.participants.map((p) => [p.name, p]));
    for (const { part, row } of entries) {
      const p = byName.get(part);
      if (!p?.importRow) throw new SnapshotRefusedError(`a snapshot row of an unknown part '${part.slice(0, 40)}'`);
      p.importRow(row);
    }
  }

  // presence: soft state about which sessions seed what, exchanged with peers

  addPresenceSource(source: () => PresenceEntry[]): void {
    this.presenceSources.push(source);
  }

  localPresence(): PresenceEntry[] {
    return this.presenceSources.flatMap((s) => s());
  }

  presenceChanged(change: PresenceChange): void {
    for (const peer of this.peers) peer.pushPresence(change);
  }

  onRemotePresence(listener: (tracker: number, change: PresenceChange | 'reset') => void): void {
    this.remotePresenceListeners.push(listener);
  }

  remotePresence(tracker: number, change: PresenceChange | 'reset'): void {
    for (const l of this.remotePresenceListeners) l(tracker, change);
  }

  onApplicationBootstrap(): void {
    const { trackers, trackerNumber, peerAddresses } = this.config;
    trackers.forEach((address, i) => {
      const n = i + 1;
      if (n === trackerNumber) return;
      this.peerDownSince(n);
      const target = peerAddresses.get(n) ?? address;
      const tls = { identity: this.identity, pin: this.config.trackerPins?.[i] };
      this.peers.push(new PeerTrackerClient(n, target, this, this.key, this.logger, tls, this.options.link));
    });
    if (this.peers.length === 0) {
      this.readyResolve();
      return;
    }
    // a link that came up is noticed here (a drop is noticed at once, through peerProgress)
    this.linkSampler = setInterval(() => this.peers.forEach((p) => this.peerDownSince(p.number)), 500).unref();
    const caughtUp = this.peers.map((p) => p.start());
    const timer = setTimeout(() => {
      this.logger.warn(`catch-up took over ${this.options.catchUpWaitMs} ms; serving clients with what is here`);
      this.readyResolve();
    }, this.options.catchUpWaitMs);
    void Promise.all(caughtUp).then(() => {
      clearTimeout(timer);
      this.readyResolve();
    });
    this.logger.log(
      `syncing with ${this.peers.map((p) => `tracker ${p.number} (${formatHostPort(p.address)})`).join(', ')}`,
    );
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.linkSampler);
    clearTimeout(this.compactionRetry);
    await Promise.all(this.peers.map((p) => p.stop()));
  }

  private wakePeers(): void {
    for (const peer of this.peers) peer.wake();
  }

  private apply(op: StampedOp): void {
    const applier = this.appliers.get(op.kind);
    if (!applier) {
      this.logger.warn(`no applier for ${op.kind}; change ignored`);
      return;
    }
    applier(op);
  }

  /**
   * Whether `op` (stored, sorting before what is applied) touches nothing the changes applied after it touched:
   * then applying it now leaves the state a replay would build, without re-applying the whole log.
   */
  private commutesWithLater(op: StampedOp): boolean {
    const mine = this.footprints.get(op.kind)?.(op);
    if (!mine) return false;
    const later = this.log.following(op, MAX_REORDER_DISTANCE + 1);
    if (later.length > MAX_REORDER_DISTANCE) return false;
    const keys = new Set(mine);
    return later.every((other) => {
      const theirs = this.footprints.get(other.kind)?.(other);
      return theirs !== undefined && theirs.every((key) => !keys.has(key));
    });
  }

  /** Rebuilds the whole state from the snapshot and the log after it, in the total order. Runs inside the caller's transaction. */
  private replay(): void {
    this.replayingLog = true;
    try {
      for (const p of this.participants) p.reset();
      this.importRows(this.log.snapshotRows());
      for (const op of this.log.all()) this.apply(op);
    } finally {
      this.replayingLog = false;
    }
    for (const p of this.participants) p.afterReplay?.();
  }
}

const formatCut = (cut: SnapshotCut): string =>
  `${formatVersionVector(cut.versionVector)} (${cut.lamport}/${cut.origin}/${cut.seq})`;
