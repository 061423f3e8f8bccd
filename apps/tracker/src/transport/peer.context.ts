import { Frame, Reply, ReplyPiece } from '@app/protocol';
import { BaseRpcContext } from '@nestjs/microservices';
import { NotLoggedInError } from '../common/domain.error';

/** Opens sealed request lines and seals replies on an authenticated tracker link. */
export interface LineSecurity {
  /** The line without its seal; throws when the seal is missing or wrong (the transport then closes the link). */
  openRequest(frame: Frame): string;
  /** The reply as pieces to write, sealed. */
  sealReply(reply: Reply): ReplyPiece[];
}

/** What TLS gives a connection that began with `STARTTLS` (docs/PROTOCOL.md 8). */
export interface ConnectionTls {
  /** `sha256:<hex>` of the certificate the peer presented; undefined when it presented none. */
  readonly peerFingerprint: string | undefined;
  /** RFC 5705 keying material of this TLS session (channel binding of the sync handshake). */
  exportKeyingMaterial(length: number, label: string): Buffer;
}

/**
 * One TCP connection to the tracker. It is the session: the logged-in user
 * belongs to the connection, never to a port number the peer claims.
 */
export class PeerContext extends BaseRpcContext<[]> {
  private userId: string | undefined;
  /** SHA-256 of the session token issued at login (or resumed), to revoke it at logout. */
  tokenHash: string | undefined;
  /** Set once the peer proved it is tracker N of this network; then it may send sync lines. */
  trackerNumber: number | undefined;
  /** The nonces of a `sync_hello` this tracker answered, and who claimed to be asking. */
  challenge: { dialerNonce: string; listenerNonce: string; trackerNumber: number } | undefined;
  /** Set with `trackerNumber`: every later line in must carry a valid MAC, every reply out gets one. */
  link: LineSecurity | undefined;
  /**
   * False while the connection speaks the seed form (the default); true once
   * its first line was `HELLO p2p-share/2` (framed replies, request ids,
   * continuation lines). Seeders registered over it are listed in that form.
   */
  extended = false;
  /** Set when the connection began with `STARTTLS`: everything after it travels inside TLS. */
  tls: ConnectionTls | undefined;
  private readonly closeListeners: (() => void)[] = [];

  constructor(
    readonly connectionId: number,
    readonly remoteAddress: string,
  ) {
    super([]);
  }

  /** The peer's IP address without the port (and without an IPv4-mapped `::ffff:` prefix). */
  get remoteHost(): string {
    const host = this.remoteAddress.slice(0, this.remoteAddress.lastIndexOf(':'));
    return host.startsWith('::ffff:') ? host.slice(7) : host;
  }

  get user(): string | undefined {
    return this.userId;
  }

  requireUser(): string {
    if (this.userId === undefined) throw new NotLoggedInError();
    return this.userId;
  }

  setUser(userId: string): void {
    this.userId = userId;
  }

  /** Runs `listener` once the connection has closed. */
  onClose(listener: () => void): void {
    this.closeListeners.push(listener);
  }

  /** Called by the transport when the connection is gone. */
  closed(): void {
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  clearUser(): void {
    this.userId = undefined;
    this.tokenHash = undefined;
  }
}
