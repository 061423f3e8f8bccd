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
