import { ErrorCode, ProtocolError } from './errors';

/**
 * A tracker answers every request with one header line, then `count` body lines:
 *
 *     OK <count> <message>          e.g. "OK 2 2 groups" followed by two lines
 *     ERR <CODE> <message>          e.g. "ERR LOGIN_FAILED wrong user id or password"
 */
export type Reply<L extends ReplyLine = string> = OkReply<L> | ErrReply;
export interface OkReply<L extends ReplyLine = string> {
  readonly ok: true;
  readonly message: string;
  readonly lines: readonly L[];
  /** How the seed form shows this reply (absent: its message, then every body line). */
  readonly seed?: SeedRendering;
}

/**
 * What a seed-form peer sees of an `OK` reply whose body is not all for people:
 * - `message`: the message line only (`login`: its token lines are extensions);
 * - `metadata`: the seven `key:value` lines of the seed's `download_file`
 *   reply only (the first seven body lines), no message before them.
 */
export type SeedRendering = 'message' | 'metadata';

/** The form a reply is written in: the seed's readable text, or this project's `OK`/`ERR` framing. */
export type ReplyForm = 'seed' | 'extended';

/** `download_file`'s reply in the seed form: exactly these many body lines, the seed's seven fields. */
export const SEED_METADATA_LINES = 7;

/**
 * A reply line too long to be built as one string (a 204,800-chunk file's
 * `chunk_hashes:`, 8.4 MB): written as the printable-ASCII buffers `chunks()`
 * yields, one after another, each produced only when the socket wants more.
 */
export interface LongLine {
  /** Its length in bytes (= characters: it is ASCII). */
  readonly length: number;
  chunks(): Iterable<Buffer>;
  /** The whole line as one string, for those who need it (tests, the client's own parsing). */
  toString(): string;
}
/** What a tracker's reply body holds: text lines, and long lines written in pieces. */
export type ReplyLine = string | LongLine;
export interface ErrReply {
  readonly ok: false;
  readonly code: string;
  readonly message: string;
}

export const okReply = <L extends ReplyLine = string>(
  message: string,
  lines: readonly L[] = [],
  seed?: SeedRendering,
): OkReply<L> => (seed === undefined ? { ok: true, message, lines } : { ok: true, message, lines, seed });
export const errReply = (code: string, message: string): ErrReply => ({ ok: false, code, message });

const CONTROL = /[\x00-\x1f\x7f]/;
const CONTROLS = /[\x00-\x1f\x7f]+/g;
/** Control characters become spaces; a line without any (nearly all) is returned as is, without a copy. */
const oneLine = (s: string): string => (CONTROL.test(s) ? s.replace(CONTROLS, ' ') : s);

export function formatReply(reply: Reply<ReplyLine>): string {
  if (!reply.ok) return `ERR ${reply.code} ${oneLine(reply.message)}\n`;
  const head = `OK ${reply.lines.length} ${oneLine(reply.message)}\n`;
  return reply.lines.length === 0 ? head : head + reply.lines.map((l) => oneLine(String(l))).join('\n') + '\n';
}

/** A piece of a reply on the wire, with the encoding that writes it. */
export interface ReplyPiece {
  readonly text: string;
  readonly encoding: 'utf8' | 'latin1';
}
/** A long line's bytes, produced piece by piece as they are written (see `LongLine`). */
export interface StreamedPiece {
  readonly chunks: Iterable<Buffer>;
}
export type WirePiece = ReplyPiece | StreamedPiece;

/** Lines at least this long are written as pieces of their own. */
const LONG_LINE = 64 * 1024;
const NOT_PRINTABLE_ASCII = /[^\x20-\x7e]/;

/**
 * The bytes of `formatReply(reply)`, in pieces to write one after another: a
 * long line (an 8 MB chunk list) is not copied into one reply string, and when
 * it is printable ASCII, as chunk lists are, it goes out as latin1, a plain
 * byte copy, instead of through the UTF-8 encoder.
 */
export function replyPieces(reply: Reply): ReplyPiece[];
export function replyPieces(reply: Reply<ReplyLine>): WirePiece[];
export function replyPieces(reply: Reply<ReplyLine>): WirePiece[] {
  if (!reply.ok || !reply.lines.some((l) => typeof l !== 'string' || l.length >= LONG_LINE)) {
    return [{ text: formatReply(reply), encoding: 'utf8' }];
  }
  return linePieces(`OK ${reply.lines.length} ${oneLine(reply.message)}\n`, reply.lines);
}

/**
 * A reply as a seed-form peer reads it: readable text, every line ending in
 * `\n`, nothing of the framing. `OK` is its message (`done` when it has none)
 * and its body lines, or less as `reply.seed` says; `ERR` is
 * `error: <message>`. In pieces like `replyPieces`, long lines on their own.
 */
export function seedReplyPieces(reply: Reply): ReplyPiece[];
export function seedReplyPieces(reply: Reply<ReplyLine>): WirePiece[];
export function seedReplyPieces(reply: Reply<ReplyLine>): WirePiece[] {
  if (!reply.ok) return [{ text: `error: ${oneLine(reply.message)}\n`, encoding: 'utf8' }];
  const head = `${oneLine(reply.message || 'done')}\n`;
  if (reply.seed === 'message' || reply.lines.length === 0) return [{ text: head, encoding: 'utf8' }];
  const lines = reply.seed === 'metadata' ? reply.lines.slice(0, SEED_METADATA_LINES) : reply.lines;
  return linePieces(reply.seed === 'metadata' ? '' : head, lines);
}

/** A reply in the given form, as pieces to write one after another. */
export function renderReply(reply: Reply<ReplyLine>, form: ReplyForm): WirePiece[] {
  return form === 'extended' ? replyPieces(reply) : seedReplyPieces(reply);
}

/** The text of `renderReply` (tests, and short notices). */
export function formatReplyIn(reply: Reply<ReplyLine>, form: ReplyForm): string {
  if (form === 'extended') return formatReply(reply);
  return seedReplyPieces(reply)
    .map((p) => ('text' in p ? p.text : [...p.chunks].map((b) => b.toString('latin1')).join('')))
    .join('');
}

/** `head`, then each line and its newline; short lines share a piece, long ones get one of their own. */
function linePieces(head: string, lines: readonly ReplyLine[]): WirePiece[] {
  const pieces: WirePiece[] = [];
  let text = head;
  for (const line of lines) {
    if (typeof line === 'string' && line.length < LONG_LINE) {
      text += `${oneLine(line)}\n`;
      continue;
    }
    if (text !== '') pieces.push({ text, encoding: 'utf8' });
    text = '\n';
    if (typeof line !== 'string') pieces.push({ chunks: line.chunks() });
    else if (NOT_PRINTABLE_ASCII.test(line)) pieces.push({ text: oneLine(line), encoding: 'utf8' });
    else pieces.push({ text: line, encoding: 'latin1' });
  }
  pieces.push({ text, encoding: 'utf8' });
  return pieces;
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
