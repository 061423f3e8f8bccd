import {
  decodeOpTokens,
  encodeOp,
  ErrorCode,
  formatSnapshotHead,
  formatSnapshotRow,
  formatVersionVector,
  okReply,
  OkReply,
  parseHostPort,
  parseVersionVector,
  isFingerprint,
  SeederForm,
  SYNC_MARKER,
  SyncCmd,
} from '@app/protocol';
import { Controller, Inject } from '@nestjs/common';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { DomainError } from '../common/domain.error';
import { TRACKER_CONFIG, TrackerConfig } from '../config/tracker.config';
import { ConnectionTls, PeerContext } from '../transport/peer.context';
import type { SyncPayload } from '../transport/text-line.server';
import {
  checkSyncProof,
  LinkParties,
  newNonce,
  NONCE_PATTERN,
  syncProof,
  syncEkm,
  SyncLinkSecurity,
} from './sync-link.security';
import { SyncService } from './sync.service';
import { CLUSTER_KEY } from './sync.tokens';

const MAX_FETCH = 5000;
/** A `sync_snapshot` reply stops adding rows past this many bytes (it always carries one row at least). */
const SNAPSHOT_PAGE_BYTES = 1024 * 1024;

class SyncRefusedError extends DomainError {
  constructor(message: string) {
    super(ErrorCode.Forbidden, message);
  }
}

const argsOf = (p: SyncPayload, count: number, usage: string, optional = 0): readonly string[] => {
  if (p.args.length < count || p.args.length > count + optional)
    throw new DomainError(ErrorCode.BadArguments, `usage: ${SYNC_MARKER} ${p.name} ${usage}`);
  return p.args;
};

/** A presence line's optional fingerprint: `sha256:<64 hex>` or nothing. */
function checkFingerprint(fingerprint: string | undefined): void {
  if (fingerprint !== undefined && !isFingerprint(fingerprint)) {
    throw new DomainError(ErrorCode.BadArguments, `bad seeder fingerprint '${fingerprint.slice(0, 80)}'`);
  }
}

/** The other trackers' side of replication: handshake, catch-up, changes, presence, digest. */
@Controller()
export class SyncController {
  /** The connection each tracker last sent its presence on. */
  private readonly presenceLinks = new Map<number, PeerContext>();

  constructor(
    private readonly sync: SyncService,
    @Inject(CLUSTER_KEY) private readonly key: Buffer,
    @Inject(TRACKER_CONFIG) private readonly config: TrackerConfig,
  ) {}

