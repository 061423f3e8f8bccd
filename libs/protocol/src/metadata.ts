import { HostPort, parseHostPort, formatHostPort } from './address';
import { Command } from './commands';
import { ErrorCode, ProtocolError } from './errors';
import { SeederForm } from './hello';
import { isFingerprint, NO_FINGERPRINT } from './tls';
import { LongLine, ReplyLine } from './reply';

const SHA1_HEX = /^[0-9a-f]{40}$/;
export const isSha1Hex = (s: string): boolean => SHA1_HEX.test(s);

/** Chunk hashes per continuation line when an upload's list is too long for one line. */
export const HASHES_PER_LINE = 1000;
/** At most this many continuation lines follow one command (4,096,000 chunks: about 2 TB). */
export const MAX_CONTINUATION_LINES = 4096;
/** Lists of up to this many chunks travel inline in the command line itself. */
export const MAX_INLINE_HASHES = 500;

/**
 * `upload_file`'s `<chunk_hashes>` is either the seed's inline comma-separated
 * list or `@N`: the N lines after the command hold the list, continued, each
 * with up to 1000 comma-separated hashes. This tells how many lines to read.
 */
export function continuationLines(cmd: Command): number {
  if (cmd.kind !== 'upload_file' || !cmd.chunkHashes.startsWith('@')) return 0;
  const n = /^@(\d{1,7})$/.exec(cmd.chunkHashes) ? Number(cmd.chunkHashes.slice(1)) : NaN;
  if (!(n >= 1 && n <= MAX_CONTINUATION_LINES)) {
    throw new ProtocolError(ErrorCode.BadArguments, `chunk_hashes '@N' needs N from 1 to ${MAX_CONTINUATION_LINES}`);
  }
  return n;
}

/** Puts continuation lines back into the command as its inline form. */
export function withContinuation(cmd: Command, lines: readonly string[]): Command {
  if (cmd.kind !== 'upload_file') return cmd;
  return { ...cmd, chunkHashes: lines.map((l) => l.trim()).join(',') };
}

/** How a client writes its chunk list: inline when short, else `@N` plus N lines. */
export function encodeChunkHashes(hashes: readonly string[]): { arg: string; lines: string[] } {
  if (hashes.length <= MAX_INLINE_HASHES) return { arg: hashes.join(','), lines: [] };
  const lines: string[] = [];
  for (let i = 0; i < hashes.length; i += HASHES_PER_LINE) lines.push(hashes.slice(i, i + HASHES_PER_LINE).join(','));
  return { arg: `@${lines.length}`, lines };
}

/** Any character that has no place in a list of hex SHA-1s (one scan, no backtracking, even over 8 MB). */
const NOT_IN_HEX_LIST = /[^0-9a-fA-F,]/;

/** Reads a comma-separated list of lowercase hex SHA-1s; the empty string is the empty list. */
export function parseChunkHashes(text: string): string[] {
  if (text === '' || text === '-') return [];
  const hashes = text.toLowerCase().split(',');
  if (!NOT_IN_HEX_LIST.test(text) && hashes.every((h) => h.length === 40)) return hashes;
  const bad = hashes.findIndex((h) => !SHA1_HEX.test(h));
  if (bad >= 0) {
    throw new ProtocolError(ErrorCode.BadFileMetadata, `chunk hash ${bad} is not a 40-digit hex SHA-1`);
  }
  return hashes;
}

export interface SeederInfo {
  readonly userId: string;
  readonly address: HostPort;
  /**
   * What `seeder_file_paths` carries for this seeder, sent back in `GET_CHUNK`:
   * the download capability the tracker issued for it (see capability.ts), or,
   * for a seed-form seeder, the `file_path` it registered.
   */
  readonly capability: string;
  /**
   * True for a seeder that registered in the seed form (it answers one raw
   * `GET_CHUNK <i> <file_path>` per connection, and `capability` is then its
   * file path); absent or false for this project's seeders.
   */
  readonly seedForm?: boolean;
  /**
   * True for a member listed among `partial_seeders`: it is downloading the file and serves the chunks it holds so
   * far (ask it `BITFIELD` for which); absent or false for a seeder of the whole file.
   */
  readonly partial?: boolean;
  /**
   * The SHA-256 fingerprint (`sha256:<hex>`) of the certificate this seeder presented to its tracker: a downloader
   * speaks TLS to it (STARTTLS) and accepts only that certificate. Absent for a seeder that speaks no TLS (the seed
   * form, or one of ours that reached its tracker in clear): it is then spoken to in clear.
   */
  readonly fingerprint?: string;
}

