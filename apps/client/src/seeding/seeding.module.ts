import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { ClientConfigService } from '../config/client-config.service';
import { CapabilityVerifier } from './capability.verifier';
import { ChunkServer } from './chunk.server';
import { PartialShares } from './partial-shares';
import { SEEDING_OPTIONS, SeedingOptions } from './seeding.tokens';
import { ShareRegistry } from './share.registry';

/** The seeding options are read when used: the command line is parsed only when the shell runs. */
export function seedingOptions(config: ClientConfigService): SeedingOptions {
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

/**
 * The seeding side of the client: the files it shares (ShareRegistry), the
 * downloads in progress that serve what they hold (PartialShares), and the
 * chunk server that serves both to holders of a capability it honours.
 */
@Module({
  imports: [ClientConfigModule],
  providers: [
    { provide: SEEDING_OPTIONS, useFactory: seedingOptions, inject: [ClientConfigService] },
    ShareRegistry,
    PartialShares,
    CapabilityVerifier,
    ChunkServer,
  ],
  exports: [SEEDING_OPTIONS, ShareRegistry, PartialShares, CapabilityVerifier, ChunkServer],
})
export class SeedingModule {}
