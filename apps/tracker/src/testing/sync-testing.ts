import { HostPort, OpKind } from '@app/protocol';
import { Provider } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER, USER_STORE } from '../auth/auth.tokens';
import { InMemoryUserStore } from '../auth/in-memory-user.store';
import { PasswordHasher } from '../auth/password.hasher';

import { CapabilitySigner } from '../capability/capability.signer';
import { CAPABILITY_CLOCK, CAPABILITY_OPTIONS } from '../capability/capability.tokens';
import {
  DEFAULT_CAPABILITY_TTL_MS,
  DEFAULT_TRACKER_LIMITS,
  TRACKER_CONFIG,
  TrackerConfig,
} from '../config/tracker.config';
import { FilesService } from '../files/files.service';
import { FILE_STORE } from '../files/files.tokens';
import { InMemoryFileStore } from '../files/in-memory-file.store';
import { PresenceService } from '../files/presence.service';
import { GroupsService } from '../groups/groups.service';
import { GROUP_STORE } from '../groups/groups.tokens';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { InMemoryOpLogStore } from '../sync/in-memory-oplog.store';
import { OpLogStore } from '../sync/oplog.store';
import { InMemoryUnitOfWork } from '../storage/in-memory-unit-of-work';
import { UNIT_OF_WORK, UnitOfWork } from '../storage/unit-of-work';
import { SyncService } from '../sync/sync.service';
import { CLUSTER_KEY, OPLOG_STORE } from '../sync/sync.tokens';
import { ConnectionTls, PeerContext } from '../transport/peer.context';
import { peerContext } from './fake-session';

/** The network key every test tracker shares. */
export const TEST_CLUSTER_KEY = Buffer.alloc(32, 7);

/** Stores `plain$<password>`: fast, and enough for tests that are not about passwords. */
export const plainHasher: PasswordHasher = {
  hash: (password) => Promise.resolve(`plain$${password}`),
  verify: (password, stored) => Promise.resolve(stored === `plain$${password}`),
};

/**
 * A tracker config for tests: by default tracker 1 of a network of one, so it
 * has no peer to wait for and `SyncService.ready` resolves at bootstrap.
 * With `trackerCount` > 1 the other trackers get unreachable addresses (port 9).
 */
export function trackerConfig(overrides: Partial<TrackerConfig> & { trackerCount?: number } = {}): TrackerConfig {
  const { trackerCount = 1, ...rest } = overrides;
  const trackers: HostPort[] = Array.from({ length: trackerCount }, (_, i) => ({
    host: '127.0.0.1',
    port: i === 0 ? 0 : 9,
  }));
  const config = {
    trackerNumber: 1,
    trackers,
    dataDir: '/nonexistent/p2p-share-test',
    peerAddresses: new Map<number, HostPort>(),
    keyFile: '/nonexistent/p2p-share-test.key',
    limits: DEFAULT_TRACKER_LIMITS,
    sessionIdleMs: 60 * 60_000,
    sessionMaxAgeMs: 7 * 24 * 60 * 60_000,
    capabilityTtlMs: DEFAULT_CAPABILITY_TTL_MS,
    ...rest,
  };
  return { ...config, self: rest.self ?? config.trackers[config.trackerNumber - 1] ?? config.trackers[0] };
}

/**
 * The real SyncService on an in-memory op log and the in-memory unit of work
 * (which every in-memory store provided beside them enlists with), or on the
 * op log and unit of work given (SQLite ones), with a config (one tracker
 * unless overridden) and the test network key. Every service that commits
 * changes needs these; call `moduleRef.init()` (or `app.init()`/`listen()`)
 * when something awaits `SyncService.ready`.
 */
/**
 * The tracker's services (auth, groups, files) on in-memory stores, with the plain password hasher: for a testing
 * module beside `syncTestingProviders()`, whose in-memory unit of work the stores enlist with.
 */
export function inMemoryServiceProviders(): Provider[] {
  return [
    AuthService,
    GroupsService,
    FilesService,
    PresenceService,
    { provide: USER_STORE, useClass: InMemoryUserStore },
    { provide: GROUP_STORE, useClass: InMemoryGroupStore },
    { provide: FILE_STORE, useClass: InMemoryFileStore },
    { provide: PASSWORD_HASHER, useValue: plainHasher },
  ];
}

