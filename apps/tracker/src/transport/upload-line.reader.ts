import { CHUNK_SIZE } from '@app/chunking';
import { Cmd, ErrorCode, HEX_VALUE, LineSink, ProtocolError, REQUEST_ID, tokenize, UploadFileCmd } from '@app/protocol';

/** What an `UploadLineReader` may use and hold. */
export interface UploadLineLimits {
  /** The head (the command and the arguments before `chunk_hashes`) must lie within the first this many bytes. */
  readonly maxHeadBytes: number;
  /** The whole line, `\n` included. */
  readonly maxLineBytes: number;
  /** Takes `bytes` for the digests out of a shared budget; an error when there is no room. */
  reserve(bytes: number): ProtocolError | undefined;
  /** Whether a `#id` request id may come first (extended form only). */
  readonly requestIds: boolean;
}

/** The line read: the command, with its hashes packed, or why it was refused. */
export type UploadLineOutcome =
  | { readonly ok: true; readonly requestId: string; readonly command: UploadFileCmd }
  | { readonly ok: false; readonly requestId: string; readonly error: ProtocolError };

const DIGEST_BYTES = 20;
const HASH_CHARS = 2 * DIGEST_BYTES;
/** Longest `my_port` (an `IP:PORT` of an IPv6 address is well under it). */
const MAX_PORT_BYTES = 64;
const NEWLINE = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
const COMMA = 0x2c;
/** Where `chunk_hashes` may begin: after blanks, a first hash and its comma. */
const LIST_START = /[ \t]+(?=[0-9a-fA-F]{40},)/g;
const UPLOAD_START = /^(#[A-Za-z0-9_-]{1,64}[ \t]+)?upload_file[ \t]/;

type Phase = 'head' | 'hashes' | 'port' | 'done';

/**
 * Reads one `upload_file` line too long for the line limit (its hashes
 * inline: 204,800 of them for a 100 GiB file, an 8.4 MB line) as it streams
 * in. The head is tokenised from the line's first bytes; then each 41 bytes
 * (a hash and its comma) go straight into a digest buffer sized from
 * `file_size` (20 bytes per chunk), then `my_port`. The line itself is never
 * held: memory is the digests plus a few small buffers. A list longer than
 * the file has chunks, a byte that is not hex, a short hash: the reader gives
 * up at once and the rest of the line is skipped.
 */
export class UploadLineReader implements LineSink {
  finished = false;
  sawNewline = false;
  private phase: Phase = 'head';
  private error: ProtocolError | undefined;
  /** Bytes of the line taken so far. */
  private taken = 0;
  private headLeft = 0;
  private requestId = '';
  private head: readonly string[] = [];
  private digests = Buffer.alloc(0);
  private count = 0;
  /** Hashes complete so far, and hex digits of the current one. */
  private hashIndex = 0;
  private digit = 0;
  private high = 0;
  private port = '';
  private portEnded = false;

  private constructor(private readonly limits: UploadLineLimits) {}

  /**
   * A reader for the line that starts with `start` (at least the line limit's
   * worth of it), or undefined when the line is no `upload_file`: it then
   * overflows as any long line does.
   */
  static start(start: Buffer, limits: UploadLineLimits): UploadLineReader | undefined {
    const text = start.subarray(0, Math.min(start.length, limits.maxHeadBytes)).toString('utf8');
    const first = UPLOAD_START.exec(text);
    if (!first || (first[1] !== undefined && !limits.requestIds)) return undefined;
    const reader = new UploadLineReader(limits);
    reader.begin(text);
    return reader;
  }

  /** The command read, or why it was refused; only once `finished`. */
  outcome(): UploadLineOutcome {
    if (!this.finished) throw new Error('the upload_file line is not over yet');
    if (this.error) return { ok: false, requestId: this.requestId, error: this.error };
    const [groupId, filePath, fileSize, fileHash] = this.head;
    return {
      ok: true,
      requestId: this.requestId,
      command: {
        kind: Cmd.UploadFile,
        groupId,
        filePath,
        fileSize,
        fileHash,
        chunkHashes: '',
        chunkDigests: this.digests,
        myPort: this.port,
      },
    };
  }

  write(bytes: Buffer): number {
    let i = 0;
    const n = bytes.length;
    while (i < n && !this.finished) {
      switch (this.phase) {
        case 'head': {
          const skip = Math.min(this.headLeft, n - i);
          i += skip;
          this.headLeft -= skip;
          if (this.headLeft === 0) this.phase = 'hashes';
          break;
        }
        case 'hashes':
          i = this.readHashes(bytes, i);
          break;
        case 'port':
          i = this.readPort(bytes, i);
          break;
        case 'done':
          this.finished = true;
          break;
      }
    }
    this.taken += i;
    if (!this.finished && this.taken > this.limits.maxLineBytes) {
      this.fail(ErrorCode.RequestTooLarge, `an upload_file line may be ${this.limits.maxLineBytes} bytes at most`);
    }
    return i;
  }

  private begin(text: string): void {
    for (const m of text.matchAll(LIST_START)) {
      let tokens: string[];
      try {
        tokens = tokenize(text.slice(0, m.index));
      } catch {
        continue; // a quoted argument that goes on past this point
      }
      if (tokens.length > 0 && REQUEST_ID.test(tokens[0])) this.requestId = tokens.shift()!.slice(1);
      if (tokens.length > 5) break;
      if (tokens.length < 5) continue;
      this.head = tokens.slice(1);
      this.headLeft = Buffer.byteLength(text.slice(0, m.index + m[0].length));
      this.sizeUp();
      return;
    }
    this.fail(
      ErrorCode.BadArguments,
      `upload_file's arguments before chunk_hashes must fit in ${this.limits.maxHeadBytes} bytes, followed by a comma-separated list of hex SHA-1s`,
    );
  }

  /** Checks `file_size`, the line's length and the budget; sizes the digest buffer. */
  private sizeUp(): void {
    const sizeText = this.head[2];
    const size = /^\d{1,16}$/.test(sizeText) ? Number(sizeText) : NaN;
    if (!Number.isSafeInteger(size)) {
      return this.fail(
        ErrorCode.BadFileMetadata,
        `file_size must be a non-negative integer, not '${sizeText.slice(0, 40)}'`,
      );
    }
    this.count = Math.ceil(size / CHUNK_SIZE);
    const longest = this.headLeft + this.count * (HASH_CHARS + 1) + MAX_PORT_BYTES + 2;
    if (longest > this.limits.maxLineBytes) {
      return this.fail(
        ErrorCode.RequestTooLarge,
        `a file of ${size} bytes has ${this.count} chunks: more than an upload_file line of ${this.limits.maxLineBytes} bytes may carry`,
      );
    }
    const refused = this.limits.reserve(this.count * DIGEST_BYTES);
    if (refused) return this.fail(refused.code, refused.message);
    this.digests = Buffer.allocUnsafe(this.count * DIGEST_BYTES);
  }

  private readHashes(bytes: Buffer, from: number): number {
    let i = from;
    const n = bytes.length;
    while (i < n) {
      const b = bytes[i];
      if (this.digit < HASH_CHARS) {
        const v = HEX_VALUE[b];
        if (v < 0)
          return this.failAt(
            bytes,
            i,
            ErrorCode.BadFileMetadata,
            `chunk hash ${this.hashIndex} is not a 40-digit hex SHA-1`,
          );
        if ((this.digit & 1) === 0) this.high = v;
        else this.digests[this.hashIndex * DIGEST_BYTES + (this.digit >> 1)] = (this.high << 4) | v;
        this.digit++;
        i++;
        continue;
      }
      // a hash is complete: a comma, or the blank before my_port
      this.hashIndex++;
      this.digit = 0;
      if (b === COMMA) {
        if (this.hashIndex === this.count) {
          return this.failAt(
            bytes,
            i,
            ErrorCode.BadFileMetadata,
            `more chunk hashes than the ${this.count} chunks of a ${this.head[2]}-byte file`,
          );
        }
        i++;
        continue;
      }
      if (b === SPACE || b === TAB) {
        if (this.hashIndex < this.count) {
          return this.failAt(
            bytes,
            i,
            ErrorCode.BadFileMetadata,
            `a file of ${this.head[2]} bytes has ${this.count} chunks of 512 KiB, but ${this.hashIndex} chunk hashes were given`,
          );
        }
        this.phase = 'port';
        return i;
      }
      this.hashIndex--; // the hash itself was not complete after all
      if (b === NEWLINE)
        return this.failAt(bytes, i, ErrorCode.BadArguments, 'upload_file needs my_port after chunk_hashes');
      return this.failAt(
        bytes,
        i,
        ErrorCode.BadFileMetadata,
        `chunk hash ${this.hashIndex} is not a 40-digit hex SHA-1`,
      );
    }
    return i;
  }

  private readPort(bytes: Buffer, from: number): number {
    let i = from;
    const n = bytes.length;
    while (i < n) {
      const b = bytes[i];
      if (b === NEWLINE) {
        this.sawNewline = true;
        this.finished = true;
        this.phase = 'done';
        if (this.port === '') this.fail(ErrorCode.BadArguments, 'upload_file needs my_port after chunk_hashes');
        return i + 1;
      }
      if (b === SPACE || b === TAB || b === CR) {
        if (this.port !== '') this.portEnded = true;
      } else if (this.portEnded) {
        return this.failAt(bytes, i, ErrorCode.BadArguments, 'upload_file takes 6 arguments; my_port must be the last');
      } else if (this.port.length >= MAX_PORT_BYTES || b < 0x21 || b > 0x7e) {
        return this.failAt(bytes, i, ErrorCode.BadArguments, 'my_port must be a port or IP:PORT');
      } else {
        this.port += String.fromCharCode(b);
      }
      i++;
    }
    return i;
  }

  /** Gives up at byte `i` of `bytes`; a newline there is taken, so that nothing after the line is skipped. */
  private failAt(bytes: Buffer, i: number, code: ErrorCode, message: string): number {
    this.fail(code, message);
    if (bytes[i] === NEWLINE) {
      this.sawNewline = true;
      return i + 1;
    }
    return i;
  }

  private fail(code: ErrorCode, message: string): void {
    this.error ??= new ProtocolError(code, message);
    this.finished = true;
    this.phase = 'done';
  }
}
