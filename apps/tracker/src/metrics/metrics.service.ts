import { formatHostPort } from '@app/protocol';
import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import Database from 'better-sqlite3';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { SQLITE_DB } from '../storage/storage.tokens';
import { SyncService } from '../sync/sync.service';
import { HttpAnswer, json, ReadOnlyHttpServer } from '@app/http-endpoint';
import { TrackerCounts, TrackerMetrics } from './tracker.metrics';

/** What MetricsModule.forRoot is given by main.ts. */
export interface MetricsOptions {
  /** The collectors; main.ts also hands them to the transport as its observer. */
  readonly metrics: TrackerMetrics;
  /** `--http-port` (0: any free port). */
  readonly port: number;
  readonly host: string;
  /** Open connections right now (the connection policy's count). */
  readonly connections: () => number;
}
export const METRICS_OPTIONS = Symbol('METRICS_OPTIONS');

/** `/healthz` body. */
export interface Health {
  readonly status: 'up' | 'starting';
  readonly tracker: number;
  readonly peers: readonly { tracker: number; address: string; linked: boolean; behind: number }[];
}

/** Serves `/healthz` and `/metrics` on `--http-port` while the tracker runs. */
@Injectable()
export class MetricsService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(MetricsService.name);
  private readonly http = new ReadOnlyHttpServer({
    '/healthz': () => this.healthz(),
    '/metrics': async () => ({
      status: 200,
      contentType: this.options.metrics.contentType,
      body: await this.options.metrics.scrape(),
    }),
  });
  private ready = false;
  private readonly countUsers: Database.Statement;
  private readonly countGroups: Database.Statement;
  private readonly countFiles: Database.Statement;

  constructor(
    @Inject(METRICS_OPTIONS) private readonly options: MetricsOptions,
    @Inject(TRACKER_CONFIG) private readonly config: TrackerConfig,
    @Inject(SQLITE_DB) db: Database.Database,
    private readonly sync: SyncService,
  ) {
    this.countUsers = db.prepare('SELECT count(*) AS n FROM users');
    this.countGroups = db.prepare('SELECT count(*) AS n FROM groups');
    this.countFiles = db.prepare('SELECT count(*) AS n FROM files');
    void sync.ready.then(() => (this.ready = true));
    options.metrics.bind({
      connections: options.connections,
      counts: () => this.counts(),
      peers: () => sync.peerLinks(),
    });
  }

  /** Users, groups and files in the database, counted now. */
  counts(): TrackerCounts {
    const n = (s: Database.Statement) => (s.get() as { n: number }).n;
    return { users: n(this.countUsers), groups: n(this.countGroups), files: n(this.countFiles) };
  }

  health(): Health {
    return {
      status: this.ready ? 'up' : 'starting',
      tracker: this.config.trackerNumber,
      peers: this.sync.peerLinks().map((p) => ({ ...p, address: formatHostPort(p.address) })),
    };
  }

  private healthz(): HttpAnswer {
    const health = this.health();
    return json(health.status === 'up' ? 200 : 503, health);
  }

  async onApplicationBootstrap(): Promise<void> {
    const { port, host } = this.options;
    try {
      const address = await this.http.listen(port, host);
      this.logger.log(`health and metrics on http://${formatHostPort({ host, port: address.port })}/`);
    } catch (err) {
      throw new Error(`--http-port ${port}: ${(err as Error).message}`);
    }
  }

  onApplicationShutdown(): Promise<void> {
    return this.http.close();
  }
}
