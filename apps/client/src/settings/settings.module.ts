import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { TransferSettings } from './transfer-settings.service';

/** The run-time transfer settings, for every module that applies them (seeding, downloads) and the shell. */
@Module({
  imports: [ClientConfigModule],
  providers: [TransferSettings],
  exports: [TransferSettings],
})
export class SettingsModule {}
