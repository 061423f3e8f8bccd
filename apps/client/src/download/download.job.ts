import { ChunkHasher, CHUNK_SIZE, ChunkPlan, planChunks } from '@app/chunking';
import { capabilityExpiry, ErrorCode, FileMetadata, formatHostPort, isSha1Hex, SeederInfo } from '@app/protocol';
import { RatePacer } from '../common/rate-pacer';
import { ChunkBufferPool } from './chunk-buffer.pool';
import { ChunkScheduler } from './chunk-scheduler';
import { DownloadError, PeerError } from './download.errors';
import { DEFAULT_MAX_HELD_CHUNKS, InOrderHasher } from './in-order-hasher';
import { PartFile } from './part-file';
import { PipelineSizer, RequestStamp } from './pipeline-sizer';
import { PREFIX_HASHER_MIN_BYTES, PrefixHasher } from './prefix-hasher';
import {
  ChunkLink,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_INACTIVITY_TIMEOUT_MS,
  HeldChunks,
  PeerConnection,
  PeerForm,
} from './peer.connection';
import { SeedPeerConnection } from './seed-peer.connection';
import { SpeedMeter } from './speed-meter';
import { MAX_PIPELINE_DEPTH } from './pipeline-sizer';

export interface DownloadJobOptions {
  /**
   * Requests kept outstanding on each seeder's connection (a chunk counts
   * until it is received and checked), fixed. Default: for a seeder of ours, a depth that follows its measured rate
   * and round trip (`PipelineSizer`, from `defaultInFlightPerSeeder(seeders)` up to `maxInFlightPerSeeder`); for a
   * seed-form seeder (a connection per chunk), `defaultInFlightPerSeeder(seeders)`.
   */
  readonly inFlightPerSeeder?: number;
  /** The most requests an adapting pipeline keeps outstanding with one seeder. Default 32. */
  readonly maxInFlightPerSeeder?: number;
  /**
   * Requests outstanding over all seeders at most (each holds a chunk-sized buffer once its chunk comes): fast
   * seeders then share this many, the faster the more. Default `DEFAULT_MAX_IN_FLIGHT` (16: 8 MiB of 512 KiB chunks).
   */
  readonly maxInFlight?: number;
  /**
   * The download is part of a swarm (partial seeding is on): equally rare chunks are taken in a random order, so
   * that downloaders starting together ask their seeders for different chunks. Default false: in file order, so
   * that the whole-file SHA-1 can follow the chunks as they come.
   */
  readonly swarm?: boolean;
  /**
   * Paces the requests of this download, with the client's other downloads (one key per job): a chunk is asked for
   * only once the pacer granted its length, so all downloads together stay under its rate (changeable at run time).
   */
  readonly downloadPacer?: RatePacer;
  /** Default 5 s. */
  readonly connectTimeoutMs?: number;
  /** A seeder that sends nothing this long while requests are outstanding is dropped. Default 15 s. */
  readonly inactivityTimeoutMs?: number;
  /** Chunks failing their SHA-1 a seeder may serve before it is dropped. Default 3. */
  readonly maxCorruptPerSeeder?: number;
  /** `ERR` answers a seeder may give before it is dropped. Default 3. */
  readonly maxRefusedPerSeeder?: number;
  /**
   * A seeder that is busy (`ERR BUSY`, `TOO_MANY_CONNECTIONS`, `IDLE_TIMEOUT`), refuses the connection or drops it
   * is tried again after this long, doubling each time up to `maxRetryDelayMs` (each delay jittered down by up to
   * half). Defaults 200 ms and 5 s.
   */
  readonly retryDelayMs?: number;
  readonly maxRetryDelayMs?: number;
  /**
   * A seeder that cannot be reached or keeps dropping the connection is dropped once it has given no chunk (nor a
   * busy answer) for this long while being retried. A busy seeder is never dropped for being busy. Default 30 s.
   */
  readonly retryWindowMs?: number;
  /**
   * The download fails once no chunk has been verified for this long, whatever it waits for. Default 10 min;
   * 0 waits for ever.
   */
  readonly stallTimeoutMs?: number;
  /** While seeders serve, the tracker is asked for seeders that came online this often. Default 30 s. */
  readonly rediscoverEveryMs?: number;
  /**
   * While no seeder can serve (all gone, all busy, none has a missing chunk), the tracker is asked again after this
   * long, doubling up to `maxAskDelayMs`. Defaults 1 s and 30 s.
   */
  readonly askDelayMs?: number;
  readonly maxAskDelayMs?: number;
  /** Uniform in [0, 1), for the retry jitter. Default `Math.random`. */
  readonly retryRandom?: () => number;
  /** Must match the chunk size the file's chunk hashes were computed with. Default `CHUNK_SIZE`. */
  readonly chunkSize?: number;
  /** See `ChunkSchedulerOptions`. */
  readonly endGameThreshold?: number;
  readonly endGame?: boolean;
  readonly random?: () => number;
  /** Milliseconds clock for speeds. Default `Date.now`. */
  readonly now?: () => number;
  /** Current speed is measured over this window. Default 3 s. */
  readonly speedWindowMs?: number;
  /**
   * After this many bytes written through the page cache, flush them to disk
   * in the background, so that the final sync has little left to do (direct
   * writes are not counted: they are on disk already). Default 64 MiB; 0 never.
   */
  readonly flushEveryBytes?: number;
  /**
   * Asks the tracker for the file's seeders again, with fresh capabilities.
   * Called in the background once two thirds of a capability's lifetime have
   * passed, and when a seeder answers `DENIED`; the download goes on with the
   * new capabilities, on the same connections. Without it, `DENIED` drops the
   * seeder. The same call finds seeders: every `rediscoverEveryMs`, at once
   * when a seeder is dropped, and with backoff while none can serve; seeders
   * it lists that the job does not know yet are added (the caller leaves out
   * this client itself), and one dropped as unreachable is taken back. Without
   * it, the download fails once no seeder is left.
   */
  readonly renewCapabilities?: () => Promise<readonly SeederInfo[]>;
  /**
   * Gives the `.part` to write into, and the chunks already in it and verified (a resumed download: they are not
   * fetched, and the whole-file SHA-1 is then taken from disk). Default: a new `.part` (`PartFile.create`).
   */
  readonly openPart?: () => Promise<{ part: PartFile; present: readonly number[] }>;
  /**
   * Something the user should hear of once, as it happens: a seeder whose certificate is not the one its tracker
   * lists (it is dropped for this download; the text is the error's message).
   */
  readonly onNotice?: (text: string) => void;
  /** Chunk `index` is verified and written into the `.part` (not yet synced). */
  readonly onChunkWritten?: (index: number) => void;
  /** The `.part` is open (made, or found and checked), holding the chunks `present`, before any seeder is asked. */
  readonly onPartOpened?: (partPath: string, present: readonly number[]) => void;
  /**
   * A failed or cancelled download closes its `.part` and leaves it, for a later one to resume; except when the
   * whole-file check failed (its bytes cannot be trusted). Default false: the `.part` is deleted.
   */
  readonly keepPart?: boolean;
}

export type DownloadState = 'downloading' | 'complete' | 'failed';
/** `retrying`: busy or unreachable for now, tried again after a delay. */
export type SeederState = 'connecting' | 'active' | 'retrying' | 'dropped' | 'finished';

