import { CapabilityClaims, decodeCapability, ED25519_SPKI_PREFIX } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { createPublicKey, KeyObject, verify } from 'node:crypto';
import { ChunkServerOptions, DEFAULT_CAPABILITY_SKEW_MS, SEEDING_OPTIONS } from './seeding.tokens';

/** Capabilities whose signature has been checked, kept until they expire (or the trust changes). */
const MAX_CACHED = 4096;

/** The trackers' capability signing key: a raw 32-byte Ed25519 public key as a KeyObject. */
export function capabilityPublicKey(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

/**
 * Decides whether a capability lets its bearer fetch from this seeder: signed
 * by the tracker key learned at login, not expired (allowing for clock
 * skew), and naming as seeder the user this client is logged in as. Which
 * file it names is for the caller to look up.
 *
 * A capability whose signature checked out is remembered (by its text) until
 * it expires, so a download costs one signature check per connection's
 * capability, not one per chunk.
 */
@Injectable()
export class CapabilityVerifier {
  private key: KeyObject | undefined;
  private seeder: string | undefined;
  private readonly verified = new Map<string, CapabilityClaims>();

  constructor(@Inject(SEEDING_OPTIONS) private readonly options: Pick<ChunkServerOptions, 'capabilitySkewMs'>) {}

  /** Logged in as `userId`: honour capabilities for that seeder signed with `rawPublicKey` (none: honour none). */
  trust(userId: string, rawPublicKey: Buffer | undefined): void {
    this.verified.clear();
    this.seeder = userId;
    this.key = rawPublicKey ? capabilityPublicKey(rawPublicKey) : undefined;
  }

  /** Logged out: honour nothing. */
  forget(): void {
    this.verified.clear();
    this.seeder = undefined;
    this.key = undefined;
  }

  /** The user capabilities must name as seeder, while logged in. */
  get seederId(): string | undefined {
    return this.key ? this.seeder : undefined;
  }

  /** The claims of `text` when it is a capability this seeder honours at `nowMs`; undefined for anything else. */
  check(text: string, nowMs = Date.now()): CapabilityClaims | undefined {
    if (!this.key) return undefined;
    let claims = this.verified.get(text);
    if (!claims) {
      const decoded = decodeCapability(text);
      if (!decoded || !verify(null, decoded.signed, this.key, decoded.signature)) return undefined;
      claims = decoded.claims;
      if (this.verified.size >= MAX_CACHED) this.evict(nowMs);
      this.verified.set(text, claims);
    }
    const skewMs = this.options.capabilitySkewMs ?? DEFAULT_CAPABILITY_SKEW_MS;
    if (claims.expiresAt * 1000 + skewMs <= nowMs) {
      this.verified.delete(text);
      return undefined;
    }
    return claims.seederId === this.seeder ? claims : undefined;
  }

  /** Makes room: drops expired entries, else the oldest half. */
  private evict(nowMs: number): void {
    const skewMs = this.options.capabilitySkewMs ?? DEFAULT_CAPABILITY_SKEW_MS;
    for (const [text, claims] of this.verified) {
      if (claims.expiresAt * 1000 + skewMs <= nowMs) this.verified.delete(text);
    }
    if (this.verified.size < MAX_CACHED) return;
    let drop = this.verified.size / 2;
    for (const text of this.verified.keys()) {
      if (drop-- <= 0) break;
      this.verified.delete(text);
    }
  }
}
