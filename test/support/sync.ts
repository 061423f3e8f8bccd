import { readFileSync } from 'node:fs';
import { Reply } from '@app/protocol';
import { LineConnection } from '@app/line-client';
import { createSelfSigned, fingerprintOf, Identity } from '@app/tls';
import {
  checkSyncProof,
  newNonce,
  syncEkm,
  syncProof,
  SyncLinkSecurity,
} from '../../apps/tracker/src/sync/sync-link.security';

/** An identity of no tracker, made once per test process: what a test presents where no pin asks for another. */
let throwaway: Identity | undefined;
export function throwawayIdentity(): Identity {
  if (!throwaway) {
    const made = createSelfSigned('p2p-share test');
    throwaway = { ...made, fingerprint: fingerprintOf(made.certPem), keyFile: '', certFile: '', created: true };
  }
  return throwaway;
}

/**
 * A connection to the tracker on `port` inside TLS (STARTTLS first, docs/PROTOCOL.md 8), presenting `identity`
 * (a tracker's, loaded from its data directory, where tracker_info.txt pins it). Takes any server certificate.
 */
export function tlsConnection(port: number, identity: Identity = throwawayIdentity()): Promise<LineConnection> {
  return LineConnection.open({ host: '127.0.0.1', port }, { timeoutMs: 10_000, tls: { identity, verify: () => {} } });
}

/** A connection inside TLS that did a tracker's handshake (with the network key): requests sealed, replies checked. */
export class SyncPeer {
  private constructor(
    readonly conn: LineConnection,
    readonly link: SyncLinkSecurity,
  ) {}

  /**
   * Dials the tracker on `port` (tracker `listener` of the file) claiming to be tracker `claimAs`, presenting
   * `identity` in TLS.
   */
  static async open(
    port: number,
    keyFile: string,
    claimAs: number,
    listener: number,
    identity?: Identity,
  ): Promise<SyncPeer> {
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    const conn = await tlsConnection(port, identity);
    try {
      const dialerNonce = newNonce();
      const [listenerNonce, proof] = must(await conn.request(`123456789 sync_hello ${claimAs} ${dialerNonce}`));
      const parties = { dialer: claimAs, listener, dialerNonce, listenerNonce, ekm: syncEkm(conn.tls!) };
      if (!checkSyncProof(key, 'listener', parties, proof)) throw new Error('the tracker did not prove the key');
      const link = SyncLinkSecurity.create(key, 'dialer', parties);
      link.openReply(await conn.request(`123456789 sync_auth ${syncProof(key, 'dialer', parties)}`));
      return new SyncPeer(conn, link);
    } catch (err) {
      conn.close();
      throw err;
    }
  }

  async request(line: string): Promise<Reply> {
    return this.link.openReply(await this.conn.request(this.link.sealRequest(line)));
  }

  close(): void {
    this.conn.close();
  }
}

/**
 * Asks a tracker for its state digest, proving (with the network key) to be tracker `claimAs`.
 * `listener` is the number of the tracker on `port`.
 */
export async function stateDigest(port: number, keyFile: string, claimAs: number, listener: number): Promise<string> {
  const peer = await SyncPeer.open(port, keyFile, claimAs, listener);
  try {
    return must(await peer.request('123456789 sync_digest'))[0];
  } finally {
    peer.close();
  }
}

export function must(reply: Reply): readonly string[] {
  if (!reply.ok) throw new Error(`expected OK, got ERR ${reply.code} ${reply.message}`);
  return reply.lines;
}

export async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
