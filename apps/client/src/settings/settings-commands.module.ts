import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { DownloadsModule } from '../downloads/downloads.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { SessionModule } from '../session/session.module';
import { TrackerModule } from '../tracker/tracker.module';
import { SetCommand } from './set.command';
import { SettingsModule } from './settings.module';
import { StatusCommand } from './status.command';
import { UploadRate } from './upload-rate';

/** The shell's commands for settings and status; kept apart from SettingsModule, which the downloads and sharing modules import. */
export const SETTINGS_COMMANDS = [SetCommand, StatusCommand];

@Module({
  imports: [
    SettingsModule,
    ClientConfigModule,
    TrackerModule,
    OutputModule,
    SessionModule,
    DownloadsModule,
    SeedingModule,
  ],
  providers: [...SETTINGS_COMMANDS, UploadRate],
  exports: [...SETTINGS_COMMANDS],
})
export class SettingsCommandsModule {}