export interface SeederProgress {
  readonly userId: string;
  readonly address: string;
  readonly state: SeederState;
  // the three below are always set by `DownloadJob` (optional only for progress made up elsewhere, as in tests)
  /** Listed as a partial seeder (downloading the file itself) and not seen with all of it since. */
  readonly partial?: boolean;
  /** Chunks it holds, as far as known (0 once dropped). */
  readonly held?: number;
  /** Requests it is kept busy with now (its pipeline depth). */
  readonly depth?: number;
  /** Verified chunks taken from this seeder. */
  readonly chunks: number;
  readonly corrupt: number;
  readonly refused: number;
  /** Times it was set to be connected to again after being busy or refusing or losing the connection. */
  readonly retries: number;
  /** Why it was last retried. */
  readonly retryReason?: string;
  /** Why it was dropped. */
  readonly reason?: string;
  /** Its current connection runs over TLS, its certificate the one the tracker lists. */
  readonly tls?: boolean;
}

export interface DownloadProgress {
  readonly fileName: string;
  readonly destPath: string;
  readonly state: DownloadState;
  /** All chunks are in; the whole-file SHA-1 is being checked (from disk if the chunks came too far out of order). */
  readonly verifying: boolean;
  /** Bytes of the file hashed so far by that check. */
  readonly verifiedBytes: number;
  readonly bytesDone: number;
  readonly totalBytes: number;
  /** 0 to 100. */
  readonly percent: number;
  readonly chunksDone: number;
  readonly chunkCount: number;
  /** Chunks found in the `.part` of an earlier download and not fetched again (counted in `chunksDone`). */
  readonly resumedChunks: number;
  /** Their bytes (counted in `bytesDone`). */
  readonly resumedBytes: number;
  /** Bytes per second over the last few seconds (0 once finished). */
  readonly speed: number;
  /** Bytes per second since the start. */
  readonly averageSpeed: number;
  readonly elapsedMs: number;
  readonly reason?: string;
  /** While no seeder serves: what the download waits for, e.g. `waiting for a seeder (none online; ...)`. */
  readonly waiting?: string;
  readonly seeders: readonly SeederProgress[];
}

/**
 * Chunks in flight per seeder unless told otherwise: about eight in all (4 MiB), 4 per seeder for one or two, fewer
 * for more but never under 2, so that a seeder always has the next request while it sends a chunk. More in flight
 * in all buys nothing once the seeders are kept busy, and costs memory and, where seeders share the machine's cores,
 * speed (measured on two cores, though with seeders 3 and 4 less warmed up than 1 and 2: 4 seeders at 4 each ran
 * 3-8 % slower than 2 seeders at 4 each; at 2 each, 0-2 % slower in most rounds).
 */
export function defaultInFlightPerSeeder(seeders: number): number {
  return Math.min(4, Math.max(2, Math.ceil(8 / Math.max(1, seeders))));
}

/**
 * Checked chunks waiting for the disk at most, over all seeders, before no
 * more are asked for: a slow disk holds the download back instead of filling
 * memory, while a fast one never leaves a seeder without a request.
 */
export const MAX_QUEUED_WRITES = 8;

/** Requests outstanding over all of a download's seeders at most, by default. */
export const DEFAULT_MAX_IN_FLIGHT = 16;

/** See `DownloadJobOptions.flushEveryBytes`. */
export const DEFAULT_FLUSH_EVERY_BYTES = 64 * 1024 * 1024;

/** `ERR` codes that mean a seeder no longer serves the file at all. */
const WHOLE_FILE_REFUSALS = new Set<string>([
  ErrorCode.NotShared,
  ErrorCode.FileChanged,
  ErrorCode.UnknownFile,
  ErrorCode.Denied,
]);

/** A partial seeder answering a chunk it lacks: no blame, the chunk goes to someone who has it. */
const NOT_HELD: string = ErrorCode.NotHeld;

/** A seeder that denies this many fresh capabilities in a row, with no chunk between, is dropped. */
const MAX_DENIED_CAPABILITIES = 3;
/** After a failed renewal, the next is tried no sooner than this. */
const RENEW_RETRY_MS = 5_000;
/** Renewals are at least this far apart, however short capabilities live. */
const MIN_RENEW_INTERVAL_MS = 500;

/** `ERR` codes that mean a seeder is busy or closed an idle connection: worth trying again a little later. */
const RETRY_LATER = new Set<string>([ErrorCode.Busy, ErrorCode.TooManyConnections, ErrorCode.IdleTimeout]);

export const DEFAULT_RETRY_DELAY_MS = 200;
export const DEFAULT_MAX_RETRY_DELAY_MS = 5_000;
export const DEFAULT_RETRY_WINDOW_MS = 30_000;
export const DEFAULT_STALL_TIMEOUT_MS = 10 * 60_000;
export const DEFAULT_REDISCOVER_EVERY_MS = 30_000;
export const DEFAULT_ASK_DELAY_MS = 1_000;
export const DEFAULT_MAX_ASK_DELAY_MS = 30_000;

/** Whether a seeder that failed so is busy (or closed an idle connection) rather than lost. */
function isBusy(err: unknown, lastRefusal: string | undefined): boolean {
  if (!(err instanceof PeerError)) return false;
  return RETRY_LATER.has(err.code ?? (err.kind === 'closed' ? (lastRefusal ?? '') : ''));
}

/** Whether a seeder that failed so is worth connecting to again (busy, refused or lost connections). */
function worthRetrying(err: unknown): boolean {
  if (!(err instanceof PeerError)) return false;
  switch (err.kind) {
    case 'connect':
      return err.code === undefined || RETRY_LATER.has(err.code);
    case 'closed':
      return true;
    case 'refused':
      return RETRY_LATER.has(err.code ?? '');
    default:
      return false;
  }
}

interface Seeder {
  readonly id: string;
  readonly info: SeederInfo;
  /** What its requests carry: the latest capability the tracker issued for it. */
  capability: string;
  /** A capability it answered `DENIED` to and that is still its latest: no requests until a fresh one comes. */
  denied?: string;
  /** Capabilities denied in a row. */
  denials: number;
  /**
   * Speaks only the seed form (listed so by the tracker, or found so when it did not answer our HELLO): one
   * connection per chunk, raw bytes.
   */
  seedForm: boolean;
  /** The certificate fingerprint the tracker lists for it (the latest listing): spoken to over TLS; none: in clear. */
  fingerprint?: string;
  /** The current connection (seed form: the connections, one per chunk); a new one after each retry. */
  conn: ChunkLink;
  /**
   * Listed as a partial seeder: asked for its have-list on each connection and followed by its `HAVE`s; never
   * spoken to in the seed form. False once the tracker lists it as a (full) seeder.
   */
  partial: boolean;
  /** How many requests to keep outstanding with it (adapting to its rate). */
  readonly sizer: PipelineSizer;
  state: SeederState;
  /** Requests outstanding, or received and not yet checked. */
  slots: number;
  chunks: number;
  corrupt: number;
  refused: number;
  /** Code of the last `ERR` it answered. */
  lastRefusal?: string;
  reason?: string;
  retries: number;
  retryReason?: string;
  /** While retrying: it was busy (else unreachable or lost), and when it is connected to again. */
  busy?: boolean;
  retryAt?: number;
  /** Dropped for being unreachable or silent, not for what it sent: taken back should the tracker list it again. */
  revivable?: boolean;
  /** When it last gave a verified chunk or a busy answer (or the transfer started). */
  lastProgressAt: number;
  /** The next retry waits up to this long. */
  retryDelayMs: number;
  retryTimer?: NodeJS.Timeout;
}

