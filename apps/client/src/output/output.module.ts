import { Module } from '@nestjs/common';
import { LiveTerminalOutput } from './live-terminal.output';
import { OUTPUT } from './output.port';

@Module({
  providers: [
    {
      provide: OUTPUT,
      // live lines and the redrawn prompt only when both ends are a terminal; otherwise plain lines
      useFactory: () =>
        new LiveTerminalOutput(process.stdout, process.stdout.isTTY === true && process.stdin.isTTY === true),
    },
  ],
  exports: [OUTPUT],
})
export class OutputModule {}
