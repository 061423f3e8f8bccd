import { TrackerConfig } from '../config/tracker.config';
import { PeerLinkState, SyncService } from '../sync/sync.service';
import { TempDatabases } from '../testing/temp-db';
import { MetricsService } from './metrics.service';
import { TrackerMetrics } from './tracker.metrics';

describe(MetricsService.name, () => {
  const dbs = new TempDatabases();
  afterEach(() => dbs.cleanup());

  function service() {
    let ready!: () => void;
    const links: PeerLinkState[] = [
      { tracker: 2, address: { host: '10.0.0.2', port: 7002 }, linked: false, behind: 3 },
    ];
    const sync = {
      ready: new Promise<void>((r) => (ready = r)),
      peerLinks: () => links,
    } as unknown as SyncService;
    const db = dbs.open();
    const metrics = new TrackerMetrics();
    const options = { metrics, port: 0, host: '127.0.0.1', connections: () => 4 };
    const svc = new MetricsService(options, { trackerNumber: 1 } as TrackerConfig, db, sync);
    return { svc, db, metrics, ready };
  }

  it('is starting until the tracker has caught up with its peers, then up', async () => {
    const { svc, ready } = service();
    const starting = svc.health();
    expect(starting).toEqual({
      status: 'starting',
      tracker: 1,
      peers: [{ tracker: 2, address: '10.0.0.2:7002', linked: false, behind: 3 }],
    });
    ready();
    await new Promise((r) => setImmediate(r));
    expect(svc.health().status).toBe('up');
  });

  it('counts users, groups and files in the database', () => {
    const { svc, db } = service();
    expect(svc.counts()).toEqual({ users: 0, groups: 0, files: 0 });
    db.prepare(
      "INSERT INTO users (user_id, password_hash, created_at) VALUES ('alice', 'x', 1), ('bob', 'y', 1)",
    ).run();
    expect(svc.counts()).toEqual({ users: 2, groups: 0, files: 0 });
  });

  it('binds the collectors to the connection count, the counts and the peer links', async () => {
    const { metrics } = service();
    const text = await metrics.scrape();
    expect(text).toMatch(/^p2p_tracker_open_connections 4$/m);
    expect(text).toMatch(/^p2p_tracker_sync_behind_ops\{peer="2",address="10.0.0.2:7002"\} 3$/m);
  });
});
