import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { DownloadsModule } from '../downloads/downloads.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { ClientMetricsService } from './client-metrics.service';

/** `--metrics-port`: the client's Prometheus `/metrics`. */
@Module({
  imports: [ClientConfigModule, DownloadsModule, SeedingModule, OutputModule],
  providers: [ClientMetricsService],
})
export class ClientMetricsModule {}
