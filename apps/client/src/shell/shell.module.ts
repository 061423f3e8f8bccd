import { Module } from '@nestjs/common';
import { ClientConfigModule } from '../config/client-config.module';
import { FILE_COMMANDS } from '../files/file.commands';
import { FilesModule } from '../files/files.module';
import { OutputModule } from '../output/output.module';
import { SETTINGS_COMMANDS, SettingsCommandsModule } from '../settings/settings-commands.module';
import { TrackerModule } from '../tracker/tracker.module';
import { LOCAL_COMMANDS, LocalCommand } from './local-command';
import { KnownNames } from './known-names.service';
import { processShellIo, SHELL_IO } from './shell-io';
import { ShellCommand } from './shell.command';
import { ShellService } from './shell.service';

@Module({
  imports: [ClientConfigModule, TrackerModule, OutputModule, FilesModule, SettingsCommandsModule],
  providers: [
    ShellCommand,
    ShellService,
    KnownNames,
    { provide: SHELL_IO, useFactory: processShellIo },
    // Local commands: add the class to providers and to `inject` here.
    {
      provide: LOCAL_COMMANDS,
      useFactory: (...commands: LocalCommand[]) => commands,
      inject: [...FILE_COMMANDS, ...SETTINGS_COMMANDS],
    },
  ],
})
export class ShellModule {}
