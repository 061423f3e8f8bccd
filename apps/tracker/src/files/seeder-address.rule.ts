import { ErrorCode, formatHostPort, HostPort, parseHostPort, parsePort, ProtocolError } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { TrackerAddressAsSeederError } from './files.errors';

/**
 * Where a seeder serves chunks: the host its own tracker connection comes
 * from, and the port its client gives in `my_port`. `my_port` may be `PORT`
 * or, as older clients send it, `IP:PORT`; the IP part is checked for form
 * and then ignored, so no member can point downloaders at another machine
 * (or at a tracker) by typing its address.
 */
export function seederAddress(myPort: string, remoteAddress: string): HostPort {
  const port = parsePort(myPort) ?? parseHostPort(myPort)?.port;
  if (port === undefined) {
    throw new ProtocolError(
      ErrorCode.BadArguments,
      `my_port must be PORT (1-65535) or IP:PORT, not '${myPort.slice(0, 60)}'`,
    );
  }
  return { host: remoteHost(remoteAddress), port };
}

/** The IP of a `remoteAddress` written `ip:port`, IPv4-mapped IPv6 turned back into IPv4. */
export function remoteHost(remoteAddress: string): string {
  const colon = remoteAddress.lastIndexOf(':');
  const host = (colon < 0 ? remoteAddress : remoteAddress.slice(0, colon)).replace(/^\[(.*)\]$/, '$1');
  return /^::ffff:\d+\.\d+\.\d+\.\d+$/i.test(host) ? host.slice('::ffff:'.length) : host;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** True when `address` is where one of `trackers` listens (a tracker listening on 0.0.0.0 or :: matches any host). */
export function isTrackerAddress(address: HostPort, trackers: readonly HostPort[]): boolean {
  return trackers.some(
    (t) => t.port === address.port && (WILDCARDS.has(t.host) || t.host.toLowerCase() === address.host.toLowerCase()),
  );
}

/**
 * The seeder address rule with this network's trackers: `seederAddress`, and
 * never the address of a tracker of the network (its tracker_info addresses
 * and `--peer-address` ones), so a downloader is never sent to a tracker's
 * port. Every tracker applies it where a seeder registers, so no tracker
 * lists such an address, whichever tracker the seeder came through.
 */
@Injectable()
export class SeederAddressRule {
  private readonly trackers: readonly HostPort[];

  constructor(@Inject(TRACKER_CONFIG) config: TrackerConfig) {
    this.trackers = [...config.trackers, config.self, ...config.peerAddresses.values()];
  }

  /** The address a seeder on the connection from `remoteAddress` serves on; throws when it may not be listed. */
  resolve(myPort: string, remoteAddress: string): HostPort {
    const address = seederAddress(myPort, remoteAddress);
    if (isTrackerAddress(address, this.trackers)) throw new TrackerAddressAsSeederError(formatHostPort(address));
    return address;
  }
}
