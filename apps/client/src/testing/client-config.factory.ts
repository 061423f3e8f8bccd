import { createSelfSigned, fingerprintOf, Identity } from '@app/tls';
import { HostPort } from '@app/protocol';
import { ClientConfig } from '../config/client.config';
import { ClientConfigService } from '../config/client-config.service';
import { ClientIdentityService } from '../config/client-identity.service';

/**
 * A data dir nothing can be written under (`/dev/null` is not a folder): a spec whose code writes client state
 * must give its own temporary one, so no spec shares a folder with another or with a real client.
 */
export const UNWRITABLE_DATA_DIR = '/dev/null/p2p-share-test-client';

export function clientConfig(overrides: Partial<ClientConfig> = {}): ClientConfig {
  return {
    self: { host: '127.0.0.1', port: 7001 },
    trackerInfoFile: 'tracker_info.txt',
    trackers: [{ host: '127.0.0.1', port: 7000 }],
    dataDir: UNWRITABLE_DATA_DIR,
    connectTimeoutMs: 2000,
    ...overrides,
  };
}

export function configServiceFor(
  trackers: readonly HostPort[],
  overrides: Partial<ClientConfig> = {},
): ClientConfigService {
  const service = new ClientConfigService();
  service.set(clientConfig({ trackers, connectTimeoutMs: 1000, ...overrides }));
  return service;
}

/** A client identity made in memory (no files), as ClientIdentityService hands it out. */
export function clientIdentityFor(): ClientIdentityService {
  const made = createSelfSigned('p2p-share test client');
  const identity: Identity = {
    ...made,
    fingerprint: fingerprintOf(made.certPem),
    keyFile: '',
    certFile: '',
    created: true,
  };
  return { get: () => identity } as unknown as ClientIdentityService;
}
