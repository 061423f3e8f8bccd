import { DynamicModule, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { MetricsInterceptor } from './metrics.interceptor';
import { METRICS_OPTIONS, MetricsOptions, MetricsService } from './metrics.service';
import { TrackerMetrics } from './tracker.metrics';

/** `--http-port`: `/healthz` and `/metrics`, and the interceptor that counts and times every command. */
@Module({})
export class MetricsModule {
  static forRoot(options: MetricsOptions): DynamicModule {
    return {
      module: MetricsModule,
      providers: [
        { provide: METRICS_OPTIONS, useValue: options },
        { provide: TrackerMetrics, useValue: options.metrics },
        { provide: APP_INTERCEPTOR, useClass: MetricsInterceptor },
        MetricsService,
      ],
    };
  }
}
