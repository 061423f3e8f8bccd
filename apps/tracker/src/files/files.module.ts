import { Module } from '@nestjs/common';
import { AuthModule } from '../auth/auth.module';
import { GroupsModule } from '../groups/groups.module';
import { FilesController } from './files.controller';
import { FilesService } from './files.service';
import { FILE_STORE } from './files.tokens';
import { PresenceService } from './presence.service';
import { SeederAddressRule } from './seeder-address.rule';
import { SqliteFileStore } from './sqlite-file.store';

@Module({
  imports: [AuthModule, GroupsModule],
  controllers: [FilesController],
  providers: [FilesService, PresenceService, SeederAddressRule, { provide: FILE_STORE, useClass: SqliteFileStore }],
  exports: [FilesService, PresenceService],
})
export class FilesModule {}
