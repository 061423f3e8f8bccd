import { Module } from '@nestjs/common';
import { ClientSession } from './client-session';

/** Who is logged in through this client, for every module that acts for the user. */
@Module({
  providers: [ClientSession],
  exports: [ClientSession],
})
export class SessionModule {}
