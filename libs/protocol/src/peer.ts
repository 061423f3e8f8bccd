import { ErrorCode, ProtocolError } from './errors';
import { joinArgs, tokenize } from './tokenize';

/**
 * Client-to-client protocol, in two forms chosen by a connection's first line
 * (see hello.ts).
 *
 * Seed form (the default, README-seed.md's): the first line is the one
 * request of the connection,
 *
 *     GET_CHUNK <chunk_index> <item>
 *
 * answered with exactly the chunk's raw bytes (its length is known from the
 * file size), after which the seeder ends the connection. Any refusal or error
 * sends no byte: the connection is closed.
 *
 * Extended form: after `HELLO p2p-share/2` / `OK 0 p2p-share/2`, a downloader
 * sends one line per chunk, pipelined, and the seeder answers, in request
 * order, either
 *
 *     CHUNK <chunk_index> <length>\n<length raw bytes>
 *
 * or one line `ERR <CODE> <message>`. A connection may carry many requests.
 *
 * `<item>` is what the tracker's `seeder_file_paths` gave for that seeder,
 * echoed back unchanged: a capability (see capability.ts) for our seeders, the
 * registered file path for seed-form ones.
 */
export const GET_CHUNK = 'GET_CHUNK';
export const CHUNK = 'CHUNK';

export interface GetChunkRequest {
  readonly index: number;
  /** As received from the tracker in `seeder_file_paths`; not checked here. */
  readonly capability: string;
}

export function formatGetChunk(req: GetChunkRequest): string {
  return joinArgs([GET_CHUNK, String(req.index), req.capability]);
}

export function parseGetChunk(line: string): GetChunkRequest {
  const [name, index, capability, ...rest] = tokenize(line);
  if (name !== GET_CHUNK) throw new ProtocolError(ErrorCode.UnknownCommand, `unknown peer command '${name ?? ''}'`);
  if (capability === undefined || rest.length > 0 || !/^\d{1,9}$/.test(index)) {
    throw new ProtocolError(ErrorCode.BadArguments, 'usage: GET_CHUNK <chunk_index> <capability>');
  }
  return { index: Number(index), capability };
}

export function formatChunkHeader(index: number, length: number): string {
  return `${CHUNK} ${index} ${length}`;
}

export function parseChunkHeader(line: string): { index: number; length: number } {
  const m = /^CHUNK (\d{1,9}) (\d{1,9})$/.exec(line);
  if (!m) throw new ProtocolError(ErrorCode.BadSyntax, `not a chunk header: ${line.slice(0, 80)}`);
  return { index: Number(m[1]), length: Number(m[2]) };
}

/**
 * Have-lists (extended form only, asked for per connection): a downloader may send
 *
 *     BITFIELD <capability>
 *
 * and the seeder answers, in its place among the replies,
 *
 *     BITFIELD <chunk_count> <bits>
 *
 * `<bits>`: URL-safe base64 without padding of ceil(chunk_count / 8) bytes, chunk i held when bit `0x80 >> (i % 8)`
 * of byte `i >> 3` is set, the spare bits of the last byte zero; `-` for a file of no chunks. From then on the
 * seeder tells that connection of every chunk it gains, between two replies (never inside a chunk's bytes):
 *
 *     HAVE <index>[,<index>...]
 *
 * at most `MAX_HAVE_PER_LINE` indexes a line. A seeder holding the whole file answers with every bit set and sends
 * no `HAVE`. A chunk asked for that a partial seeder lacks is answered `ERR NOT_HELD <message>` at once.
 * A seeder of an older version answers `ERR UNKNOWN_COMMAND`: the downloader then takes it as holding every chunk.
 */
export const BITFIELD = 'BITFIELD';
export const HAVE = 'HAVE';
export const MAX_HAVE_PER_LINE = 1000;

export interface BitfieldRequest {
  readonly capability: string;
}

export type PeerRequest =
  ({ readonly kind: 'get_chunk' } & GetChunkRequest) | ({ readonly kind: 'bitfield' } & BitfieldRequest);

export function formatBitfieldRequest(capability: string): string {
  return joinArgs([BITFIELD, capability]);
}

/** A request line of the extended form: `GET_CHUNK` or `BITFIELD`. */
export function parsePeerRequest(line: string): PeerRequest {
  if (line.startsWith(`${BITFIELD} `) || line === BITFIELD) {
    const [, capability, ...rest] = tokenize(line);
    if (capability === undefined || rest.length > 0) {
      throw new ProtocolError(ErrorCode.BadArguments, 'usage: BITFIELD <capability>');
    }
    return { kind: 'bitfield', capability };
  }
  return { kind: 'get_chunk', ...parseGetChunk(line) };
}

/** Packs one byte per chunk (non-zero: held) into the bits of a `BITFIELD` line. */
export function packBits(held: Uint8Array): Buffer {
  const out = Buffer.alloc(Math.ceil(held.length / 8));
  for (let i = 0; i < held.length; i++) if (held[i]) out[i >> 3] |= 0x80 >> (i & 7);
  return out;
}

export function formatBitfieldReply(held: Uint8Array): string {
  return `${BITFIELD} ${held.length} ${held.length === 0 ? '-' : packBits(held).toString('base64url')}`;
}

/** The reply to `BITFIELD`: one byte per chunk, 1 where the seeder holds it; undefined when `line` is not one. */
export function parseBitfieldReply(line: string, chunkCount: number): Uint8Array | undefined {
  const m = /^BITFIELD (\d{1,9}) ([A-Za-z0-9_-]+)$/.exec(line);
  if (!m || Number(m[1]) !== chunkCount) return undefined;
  if (chunkCount === 0) return m[2] === '-' ? new Uint8Array(0) : undefined;
  const bytes = Buffer.from(m[2], 'base64url');
  if (bytes.length !== Math.ceil(chunkCount / 8) || bytes.toString('base64url') !== m[2]) return undefined;
  const spare = (8 - (chunkCount % 8)) % 8;
  if (spare > 0 && (bytes[bytes.length - 1] & ((1 << spare) - 1)) !== 0) return undefined;
  const held = new Uint8Array(chunkCount);
  for (let i = 0; i < chunkCount; i++) held[i] = (bytes[i >> 3] >> (7 - (i & 7))) & 1;
  return held;
}

/** `HAVE` lines for newly held chunks, `MAX_HAVE_PER_LINE` indexes each. */
export function formatHaveLines(indexes: readonly number[]): string[] {
  const lines: string[] = [];
  for (let i = 0; i < indexes.length; i += MAX_HAVE_PER_LINE) {
    lines.push(`${HAVE} ${indexes.slice(i, i + MAX_HAVE_PER_LINE).join(',')}`);
  }
  return lines;
}

/** True for a line a seeder pushes between replies (a `HAVE`), as opposed to a reply. */
export const isHaveLine = (line: string): boolean => line.startsWith(`${HAVE} `);

/** The indexes of a `HAVE` line, each below `chunkCount`; undefined when the line is not one. */
export function parseHaveLine(line: string, chunkCount: number): number[] | undefined {
  const m = /^HAVE (\d{1,9}(?:,\d{1,9}){0,999})$/.exec(line);
  if (!m) return undefined;
  const indexes = m[1].split(',').map(Number);
  return indexes.every((i) => i < chunkCount) ? indexes : undefined;
}
