import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/** What the client's metrics read at scrape time (bound by ClientMetricsService; tests pass plain functions). */
export interface ClientMetricSources {
  /** Chunk bytes sent to other peers since the client started. */
  readonly uploadedBytes: () => number;
  /** Chunk bytes received and verified since the client started (not those found in a `.part` to resume). */
  readonly downloadedBytes: () => number;
  /** The state of each download of this session (`downloading`, `complete`, `failed`...). */
  readonly downloadStates: () => Iterable<string>;
  /** Connections the chunk server holds now, and of them those served a chunk or a have-list. */
  readonly peerConnections: () => { open: number; serving: number };
}

/** States always shown, at 0 when no download is in them. */
const KNOWN_STATES = ['downloading', 'complete', 'failed'];

/** The client's Prometheus metrics, in a registry of their own (with Node's default metrics); all read at scrape time. */
export class ClientMetrics {
  readonly registry = new Registry();

  constructor(sources: ClientMetricSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    total('p2p_client_uploaded_bytes_total', 'Chunk bytes sent to other peers', sources.uploadedBytes);
    total('p2p_client_downloaded_bytes_total', 'Chunk bytes received from peers and verified', sources.downloadedBytes);
    new Gauge({
      name: 'p2p_client_downloads',
      help: 'Downloads of this session by state',
      labelNames: ['state'],
      registers,
      collect() {
        const counts = new Map(KNOWN_STATES.map((s) => [s, 0]));
        for (const state of sources.downloadStates()) counts.set(state, (counts.get(state) ?? 0) + 1);
        this.reset();
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'p2p_client_peer_connections',
      help: 'Connections from other peers to this client now',
      registers,
      collect() {
        this.set(sources.peerConnections().open);
      },
    });
    new Gauge({
      name: 'p2p_client_serving_connections',
      help: 'Connections from other peers that this client has served a chunk or a have-list (peers downloading from it now)',
      registers,
      collect() {
        this.set(sources.peerConnections().serving);
      },
    });
  }

  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
