import { ErrorCode, ErrReply, OkReply, Reply, ReplyLine } from '@app/protocol';

/**
 * The tracker answered `ERR`: its code (one of `ErrorCode`, or one this client
 * does not know yet) and its message, which is what the shell shows.
 */
export class TrackerReplyError extends Error {
  override readonly name = 'TrackerReplyError';
  readonly code: string;

  constructor(reply: ErrReply) {
    super(reply.message || reply.code);
    this.code = reply.code;
  }

  /** True when the tracker refused with one of `codes`. */
  is(...codes: readonly ErrorCode[]): boolean {
    return (codes as readonly string[]).includes(this.code);
  }
}

/** True when `reply` is an `ERR` with one of `codes`; the codes are typed, so a misspelt one does not compile. */
export function refusedWith(reply: Reply<ReplyLine>, ...codes: readonly ErrorCode[]): reply is ErrReply {
  return !reply.ok && (codes as readonly string[]).includes(reply.code);
}

/** The reply when it is `OK`; a TrackerReplyError when it is `ERR`. */
export function expectOk<L extends ReplyLine>(reply: Reply<L>): OkReply<L> {
  if (!reply.ok) throw new TrackerReplyError(reply);
  return reply;
}
