import { ChunkingModule } from '@app/chunking';
import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { OutputModule } from '../output/output.module';
import { SessionModule } from '../session/session.module';
import { SettingsModule } from '../settings/settings.module';
import { TrackerModule } from '../tracker/tracker.module';
import { LeaveGroupCommand } from './leave-group.command';
import { SeedingModule } from './seeding.module';
import { SharingService } from './sharing.service';
import { StopShareCommand } from './stop-share.command';
import { UploadFileCommand } from './upload-file.command';

/** The shell's commands about what this client shares. */
export const SHARING_COMMANDS = [UploadFileCommand, StopShareCommand, LeaveGroupCommand];

/**
 * What the user shares: hashing a file, offering it to the tracker and keeping
 * it seeded (SharingService on top of SeedingModule), and the commands for it.
 */
@Module({
  imports: [
    ClientConfigModule,
    TrackerModule,
    OutputModule,
    ChunkingModule,
    SeedingModule,
    SettingsModule,
    SessionModule,
  ],
  providers: [SharingService, ...SHARING_COMMANDS],
  exports: [SharingService, ...SHARING_COMMANDS],
})
export class SharingModule {}
