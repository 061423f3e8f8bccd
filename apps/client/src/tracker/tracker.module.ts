import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { OutputModule } from '../output/output.module';
import { TrackerClient } from './tracker.client';
import { DEFAULT_TRACKER_TIMINGS, TRACKER_TIMINGS } from './tracker.tokens';

@Module({
  imports: [ClientConfigModule, OutputModule],
  providers: [TrackerClient, { provide: TRACKER_TIMINGS, useValue: DEFAULT_TRACKER_TIMINGS }],
  exports: [TrackerClient],
})
export class TrackerModule {}
