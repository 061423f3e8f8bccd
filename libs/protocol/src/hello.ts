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
