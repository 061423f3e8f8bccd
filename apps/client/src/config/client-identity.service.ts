import { formatHostPort } from '@app/protocol';
import { Identity, loadOrCreateIdentity } from '@app/tls';
import { Injectable } from '@nestjs/common';
import { ClientConfigService } from './client-config.service';

/**
 * The client's TLS identity, kept in its data directory (made on first
 * start): presented to trackers, which hand its fingerprint to downloaders,
 * and served by the chunk server after `STARTTLS`. Loaded on first use, once
 * the config is known; `loadOrCreateIdentity` throws an IdentityError with a
 * clear message for a key others may read or half an identity.
 */
@Injectable()
export class ClientIdentityService {
  private identity: Identity | undefined;

  constructor(private readonly config: ClientConfigService) {}

  get(): Identity {
    if (!this.identity) {
      const { dataDir, self } = this.config.get();
      this.identity = loadOrCreateIdentity(dataDir, `p2p-share client ${formatHostPort(self)}`);
    }
    return this.identity;
  }
}
