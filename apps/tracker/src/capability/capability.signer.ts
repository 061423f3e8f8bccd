import {
  CapabilityClaims,
  capabilitySignedBytes,
  ED25519_PKCS8_PREFIX,
  formatCapability,
  formatCapabilityKeyLine,
} from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { createPrivateKey, createPublicKey, hkdfSync, KeyObject, sign } from 'node:crypto';
import { CLUSTER_KEY } from '../sync/sync.tokens';
import { CAPABILITY_CLOCK, CAPABILITY_OPTIONS, CapabilityOptions, Clock } from './capability.tokens';

/** HKDF-SHA256 `info` that turns the network key into the capability signing seed. */
export const CAPABILITY_KEY_INFO = 'p2p-share capability signing key v1';

/**
 * The Ed25519 key pair every tracker of a network signs capabilities with:
 * seed = HKDF-SHA256(ikm = network key, salt = empty, info = CAPABILITY_KEY_INFO, 32 bytes),
 * private key = PKCS#8 DER `302e020100300506032b657004220420` followed by the seed.
 * The same network key gives the same pair on every tracker, so a capability
 * issued by one is good on every seeder whichever tracker it logged in with.
 */
export function deriveCapabilityKeys(networkKey: Buffer): { privateKey: KeyObject; rawPublicKey: Buffer } {
  const seed = Buffer.from(hkdfSync('sha256', networkKey, Buffer.alloc(0), CAPABILITY_KEY_INFO, 32));
  const privateKey = createPrivateKey({
    key: Buffer.concat([ED25519_PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const spki = createPublicKey(privateKey).export({ format: 'der', type: 'spki' });
  return { privateKey, rawPublicKey: spki.subarray(spki.length - 32) };
}

/** What a capability is issued for; the signer adds the expiry. */
export type CapabilityGrant = Omit<CapabilityClaims, 'expiresAt'>;

/** Issues download capabilities: signed, offline-checkable permission to fetch one file from one seeder. */
@Injectable()
export class CapabilitySigner {
  private readonly privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;

  constructor(
    @Inject(CLUSTER_KEY) networkKey: Buffer,
    @Inject(CAPABILITY_OPTIONS) private readonly options: CapabilityOptions,
    @Inject(CAPABILITY_CLOCK) private readonly now: Clock,
  ) {
    const keys = deriveCapabilityKeys(networkKey);
    this.privateKey = keys.privateKey;
    this.publicKey = keys.rawPublicKey;
  }

  /** The `capability_key:<base64url>` line a `login` or `resume` reply carries. */
  get publicKeyLine(): string {
    return formatCapabilityKeyLine(this.publicKey);
  }

  /** A capability for `grant`, good until the TTL from now has passed (rounded up to a whole second). */
  issue(grant: CapabilityGrant): string {
    const expiresAt = Math.ceil((this.now() + this.options.ttlMs) / 1000);
    const signed = capabilitySignedBytes({ ...grant, fileHash: grant.fileHash.toLowerCase(), expiresAt });
    return formatCapability(signed, sign(null, signed, this.privateKey));
  }
}
