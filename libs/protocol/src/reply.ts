import { ErrorCode, ProtocolError } from './errors';

/**
 * A tracker answers every request with one header line, then `count` body lines:
 *
 *     OK <count> <message>          e.g. "OK 2 2 groups" followed by two lines
 *     ERR <CODE> <message>          e.g. "ERR WRONG_PASSWORD wrong password for alice"
 */
export type Reply = OkReply | ErrReply;
export interface OkReply {
  readonly ok: true;
  readonly message: string;
  readonly lines: readonly string[];
}
export interface ErrReply {
  readonly ok: false;
  readonly code: string;
  readonly message: string;
}

export const okReply = (message: string, lines: readonly string[] = []): OkReply => ({ ok: true, message, lines });
export const errReply = (code: string, message: string): ErrReply => ({ ok: false, code, message });

const CONTROL = /[\x00-\x1f\x7f]/;
const CONTROLS = /[\x00-\x1f\x7f]+/g;
/** Control characters become spaces; a line without any (nearly all) is returned as is, without a copy. */
const oneLine = (s: string): string => (CONTROL.test(s) ? s.replace(CONTROLS, ' ') : s);

export function formatReply(reply: Reply): string {
  if (!reply.ok) return `ERR ${reply.code} ${oneLine(reply.message)}\n`;
  const head = `OK ${reply.lines.length} ${oneLine(reply.message)}\n`;
  return reply.lines.length === 0 ? head : head + reply.lines.map(oneLine).join('\n') + '\n';
}

export type ReplyHeader = { ok: true; count: number; message: string } | ErrReply;

const OK_HEADER = /^OK (\d{1,9}) ?(.*)$/;
const ERR_HEADER = /^ERR ([A-Z][A-Z0-9_]*) ?(.*)$/;

export function parseReplyHeader(line: string): ReplyHeader {
  const okMatch = OK_HEADER.exec(line);
  if (okMatch) return { ok: true, count: Number(okMatch[1]), message: okMatch[2] };
  const errMatch = ERR_HEADER.exec(line);
  if (errMatch) return errReply(errMatch[1], errMatch[2]);
  throw new ProtocolError(ErrorCode.BadSyntax, `not a reply header: ${line.slice(0, 80)}`);
}

/** Reassembles replies from the lines of a byte stream. */
export class ReplyAssembler {
  private header: { message: string; count: number } | undefined;
  private lines: string[] = [];

  /** Feeds one line; returns the reply it completes, if any. */
  push(line: string): Reply | undefined {
    if (this.header === undefined) {
      const head = parseReplyHeader(line);
      if (!head.ok) return head;
      if (head.count === 0) return okReply(head.message);
      this.header = head;
      return undefined;
    }
    this.lines.push(line);
    if (this.lines.length < this.header.count) return undefined;
    const reply = okReply(this.header.message, this.lines);
    this.header = undefined;
    this.lines = [];
    return reply;
  }
}