export interface FileMetadata {
  readonly fileName: string;
  readonly fileSize: number;
  readonly fileHash: string;
  readonly chunkHashes: readonly string[];
  readonly seeders: readonly SeederInfo[];
  /**
   * Members downloading the file that serve the chunks they hold so far (extended form only: never in the seven
   * seed lines). Always of this project's form; `capability` is one for that member as seeder.
   */
  readonly partialSeeders?: readonly SeederInfo[];
}

/** The same, with the chunk SHA-1s as raw digests (20 bytes each, in chunk order), as a tracker stores them. */
export interface PackedFileMetadata extends Omit<FileMetadata, 'chunkHashes'> {
  readonly chunkDigests: Buffer;
}

/**
 * The `download_file` reply body: the seed's seven `key:value` lines in the
 * seed's order, then `seeder_hosts` (the IP of each seeder) and
 * `seeder_protocols` (`p2p-share/2` or `seed` per seeder), both of the
 * extended form only. List values are comma-separated; `seeder_file_paths`
 * holds a capability per seeder of ours and the registered path per seed-form
 * seeder (an item is escaped, `%` and `,` as `%25` and `%2C`).
 */
export const METADATA_KEYS = [
  'file_name',
  'file_size',
  'file_hash',
  'chunk_hashes',
  'seeders',
  'seeder_ports',
  'seeder_file_paths',
  'seeder_hosts',
  'seeder_protocols',
  'partial_seeders',
  'partial_seeder_hosts',
  'partial_seeder_ports',
  'partial_seeder_file_paths',
  'seeder_fingerprints',
  'partial_seeder_fingerprints',
] as const;

const fingerprintItem = (s: SeederInfo): string => s.fingerprint ?? NO_FINGERPRINT;

/** One item of a `*_fingerprints:` line: a fingerprint, or none for `-`; anything else is bad metadata. */
function readFingerprint(item: string, userId: string): string | undefined {
  if (item === NO_FINGERPRINT) return undefined;
  if (!isFingerprint(item)) throw new ProtocolError(ErrorCode.BadFileMetadata, `bad fingerprint for seeder ${userId}`);
  return item;
}

/** A `*_fingerprints:` line's items, one per seeder; no line at all (an older tracker) is no fingerprint. */
function fingerprintsOf(fields: Map<string, string>, key: string, count: number): string[] {
  const items = fields.has(key) ? list(fields.get(key)!) : new Array<string>(count).fill(NO_FINGERPRINT);
  if (items.length !== count) throw new ProtocolError(ErrorCode.BadFileMetadata, `${key} differs in length`);
  return items;
}

const escapeItem = (s: string) => s.replace(/%/g, '%25').replace(/,/g, '%2C');
const unescapeItem = (s: string) => s.replace(/%2C/gi, ',').replace(/%25/g, '%');
const list = (text: string) => (text === '' ? [] : text.split(','));

export function formatFileMetadata(meta: FileMetadata | PackedFileMetadata): string[] {
  const values: Record<(typeof METADATA_KEYS)[number], string> = {
    file_name: meta.fileName,
    file_size: String(meta.fileSize),
    file_hash: meta.fileHash,
    chunk_hashes: '', // below
    seeders: meta.seeders.map((s) => s.userId).join(','),
    seeder_ports: meta.seeders.map((s) => s.address.port).join(','),
    seeder_file_paths: meta.seeders.map((s) => escapeItem(s.capability)).join(','),
    seeder_hosts: meta.seeders.map((s) => escapeItem(s.address.host)).join(','),
    seeder_protocols: meta.seeders.map((s) => (s.seedForm ? SeederForm.Seed : SeederForm.Extended)).join(','),
    seeder_fingerprints: meta.seeders.map(fingerprintItem).join(','),
    partial_seeder_fingerprints: (meta.partialSeeders ?? []).map(fingerprintItem).join(','),
    ...partialValues(meta.partialSeeders ?? []),
  };
  const chunkLine = () => ('chunkDigests' in meta ? digestsLine(meta.chunkDigests) : chunkHashesLine(meta.chunkHashes));
  return METADATA_KEYS.map((k) => (k === 'chunk_hashes' ? chunkLine() : `${k}:${values[k]}`));
}

