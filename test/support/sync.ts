import { readFileSync } from 'node:fs';
import { Reply } from '@app/protocol';
import { checkSyncProof, newNonce, syncProof, SyncLinkSecurity } from '../../apps/tracker/src/sync/sync-link.security';
import { RawConn } from './processes';

/** A raw connection that did a tracker's handshake (with the network key): its requests are sealed, replies checked. */
export class SyncPeer {
  private constructor(
    readonly conn: RawConn,
    readonly link: SyncLinkSecurity,
  ) {}

  /** Dials the tracker on `port` (tracker `listener` of the file) claiming to be tracker `claimAs`. */
  static async open(port: number, keyFile: string, claimAs: number, listener: number): Promise<SyncPeer> {
    const key = Buffer.from(readFileSync(keyFile, 'utf8').trim(), 'hex');
    const conn = await RawConn.open(port);
    try {
      const dialerNonce = newNonce();
      const [listenerNonce, proof] = must(await conn.request(`123456789 sync_hello ${claimAs} ${dialerNonce}`));
      const parties = { dialer: claimAs, listener, dialerNonce, listenerNonce };
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
