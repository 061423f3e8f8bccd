import { TrackerLimits } from '../config/tracker.config';

/** Failures of one key (an address, or a user) and until when the next try must wait. */
interface Failures {
  count: number;
  last: number;
  until: number;
}

/** The first wait once backoff starts; each further failure doubles it, up to `loginBackoffMaxMs`. */
const FIRST_WAIT_MS = 1000;
/** Failures are forgotten after this long without a new one. */
const FORGET_AFTER_MS = 15 * 60_000;
/** A user's failures from all addresses together start a backoff at this many times the per-address count. */
const USER_FACTOR = 4;
/** Addresses remembered per user as ones it logged in from. */
const KNOWN_PER_USER = 8;
/** Entries kept at most per map; the least recently changed go first. */
const MAX_ENTRIES = 100_000;

/**
 * Backoff for failed logins, kept in memory on each tracker.
 *
 * - Per address: after `loginBackoffAfter` failures from one address (any
 *   user ids), every further login from it waits 1 s, then 2 s, 4 s ... up
 *   to `loginBackoffMaxMs` after each new failure. A success does not reset
 *   it (an attacker with an account of its own could reset it at will);
 *   failures are forgotten 15 minutes after the last one.
 * - Per user: after 4x that many failures for one user id from any
 *   addresses (guessing spread over many addresses), logins as that user
 *   wait the same way, except from the last 8 addresses the user logged in
 *   from successfully: the owner on a known address is never held up by
 *   someone else's guessing.
 *
 * A login that has to wait is refused at once, before any password hashing.
 * And one address may have at most `maxScryptPerIp` password hashes (login,
 * create_user) running or queued at a time, so that it cannot fill the tracker's bounded
 * hashing queue and keep everyone else from logging in.
 */
export class LoginThrottle {
  private readonly byAddress = new Map<string, Failures>();
  private readonly byUser = new Map<string, Failures>();
  private readonly knownAddresses = new Map<string, string[]>();
  private readonly hashing = new Map<string, number>();

  constructor(
    private readonly limits: Pick<TrackerLimits, 'loginBackoffAfter' | 'loginBackoffMaxMs' | 'maxScryptPerIp'>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Milliseconds `userId` must wait before trying again from `address`; 0: it may try now. */
  waitMs(address: string, userId: string): number {
    const now = this.now();
    const fromAddress = this.current(this.byAddress, address, now);
    const forUser = this.knownAddresses.get(userId)?.includes(address)
      ? undefined
      : this.current(this.byUser, userId, now);
    return Math.max(0, (fromAddress?.until ?? 0) - now, (forUser?.until ?? 0) - now);
  }

  failed(address: string, userId: string): void {
    const now = this.now();
    this.count(this.byAddress, address, this.limits.loginBackoffAfter, now);
    this.count(this.byUser, userId, this.limits.loginBackoffAfter * USER_FACTOR, now);
  }

  succeeded(address: string, userId: string): void {
    const known = (this.knownAddresses.get(userId) ?? []).filter((a) => a !== address);
    known.push(address);
    if (known.length > KNOWN_PER_USER) known.shift();
    this.knownAddresses.delete(userId);
    this.knownAddresses.set(userId, known);
    trim(this.knownAddresses);
  }

  /**
   * Takes one of `address`'s turns at password hashing: a function that gives
   * it back, or undefined when the address already has all its turns. An
   * empty address (an in-process caller) is not limited.
   */
  startHashing(address: string): (() => void) | undefined {
    if (address === '') return () => undefined;
    const running = this.hashing.get(address) ?? 0;
    if (running >= this.limits.maxScryptPerIp) return undefined;
    this.hashing.set(address, running + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const left = (this.hashing.get(address) ?? 1) - 1;
      if (left > 0) this.hashing.set(address, left);
      else this.hashing.delete(address);
    };
  }

  /** The record of `key`, unless it has been forgotten. */
  private current(map: Map<string, Failures>, key: string, now: number): Failures | undefined {
    const entry = map.get(key);
    if (entry && now - entry.last > FORGET_AFTER_MS && now >= entry.until) {
      map.delete(key);
      return undefined;
    }
    return entry;
  }

  private count(map: Map<string, Failures>, key: string, after: number, now: number): void {
    const entry = this.current(map, key, now) ?? { count: 0, last: now, until: 0 };
    entry.count++;
    entry.last = now;
    if (entry.count >= after) {
      const doublings = Math.min(entry.count - after, 30);
      entry.until = now + Math.min(FIRST_WAIT_MS * 2 ** doublings, this.limits.loginBackoffMaxMs);
    }
    map.delete(key); // re-inserted last: the map stays ordered by last change
    map.set(key, entry);
    trim(map);
  }
}

function trim<V>(map: Map<string, V>): void {
  while (map.size > MAX_ENTRIES) map.delete(map.keys().next().value as string);
}
