import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { TrackerClient } from './tracker.client';

@Module({
  imports: [ClientConfigModule],
  providers: [TrackerClient],
  exports: [TrackerClient],
})
export class TrackerModule {}