export function syncTestingProviders(
  config: Partial<TrackerConfig> & { trackerCount?: number } = {},
  storage?: { readonly opLog: OpLogStore; readonly work: UnitOfWork },
): Provider[] {
  return [
    SyncService,
    ...(storage
      ? [
          { provide: OPLOG_STORE, useValue: storage.opLog },
          { provide: UNIT_OF_WORK, useValue: storage.work },
        ]
      : [
          InMemoryUnitOfWork,
          { provide: UNIT_OF_WORK, useExisting: InMemoryUnitOfWork },
          { provide: OPLOG_STORE, useClass: InMemoryOpLogStore },
        ]),
    { provide: TRACKER_CONFIG, useValue: trackerConfig(config) },
    { provide: CLUSTER_KEY, useValue: TEST_CLUSTER_KEY },
    CapabilitySigner,
    { provide: CAPABILITY_OPTIONS, useValue: { ttlMs: DEFAULT_CAPABILITY_TTL_MS } },
    { provide: CAPABILITY_CLOCK, useValue: () => Date.now() },
  ];
}

/** The capability signer of the test network (key from TEST_CLUSTER_KEY), with the given clock and lifetime. */
export function testCapabilitySigner(
  now: () => number = Date.now,
  ttlMs = DEFAULT_CAPABILITY_TTL_MS,
): CapabilitySigner {
  return new CapabilitySigner(TEST_CLUSTER_KEY, { ttlMs }, now);
}

/** One tracker's replicated state: the services on in-memory stores around one SyncService. */
export interface Replica {
  readonly sync: SyncService;
  readonly auth: AuthService;
  readonly groups: GroupsService;
  readonly files: FilesService;
  readonly presence: PresenceService;
  readonly log: InMemoryOpLogStore;
  readonly work: InMemoryUnitOfWork;
}

/** Every in-memory store, enlisted with one in-memory unit of work. */
export function inMemoryStores() {
  const work = new InMemoryUnitOfWork();
  return {
    work,
    log: new InMemoryOpLogStore(work),
    users: new InMemoryUserStore(work),
    groups: new InMemoryGroupStore(work),
    files: new InMemoryFileStore(work),
  };
}

/**
 * Builds a tracker's services by hand, wired as Nest wires them (auth, groups,
 * then files register with sync in that order). Property tests build hundreds
 * of these; a testing module each would dominate their run time.
 */
export function replica(trackerNumber: number, trackerCount = Math.max(3, trackerNumber)): Replica {
  const stores = inMemoryStores();
  const { log, work } = stores;
  const sync = new SyncService(log, work, trackerConfig({ trackerNumber, trackerCount }), TEST_CLUSTER_KEY);
  const auth = new AuthService(stores.users, plainHasher, sync);
  const groups = new GroupsService(stores.groups, sync);
  const presence = new PresenceService(sync);
  const files = new FilesService(stores.files, groups, auth, sync, testCapabilitySigner(), presence);
  return { sync, auth, groups, files, presence, log, work };
}

/**
 * A part of the replicated state for sync specs: text values by key, where a `create_user` change sets its user id
 * to its password hash. Registers the applier and takes part in digests and snapshots (rows `kv <key> <value>`; any
 * other row is refused); returns the values.
 */
export function keyValueState(sync: SyncService): Map<string, string> {
  const values = new Map<string, string>();
  sync.register(OpKind.CreateUser, ({ userId, passwordHash }) => void values.set(userId, passwordHash));
  sync.participate({
    name: 'kv',
    reset: () => values.clear(),
    describe: () => [...values].sort().map(([k, v]) => `${k}=${v}`),
    exportRows: () => [...values].map(([k, v]) => ['kv', k, v]),
    importRow: (row) => {
      if (row.length !== 3 || row[0] !== 'kv') throw new Error(`bad kv row ${row.join(' ')}`);
      values.set(row[1], row[2]);
    },
  });
  return values;
}

/**
 * What the transport gives a connection that began with STARTTLS, for unit tests: the fingerprint the peer
 * presented, and keying material of `ekmByte` repeated (two contexts with different bytes are two TLS sessions).
 */
export function fakeTls(peerFingerprint?: string, ekmByte = 0x33): ConnectionTls {
  return { peerFingerprint, exportKeyingMaterial: (length) => Buffer.alloc(length, ekmByte) };
}

/** A transport context inside TLS (see `fakeTls`). */
export function tlsPeerContext(peerFingerprint?: string, ekmByte = 0x33): PeerContext {
  const ctx = peerContext();
  ctx.tls = fakeTls(peerFingerprint, ekmByte);
  return ctx;
}