  /** `sync_hello <n> <nonce>`: answers with this tracker's nonce and its proof over both; the caller proves next. */
  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Hello}`)
  hello(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    const tls = this.requireTls(ctx);
    const [numberText, dialerNonce] = argsOf(p, 2, '<tracker_number> <nonce>');
    const n = Number(numberText);
    if (!Number.isInteger(n) || n < 1 || n > this.config.trackers.length || n === this.config.trackerNumber) {
      throw new SyncRefusedError(`no other tracker has number ${numberText}`);
    }
    if (!NONCE_PATTERN.test(dialerNonce)) throw new DomainError(ErrorCode.BadArguments, 'a nonce is 64 hex digits');
    if (ctx.trackerNumber !== undefined) throw new SyncRefusedError('this link is authenticated already');
    const pin = this.config.trackerPins?.[n - 1];
    if (pin !== undefined && tls.peerFingerprint !== pin) {
      throw new SyncRefusedError(`the certificate of tracker ${n} is not the one tracker_info.txt pins`);
    }
    const listenerNonce = newNonce();
    ctx.challenge = { dialerNonce, listenerNonce, trackerNumber: n };
    return okReply('prove it', [listenerNonce, syncProof(this.key, 'listener', this.parties(ctx.challenge, tls))]);
  }

  /** `sync_auth <proof>`: the caller proved the key; from the reply on, every line of the link carries a MAC. */
  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Auth}`)
  auth(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    const [proof] = argsOf(p, 1, '<proof>');
    const challenge = ctx.challenge;
    ctx.challenge = undefined;
    if (!challenge) throw new SyncRefusedError(`say ${SyncCmd.Hello} first`);
    const parties = this.parties(challenge, this.requireTls(ctx));
    if (!checkSyncProof(this.key, 'dialer', parties, proof)) {
      throw new SyncRefusedError('wrong proof: this tracker does not hold the network key');
    }
    ctx.trackerNumber = challenge.trackerNumber;
    ctx.link = SyncLinkSecurity.create(this.key, 'listener', parties);
    this.sync.peerDialedIn(challenge.trackerNumber);
    return okReply(`welcome, tracker ${ctx.trackerNumber}`, [formatVersionVector(this.sync.versionVector())]);
  }

  /** Sync links run inside TLS only: their proofs are bound to the TLS session (docs/PROTOCOL.md 6.1). */
  private requireTls(ctx: PeerContext): ConnectionTls {
    if (!ctx.tls) throw new SyncRefusedError('sync links need TLS: send STARTTLS first');
    return ctx.tls;
  }

  private parties(c: NonNullable<PeerContext['challenge']>, tls: ConnectionTls): LinkParties {
    return {
      dialer: c.trackerNumber,
      listener: this.config.trackerNumber,
      dialerNonce: c.dialerNonce,
      listenerNonce: c.listenerNonce,
      ekm: syncEkm(tls),
    };
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Fetch}`)
  fetch(@Payload() p: SyncPayload): OkReply {
    const [vvText, limitText] = argsOf(p, 2, '<version_vector> <limit>');
    const limit = Math.min(MAX_FETCH, Math.max(1, Number(limitText) || 1));
    const vv = parseVersionVector(vvText);
    if (this.sync.needsSnapshot(vv)) {
      const cut = this.sync.snapshotCut()!;
      throw new DomainError(
        ErrorCode.SnapshotNeeded,
        `changes up to ${formatVersionVector(cut.versionVector)} are in the snapshot only: ${SyncCmd.Snapshot} first`,
      );
    }
    const ops = this.sync.opsAfter(vv, limit);
    return okReply(`${ops.length} changes`, ops.map(encodeOp));
  }

  /** `sync_status`: what this tracker holds (a peer asks before it compacts its log). */
  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Status}`)
  status(@Payload() p: SyncPayload): OkReply {
    argsOf(p, 0, '');
    return okReply('status', [formatVersionVector(this.sync.versionVector())]);
  }

  /** `sync_snapshot <after_row>`: the snapshot's head, then its rows after `after_row`, a page at a time. */
  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Snapshot}`)
  snapshot(@Payload() p: SyncPayload): OkReply {
    const [afterText] = argsOf(p, 1, '<after_row>');
    if (!/^\d{1,15}$/.test(afterText)) throw new DomainError(ErrorCode.BadArguments, 'a row number is a whole number');
    const cut = this.sync.snapshotCut();
    if (!cut) throw new DomainError(ErrorCode.BadArguments, 'this tracker has no snapshot: its log is whole');
    const rows = this.sync.snapshotPage(Number(afterText), SNAPSHOT_PAGE_BYTES);
    const head = formatSnapshotHead(cut);
    return okReply('snapshot', [head, ...rows.map((r) => formatSnapshotRow(r.n, r.part, r.row))]);
  }

  @MessagePattern(`${SYNC_MARKER} op`)
  change(@Payload() p: SyncPayload): OkReply {
    return okReply(this.sync.receive(decodeOpTokens([p.name, ...p.args])));
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.Digest}`)
  digest(): OkReply {
    return okReply('state digest', [this.sync.digest(), formatVersionVector(this.sync.versionVector())]);
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.PresenceReset}`)
  presenceReset(@Ctx() ctx: PeerContext): OkReply {
    const tracker = ctx.trackerNumber!;
    this.sync.remotePresence(tracker, 'reset');
    // what a tracker says of its seeders holds while the link that said it lives, unless a newer link took over
    this.presenceLinks.set(tracker, ctx);
    ctx.onClose(() => {
      if (this.presenceLinks.get(tracker) !== ctx) return;
      this.presenceLinks.delete(tracker);
      this.sync.remotePresence(tracker, 'reset');
    });
    return okReply('');
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.PresenceSet}`)
  presenceSet(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    // the fingerprint is new: a line without it (an older tracker) is a seeder with none
    const [userId, address, groupId, fileName, filePath, form, fingerprint] = argsOf(
      p,
      6,
      '<user> <ip:port> <group> <file> <path> <p2p-share/2|seed> [sha256:<fingerprint>]',
      1,
    );
    if (!parseHostPort(address)) throw new DomainError(ErrorCode.BadArguments, `bad address ${address}`);
    if (form !== SeederForm.Extended && form !== SeederForm.Seed) {
      throw new DomainError(ErrorCode.BadArguments, `unknown seeder protocol '${form.slice(0, 40)}'`);
    }
    checkFingerprint(fingerprint);
    this.sync.remotePresence(ctx.trackerNumber!, {
      on: true,
      entry: { userId, address, groupId, fileName, filePath, form, ...(fingerprint && { fingerprint }) },
    });
    return okReply('');
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.PresenceUnset}`)
  presenceUnset(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    const [userId, groupId, fileName] = argsOf(p, 3, '<user> <group> <file>');
    this.sync.remotePresence(ctx.trackerNumber!, { on: false, entry: { userId, groupId, fileName } });
    return okReply('');
  }

  /** A member downloading the file on the sending tracker serves the chunks it holds at `address` (our form). */
  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.PresencePartialSet}`)
  presencePartialSet(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    const [userId, address, groupId, fileName, fingerprint] = argsOf(
      p,
      4,
      '<user> <ip:port> <group> <file> [sha256:<fingerprint>]',
      1,
    );
    if (!parseHostPort(address)) throw new DomainError(ErrorCode.BadArguments, `bad address ${address}`);
    checkFingerprint(fingerprint);
    this.sync.remotePresence(ctx.trackerNumber!, {
      on: true,
      entry: {
        ...{ userId, address, groupId, fileName, filePath: '', form: SeederForm.Extended, partial: true },
        ...(fingerprint && { fingerprint }),
      },
    });
    return okReply('');
  }

  @MessagePattern(`${SYNC_MARKER} ${SyncCmd.PresencePartialUnset}`)
  presencePartialUnset(@Payload() p: SyncPayload, @Ctx() ctx: PeerContext): OkReply {
    const [userId, groupId, fileName] = argsOf(p, 3, '<user> <group> <file>');
    this.sync.remotePresence(ctx.trackerNumber!, { on: false, entry: { userId, groupId, fileName, partial: true } });
    return okReply('');
  }
}
