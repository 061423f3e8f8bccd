import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { DOWNLOAD_COMMANDS, DownloadsModule } from '../downloads/downloads.module';
import { OutputModule } from '../output/output.module';
import { SHARING_COMMANDS, SharingModule } from '../seeding/sharing.module';
import { SESSION_COMMANDS, SessionCommandsModule } from '../session/session-commands.module';
import { SETTINGS_COMMANDS, SettingsCommandsModule } from '../settings/settings-commands.module';
import { TrackerModule } from '../tracker/tracker.module';
import { LOCAL_COMMANDS, LocalCommand } from '../commands/local-command';
import { KnownNames } from './known-names.service';
import { processShellIo, SHELL_IO } from './shell-io';
import { ShellCommand } from './shell.command';
import { ShellService } from './shell.service';

@Module({
  imports: [
    ClientConfigModule,
    TrackerModule,
    OutputModule,
    SessionCommandsModule,
    SharingModule,
    DownloadsModule,
    SettingsCommandsModule,
  ],
  providers: [
    ShellCommand,
    ShellService,
    KnownNames,
    { provide: SHELL_IO, useFactory: processShellIo },
    // Local commands: each module exports its own; list the array in `inject` here.
    {
      provide: LOCAL_COMMANDS,
      useFactory: (...commands: LocalCommand[]) => commands,
      inject: [...SESSION_COMMANDS, ...SHARING_COMMANDS, ...DOWNLOAD_COMMANDS, ...SETTINGS_COMMANDS],
    },
  ],
})
export class ShellModule {}
