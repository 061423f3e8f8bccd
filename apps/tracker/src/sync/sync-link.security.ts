import { Frame, Reply, replyPieces, ReplyPiece } from '@app/protocol';
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Tracker-to-tracker links: TLS (the dialer sends STARTTLS, docs/PROTOCOL.md 8),
 * then a mutual challenge-response bound to the TLS session, then a MAC on every line.
 *
 * Handshake (the dialer is tracker D, the listener tracker L; nonces are 32
 * random bytes in lowercase hex; ekm is 32 bytes of keying material of the TLS
 * session, RFC 5705/8446 exporter with label `EXPORTER-p2p-share-sync` and no
 * context, so a relay that terminates TLS on both sides gets other keying
 * material on each side and cannot pass the proofs on):
 *
 *     D: 123456789 sync_hello <D> <nonce_D>
 *     L: OK 2 prove it  /  <nonce_L>  /  <proof_L>
 *     D: 123456789 sync_auth <proof_D>          (only once proof_L checked out)
 *     L: OK 1 ~<mac> welcome, tracker <D>  /  <version vector>   (first sealed reply)
 *
 *     proof_L = HMAC-SHA256(key, "p2p-share sync v3 listener <D> <L> <nonce_D> <nonce_L> <hex(ekm)>")
 *     proof_D = HMAC-SHA256(key, "p2p-share sync v3 dialer <D> <L> <nonce_D> <nonce_L> <hex(ekm)>")
 *
 * Both proofs name both trackers in the same order (dialer first), both
 * nonces and the TLS session, and say which side made them, so neither can be
 * replayed on another link nor reflected back at the tracker that made it.
 *
 * After the handshake both sides derive the link key
 *
 *     link_key = HKDF-SHA256(key, salt = nonce_D || nonce_L (64 bytes), info = "p2p-share sync link <D> <L>", 32)
 *
 * and every request line (dialer to listener) carries ` ~<mac>` at its end,
 * every reply (listener to dialer) `~<mac> ` right after `OK <n> ` or
 * `ERR <CODE> `, where
 *
 *     mac = HMAC-SHA256(link_key, direction || counter || bytes)   (64 lowercase hex)
 *
 * with `direction` one byte, `>` (0x3e) for requests and `<` (0x3c) for
 * replies; `counter` the 8-byte big-endian number of lines (or replies) sent
 * before in that direction on the link, from 0; and `bytes` the request line
 * without the tag and without its newline, or the whole unsealed reply, header
 * and body lines, each ending in `\n`. A missing or wrong MAC, a line out of
 * sequence or an over-long line ends the link.
 */
export const SYNC_PROOF_LABEL = 'p2p-share sync v3';
/** The TLS exporter label of the keying material the proofs are bound to (no context). */
export const SYNC_EKM_LABEL = 'EXPORTER-p2p-share-sync';
export const SYNC_EKM_BYTES = 32;
export const SYNC_LINK_INFO = 'p2p-share sync link';
export const NONCE_BYTES = 32;
export const NONCE_PATTERN = /^[0-9a-f]{64}$/;
export const MAC_PATTERN = /^[0-9a-f]{64}$/;

const REQUEST = 0x3e;
const REPLY = 0x3c;
/** ` ~` + 64 hex. */
const REQUEST_TAG_LENGTH = 66;

/** Who is who on one link: the dialer's and the listener's tracker numbers and nonces, and its TLS session. */
export interface LinkParties {
  readonly dialer: number;
  readonly listener: number;
  readonly dialerNonce: string;
  readonly listenerNonce: string;
  /** SYNC_EKM_BYTES of keying material exported from the link's TLS session (`syncEkm`). */
  readonly ekm: Buffer;
}

/** What exports keying material: a TLSSocket, or the transport's `ConnectionTls`. */
export interface KeyingMaterialSource {
  exportKeyingMaterial(length: number, label: string, context?: Buffer): Buffer;
}

/** The keying material of a link's TLS session that its proofs are bound to. */
export const syncEkm = (tls: KeyingMaterialSource): Buffer => tls.exportKeyingMaterial(SYNC_EKM_BYTES, SYNC_EKM_LABEL);

export type LinkRole = 'dialer' | 'listener';

export class SyncLinkError extends Error {
  override readonly name = 'SyncLinkError';
}

export const newNonce = (): string => randomBytes(NONCE_BYTES).toString('hex');

/** The proof `role` sends on the link between `p.dialer` and `p.listener`. */
export function syncProof(key: Buffer, role: LinkRole, p: LinkParties): string {
  return createHmac('sha256', key)
    .update(
      `${SYNC_PROOF_LABEL} ${role} ${p.dialer} ${p.listener} ${p.dialerNonce} ${p.listenerNonce} ${p.ekm.toString('hex')}`,
    )
    .digest('hex');
}

