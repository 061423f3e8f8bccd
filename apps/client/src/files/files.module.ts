import { ChunkingModule } from '@app/chunking';
import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { SettingsModule } from '../settings/settings.module';
import { TrackerModule } from '../tracker/tracker.module';
import { ClientSession } from './client-session';
import { DownloadManager } from './download.manager';
import { DownloadStarter } from './download-starter';
import { FILE_COMMANDS } from './file.commands';
import { SharingService } from './sharing.service';

@Module({
  imports: [ClientConfigModule, TrackerModule, OutputModule, ChunkingModule, SeedingModule, SettingsModule],
  providers: [ClientSession, SharingService, DownloadManager, DownloadStarter, ...FILE_COMMANDS],
  exports: [SharingService, DownloadManager, ClientSession, ...FILE_COMMANDS],
})
export class FilesModule {}
