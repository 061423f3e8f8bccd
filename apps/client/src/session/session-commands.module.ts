import { Module } from '@nestjs/common';
import { DownloadsModule } from '../downloads/downloads.module';
import { OutputModule } from '../output/output.module';
import { SeedingModule } from '../seeding/seeding.module';
import { SharingModule } from '../seeding/sharing.module';
import { TrackerModule } from '../tracker/tracker.module';
import { LoginCommand } from './login.command';
import { LogoutCommand } from './logout.command';
import { SessionModule } from './session.module';

/** `login` and `logout`; kept apart from SessionModule, which seeding and downloads import. */
export const SESSION_COMMANDS = [LoginCommand, LogoutCommand];

@Module({
  imports: [SessionModule, TrackerModule, OutputModule, SeedingModule, SharingModule, DownloadsModule],
  providers: [...SESSION_COMMANDS],
  exports: [...SESSION_COMMANDS],
})
export class SessionCommandsModule {}
