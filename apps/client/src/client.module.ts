import { Module } from '@nestjs/common';
import { ClientMetricsModule } from './metrics/client-metrics.module';
import { ShellModule } from './shell/shell.module';

@Module({
  imports: [ShellModule, ClientMetricsModule],
})
export class ClientModule {}
