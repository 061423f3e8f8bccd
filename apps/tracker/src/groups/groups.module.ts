import { Module } from '@nestjs/common';
import { GroupsController } from './groups.controller';
import { GroupsService } from './groups.service';
import { GROUP_STORE } from './groups.tokens';
import { SqliteGroupStore } from './sqlite-group.store';

@Module({
  controllers: [GroupsController],
  providers: [GroupsService, { provide: GROUP_STORE, useClass: SqliteGroupStore }],
  exports: [GroupsService],
})
export class GroupsModule {}