/** The four `partial_seeder*` lines' values, one item per partial seeder, in the same order. */
function partialValues(partial: readonly SeederInfo[]) {
  return {
    partial_seeders: partial.map((s) => s.userId).join(','),
    partial_seeder_hosts: partial.map((s) => escapeItem(s.address.host)).join(','),
    partial_seeder_ports: partial.map((s) => s.address.port).join(','),
    partial_seeder_file_paths: partial.map((s) => escapeItem(s.capability)).join(','),
  };
}

/** Lines of `formatFileMetadata` after `chunk_hashes` that `list_seeders` answers: every seeder line, no hashes. */
export const SEEDER_LIST_KEYS = METADATA_KEYS.filter(
  (k) => k !== 'file_name' && k !== 'file_size' && k !== 'chunk_hashes',
);

/**
 * The `list_seeders` reply body: `file_hash:` (so that a renamed or replaced file shows) and the seeder lines of
 * `download_file`'s extended reply, in the same order, without `file_name`, `file_size` and `chunk_hashes`.
 */
export function formatSeederLists(meta: Omit<FileMetadata, 'chunkHashes'>): string[] {
  const lines = formatFileMetadata({ ...meta, chunkHashes: [] });
  return lines.filter((line) => SEEDER_LIST_KEYS.some((k) => line.startsWith(`${k}:`)));
}

export interface SeederLists {
  readonly fileHash: string;
  readonly seeders: readonly SeederInfo[];
  readonly partialSeeders: readonly SeederInfo[];
}

/** Reads a `list_seeders` reply body (or a whole `download_file` one). */
export function parseSeederLists(lines: readonly string[]): SeederLists {
  const fields = fieldsOf(lines);
  const get = getter(fields);
  const fileHash = get('file_hash').toLowerCase();
  if (!SHA1_HEX.test(fileHash)) throw new ProtocolError(ErrorCode.BadFileMetadata, 'bad file_hash');
  return { fileHash, seeders: fullSeeders(fields, get), partialSeeders: partialSeeders(fields, get) };
}

const HEX_DIGITS = Buffer.from('0123456789abcdef', 'latin1');
const CHUNK_HASHES_KEY = Buffer.from('chunk_hashes:', 'latin1');
const COMMA = Buffer.from(',', 'latin1');
const DIGEST_BYTES = 20;

/**
 * `chunk_hashes:<h0>,<h1>,...` written byte by byte from raw digests into one
 * buffer: for a 100 GB file (200,000 digests, an 8 MB line) this is a few
 * milliseconds and one flat string, not 200,000 small strings joined.
 */
function digestsLine(digests: Buffer): string {
  return hexList(digests, CHUNK_HASHES_KEY).toString('latin1');
}

/** Hex digits (with their commas) written per piece of a long `chunk_hashes:` line: 1,560 hashes, 64 KiB. */
const DIGESTS_PER_PIECE = 1560;

/**
 * `chunk_hashes:<h0>,<h1>,...` as a `LongLine`: hex written from the raw
 * digests into one 64 KiB buffer at a time, when the socket wants it, so a
 * 204,800-chunk reply never exists whole in memory, as a string or a buffer.
 */
export class DigestsLine implements LongLine {
  readonly length: number;

  constructor(private readonly digests: Buffer) {
    if (digests.length % DIGEST_BYTES !== 0) {
      throw new RangeError(`${digests.length} bytes is not a whole number of SHA-1 digests`);
    }
    const count = digests.length / DIGEST_BYTES;
    this.length = CHUNK_HASHES_KEY.length + Math.max(0, count * (2 * DIGEST_BYTES + 1) - 1);
  }

