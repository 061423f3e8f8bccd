import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { ChunkServer } from '../seeding/chunk.server';

/** How far back the upload rate looks. */
export const UPLOAD_RATE_WINDOW_MS = 5_000;
/** How often the chunk server's byte counter is read. */
const SAMPLE_EVERY_MS = 1_000;

interface Sample {
  readonly at: number;
  readonly bytes: number;
}

/**
 * The current upload rate, from the chunk server's byte counter read once a second: the bytes sent over the last
 * few seconds divided by the time they took. Reading the counter is all it does; the timer does not keep the
 * process alive.
 */
@Injectable()
export class UploadRate implements OnModuleInit, OnModuleDestroy {
  private readonly samples: Sample[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(@Inject(ChunkServer) private readonly server: Pick<ChunkServer, 'uploadedBytes'>) {}

  onModuleInit(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), SAMPLE_EVERY_MS);
    this.timer.unref();
  }

  onModuleDestroy(): void {
    clearInterval(this.timer);
  }

  /** Reads the counter; keeps the samples of the window plus the one just before it. */
  sample(now = Date.now()): void {
    this.samples.push({ at: now, bytes: this.server.uploadedBytes });
    while (this.samples.length > 2 && this.samples[1].at <= now - UPLOAD_RATE_WINDOW_MS) this.samples.shift();
  }

  /** Bytes per second sent over the last few seconds (0 before there are two samples apart in time). */
  bytesPerSecond(now = Date.now()): number {
    this.sample(now);
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    const seconds = (last.at - first.at) / 1000;
    return seconds > 0 ? Math.max(0, last.bytes - first.bytes) / seconds : 0;
  }
}
