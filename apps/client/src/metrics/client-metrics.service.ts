import { formatHostPort } from '@app/protocol';
import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { ClientConfigService } from '../config/client-config.service';
import { DownloadManager } from '../downloads/download.manager';
import { OUTPUT, OutputPort } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { ClientMetrics } from './client.metrics';
import { ReadOnlyHttpServer } from '@app/http-endpoint';

/**
 * `--metrics-port`: serves `/metrics` on the client's own host once the command line is read. A port that cannot be
 * bound is reported on the output and the client runs on without metrics.
 */
@Injectable()
export class ClientMetricsService implements OnApplicationShutdown {
  readonly metrics: ClientMetrics;
  private readonly http: ReadOnlyHttpServer;
  private listening: Promise<unknown> | undefined;

  constructor(
    config: ClientConfigService,
    downloads: DownloadManager,
    chunkServer: ChunkServer,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {
    this.metrics = new ClientMetrics({
      uploadedBytes: () => chunkServer.uploadedBytes,
      downloadedBytes: () =>
        downloads.downloads.reduce((sum, d) => sum + d.job.progress.bytesDone - d.job.progress.resumedBytes, 0),
      downloadStates: () => downloads.downloads.map((d) => d.job.progress.state),
      peerConnections: () => ({ open: chunkServer.connectionCount, serving: chunkServer.servingConnections }),
    });
    this.http = new ReadOnlyHttpServer({
      '/metrics': async () => ({
        status: 200,
        contentType: this.metrics.contentType,
        body: await this.metrics.scrape(),
      }),
    });
    config.onLoaded(({ metricsPort, self }) => {
      if (metricsPort === undefined || this.listening) return;
      this.listening = this.http.listen(metricsPort, self.host).catch((err: Error) => {
        this.out.error(
          `cannot serve metrics on ${formatHostPort({ host: self.host, port: metricsPort })}: ${err.message}`,
        );
      });
    });
  }

  async onApplicationShutdown(): Promise<void> {
    await this.listening;
    await this.http.close();
  }
}
