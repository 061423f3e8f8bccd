/**
 * Every connection, to a tracker or to a seeder, starts in the seed form: bare
 * command lines, readable text replies, `GET_CHUNK` answered with raw bytes.
 * A peer that wants this project's extensions (request ids, `OK`/`ERR` framing
 * with codes, continuation lines, pipelined chunks with headers, refusal
 * reasons) sends this exact line first, and gets `OK 0 p2p-share/2` back:
 *
 *     HELLO p2p-share/2
 *     OK 0 p2p-share/2
 *
 * From then on the connection speaks the extended form. A seed-form peer never
 * sends it and so never meets any extension.
 */
export const PROTOCOL_NAME = 'p2p-share/2';
export const HELLO = 'HELLO';
export const HELLO_LINE = `${HELLO} ${PROTOCOL_NAME}`;
export const HELLO_REPLY = `OK 0 ${PROTOCOL_NAME}`;

/** How a seeder speaks, as the tracker lists it in `seeder_protocols:` (extended form only). */
export const SeederForm = {
  /** This project's peer protocol: `HELLO p2p-share/2`, then pipelined `GET_CHUNK`s with `CHUNK` headers. */
  Extended: PROTOCOL_NAME,
  /** The seed's: one `GET_CHUNK <i> <file_path>` per connection, answered with raw bytes. */
  Seed: 'seed',
} as const;
export type SeederForm = (typeof SeederForm)[keyof typeof SeederForm];

/** The first bytes of a connection in the extended form. */
export const HELLO_START = Buffer.from(`${HELLO} `, 'latin1');

/**
 * The form a connection's first bytes announce, for a server that must answer
 * before it has read a whole line (a refusal): `extended` once they begin with
 * one of `framedStarts` (e.g. `HELLO_START`), `seed` once they cannot, and
 * undefined while they still might, unless `final` (nothing more will be
 * read: the wait is over or the peer has ended), when that is `seed` too.
 */
export function formOfFirstBytes(
  first: Buffer,
  framedStarts: readonly Buffer[],
  final = false,
): 'extended' | 'seed' | undefined {
  let open = false;
  for (const start of framedStarts) {
    const n = Math.min(first.length, start.length);
    if (first.compare(start, 0, n, 0, n) !== 0) continue;
    if (n === start.length) return 'extended';
    open = true;
  }
  return open && !final ? undefined : 'seed';
}