/**
 * Downloads one file from its seeders into `destPath`.
 *
 * Every seeder of ours gets one connection (opened with `HELLO p2p-share/2`)
 * with as many requests outstanding as its measured rate and round trip call
 * for (`PipelineSizer`; fixed with `inFlightPerSeeder`); a seeder that speaks only
 * the seed form (listed so by the tracker, or found so when it does not answer
 * the HELLO as ours do) gets up to `defaultInFlightPerSeeder` connections at once, one per chunk,
 * each reading the chunk's raw bytes. A partial seeder (one still downloading the file, listed in
 * `partialSeeders` or so by `renewCapabilities`) is asked for its have-list on each connection and followed by
 * its `HAVE`s; a chunk it answers `NOT_HELD` goes to another without blame. A `ChunkScheduler` decides which chunk
 * each fetches (rarest first over what each holds, end-game duplicates near the end). With a `downloadPacer`, each
 * request waits for its turn at the client's download rate. Each chunk is checked against its
 * SHA-1 and written at its offset into `<dest>.part`, so only chunks in
 * flight, and a few that came early, are ever in memory. Seeders that fail to
 * connect, time out, hang up, break the protocol or serve too many bad chunks
 * are dropped and their chunks go to the others; one that is busy, refuses the connection or drops it is connected
 * to again with backoff (its chunks go to the others meanwhile) until it has given nothing for `retryWindowMs`.
 * The whole-file SHA-1 is computed from the verified
 * chunks in file order as they come (`InOrderHasher`), or from the file on
 * disk should they come too far out of order; once every chunk is in and it
 * matches, the file is synced, and only then given its name. Any
 * failure, or `cancel()`, deletes the `.part` file, unless told to keep it
 * (`keepPart`) for a later download to resume (`openPart`).
 */
export class DownloadJob {
  private readonly plan: ChunkPlan;
  private readonly scheduler: ChunkScheduler;
  private readonly pool: ChunkBufferPool;
  private readonly seeders: Seeder[];
  /** Fixed depth (the option), or undefined: each seeder's adapts. */
  private readonly fixedInFlight: number | undefined;
  /** Depth of seed-form seeders, and where adapting ones start. */
  private readonly baseInFlight: number;
  private readonly maxInFlight: number;
  private readonly maxInFlightTotal: number;
  private readonly maxCorrupt: number;
  private readonly maxRefused: number;
  private readonly now: () => number;
  private readonly speedWindowMs: number;
  private readonly retryDelayMs: number;
  private readonly maxRetryDelayMs: number;
  private readonly retryWindowMs: number;
  private readonly retryRandom: () => number;
  private readonly stallTimeoutMs: number;
  private readonly rediscoverEveryMs: number;
  private readonly askDelayMs: number;
  private readonly maxAskDelayMs: number;

  private started = false;
  private state: DownloadState = 'downloading';
  private verifying = false;
  private verifiedBytes = 0;
  private committing = false;
  private reason: string | undefined;
  private startedAt = 0;
  private finishedAt: number | undefined;
  private bytesDone = 0;
  /** Chunks and bytes that were in the `.part` already (`openPart`). */
  private resumedChunks = 0;
  private resumedBytes = 0;
  /** The whole-file check failed: the `.part` is not kept. */
  private untrusted = false;
  private speed: SpeedMeter | undefined;

