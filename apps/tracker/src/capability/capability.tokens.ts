/** Settings of the capability signer, from the tracker config. */
export const CAPABILITY_OPTIONS = Symbol('CAPABILITY_OPTIONS');

export interface CapabilityOptions {
  /** How long a capability is good for after it is issued, in milliseconds. */
  readonly ttlMs: number;
}

/** Milliseconds since the epoch; tests bind a fake. */
export const CAPABILITY_CLOCK = Symbol('CAPABILITY_CLOCK');
export type Clock = () => number;