  *chunks(): Generator<Buffer> {
    const count = this.digests.length / DIGEST_BYTES;
    if (count === 0) {
      yield Buffer.from(CHUNK_HASHES_KEY);
      return;
    }
    for (let from = 0; from < count; from += DIGESTS_PER_PIECE) {
      const to = Math.min(count, from + DIGESTS_PER_PIECE);
      const prefix = from === 0 ? CHUNK_HASHES_KEY : COMMA;
      yield hexList(this.digests.subarray(from * DIGEST_BYTES, to * DIGEST_BYTES), prefix);
    }
  }

  toString(): string {
    return digestsLine(this.digests);
  }
}

/**
 * The `download_file` reply body a tracker writes: `formatFileMetadata`'s
 * lines, with `chunk_hashes:` a `DigestsLine` (written in 64 KiB pieces).
 */
export function metadataReplyLines(meta: PackedFileMetadata): ReplyLine[] {
  const lines: ReplyLine[] = formatFileMetadata({ ...meta, chunkDigests: Buffer.alloc(0) });
  lines[METADATA_KEYS.indexOf('chunk_hashes')] = new DigestsLine(meta.chunkDigests);
  return lines;
}

/** Raw digests as the comma-separated lowercase hex list `upload_file` and its replicated change carry. */
export function digestsToHexList(digests: Buffer): string {
  return hexList(digests, Buffer.alloc(0)).toString('latin1');
}

/**
 * Inverse of `digestsToHexList`, straight into raw digests: no array of
 * 204,800 small strings on the way. Undefined when the text is not such a list.
 */
export function hexListToDigests(text: string): Buffer | undefined {
  if (text === '') return Buffer.alloc(0);
  if ((text.length + 1) % (2 * DIGEST_BYTES + 1) !== 0) return undefined;
  const count = (text.length + 1) / (2 * DIGEST_BYTES + 1);
  const out = Buffer.allocUnsafe(count * DIGEST_BYTES);
  for (let i = 0, at = 0; i < count; i++) {
    if (i > 0 && text.charCodeAt(at++) !== 0x2c) return undefined;
    for (let j = 0; j < DIGEST_BYTES; j++, at += 2) {
      const hi = hexValue(text.charCodeAt(at));
      const lo = hexValue(text.charCodeAt(at + 1));
      if (hi < 0 || lo < 0) return undefined;
      out[i * DIGEST_BYTES + j] = (hi << 4) | lo;
    }
  }
  return out;
}

/** The value of each hex digit (`0-9`, `a-f`, `A-F`) by its character code, -1 for every other code below 256. */
export const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[0x30 + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[0x41 + i] = HEX_VALUE[0x61 + i] = 10 + i;
const hexValue = (c: number): number => (c < 256 ? HEX_VALUE[c] : -1);

function hexList(digests: Buffer, prefix: Buffer): Buffer {
  if (digests.length % DIGEST_BYTES !== 0) {
    throw new RangeError(`${digests.length} bytes is not a whole number of SHA-1 digests`);
  }
  const count = digests.length / DIGEST_BYTES;
  const out = Buffer.allocUnsafe(prefix.length + Math.max(0, count * (2 * DIGEST_BYTES + 1) - 1));
  let at = prefix.copy(out, 0);
  for (let i = 0, from = 0; i < count; i++) {
    if (i > 0) out[at++] = 0x2c; // ','
    for (const end = from + DIGEST_BYTES; from < end; from++) {
      const byte = digests[from];
      out[at++] = HEX_DIGITS[byte >> 4];
      out[at++] = HEX_DIGITS[byte & 15];
    }
  }
  return out;
}

/**
 * `chunk_hashes:<h0>,<h1>,...` built by one join, so that the line (8 MB for
 * a 100 GB file) is copied once and is flat from the start, instead of a key
 * glued to a joined list and copied again when written.
 */
function chunkHashesLine(hashes: readonly string[]): string {
  if (hashes.length === 0) return 'chunk_hashes:';
  const items = hashes.slice();
  items[0] = `chunk_hashes:${items[0]}`;
  return items.join(',');
}

type Getter = (key: string) => string;

function fieldsOf(lines: readonly string[]): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) fields.set(line.slice(0, colon), line.slice(colon + 1));
  }
  return fields;
}