  private part: PartFile | undefined;
  private readonly writes = new Set<Promise<void>>();
  private readonly flushEveryBytes: number;
  private unflushedBytes = 0;
  /** The background flush running, if any. */
  private flushing: Promise<void> | undefined;
  /** Flush again once the running one is over. */
  private flushAgain = false;
  /** No more chunks are requested or accepted. */
  private transferOver = false;
  private transferDone: (() => void) | undefined;
  private abortWith: ((err: DownloadError) => void) | undefined;
  private abortError: DownloadError | undefined;
  private readonly aborted: Promise<never>;
  /** The whole-file SHA-1, from the chunks in memory. */
  private readonly inOrder: InOrderHasher;
  /** Verified chunks still used by their write or by `inOrder`: released to the pool when both are done. */
  private readonly uses = new WeakMap<Buffer, number>();
  private readonly writtenChunks: Uint8Array;
  /** Should `inOrder` give up: hashes the written start of the file from disk during the transfer (large files). */
  private prefixHasher: PrefixHasher | undefined;
  /** The capability renewal under way, if any. */
  private renewing: Promise<void> | undefined;
  /** When (ms, local clock) the capabilities are next renewed; undefined: not before a seeder denies one. */
  private renewAt: number | undefined;
  /** Completed renewals. */
  private renewals = 0;
  /** Wakes the job for a renewal when no chunk arrives to do it; cleared when the transfer ends. */
  private renewWake: NodeJS.Timeout | undefined;
  /** When (local clock) the tracker was last asked for seeders, and how that went (undefined: it answered). */
  private askedAt: number | undefined;
  private askProblem: string | undefined;
  /** The next ask of the tracker for seeders, and when it is due. */
  private askTimer: NodeJS.Timeout | undefined;
  private nextAskAt: number | undefined;
  /** How long the next ask waits while no seeder can serve. */
  private askBackoffMs: number;
  /** When the last chunk was verified (or the transfer started), and the timer that fails the job after too long. */
  private progressAt = 0;
  private stallTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly metadata: FileMetadata,
    readonly destPath: string,
    private readonly hasher: ChunkHasher,
    private readonly options: DownloadJobOptions = {},
  ) {
    this.plan = planChunks(metadata.fileSize, options.chunkSize ?? CHUNK_SIZE);
    const listed = listedSeeders(metadata);
    this.fixedInFlight = options.inFlightPerSeeder === undefined ? undefined : Math.max(1, options.inFlightPerSeeder);
    this.baseInFlight = this.fixedInFlight ?? defaultInFlightPerSeeder(listed.length);
    this.maxInFlight = Math.max(this.baseInFlight, options.maxInFlightPerSeeder ?? MAX_PIPELINE_DEPTH);
    this.maxInFlightTotal = Math.max(1, options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT);
    this.maxCorrupt = Math.max(1, options.maxCorruptPerSeeder ?? 3);
    this.maxRefused = Math.max(1, options.maxRefusedPerSeeder ?? 3);
    this.now = options.now ?? Date.now;
    this.speedWindowMs = options.speedWindowMs ?? 3_000;
    this.flushEveryBytes = options.flushEveryBytes ?? DEFAULT_FLUSH_EVERY_BYTES;
    this.retryDelayMs = Math.max(1, options.retryDelayMs ?? DEFAULT_RETRY_DELAY_MS);
    this.maxRetryDelayMs = Math.max(this.retryDelayMs, options.maxRetryDelayMs ?? DEFAULT_MAX_RETRY_DELAY_MS);
    this.retryWindowMs = options.retryWindowMs ?? DEFAULT_RETRY_WINDOW_MS;
    this.retryRandom = options.retryRandom ?? Math.random;
    this.stallTimeoutMs = Math.max(0, options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS);
    this.rediscoverEveryMs = Math.max(1, options.rediscoverEveryMs ?? DEFAULT_REDISCOVER_EVERY_MS);
    this.askDelayMs = Math.max(1, options.askDelayMs ?? DEFAULT_ASK_DELAY_MS);
    this.maxAskDelayMs = Math.max(this.askDelayMs, options.maxAskDelayMs ?? DEFAULT_MAX_ASK_DELAY_MS);
    this.askBackoffMs = this.askDelayMs;
    this.scheduler = new ChunkScheduler(this.plan.count, {
      // equally rare chunks go in file order unless told otherwise or swarming: the whole-file SHA-1 can then follow
      // the chunks as they come (see InOrderHasher) instead of reading the file back
      random: options.random ?? (options.swarm ? Math.random : () => 0),
      endGameThreshold: options.endGameThreshold,
      endGame: options.endGame,
    });
    this.pool = new ChunkBufferPool(
      this.plan.chunkSize,
      // slots are mapped as first used: room for every listed seeder's deepest pipeline costs nothing until used
      Math.min(2 * this.maxInFlightTotal, listed.length * (this.fixedInFlight ?? this.maxInFlight)) +
        MAX_QUEUED_WRITES +
        DEFAULT_MAX_HELD_CHUNKS +
        4,
    );
    this.inOrder = new InOrderHasher(this.plan.count, (data) => this.letGo(data));
    this.writtenChunks = new Uint8Array(this.plan.count);
    const ids = new Set<string>();
    this.seeders = listed.map((info, i) => {
      const id = ids.has(info.userId) ? `${info.userId}#${i + 1}` : info.userId;
      ids.add(id);
      return this.newSeeder(id, info);
    });
    this.aborted = new Promise<never>((_, reject) => (this.abortWith = reject));
    this.aborted.catch(() => undefined);
  }

  /** How many times fresh capabilities were fetched from the tracker. */
  get capabilityRenewals(): number {
    return this.renewals;
  }

  get fileName(): string {
    return this.metadata.fileName;
  }

  /** Runs the download to the end; rejects with a `DownloadError` whose message is the reason. */
  async run(): Promise<void> {
    if (this.started) throw new Error('a DownloadJob runs once');
    this.started = true;
    this.startedAt = this.now();
    this.speed = new SpeedMeter(this.startedAt, this.speedWindowMs);
    try {
      if (this.abortError) throw this.abortError;
      await this.download();
      this.state = 'complete';
    } catch (err) {
      const failure = err instanceof DownloadError ? err : new DownloadError(errorText(err));
      this.state = 'failed';
      this.reason ??= failure.message;
      this.stopTransfer();
      await this.cleanUp();
      throw failure;
    } finally {
      this.verifying = false;
      this.finishedAt = this.now();
    }
  }

  /** Stops the download; `run()` then rejects with reason `cancelled` and the `.part` file is removed (or kept: `keepPart`). */
  cancel(): void {
    this.abort(new DownloadError('cancelled'));
  }

  get progress(): DownloadProgress {
    const now = this.finishedAt ?? this.now();
    const elapsedMs = this.started ? now - this.startedAt : 0;
    const total = this.plan.fileSize;
    return {
      fileName: this.metadata.fileName,
      destPath: this.destPath,
      state: this.state,
      verifying: this.verifying,
      verifiedBytes: this.verifiedBytes,
      bytesDone: this.bytesDone,
      totalBytes: total,
      percent: total === 0 ? (this.state === 'complete' ? 100 : 0) : (100 * this.bytesDone) / total,
      chunksDone: this.scheduler.doneCount,
      chunkCount: this.plan.count,
      resumedChunks: this.resumedChunks,
      resumedBytes: this.resumedBytes,
      speed: this.speed && this.state === 'downloading' ? this.speed.current(now) : 0,
      averageSpeed: this.speed?.average(now) ?? 0,
      elapsedMs,
      reason: this.reason,
      waiting: this.state === 'downloading' && this.started && !this.verifying ? this.waitingFor(now) : undefined,
      seeders: this.seeders.map((s) => ({
        userId: s.info.userId,
        address: formatHostPort(s.info.address),
        state: s.state,
        partial: s.partial,
        held: s.state === 'dropped' ? 0 : this.scheduler.heldCount(s.id),
        depth: this.depthOf(s),
        chunks: s.chunks,
        corrupt: s.corrupt,
        refused: s.refused,
        retries: s.retries,
        retryReason: s.retryReason,
        reason: s.reason,
        tls: s.conn instanceof PeerConnection && s.conn.tls,
      })),
    };
  }

  private async download(): Promise<void> {
    const { metadata, plan } = this;
    if (metadata.chunkHashes.length !== plan.count) {
      throw new DownloadError(
        `bad metadata for ${metadata.fileName}: ${metadata.chunkHashes.length} chunk hashes for ${plan.count} chunks`,
      );
    }
    if (!isSha1Hex(metadata.fileHash.toLowerCase())) {
      throw new DownloadError(`bad metadata for ${metadata.fileName}: file hash is not a SHA-1`);
    }
    if (this.seeders.length === 0 && plan.count > 0) {
      throw new DownloadError(`no seeder is online for ${metadata.fileName}`);
    }
    const opened = this.options.openPart
      ? await this.options.openPart()
      : { part: await PartFile.create(this.destPath, plan.fileSize), present: [] };
    const part = (this.part = opened.part);
    if (this.abortError) throw this.abortError;
    this.markPresent(opened.present);
    this.options.onPartOpened?.(part.path, opened.present);
    if (!this.scheduler.isDone) await this.race(this.transfer());
    this.verifying = true;
    // the disk catches up with the last writes while the rest of the file is hashed
    this.flush(true);
    const reread = () => part.sha1((bytes) => (this.verifiedBytes = bytes));
    let digest: { fileHash: string; size: number };
    if (this.inOrder.isComplete) {
      digest = { fileHash: this.inOrder.digest(), size: plan.fileSize };
      this.verifiedBytes = plan.fileSize;
    } else {
      // should the hashing thread fail, the file is read again from the start here
      digest = await this.race(this.prefixHasher ? this.prefixHasher.finish().catch(reread) : reread());
    }
    if (digest.fileHash !== metadata.fileHash.toLowerCase() || digest.size !== plan.fileSize) {
      this.untrusted = true;
      throw new DownloadError(
        `${metadata.fileName} failed its whole-file check: SHA-1 ${digest.fileHash}, expected ${metadata.fileHash}`,
      );
    }
    // past this point the file gets its name: too late to cancel
    this.committing = true;
    while (this.flushing) await this.flushing;
    await this.part.commit();
  }

  /** Settles with `work`, or rejects as soon as the job is aborted. */
  private race<T>(work: Promise<T>): Promise<T> {
    return Promise.race([work, this.aborted]);
  }

  private abort(err: DownloadError): void {
    if (this.abortError || this.committing || this.state !== 'downloading') return;
    this.abortError = err;
    this.reason = err.message;
    this.stopTransfer();
    this.abortWith?.(err);
  }

  /** Resolves once every chunk is verified and written. */
  private transfer(): Promise<void> {
    const done = new Promise<void>((resolve) => (this.transferDone = resolve));
    const now = this.now();
    for (const seeder of this.seeders) {
      seeder.lastProgressAt = now;
      this.register(seeder);
    }
    this.scheduleRenewal(now);
    this.progressAt = now;
    this.watchStall();
    this.scheduleAsk();
    for (const seeder of this.seeders) this.connect(seeder);
    return done;
  }

  /** Fails the job once no chunk has been verified for `stallTimeoutMs`, saying what it was waiting for. */
  private watchStall(): void {
    if (this.stallTimeoutMs <= 0 || this.transferOver) return;
    clearTimeout(this.stallTimer);
    const left = this.progressAt + this.stallTimeoutMs - this.now();
    this.stallTimer = setTimeout(
      () => {
        this.stallTimer = undefined;
        if (this.transferOver) return;
        if (this.now() - this.progressAt < this.stallTimeoutMs) return this.watchStall();
        const waiting = this.waitingFor(this.now(), false) ?? 'the seeders connected sent no good chunk';
        this.abort(new DownloadError(`no progress for ${formatWait(this.stallTimeoutMs)}: ${waiting}`));
      },
      Math.max(0, left),
    );
  }

  /**
   * No seeder can serve now: none is connected or being connected to for the first time (one being retried does not
   * count until it is connected), or none of those has some missing chunk.
   */
  private get stuck(): boolean {
    if (!this.seeders.some((s) => s.state === 'active' || (s.state === 'connecting' && s.retries === 0))) return true;
    return this.scheduler.unavailableChunk() !== undefined;
  }

  /**
   * Sets when the tracker is next asked for seeders: after `rediscoverEveryMs` while seeders serve; while none can,
   * after the ask backoff, which doubles with each ask that leaves the job stuck.
   */
  private scheduleAsk(): void {
    if (!this.options.renewCapabilities || this.transferOver) return;
    if (this.stuck) {
      this.askAfter(this.askBackoffMs);
      this.askBackoffMs = Math.min(this.maxAskDelayMs, this.askBackoffMs * 2);
    } else {
      this.askBackoffMs = this.askDelayMs;
      this.askAfter(this.rediscoverEveryMs);
    }
  }

  /** The job may have just got stuck: asks the tracker within the ask backoff, sooner than planned if need be. */
  private askSoon(): void {
    if (!this.options.renewCapabilities || this.transferOver || this.renewing || !this.stuck) return;
    if (this.nextAskAt !== undefined && this.nextAskAt <= this.now() + this.askBackoffMs) return;
    this.askAfter(this.askBackoffMs);
  }

  private askAfter(ms: number): void {
    clearTimeout(this.askTimer);
    this.nextAskAt = this.now() + ms;
    this.askTimer = setTimeout(() => {
      this.askTimer = undefined;
      this.nextAskAt = undefined;
      void this.renew();
    }, ms);
  }

  /**
   * What the job waits for while no seeder serves, undefined while some do: each seeder being retried and when, or
   * that none is online, when the tracker was asked and is asked next, and how long until the stall timeout.
   */
  private waitingFor(now: number, withDeadline = true): string | undefined {
    if (!this.stuck || this.transferOver) return undefined;
    const live = this.seeders.filter((s) => s.state !== 'dropped');
    const missing = this.scheduler.unavailableChunk();
    const parts: string[] = [];
    if (live.length === 0) parts.push('none online');
    for (const s of live) {
      if (s.state === 'retrying') {
        const when = formatWait(Math.max(0, (s.retryAt ?? now) - now));
        parts.push(`${s.info.userId} ${s.busy ? 'busy' : (s.retryReason ?? 'lost')}, retry in ${when}`);
      } else if (s.state === 'connecting') parts.push(`${s.info.userId} connecting`);
    }
    if (live.length > 0 && missing !== undefined) parts.push(`none online has chunk ${missing}`);
    const dropped = this.seeders.filter((s) => s.state === 'dropped');
    if (!withDeadline && dropped.length > 0) {
      parts.push(`dropped ${dropped.map((s) => `${s.info.userId} (${s.reason ?? 'failed'})`).join(', ')}`);
    }
    if (this.options.renewCapabilities) {
      const asked =
        this.renewing !== undefined
          ? 'asking the tracker now'
          : this.askedAt === undefined
            ? 'the tracker not asked yet'
            : `asked the tracker ${formatWait(now - this.askedAt)} ago` +
              (this.askProblem ? ` (${this.askProblem})` : '');
      const next =
        this.renewing === undefined && this.nextAskAt !== undefined
          ? `, next in ${formatWait(Math.max(0, this.nextAskAt - now))}`
          : '';
      parts.push(asked + next);
    }
    if (withDeadline && this.stallTimeoutMs > 0) {
      const left = Math.max(0, this.progressAt + this.stallTimeoutMs - now);
      parts.push(`gives up in ${formatWait(left)} without progress`);
    }
    return `waiting for a seeder (${parts.join('; ')})`;
  }

  private connect(seeder: Seeder): void {
    const { host, port } = seeder.info.address;
    const conn = seeder.conn;
    conn
      .connect(host, port, {
        connectTimeoutMs: this.options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
        inactivityTimeoutMs: this.options.inactivityTimeoutMs ?? DEFAULT_INACTIVITY_TIMEOUT_MS,
        // seed-form seeders never speak TLS (one per chunk, in clear)
        ...(!seeder.seedForm &&
          seeder.fingerprint && {
            fingerprint: seeder.fingerprint,
            label: `${seeder.info.userId} at ${formatHostPort(seeder.info.address)}`,
          }),
      })
      .then(
        (form: PeerForm) => {
          if (seeder.state !== 'connecting' || seeder.conn !== conn) return;
          if (form === 'seed' && seeder.partial) {
            return this.drop(seeder, 'did not answer our HELLO (a partial seeder speaks the extended form)');
          }
          if (form === 'seed' && !seeder.seedForm) {
            // it did not answer our HELLO as ours do: it speaks only the seed form, so go on in that form
            seeder.seedForm = true;
            seeder.conn = this.newLink(true);
            return this.connect(seeder);
          }
          seeder.sizer.reset();
          if (conn instanceof PeerConnection) seeder.sizer.observeRoundTrip(conn.helloRoundTripMs ?? NaN);
          if (seeder.partial && conn instanceof PeerConnection) return this.askHeld(seeder, conn);
          seeder.state = 'active';
          this.pump(seeder);
        },
        (err: unknown) => {
          if (seeder.conn !== conn) return;
          this.lose(seeder, err);
        },
      );
  }

  /** Asks a partial seeder, on a new connection, which chunks it holds; it serves once the answer is in. */
  private askHeld(seeder: Seeder, conn: PeerConnection): void {
    conn.onHave = (indexes) => this.onHave(seeder, conn, indexes);
    conn.bitfield(seeder.capability, this.plan.count).then(
      (held: HeldChunks) => {
        if (this.transferOver || seeder.state !== 'connecting' || seeder.conn !== conn) return;
        this.scheduler.setHeld(seeder.id, held);
        seeder.state = 'active';
        this.pump(seeder);
      },
      (err: unknown) => {
        if (this.transferOver || seeder.conn !== conn) return;
        // refusing its have-list (e.g. DENIED): taken back should the tracker list it again
        if (err instanceof PeerError && err.kind === 'refused') {
          return this.drop(seeder, `refused its have-list (${err.code ?? 'ERR'})`, true);
        }
        this.lose(seeder, err);
      },
    );
  }

  /** A partial seeder gained chunks. */
  private onHave(seeder: Seeder, conn: PeerConnection, indexes: number[]): void {
    if (this.transferOver || seeder.conn !== conn || seeder.state === 'dropped') return;
    this.scheduler.addChunks(seeder.id, indexes);
    this.pump(seeder);
  }

  /** Registers a seeder with the scheduler: holding the whole file, or (partial) nothing until its have-list comes. */
  private register(seeder: Seeder): void {
    this.scheduler.addSeeder(seeder.id, seeder.partial ? [] : undefined);
  }

  /**
   * Requests `seeder` may have outstanding under the cap over all seeders: what the others leave free, and at least
   * its fair share of the cap (so that a seeder that connects late is not starved by one that took every slot; the
   * cap may then be passed, up to twice the cap, until the others' requests come back).
   */
  private roomFor(seeder: Seeder): number {
    let others = 0;
    let active = 0;
    for (const s of this.seeders) {
      if (s.state === 'active') active++;
      if (s !== seeder) others += s.slots;
    }
    const fair = Math.ceil(this.maxInFlightTotal / Math.max(1, active));
    return Math.min(Math.max(fair, this.maxInFlightTotal - others), 2 * this.maxInFlightTotal - others);
  }

  /** Requests to keep outstanding with a seeder now. */
  private depthOf(seeder: Seeder): number {
    if (this.fixedInFlight !== undefined) return this.fixedInFlight;
    return seeder.seedForm ? this.baseInFlight : seeder.sizer.depth;
  }

  private newSeeder(id: string, info: SeederInfo): Seeder {
    const partial = info.partial === true;
    const seedForm = info.seedForm === true && !partial;
    return {
      id,
      info,
      capability: info.capability,
      denials: 0,
      seedForm,
      ...(info.fingerprint && { fingerprint: info.fingerprint }),
      partial,
      sizer: new PipelineSizer({
        chunkSize: this.plan.chunkSize,
        initialDepth: this.baseInFlight,
        maxDepth: this.maxInFlight,
      }),
      conn: this.newLink(seedForm),
      state: 'connecting',
      slots: 0,
      chunks: 0,
      corrupt: 0,
      refused: 0,
      retries: 0,
      lastProgressAt: 0,
      retryDelayMs: this.retryDelayMs,
    };
  }

  /** A connection to a seeder of the given form, reading chunks into the job's buffer pool. */
  private newLink(seedForm: boolean): ChunkLink {
    return seedForm ? new SeedPeerConnection({ pool: this.pool }) : new PeerConnection({ pool: this.pool });
  }

  /** The seeder's connection failed with `err`: try it again later if that is worth it, else drop it. */
  private lose(seeder: Seeder, err: unknown): void {
    const what = describeLoss(err, seeder.lastRefusal);
    if (err instanceof PeerError && err.kind === 'identity') {
      // not the seeder its tracker lists: dropped for this download, never retried nor taken back
      if (seeder.state !== 'dropped' && !this.transferOver) this.options.onNotice?.(err.message);
      return this.drop(seeder, what);
    }
    if (worthRetrying(err)) this.retryLater(seeder, what, isBusy(err, seeder.lastRefusal));
    // one that went silent may be back on a new connection, should the tracker still list it
    else this.drop(seeder, what, err instanceof PeerError && err.kind === 'timeout');
  }

  /**
   * Closes the seeder's connection, gives its chunks in flight to the others
   * and connects to it again after a backoff delay. A busy seeder is retried
   * for as long as the download runs; one that is lost is dropped once it has
   * given no chunk (nor a busy answer) for `retryWindowMs`.
   */
  private retryLater(seeder: Seeder, what: string, busy: boolean): void {
    if (this.transferOver || (seeder.state !== 'connecting' && seeder.state !== 'active')) return;
    const now = this.now();
    // a busy answer shows the seeder is there: the window for losing it starts again
    if (busy) seeder.lastProgressAt = now;
    const waited = now - seeder.lastProgressAt;
    const left = this.retryWindowMs - waited;
    if (left <= 0) {
      return this.drop(
        seeder,
        `${what}; gave up after ${seeder.retries} retries, no chunk for ${formatMs(waited)}`,
        true,
      );
    }
    seeder.state = 'retrying';
    seeder.retries++;
    seeder.retryReason = what;
    seeder.busy = busy;
    seeder.lastRefusal = undefined;
    seeder.conn.close();
    for (const index of this.scheduler.inFlightOf(seeder.id)) this.scheduler.cancel(index, seeder.id);
    const delay = Math.min(left, seeder.retryDelayMs * (0.5 + 0.5 * this.retryRandom()));
    seeder.retryDelayMs = Math.min(this.maxRetryDelayMs, seeder.retryDelayMs * 2);
    seeder.retryAt = now + delay;
    seeder.retryTimer = setTimeout(() => {
      seeder.retryTimer = undefined;
      if (this.transferOver || seeder.state !== 'retrying') return;
      seeder.state = 'connecting';
      seeder.conn = this.newLink(seeder.seedForm);
      this.connect(seeder);
    }, delay);
    // its chunks go to the others meanwhile
    this.pumpAll();
    this.askSoon();
  }

  /**
   * Fills the seeder's free request slots with chunks from the scheduler. With a download pacer, a chunk is taken
   * (and its slot held) at once but asked for only once the pacer grants its length.
   */
  private pump(seeder: Seeder): void {
    if (this.renewAt !== undefined && this.now() >= this.renewAt) void this.renew();
    while (
      !this.transferOver &&
      seeder.state === 'active' &&
      seeder.denied !== seeder.capability &&
      seeder.slots < this.depthOf(seeder) &&
      this.writes.size < MAX_QUEUED_WRITES &&
      seeder.slots < this.roomFor(seeder)
    ) {
      const index = this.scheduler.next(seeder.id);
      if (index === undefined) return;
      seeder.slots++;
      const pacer = this.options.downloadPacer;
      if (!pacer) {
        this.request(seeder, index);
        continue;
      }
      const conn = seeder.conn;
      pacer.take(this.chunkLength(index), this).then(
        () => {
          if (!this.transferOver && seeder.conn === conn && seeder.state === 'active') {
            if (!this.scheduler.isChunkDone(index)) return this.request(seeder, index);
            this.scheduler.cancel(index, seeder.id);
          } else if (!this.transferOver && seeder.conn === conn) {
            this.scheduler.cancel(index, seeder.id);
          }
          // the connection it was for is gone (its chunks went back then), or the chunk came from another seeder
          seeder.slots--;
          this.pump(seeder);
        },
        () => {
          // cancelled: the transfer is over
          seeder.slots--;
        },
      );
    }
  }

  /** Asks the seeder for chunk `index` (its slot is taken already). */
  private request(seeder: Seeder, index: number): void {
    const conn = seeder.conn;
    const capability = seeder.capability;
    const stamp = seeder.sizer.sent();
    conn.fetch(index, capability, this.chunkLength(index)).then(
      (data) => this.onChunk(seeder, index, data, stamp),
      (err: unknown) => {
        seeder.sizer.failed(stamp);
        this.onFetchError(seeder, index, err, conn, capability);
      },
    );
  }

  /**
   * Fetches fresh capabilities (one renewal at a time) and gives each seeder
   * its own, matched by user and address; connections stay as they are. A
   * seeder still waiting on a denied capability afterwards is no longer
   * offered by the tracker and is dropped. Seeders listed that the job does
   * not know are added, and ones dropped as unreachable are taken back.
   */
  private renew(): Promise<void> {
    const ask = this.options.renewCapabilities;
    if (!ask || this.transferOver) return Promise.resolve();
    this.renewing ??= (async () => {
      this.renewAt = undefined;
      clearTimeout(this.askTimer);
      this.nextAskAt = undefined;
      let fresh: readonly SeederInfo[];
      try {
        fresh = await ask();
      } catch (err) {
        if (this.transferOver) return;
        this.askedAt = this.now();
        this.askProblem = errorText(err);
        this.renewAt = this.now() + RENEW_RETRY_MS;
        for (const s of this.seeders) {
          if (s.denied === s.capability) this.drop(s, `denied access, and no fresh capability (${errorText(err)})`);
        }
        return;
      }
      if (this.transferOver) return;
      this.askedAt = this.now();
      this.askProblem = undefined;
      this.renewals++;
      for (const s of this.seeders) {
        const same = fresh.find((f) => sameSeeder(f, s.info));
        if (same) {
          s.capability = same.capability;
          // taken on the next connection: the tracker knows the certificate it registered with last
          s.fingerprint = same.fingerprint;
        }
      }
      for (const info of fresh) this.adopt(info);
      this.scheduleRenewal(this.now());
      for (const s of this.seeders) if (s.denied === s.capability) this.drop(s, 'no longer shares the file (DENIED)');
      if (fresh.length > 0 && this.seeders.every((s) => s.state === 'dropped')) {
        // every seeder online was dropped for what it did, not for being away: waiting would not change that
        return this.abort(new DownloadError(`no seeders left: ${this.droppedReasons()}`));
      }
      this.pumpAll();
    })().finally(() => {
      this.renewing = undefined;
      this.scheduleAsk();
    });
    return this.renewing;
  }

  /**
   * A seeder the tracker lists: connected to when the job does not know it yet
   * (it came online during the download), or again when it was dropped as
   * unreachable; one dropped for misbehaving stays dropped.
   */
  private adopt(info: SeederInfo): void {
    const known = this.seeders.find((s) => sameSeeder(s.info, info));
    if (known && known.partial && info.partial !== true) {
      // it finished downloading: it holds the whole file now
      known.partial = false;
      if (known.state !== 'dropped') {
        this.scheduler.setHeld(known.id, 'all');
        this.pump(known);
      }
    }
    if (known && !(known.state === 'dropped' && known.revivable)) return;
    const now = this.now();
    let seeder: Seeder;
    if (known) {
      seeder = known;
      seeder.capability = info.capability;
      seeder.fingerprint = info.fingerprint;
      seeder.state = 'connecting';
      seeder.revivable = false;
      seeder.retries++;
      seeder.retryReason = `${seeder.reason ?? 'dropped'}; listed by the tracker again`;
      seeder.reason = undefined;
      seeder.denied = undefined;
      seeder.denials = 0;
      seeder.retryDelayMs = this.retryDelayMs;
      seeder.conn = this.newLink(seeder.seedForm);
    } else {
      let id = info.userId;
      for (let n = this.seeders.length + 1; this.seeders.some((s) => s.id === id); n++) id = `${info.userId}#${n}`;
      seeder = this.newSeeder(id, info);
      this.seeders.push(seeder);
    }
    seeder.lastProgressAt = now;
    this.register(seeder);
    this.connect(seeder);
  }

  /**
   * Sets when to renew: once two thirds of the shortest remaining lifetime
   * among the seeders' capabilities have passed, by the expiry each carries.
   * Capabilities that carry none (not ours) are never renewed ahead.
   */
  private scheduleRenewal(now: number): void {
    if (!this.options.renewCapabilities) return;
    let soonest: number | undefined;
    for (const s of this.seeders) {
      if (s.state === 'dropped') continue;
      const expiry = capabilityExpiry(s.capability);
      if (expiry === undefined) continue;
      const at = now + Math.max(MIN_RENEW_INTERVAL_MS, ((expiry * 1000 - now) * 2) / 3);
      soonest = soonest === undefined ? at : Math.min(soonest, at);
    }
    this.renewAt = soonest;
    if (soonest !== undefined) this.renewTimer(soonest - now);
  }

  /** Makes sure a renewal starts at `ms` from now even when no chunk arrives to trigger one (a slow seeder). */
  private renewTimer(ms: number): void {
    clearTimeout(this.renewWake);
    this.renewWake = setTimeout(() => {
      this.renewWake = undefined;
      if (!this.transferOver && this.renewAt !== undefined && this.now() >= this.renewAt) void this.renew();
    }, ms);
    this.renewWake.unref();
  }

  private pumpAll(): void {
    for (const seeder of this.seeders) this.pump(seeder);
  }

  private onChunk(seeder: Seeder, index: number, data: Buffer, stamp: RequestStamp): void {
    seeder.sizer.received(stamp, data.length);
    if (this.transferOver) {
      seeder.slots--;
      return this.pool.release(data);
    }
    if (this.scheduler.isChunkDone(index)) {
      // an end-game duplicate: the first verified copy is already in
      this.scheduler.complete(index, seeder.id);
      seeder.slots--;
      this.pool.release(data);
      return this.pump(seeder);
    }
    if (!this.hasher.verifyChunk(data, this.metadata.chunkHashes[index])) {
      seeder.corrupt++;
      seeder.slots--;
      this.pool.release(data);
      this.scheduler.fail(index, seeder.id);
      if (seeder.corrupt >= this.maxCorrupt) this.drop(seeder, `served ${seeder.corrupt} corrupt chunks`);
      return this.pumpAll();
    }
    this.scheduler.complete(index, seeder.id);
    seeder.chunks++;
    seeder.slots--;
    seeder.lastProgressAt = this.now();
    this.progressAt = seeder.lastProgressAt;
    seeder.retryDelayMs = this.retryDelayMs;
    seeder.denials = 0;
    this.uses.set(data, 2);
    const write = this.part!.write(data, index * this.plan.chunkSize).then(
      (direct) => {
        this.writes.delete(write);
        this.letGo(data);
        // on disk even if the transfer just stopped: a later download may resume it
        this.options.onChunkWritten?.(index);
        if (this.transferOver) return;
        this.writtenChunks[index] = 1;
        this.prefixHasher?.chunkWritten(index);
        this.bytesDone += data.length;
        // a direct write is on disk already: flushing it would only stall the next ones on the journal
        if (!direct) this.unflushedBytes += data.length;
        this.flush(false);
        this.speed?.record(this.bytesDone - this.resumedBytes, this.now());
        if (this.scheduler.isDone && this.writes.size === 0) return this.finishTransfer();
        this.pumpAll();
      },
      (err: unknown) => {
        this.writes.delete(write);
        this.abort(new DownloadError(`cannot write ${this.part!.path}: ${errorText(err)}`));
      },
    );
    this.writes.add(write);
    this.inOrder.add(index, data);
    if (this.inOrder.gaveUp && !this.prefixHasher) this.hashFromDisk();
    // others may now enter the end-game
    this.pumpAll();
  }

  /** `data` is done with by its write or by `inOrder`; the second of them returns it to the pool. */
  private letGo(data: Buffer): void {
    const left = (this.uses.get(data) ?? 1) - 1;
    if (left > 0) return void this.uses.set(data, left);
    this.uses.delete(data);
    this.pool.release(data);
  }

  /**
   * Chunks came too far out of order for `inOrder`: large files are hashed
   * from disk from now on, following the written start of the file; small
   * ones are read back once the transfer is over.
   */
  private hashFromDisk(): void {
    const { part, plan } = this;
    if (!part || plan.fileSize < PREFIX_HASHER_MIN_BYTES) return;
    const hasher = new PrefixHasher(part.path, plan.fileSize, plan.chunkSize, (b) => (this.verifiedBytes = b));
    this.prefixHasher = hasher;
    this.writtenChunks.forEach((written, index) => written && hasher.chunkWritten(index));
  }

  private onFetchError(seeder: Seeder, index: number, err: unknown, conn: ChunkLink, capability: string): void {
    seeder.slots--;
    if (this.transferOver || seeder.state === 'dropped') return;
    // a request of a connection already given up on: its chunk went back to the pool then
    if (conn !== seeder.conn || seeder.state === 'retrying') return;
    if (err instanceof PeerError && err.kind === 'refused' && err.code === ErrorCode.Denied) {
      if (this.options.renewCapabilities) return this.onDenied(seeder, index, capability);
    }
    if (err instanceof PeerError && err.kind === 'refused' && err.code === NOT_HELD) {
      // a partial seeder that does not hold it (yet): no blame, someone who has it gets it
      this.scheduler.lacks(seeder.id, index);
      return this.pumpAll();
    }
    if (err instanceof PeerError && err.kind === 'failed') {
      // a seed-form seeder's connection for this chunk ended short or went silent: the seed form's refusal
      seeder.refused++;
      this.scheduler.fail(index, seeder.id);
      if (seeder.refused >= this.maxRefused) {
        this.drop(seeder, `failed ${seeder.refused} chunks (last: ${err.message})`);
      }
      return this.pumpAll();
    }
    if (err instanceof PeerError && err.kind === 'refused' && !RETRY_LATER.has(err.code ?? '')) {
      seeder.refused++;
      this.scheduler.fail(index, seeder.id);
      const code = err.code ?? '';
      seeder.lastRefusal = code;
      if (WHOLE_FILE_REFUSALS.has(code)) this.drop(seeder, `no longer shares the file (${code})`);
      else if (seeder.refused >= this.maxRefused) this.drop(seeder, `refused ${seeder.refused} chunks (last: ${code})`);
      return this.pumpAll();
    }
    this.lose(seeder, err);
  }

  /**
   * The seeder denied `capability` (expired, most likely): the chunk goes back
   * without blame, the seeder waits for a fresh capability, and a renewal is
   * asked for unless one came since the request was sent.
   */
  private onDenied(seeder: Seeder, index: number, capability: string): void {
    this.scheduler.cancel(index, seeder.id);
    if (capability !== seeder.capability || seeder.denied === capability) return this.pumpAll();
    seeder.denied = capability;
    seeder.denials++;
    if (seeder.denials > MAX_DENIED_CAPABILITIES) {
      return this.drop(seeder, `denied ${MAX_DENIED_CAPABILITIES} fresh capabilities in a row`);
    }
    void this.renew();
    this.pumpAll();
  }

  /**
   * Stops using a seeder; its chunks in flight go back to the pool. With a
   * tracker to ask, the tracker is asked for seeders at once and the job waits
   * should none be left; without one, it fails then.
   */
  private drop(seeder: Seeder, what: string, revivable = false): void {
    if (this.transferOver || seeder.state === 'dropped') return;
    seeder.state = 'dropped';
    seeder.reason = what;
    seeder.revivable = revivable;
    clearTimeout(seeder.retryTimer);
    seeder.conn.close();
    this.scheduler.removeSeeder(seeder.id);
    if (this.scheduler.isDone) return;
    if (this.options.renewCapabilities) {
      void this.renew();
      return this.pumpAll();
    }
    const live = this.seeders.filter((s) => s.state !== 'dropped');
    const why = this.droppedReasons();
    if (live.length === 0) return this.abort(new DownloadError(`no seeders left: ${why}`));
    const missing = this.scheduler.unavailableChunk();
    // a partial seeder still downloading may yet get it
    if (missing !== undefined && !live.some((s) => s.partial)) {
      return this.abort(new DownloadError(`no seeder left has chunk ${missing} of ${this.fileName}: ${why}`));
    }
    this.pumpAll();
  }

  /** `alice served 3 corrupt chunks, bob timed out`: the dropped seeders and why. */
  private droppedReasons(): string {
    return this.seeders
      .filter((s) => s.state === 'dropped')
      .map((s) => `${s.info.userId} ${s.reason}`)
      .join(', ');
  }

  private finishTransfer(): void {
    this.stopTransfer();
    this.transferDone?.();
  }

  private stopTransfer(): void {
    if (this.transferOver) return;
    this.transferOver = true;
    this.options.downloadPacer?.cancel(this);
    clearTimeout(this.renewWake);
    this.renewWake = undefined;
    clearTimeout(this.askTimer);
    this.askTimer = undefined;
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    for (const seeder of this.seeders) {
      if (seeder.state !== 'dropped') seeder.state = 'finished';
      clearTimeout(seeder.retryTimer);
      seeder.conn.close();
    }
  }

  /** Waits for writes and the flush still running, then deletes the `.part` file (or closes it: `keepPart`). */
  private async cleanUp(): Promise<void> {
    this.inOrder.clear();
    this.prefixHasher?.close();
    await Promise.allSettled(this.writes);
    while (this.flushing) await this.flushing;
    if (this.options.keepPart && !this.untrusted) await this.part?.close();
    else await this.part?.discard();
  }

  /**
   * Chunks already in the `.part` (verified by whoever opened it): done before any seeder is asked. The in-order
   * hash cannot include them without reading them back, so the whole-file SHA-1 is taken from disk instead.
   */
  private markPresent(present: readonly number[]): void {
    for (const index of present) {
      if (!this.scheduler.markPresent(index)) continue;
      this.writtenChunks[index] = 1;
      this.resumedChunks++;
      this.resumedBytes += this.chunkLength(index);
    }
    if (this.resumedChunks === 0) return;
    this.bytesDone += this.resumedBytes;
    this.inOrder.clear();
    this.hashFromDisk();
  }

  /**
   * Starts a background flush of what is written (`now`: whatever the amount;
   * else once `flushEveryBytes` have piled up), unless one is running.
   */
  private flush(now: boolean): void {
    const part = this.part;
    if (!part || this.unflushedBytes === 0) return;
    if (!now && (this.flushEveryBytes <= 0 || this.unflushedBytes < this.flushEveryBytes)) return;
    if (this.flushing) {
      this.flushAgain ||= now;
      return;
    }
    this.unflushedBytes = 0;
    const flushing = part.flush().finally(() => {
      if (this.flushing !== flushing) return;
      this.flushing = undefined;
      if (this.flushAgain) {
        this.flushAgain = false;
        this.flush(true);
      }
    });
    this.flushing = flushing;
  }

  private chunkLength(index: number): number {
    return index === this.plan.count - 1 ? this.plan.lastChunkSize : this.plan.chunkSize;
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function formatMs(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** A wait for people: `0.3 s`, `3 s`, `9m 40s`, `2h 5m` (rounded up to the second from 1 s on). */
export function formatWait(ms: number): string {
  if (ms > 0 && ms < 1000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.ceil(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/**
 * The seeders of the metadata, then its partial seeders; a member listed as both is taken as a (full) seeder.
 */
function listedSeeders(metadata: FileMetadata): SeederInfo[] {
  const partial = (metadata.partialSeeders ?? []).filter((p) => !metadata.seeders.some((s) => sameSeeder(s, p)));
  return [
    ...metadata.seeders.map((s) => (s.partial ? { ...s, partial: false } : s)),
    ...partial.map((p) => ({ ...p, partial: true })),
  ];
}

/** The same seeder: the same user at the same address. */
function sameSeeder(a: SeederInfo, b: SeederInfo): boolean {
  return a.userId === b.userId && formatHostPort(a.address) === formatHostPort(b.address);
}

function peerDetail(err: unknown): string {
  return errorText(err).replace(/^cannot connect to \S+: /, '');
}

function describeLoss(err: unknown, lastRefusal: string | undefined): string {
  if (!(err instanceof PeerError)) return `failed (${errorText(err)})`;
  switch (err.kind) {
    case 'timeout':
      return 'timed out';
    case 'closed':
      return lastRefusal ? `closed the connection after answering ${lastRefusal}` : 'closed the connection';
    case 'protocol':
      return `broke the protocol (${err.message})`;
    case 'connect':
      return err.code ? `refused the connection (${err.code})` : `is unreachable (${peerDetail(err)})`;
    case 'refused':
      return `refused (${err.code ?? 'ERR'})`;
    case 'failed':
      return `failed a chunk (${err.message})`;
    case 'identity':
      return 'presented a certificate other than the one its tracker lists';
  }
}
