import { Module } from '@nestjs/common';
import { ClientConfigService } from './client-config.service';
import { ClientIdentityService } from './client-identity.service';

@Module({
  providers: [ClientConfigService, ClientIdentityService],
  exports: [ClientConfigService, ClientIdentityService],
})
export class ClientConfigModule {}