function getter(fields: Map<string, string>): Getter {
  return (key) => {
    const v = fields.get(key);
    if (v === undefined) throw new ProtocolError(ErrorCode.BadFileMetadata, `metadata has no ${key} line`);
    return v;
  };
}

function seederAddress(userId: string, host: string, port: string): HostPort {
  const address = parseHostPort(formatHostPort({ host, port: Number(port) }));
  if (!address) throw new ProtocolError(ErrorCode.BadFileMetadata, `bad address for seeder ${userId}`);
  return address;
}

function fullSeeders(fields: Map<string, string>, get: Getter): SeederInfo[] {
  const users = list(get('seeders'));
  const ports = list(get('seeder_ports'));
  const paths = list(get('seeder_file_paths')).map(unescapeItem);
  const hosts = fields.has('seeder_hosts') ? list(get('seeder_hosts')).map(unescapeItem) : users.map(() => '127.0.0.1');
  // no seeder_protocols line (an older tracker): every seeder is one of ours
  const forms = fields.has('seeder_protocols') ? list(get('seeder_protocols')) : users.map(() => SeederForm.Extended);
  if (
    ports.length !== users.length ||
    paths.length !== users.length ||
    hosts.length !== users.length ||
    forms.length !== users.length
  ) {
    throw new ProtocolError(ErrorCode.BadFileMetadata, 'seeder lists differ in length');
  }
  const fingerprints = fingerprintsOf(fields, 'seeder_fingerprints', users.length);
  return users.map((userId, i): SeederInfo => {
    const address = seederAddress(userId, hosts[i], ports[i]);
    const fingerprint = forms[i] === SeederForm.Seed ? undefined : readFingerprint(fingerprints[i], userId);
    if (forms[i] !== SeederForm.Seed && forms[i] !== SeederForm.Extended) {
      throw new ProtocolError(
        ErrorCode.BadFileMetadata,
        `unknown protocol '${forms[i].slice(0, 40)}' for seeder ${userId}`,
      );
    }
    return forms[i] === SeederForm.Seed
      ? { userId, address, capability: paths[i], seedForm: true }
      : { userId, address, capability: paths[i], ...(fingerprint && { fingerprint }) };
  });
}

/** The `partial_seeder*` lines; none (an older tracker, or the seed form) is no partial seeder. */
function partialSeeders(fields: Map<string, string>, get: Getter): SeederInfo[] {
  if (!fields.has('partial_seeders')) return [];
  const users = list(get('partial_seeders'));
  const hosts = list(get('partial_seeder_hosts')).map(unescapeItem);
  const ports = list(get('partial_seeder_ports'));
  const paths = list(get('partial_seeder_file_paths')).map(unescapeItem);
  if (hosts.length !== users.length || ports.length !== users.length || paths.length !== users.length) {
    throw new ProtocolError(ErrorCode.BadFileMetadata, 'partial seeder lists differ in length');
  }
  const fingerprints = fingerprintsOf(fields, 'partial_seeder_fingerprints', users.length);
  return users.map((userId, i) => {
    const fingerprint = readFingerprint(fingerprints[i], userId);
    return {
      userId,
      address: seederAddress(userId, hosts[i], ports[i]),
      capability: paths[i],
      partial: true,
      ...(fingerprint && { fingerprint }),
    };
  });
}

export function parseFileMetadata(lines: readonly string[]): FileMetadata {
  const fields = fieldsOf(lines);
  const get = getter(fields);
  const fileSize = /^\d{1,16}$/.test(get('file_size')) ? Number(get('file_size')) : NaN;
  if (!Number.isSafeInteger(fileSize)) throw new ProtocolError(ErrorCode.BadFileMetadata, 'bad file_size');
  const fileHash = get('file_hash').toLowerCase();
  if (!SHA1_HEX.test(fileHash)) throw new ProtocolError(ErrorCode.BadFileMetadata, 'bad file_hash');
  const seeders = fullSeeders(fields, get);
  const partial = partialSeeders(fields, get);
  return {
    fileName: get('file_name'),
    fileSize,
    fileHash,
    chunkHashes: parseChunkHashes(get('chunk_hashes')),
    seeders,
    ...(partial.length > 0 && { partialSeeders: partial }),
  };
}
