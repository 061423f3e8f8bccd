import { Global, Module } from '@nestjs/common';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { CapabilitySigner } from './capability.signer';
import { CAPABILITY_CLOCK, CAPABILITY_OPTIONS } from './capability.tokens';

/** Download capabilities, signed with a key derived from the network key (which SyncModule loads). */
@Global()
@Module({
  providers: [
    CapabilitySigner,
    {
      provide: CAPABILITY_OPTIONS,
      useFactory: (config: TrackerConfig) => ({ ttlMs: config.capabilityTtlMs }),
      inject: [TRACKER_CONFIG],
    },
    { provide: CAPABILITY_CLOCK, useValue: () => Date.now() },
  ],
  exports: [CapabilitySigner],
})
export class CapabilityModule {}