/** Whether `given` is the proof `role` must send; constant time. */
export function checkSyncProof(key: Buffer, role: LinkRole, p: LinkParties, given: string): boolean {
  if (!MAC_PATTERN.test(given)) return false;
  return timingSafeEqual(Buffer.from(given, 'hex'), Buffer.from(syncProof(key, role, p), 'hex'));
}

export function deriveLinkKey(key: Buffer, p: LinkParties): Buffer {
  if (!NONCE_PATTERN.test(p.dialerNonce) || !NONCE_PATTERN.test(p.listenerNonce)) throw new SyncLinkError('bad nonce');
  const salt = Buffer.concat([Buffer.from(p.dialerNonce, 'hex'), Buffer.from(p.listenerNonce, 'hex')]);
  return Buffer.from(hkdfSync('sha256', key, salt, `${SYNC_LINK_INFO} ${p.dialer} ${p.listener}`, 32));
}

/**
 * One side of an authenticated link: seals what this side sends and opens
 * what the other side sends, counting lines in each direction. One instance
 * per connection; the dialer uses `sealRequest`/`openReply`, the listener
 * `openRequest`/`sealReply`.
 */
export class SyncLinkSecurity {
  private sent = 0n;
  private received = 0n;

  private constructor(
    private readonly linkKey: Buffer,
    readonly role: LinkRole,
    readonly parties: LinkParties,
  ) {}

  static create(key: Buffer, role: LinkRole, parties: LinkParties): SyncLinkSecurity {
    return new SyncLinkSecurity(deriveLinkKey(key, parties), role, parties);
  }

  /** The tracker at the other end. */
  get peer(): number {
    return this.role === 'dialer' ? this.parties.listener : this.parties.dialer;
  }

  // dialer side

  /** `line` (without its newline) with its tag appended. */
  sealRequest(line: string): string {
    this.expectRole('dialer');
    return `${line} ~${this.mac(REQUEST, this.sent++).update(line, 'utf8').digest('hex')}`;
  }

  /** The reply without its tag; throws SyncLinkError when the tag is missing or wrong. */
  openReply(reply: Reply): Reply {
    this.expectRole('dialer');
    const message = reply.message;
    const tag = message.slice(1, 65);
    if (message[0] !== '~' || message[65] !== ' ' || !MAC_PATTERN.test(tag))
      throw new SyncLinkError(`reply ${this.received} carries no MAC`);
    const inner = message.slice(66);
    const hmac = this.mac(REPLY, this.received);
    if (reply.ok) {
      hmac.update(`OK ${reply.lines.length} ${inner}\n`, 'utf8');
      for (const line of reply.lines) hmac.update(line, 'utf8').update('\n');
    } else {
      hmac.update(`ERR ${reply.code} ${inner}\n`, 'utf8');
    }
    this.verify(hmac.digest(), tag, `reply ${this.received}`);
    this.received++;
    return reply.ok
      ? { ok: true, message: inner, lines: reply.lines }
      : { ok: false, code: reply.code, message: inner };
  }

  // listener side

  /** The request line without its tag; throws SyncLinkError when the tag is missing or wrong. */
  openRequest(frame: Frame): string {
    this.expectRole('listener');
    if (frame.type !== 'line') throw new SyncLinkError(`line ${this.received} is too long`);
    const line = frame.line;
    const at = line.length - REQUEST_TAG_LENGTH;
    const tag = line.slice(at + 2);
    if (at < 0 || line[at] !== ' ' || line[at + 1] !== '~' || !MAC_PATTERN.test(tag))
      throw new SyncLinkError(`line ${this.received} carries no MAC`);
    const inner = line.slice(0, at);
    this.verify(this.mac(REQUEST, this.received).update(inner, 'utf8').digest(), tag, `line ${this.received}`);
    this.received++;
    return inner;
  }

  /** The pieces to write for `reply`, its tag in the header. */
  sealReply(reply: Reply): ReplyPiece[] {
    this.expectRole('listener');
    const pieces = replyPieces(reply);
    const hmac = this.mac(REPLY, this.sent++);
    for (const piece of pieces) hmac.update(piece.text, piece.encoding);
    const head = reply.ok ? `OK ${reply.lines.length} ` : `ERR ${reply.code} `;
    const first = pieces[0];
    pieces[0] = { text: `${head}~${hmac.digest('hex')} ${first.text.slice(head.length)}`, encoding: first.encoding };
    return pieces;
  }

  private mac(direction: number, counter: bigint) {
    const prefix = Buffer.alloc(9);
    prefix[0] = direction;
    prefix.writeBigUInt64BE(counter, 1);
    return createHmac('sha256', this.linkKey).update(prefix);
  }

  private verify(expected: Buffer, tag: string, what: string): void {
    if (!timingSafeEqual(expected, Buffer.from(tag, 'hex')))
      throw new SyncLinkError(`${what}: bad MAC (altered, forged, replayed or out of order)`);
  }

  private expectRole(role: LinkRole): void {
    if (this.role !== role) throw new Error(`a ${this.role} cannot do what a ${role} does`);
  }
}
