import { Global, Module } from '@nestjs/common';
import { CLOCK, systemClock } from '../common/clock';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { loadClusterKey } from './cluster-key';
import { SqliteOpLogStore } from './sqlite-oplog.store';
import { SyncController } from './sync.controller';
import { SyncService } from './sync.service';
import { CLUSTER_KEY, OPLOG_STORE } from './sync.tokens';

/** Replication between the trackers of tracker_info.txt. Global: every feature module commits through it. */
@Global()
@Module({
  controllers: [SyncController],
  providers: [
    SyncService,
    { provide: CLOCK, useValue: systemClock },
    { provide: OPLOG_STORE, useClass: SqliteOpLogStore },
    {
      provide: CLUSTER_KEY,
      useFactory: (config: TrackerConfig) => loadClusterKey(config.keyFile),
      inject: [TRACKER_CONFIG],
    },
  ],
  exports: [SyncService, CLOCK, CLUSTER_KEY],
})
export class SyncModule {}
