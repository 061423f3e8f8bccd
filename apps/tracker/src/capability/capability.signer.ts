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

/** Capabilities remembered for reuse at most (a full cache drops what is no longer reusable, else everything). */
const MAX_REMEMBERED = 20_000;

interface Issued {
  readonly capability: string;
  /** Unix seconds. */
  readonly expiresAt: number;
}

/**
 * Issues download capabilities: signed, offline-checkable permission to fetch
 * one file from one seeder. A signature costs about 0.1 ms, as much as the
 * rest of a `download_file`: the same grant asked for again within a tenth of
 * the lifetime (at most a minute) gets the capability issued then, which has
 * at least nine tenths of its lifetime left.
 */
@Injectable()
export class CapabilitySigner {
  private readonly privateKey: KeyObject;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Buffer;
  /** Recently issued capabilities by grant. */
  private readonly recent = new Map<string, Issued>();
  /** How long an issued capability is handed out again. */
  private readonly reuseMs: number;

  constructor(
    @Inject(CLUSTER_KEY) networkKey: Buffer,
    @Inject(CAPABILITY_OPTIONS) private readonly options: CapabilityOptions,
    @Inject(CAPABILITY_CLOCK) private readonly now: Clock,
  ) {
    const keys = deriveCapabilityKeys(networkKey);
    this.privateKey = keys.privateKey;
    this.publicKey = keys.rawPublicKey;
    this.reuseMs = Math.min(options.ttlMs / 10, 60_000);
  }

  /** The `capability_key:<base64url>` line a `login` or `resume` reply carries. */
  get publicKeyLine(): string {
    return formatCapabilityKeyLine(this.publicKey);
  }

  /** A capability for `grant`, good until the TTL from now has passed (rounded up to a whole second). */
  issue(grant: CapabilityGrant): string {
    const now = this.now();
    const fileHash = grant.fileHash.toLowerCase();
    const key = `${grant.groupId}\n${fileHash}\n${grant.seederId}\n${grant.downloaderId}`;
    const hit = this.recent.get(key);
    if (hit && this.reusable(hit, now)) return hit.capability;
    const expiresAt = Math.ceil((now + this.options.ttlMs) / 1000);
    const signed = capabilitySignedBytes({ ...grant, fileHash, expiresAt });
    const capability = formatCapability(signed, sign(null, signed, this.privateKey));
    if (this.recent.size >= MAX_REMEMBERED) this.prune(now);
    this.recent.set(key, { capability, expiresAt });
    return capability;
  }

  private reusable(issued: Issued, now: number): boolean {
    return issued.expiresAt * 1000 - now >= this.options.ttlMs - this.reuseMs;
  }

  private prune(now: number): void {
    for (const [key, issued] of this.recent) if (!this.reusable(issued, now)) this.recent.delete(key);
    if (this.recent.size >= MAX_REMEMBERED) this.recent.clear();
  }
}
