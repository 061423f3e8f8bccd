import { ChunkingModule } from '@app/chunking';
import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { ClientConfigService } from '../config/client-config.service';
import { OutputModule } from '../output/output.module';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { ChunkServer } from '../seeding/chunk.server';
import { SEEDING_OPTIONS, SeedingOptions } from '../seeding/seeding.tokens';
import { ShareRegistry } from '../seeding/share.registry';
import { TrackerModule } from '../tracker/tracker.module';
import { ClientSession } from './client-session';
import { DownloadManager } from './download.manager';
import { DownloadStarter } from './download-starter';
import { FILE_COMMANDS } from './file.commands';
import { SharingService } from './sharing.service';

/** The seeding options are read when used: the command line is parsed only when the shell runs. */
function seedingOptions(config: ClientConfigService): SeedingOptions {
  return {
    get host() {
      return config.get().self.host;
    },
    get port() {
      return config.get().self.port;
    },
    get dataDir() {
      return config.get().dataDir;
    },
    get uploadLimit() {
      return config.get().uploadLimit;
    },
    get maxConnections() {
      return config.get().peerLimits?.maxConnections;
    },
    get maxConnectionsPerAddress() {
      return config.get().peerLimits?.maxConnectionsPerAddress;
    },
    get requestTimeoutMs() {
      return config.get().peerLimits?.requestTimeoutMs;
    },
    get lineTimeoutMs() {
      return config.get().peerLimits?.lineTimeoutMs;
    },
    get idleTimeoutMs() {
      return config.get().peerLimits?.idleTimeoutMs;
    },
    get capabilitySkewMs() {
      return config.get().capabilitySkewMs;
    },
  };
}

@Module({
  imports: [ClientConfigModule, TrackerModule, OutputModule, ChunkingModule],
  providers: [
    { provide: SEEDING_OPTIONS, useFactory: seedingOptions, inject: [ClientConfigService] },
    ShareRegistry,
    CapabilityVerifier,
    ChunkServer,
    ClientSession,
    SharingService,
    DownloadManager,
    DownloadStarter,
    ...FILE_COMMANDS,
  ],
  exports: [SharingService, DownloadManager, ClientSession, ...FILE_COMMANDS],
})
export class FilesModule {}
