import { formatHostPort } from '@app/protocol';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { PeerLinkState } from '../sync/sync.service';

/** What the tracker holds, counted when `/metrics` is scraped. */
export interface TrackerCounts {
  readonly users: number;
  readonly groups: number;
  readonly files: number;
}

/** Where the gauges read at scrape time come from (bound by MetricsModule; tests pass plain functions). */
export interface TrackerGaugeSources {
  readonly connections: () => number;
  readonly counts: () => TrackerCounts;
  readonly peers: () => readonly PeerLinkState[];
}

/** Refusals the transport itself answers, before or instead of a command handler. */
export interface TransportObserver {
  /** A limit refused a connection or a request; `code` is the ERR code sent (TOO_MANY_CONNECTIONS, IDLE_TIMEOUT...). */
  refused(code: string): void;
}

/** Latency buckets in seconds: sub-millisecond lookups up to password hashing under load. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * The tracker's Prometheus metrics, in a registry of their own (with Node's default metrics): counters and the
 * latency histogram move as requests pass; connection, store and sync gauges are read at scrape time.
 */
export class TrackerMetrics implements TransportObserver {
  readonly registry = new Registry();
  private readonly commands: Counter<'command' | 'outcome'>;
  private readonly latency: Histogram<'command'>;
  private readonly refusals: Counter<'limit'>;
  private sources: TrackerGaugeSources | undefined;

  constructor() {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.commands = new Counter({
      name: 'p2p_tracker_commands_total',
      help: 'Commands handled, by name and outcome (ok, or the ERR code of the reply)',
      labelNames: ['command', 'outcome'],
      registers,
    });
    this.latency = new Histogram({
      name: 'p2p_tracker_request_duration_seconds',
      help: 'Time from a command reaching its handler to its reply',
      labelNames: ['command'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.refusals = new Counter({
      name: 'p2p_tracker_refusals_total',
      help: 'Connections and requests refused by a limit, by the ERR code sent',
      labelNames: ['limit'],
      registers,
    });
    const read = <T>(pick: (s: TrackerGaugeSources) => T): T | undefined =>
      this.sources ? pick(this.sources) : undefined;
    new Gauge({
      name: 'p2p_tracker_open_connections',
      help: 'Open connections from clients and trackers',
      registers,
      collect() {
        this.set(read((s) => s.connections()) ?? 0);
      },
    });
    for (const what of ['users', 'groups', 'files'] as const) {
      new Gauge({
        name: `p2p_tracker_${what}`,
        help: `${what[0].toUpperCase()}${what.slice(1)} this tracker holds`,
        registers,
        collect() {
          this.set(read((s) => s.counts()[what]) ?? 0);
        },
      });
    }
    new Gauge({
      name: 'p2p_tracker_sync_link_up',
      help: 'Whether the sync link to each peer tracker is up (1) or down (0)',
      labelNames: ['peer', 'address'],
      registers,
      collect() {
        this.reset();
        for (const p of read((s) => s.peers()) ?? []) this.set(peerLabels(p), p.linked ? 1 : 0);
      },
    });
    new Gauge({
      name: 'p2p_tracker_sync_behind_ops',
      help: 'Ops this tracker holds that each peer tracker is not known to hold',
      labelNames: ['peer', 'address'],
      registers,
      collect() {
        this.reset();
        for (const p of read((s) => s.peers()) ?? []) this.set(peerLabels(p), p.behind);
      },
    });
  }

  /** Where the scrape-time gauges read from; until bound they read 0. */
  bind(sources: TrackerGaugeSources): void {
    this.sources = sources;
  }

  /** One handled command: its name, `ok` or its ERR code, and how long it took. */
  commandDone(command: string, outcome: string, seconds: number): void {
    this.commands.inc({ command, outcome });
    this.latency.observe({ command }, seconds);
  }

  refused(code: string): void {
    this.refusals.inc({ limit: code.toLowerCase() });
  }

  /** The Prometheus text exposition of every metric. */
  scrape(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

const peerLabels = (p: PeerLinkState) => ({ peer: String(p.tracker), address: formatHostPort(p.address) });
