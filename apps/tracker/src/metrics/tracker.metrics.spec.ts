import { exactValue, parsePrometheus } from '@app/http-endpoint/testing/prometheus-text';
import { TrackerMetrics } from './tracker.metrics';

/** The value of `name` with exactly `labels` in the text exposition; undefined when absent. */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number | undefined =>
  exactValue(parsePrometheus(text), name, labels);

describe(TrackerMetrics.name, () => {
  it('counts commands by name and outcome and times them', async () => {
    const metrics = new TrackerMetrics();
    metrics.commandDone('login', 'ok', 0.002);
    metrics.commandDone('login', 'BAD_PASSWORD', 0.004);
    metrics.commandDone('login', 'ok', 0.003);
    const text = await metrics.scrape();
    expect(sample(text, 'p2p_tracker_commands_total', { command: 'login', outcome: 'ok' })).toBe(2);
    expect(sample(text, 'p2p_tracker_commands_total', { command: 'login', outcome: 'BAD_PASSWORD' })).toBe(1);
    expect(sample(text, 'p2p_tracker_request_duration_seconds_count', { command: 'login' })).toBe(3);
    expect(sample(text, 'p2p_tracker_request_duration_seconds_bucket', { command: 'login', le: '0.0025' })).toBe(1);
    expect(sample(text, 'p2p_tracker_request_duration_seconds_sum', { command: 'login' })).toBeCloseTo(0.009);
  });

  it('counts refusals by limit', async () => {
    const metrics = new TrackerMetrics();
    metrics.refused('IDLE_TIMEOUT');
    metrics.refused('IDLE_TIMEOUT');
    metrics.refused('LINE_TOO_LONG');
    const text = await metrics.scrape();
    expect(sample(text, 'p2p_tracker_refusals_total', { limit: 'idle_timeout' })).toBe(2);
    expect(sample(text, 'p2p_tracker_refusals_total', { limit: 'line_too_long' })).toBe(1);
  });

  it('reads connections, counts and peer links at scrape time', async () => {
    const metrics = new TrackerMetrics();
    let connections = 3;
    let linked = true;
    metrics.bind({
      connections: () => connections,
      counts: () => ({ users: 5, groups: 2, files: 7 }),
      peers: () => [{ tracker: 2, address: { host: '127.0.0.1', port: 7002 }, linked, behind: linked ? 0 : 4 }],
    });
    const peer = { peer: '2', address: '127.0.0.1:7002' };
    let text = await metrics.scrape();
    expect(sample(text, 'p2p_tracker_open_connections')).toBe(3);
    expect(sample(text, 'p2p_tracker_users')).toBe(5);
    expect(sample(text, 'p2p_tracker_groups')).toBe(2);
    expect(sample(text, 'p2p_tracker_files')).toBe(7);
    expect(sample(text, 'p2p_tracker_sync_link_up', peer)).toBe(1);
    expect(sample(text, 'p2p_tracker_sync_behind_ops', peer)).toBe(0);
    connections = 1;
    linked = false;
    text = await metrics.scrape();
    expect(sample(text, 'p2p_tracker_open_connections')).toBe(1);
    expect(sample(text, 'p2p_tracker_sync_link_up', peer)).toBe(0);
    expect(sample(text, 'p2p_tracker_sync_behind_ops', peer)).toBe(4);
  });

  it('serves the default Node metrics and reads 0 before its sources are bound', async () => {
    const text = await new TrackerMetrics().scrape();
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
    expect(sample(text, 'p2p_tracker_users')).toBe(0);
  });
});
