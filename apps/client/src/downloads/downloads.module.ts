import { ChunkingModule } from '@app/chunking';
import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { SharingModule } from '../seeding/sharing.module';
import { SessionModule } from '../session/session.module';
import { SettingsModule } from '../settings/settings.module';
import { TrackerModule } from '../tracker/tracker.module';
import { CancelDownloadCommand } from './cancel-download.command';
import { DownloadFileCommand } from './download-file.command';
import { DownloadManager } from './download.manager';
import { DownloadStarter } from './download-starter';
import { PauseDownloadCommand } from './pause-download.command';
import { ResumeDownloadCommand } from './resume-download.command';
import { ShowDownloadsCommand } from './show-downloads.command';

/** The shell's commands about downloads. */
export const DOWNLOAD_COMMANDS = [
  DownloadFileCommand,
  ShowDownloadsCommand,
  CancelDownloadCommand,
  PauseDownloadCommand,
  ResumeDownloadCommand,
];

/**
 * This session's downloads: starting and resuming them (DownloadStarter),
 * running them (DownloadManager over the engine in `download/`), and the commands for them.
 */
@Module({
  imports: [
    ClientConfigModule,
    TrackerModule,
    OutputModule,
    ChunkingModule,
    SeedingModule,
    SharingModule,
    SettingsModule,
    SessionModule,
  ],
  providers: [DownloadManager, DownloadStarter, ...DOWNLOAD_COMMANDS],
  exports: [DownloadManager, DownloadStarter, ...DOWNLOAD_COMMANDS],
})
export class DownloadsModule {}
