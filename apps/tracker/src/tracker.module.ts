import { loadOrCreateIdentity } from '@app/tls';
import { TRACKER_IDENTITY } from './common/identity.tokens';
import { DynamicModule, Module } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { AuthModule } from './auth/auth.module';
import { CapabilityModule } from './capability/capability.module';
import { TRACKER_CONFIG, TrackerConfig } from './config/tracker.config';
import { FilesModule } from './files/files.module';
import { GroupsModule } from './groups/groups.module';
import { StorageModule } from './storage/storage.module';
import { SyncModule } from './sync/sync.module';
import { PassThroughExceptionFilter } from './transport/pass-through.filter';

@Module({})
export class TrackerModule {
  /** `extras`: modules main.ts adds when asked (MetricsModule with `--http-port`). */
  static forRoot(config: TrackerConfig, extras: readonly DynamicModule[] = []): DynamicModule {
    return {
      module: TrackerModule,
      global: true,
      imports: [
        StorageModule.forRoot(config.dataDir),
        SyncModule,
        CapabilityModule,
        AuthModule,
        GroupsModule,
        FilesModule,
        ...extras,
      ],
      providers: [
        { provide: TRACKER_CONFIG, useValue: config },
        {
          provide: TRACKER_IDENTITY,
          useFactory: () => loadOrCreateIdentity(config.dataDir, `p2p-share tracker ${config.trackerNumber}`),
        },
        { provide: APP_FILTER, useClass: PassThroughExceptionFilter },
      ],
      exports: [TRACKER_CONFIG, TRACKER_IDENTITY],
    };
  }
}
