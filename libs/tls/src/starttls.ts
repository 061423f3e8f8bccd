import { STARTTLS_LINE, STARTTLS_REPLY, STARTTLS_START, STARTTLS_START_CRLF } from '@app/protocol';
import { OnReadOpts, Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, SecureContext, TLSSocket } from 'node:tls';
import { StartTlsRefusedError, TlsConnectError, TlsHandshakeError } from './errors';
import { fingerprintOf, Identity } from './identity';

/** TLS 1.3 only; AES-128-GCM first (AES-NI makes it the fastest), then the other two suites of TLS 1.3. */
export const TLS_SETTINGS = {
  minVersion: 'TLSv1.3',
  maxVersion: 'TLSv1.3',
  ciphers: 'TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256',
} as const;

/** The first byte of a TLS handshake record (a ClientHello): no text line starts with it. */
export const TLS_HANDSHAKE_RECORD = 0x16;

/** Longest answer to `STARTTLS` read before giving up on it (a refusal line is short). */
const MAX_ANSWER_BYTES = 1024;

export interface StartTlsClientOptions {
  /** For messages: `host:port` of the peer. */
  readonly peer: string;
  /** For the answer to `STARTTLS` and the handshake together. */
  readonly timeoutMs: number;
  /** Our certificate, presented when the server asks for one (trackers learn a seeder's fingerprint this way). */
  readonly identity?: Identity;
  /**
   * Checks the fingerprint of the server's certificate once the handshake is
   * done and before anything is sent inside TLS; throws (a
   * FingerprintMismatchError) to refuse it, and the connection is destroyed.
   */
  readonly verify: (fingerprint: string) => void;
  readonly signal?: AbortSignal;
}

/**
 * Upgrades a connected socket to TLS as the client: sends `STARTTLS`, reads
 * exactly the answer line, runs the handshake and checks the server's
 * certificate. Resolves with the TLS socket, on which the caller sends its
 * first line (the HELLO). Rejects (and destroys the socket) with a
 * StartTlsRefusedError when the answer is not `OK 0 STARTTLS` or anything
 * follows it, a TlsHandshakeError when the handshake fails or times out, or
 * whatever `verify` threw.
 */
