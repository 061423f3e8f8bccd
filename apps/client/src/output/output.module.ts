import { Module } from '@nestjs/common';
import { OUTPUT, StreamOutput } from './output.port';

@Module({
  providers: [{ provide: OUTPUT, useFactory: () => new StreamOutput(process.stdout) }],
  exports: [OUTPUT],
})
export class OutputModule {}
