import { HostPort } from '@app/protocol';
import { ClientConfig } from '../config/client.config';
import { ClientConfigService } from '../config/client-config.service';

export function clientConfig(overrides: Partial<ClientConfig> = {}): ClientConfig {
  return {
    self: { host: '127.0.0.1', port: 7001 },
    trackerInfoFile: 'tracker_info.txt',
    trackers: [{ host: '127.0.0.1', port: 7000 }],
    dataDir: '/tmp/p2p-share-test-client',
    connectTimeoutMs: 2000,
    ...overrides,
  };
}

export function configServiceFor(trackers: readonly HostPort[]): ClientConfigService {
  const service = new ClientConfigService();
  service.set(clientConfig({ trackers, connectTimeoutMs: 1000 }));
  return service;
}
