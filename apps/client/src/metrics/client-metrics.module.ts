import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { FilesModule } from '../files/files.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { ClientMetricsService } from './client-metrics.service';

/** `--metrics-port`: the client's Prometheus `/metrics`. */
@Module({
  imports: [ClientConfigModule, FilesModule, SeedingModule, OutputModule],
  providers: [ClientMetricsService],
})
export class ClientMetricsModule {}
