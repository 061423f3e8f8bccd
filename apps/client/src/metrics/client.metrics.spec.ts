import { exactValue, parsePrometheus } from '@app/http-endpoint/testing/prometheus-text';
import { ClientMetrics, ClientMetricSources } from './client.metrics';

/** The value of `name` with exactly `labels` in the text exposition; undefined when absent. */
const sample = (text: string, name: string, labels: Record<string, string> = {}): number | undefined =>
  exactValue(parsePrometheus(text), name, labels);

describe(ClientMetrics.name, () => {
  it('reads bytes, downloads by state and connections when scraped', async () => {
    const state = { up: 1000, down: 5000, states: ['complete', 'downloading', 'downloading'], open: 2, serving: 1 };
    const sources: ClientMetricSources = {
      uploadedBytes: () => state.up,
      downloadedBytes: () => state.down,
      downloadStates: () => state.states,
      peerConnections: () => ({ open: state.open, serving: state.serving }),
    };
    const metrics = new ClientMetrics(sources);
    let text = await metrics.scrape();
    expect(sample(text, 'p2p_client_uploaded_bytes_total')).toBe(1000);
    expect(sample(text, 'p2p_client_downloaded_bytes_total')).toBe(5000);
    expect(sample(text, 'p2p_client_downloads', { state: 'downloading' })).toBe(2);
    expect(sample(text, 'p2p_client_downloads', { state: 'complete' })).toBe(1);
    expect(sample(text, 'p2p_client_downloads', { state: 'failed' })).toBe(0);
    expect(sample(text, 'p2p_client_peer_connections')).toBe(2);
    expect(sample(text, 'p2p_client_serving_connections')).toBe(1);

    Object.assign(state, { up: 3000, down: 9000, states: ['complete', 'complete', 'paused'], open: 0, serving: 0 });
    text = await metrics.scrape();
    expect(sample(text, 'p2p_client_uploaded_bytes_total')).toBe(3000);
    expect(sample(text, 'p2p_client_downloaded_bytes_total')).toBe(9000);
    expect(sample(text, 'p2p_client_downloads', { state: 'downloading' })).toBe(0);
    expect(sample(text, 'p2p_client_downloads', { state: 'complete' })).toBe(2);
    expect(sample(text, 'p2p_client_downloads', { state: 'paused' })).toBe(1);
    expect(sample(text, 'p2p_client_peer_connections')).toBe(0);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThanOrEqual(0);
  });
});