export function startTlsClient(socket: Socket, options: StartTlsClientOptions): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    let tlsSocket: TLSSocket | undefined;
    let settled = false;
    let seen: Buffer = Buffer.alloc(0);
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      socket.off('data', onData).off('end', onGone).off('close', onGone).off('error', onError);
      if (err) {
        tlsSocket?.destroy();
        socket.destroy();
        reject(err);
      } else {
        tlsSocket!.off('error', onError).off('close', onGone);
        resolve(tlsSocket!);
      }
    };
    const onAbort = () => finish(new TlsHandshakeError(`TLS with ${options.peer}: aborted`));
    const onError = (err: Error) =>
      finish(
        err instanceof TlsHandshakeError ? err : new TlsHandshakeError(`TLS with ${options.peer}: ${err.message}`),
      );
    const onGone = () =>
      finish(
        tlsSocket
          ? new TlsHandshakeError(`TLS with ${options.peer}: the connection closed during the handshake`)
          : new StartTlsRefusedError(`${options.peer} closed the connection instead of answering STARTTLS`, ''),
      );
    const timer = setTimeout(
      () => finish(new TlsHandshakeError(`TLS with ${options.peer}: no handshake within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    const onData = (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      const newline = seen.indexOf(0x0a);
      if (newline < 0) {
        if (seen.length > MAX_ANSWER_BYTES) finish(refused(options.peer, seen.toString('latin1', 0, 200)));
        return;
      }
      const answer = seen.toString('utf8', 0, newline).replace(/\r$/, '');
      if (answer !== STARTTLS_REPLY) return finish(refused(options.peer, answer));
      if (seen.length > newline + 1) {
        return finish(new StartTlsRefusedError(`${options.peer} sent bytes after OK 0 STARTTLS`, answer));
      }
      socket.off('data', onData).off('end', onGone).off('close', onGone);
      socket.pause();
      tlsSocket = tlsConnect({
        socket,
        ...TLS_SETTINGS,
        rejectUnauthorized: false, // self-signed: the fingerprint check below is the trust decision
        ...(options.identity && { key: options.identity.keyPem, cert: options.identity.certPem }),
      });
      tlsSocket.once('error', onError).once('close', onGone);
      tlsSocket.once('secureConnect', () => finish(checkServer(tlsSocket!, options)));
    };
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort);
    socket.on('data', onData).once('end', onGone).once('close', onGone).once('error', onError);
    socket.write(`${STARTTLS_LINE}\n`);
  });
}

/** The server's certificate checked with `verify`: undefined when it is the one expected, else why not. */
function checkServer(tlsSocket: TLSSocket, options: StartTlsClientOptions): Error | undefined {
  const cert = tlsSocket.getPeerX509Certificate();
  if (!cert) return new TlsHandshakeError(`TLS with ${options.peer}: no certificate presented`);
  try {
    options.verify(fingerprintOf(cert.raw));
  } catch (err) {
    return err as Error;
  }
  return undefined;
}

export interface ConnectTlsOptions extends StartTlsClientOptions {
  readonly host: string;
  readonly port: number;
  /**
   * As `net.connect`'s: each read of decrypted bytes lands in the buffer the
   * caller names, with no allocation per read (a `data` event allocates one
   * buffer per TLS record).
   */
  readonly onread?: OnReadOpts;
  /** The socket as soon as it exists, for the caller to destroy should it give up before the promise settles. */
  readonly onSocket?: (socket: TLSSocket) => void;
}

/**
 * Connects and runs the TLS handshake from the first byte, with no `STARTTLS`
 * line (a server that sniffs the first byte, as our chunk server does, sees a
 * handshake record), then checks the server's certificate. Resolves with the
 * TLS socket, on which nothing has been sent yet. Rejects (the socket
 * destroyed) with a TlsConnectError when no TCP connection is made in time, a
 * TlsHandshakeError when the handshake fails (the server may not speak TLS
 * from the first byte: `STARTTLS` can tell) or does not end in time
 * (`timedOut`), or whatever `verify` threw. `timeoutMs` covers both steps.
 */
export function connectTls(options: ConnectTlsOptions): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    let connected = false;
    let settled = false;
    const tlsSocket = tlsConnect({
      host: options.host,
      port: options.port,
      ...TLS_SETTINGS,
      rejectUnauthorized: false, // self-signed: the fingerprint check is the trust decision
      ...(options.identity && { key: options.identity.keyPem, cert: options.identity.certPem }),
      ...(options.onread && { onread: options.onread }),
    });
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      tlsSocket.off('error', onError).off('close', onClose);
      if (err) {
        tlsSocket.destroy();
        reject(err);
      } else resolve(tlsSocket);
    };
    const failure = (why: string, timedOut = false) =>
      connected
        ? new TlsHandshakeError(`TLS with ${options.peer}: ${why}`, timedOut)
        : new TlsConnectError(`cannot connect to ${options.peer}: ${why}`);
    const onAbort = () => finish(failure('aborted'));
    const onError = (err: Error) => finish(failure(err.message));
    const onClose = () =>
      finish(failure(connected ? 'the connection closed during the handshake' : 'the connection closed'));
    const timer = setTimeout(
      () =>
        finish(
          failure(
            connected ? `no handshake within ${options.timeoutMs} ms` : `timed out after ${options.timeoutMs} ms`,
            true,
          ),
        ),
      options.timeoutMs,
    );
    options.onSocket?.(tlsSocket);
    if (options.signal?.aborted) return onAbort();
    options.signal?.addEventListener('abort', onAbort);
    tlsSocket.once('connect', () => (connected = true));
    tlsSocket.once('error', onError).once('close', onClose);
    tlsSocket.once('secureConnect', () => finish(checkServer(tlsSocket, options)));
  });
}

function refused(peer: string, answer: string): StartTlsRefusedError {
  return new StartTlsRefusedError(
    `${peer} does not speak TLS (it answered STARTTLS with '${answer.slice(0, 200)}')`,
    answer,
  );
}

/**
 * What a server found at the start of a connection: `starttls` (exactly the
 * `STARTTLS` line, nothing after it), `injected` (that line with more bytes
 * behind it, sent in clear before TLS: close the connection), `tls` (a TLS
 * handshake from the first byte, where the server takes one: `head` is its
 * start, for `acceptTls`), or `plain` with the bytes read so far (`head`, to
 * be read again as the connection's first bytes) and whether the peer ended
 * its side meanwhile.
 */
export type FirstBytes =
  | { readonly kind: 'starttls' }
  | { readonly kind: 'injected' }
  | { readonly kind: 'tls'; readonly head: Buffer }
  | { readonly kind: 'plain'; readonly head: Buffer; readonly ended: boolean };

export interface SniffOptions {
  /** Take a TLS handshake record as the first byte for a TLS connection (`tls`); else it is read as plain bytes. */
  readonly directTls?: boolean;
}

/**
 * Reads a new connection's first bytes until they show whether it asks for
 * TLS. Leaves the socket paused and with no listener of its own: the caller
 * attaches its readers and resumes it (or calls `acceptTls`). Has no timer of
 * its own: a peer that sends nothing is the caller's idle timeout to close
 * (the promise then resolves `plain`, ended).
 */
export function sniffStartTls(socket: Socket, options: SniffOptions = {}): Promise<FirstBytes> {
  return new Promise<FirstBytes>((resolve) => {
    let head: Buffer = Buffer.alloc(0);
    const done = (result: FirstBytes) => {
      socket.pause();
      socket.off('data', onData).off('end', onEnd).off('close', onEnd);
      resolve(result);
    };
    const onEnd = () => done({ kind: 'plain', head, ended: true });
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      if (options.directTls && head[0] === TLS_HANDSHAKE_RECORD) return done({ kind: 'tls', head });
      let open = false;
      for (const line of [STARTTLS_START, STARTTLS_START_CRLF]) {
        const n = Math.min(head.length, line.length);
        if (head.compare(line, 0, n, 0, n) !== 0) continue;
        if (n < line.length) {
          open = true;
          continue;
        }
        return done(head.length === line.length ? { kind: 'starttls' } : { kind: 'injected' });
      }
      if (!open) done({ kind: 'plain', head, ended: false });
    };
    if (socket.destroyed || socket.readableEnded) return onEnd();
    socket.on('data', onData).once('end', onEnd).once('close', onEnd);
    socket.resume();
  });
}

export interface AcceptTlsOptions {
  readonly context: SecureContext;
  /** Ask the client for its certificate (trackers: to learn a seeder's fingerprint; optional for the client). */
  readonly requestCert?: boolean;
  readonly timeoutMs: number;
  /**
   * The start of a handshake sent from the first byte (`sniffStartTls` found `tls`): given back to the TLS layer,
   * and no `OK 0 STARTTLS` answer is sent.
   */
  readonly head?: Buffer;
}

/** A server's TLS settings for an identity: made once, used for every connection. */
export function serverContext(identity: Identity): SecureContext {
  return createSecureContext({ key: identity.keyPem, cert: identity.certPem, ...TLS_SETTINGS });
}

/**
 * After `sniffStartTls` found `starttls`: answers `OK 0 STARTTLS` and runs the
 * handshake as the server (found `tls`: runs it on the bytes read, with no
 * answer). Resolves with the TLS socket once it is secure;
 * rejects with a TlsHandshakeError (the socket destroyed) when the handshake
 * fails, the peer leaves or `timeoutMs` passes.
 */
export function acceptTls(socket: Socket, options: AcceptTlsOptions): Promise<TLSSocket> {
  return new Promise<TLSSocket>((resolve, reject) => {
    socket.pause(); // the client's hello must reach the TLS layer, not a reader of the plain socket
    if (options.head)
      socket.unshift(options.head); // the TLS layer reads what the socket holds first
    else socket.write(`${STARTTLS_REPLY}\n`);
    const tlsSocket = new TLSSocket(socket, {
      isServer: true,
      secureContext: options.context,
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: false, // a client certificate is taken by its fingerprint, never by a chain
    });
    let settled = false;
    const finish = (err: Error | undefined) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tlsSocket.off('error', onError).off('close', onClose);
      if (err) {
        tlsSocket.destroy();
        socket.destroy();
        reject(err);
      } else resolve(tlsSocket);
    };
    const onError = (err: Error) => finish(new TlsHandshakeError(`TLS handshake failed: ${err.message}`));
    const onClose = () => finish(new TlsHandshakeError('the connection closed during the TLS handshake'));
    const timer = setTimeout(
      () => finish(new TlsHandshakeError(`no TLS handshake within ${options.timeoutMs} ms`)),
      options.timeoutMs,
    );
    tlsSocket.once('error', onError).once('close', onClose);
    tlsSocket.once('secure', () => finish(undefined));
  });
}

/** The fingerprint of the certificate the peer of a TLS socket presented; undefined when it presented none. */
export function peerFingerprint(socket: TLSSocket): string | undefined {
  const cert = socket.getPeerX509Certificate();
  return cert ? fingerprintOf(cert.raw) : undefined;
}
