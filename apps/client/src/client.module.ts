import { Module } from '@nestjs/common';
import { ShellModule } from './shell/shell.module';

@Module({
  imports: [ShellModule],
})
export class ClientModule {}
