import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { FilesModule } from '../files/files.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { TrackerModule } from '../tracker/tracker.module';
import { PauseDownloadCommand } from './pause-download.command';
import { ResumeDownloadCommand } from './resume-download.command';
import { SetCommand } from './set.command';
import { SettingsModule } from './settings.module';
import { StatusCommand } from './status.command';
import { UploadRate } from './upload-rate';

/** The shell's commands for settings and status; kept apart from SettingsModule, which the files module imports. */
export const SETTINGS_COMMANDS = [SetCommand, StatusCommand, PauseDownloadCommand, ResumeDownloadCommand];

@Module({
  imports: [SettingsModule, ClientConfigModule, TrackerModule, OutputModule, FilesModule, SeedingModule],
  providers: [...SETTINGS_COMMANDS, UploadRate],
  exports: [...SETTINGS_COMMANDS],
})
export class SettingsCommandsModule {}
