import { STARTTLS_REPLY } from '@app/protocol';
import { mkdtempSync, rmSync } from 'node:fs';
import { AddressInfo, connect, createServer, Server, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FingerprintMismatchError, StartTlsRefusedError, TlsConnectError, TlsHandshakeError } from './errors';
import { Identity, loadOrCreateIdentity } from './identity';
import {
  acceptTls,
  connectTls,
  FirstBytes,
  peerFingerprint,
  serverContext,
  sniffStartTls,
  startTlsClient,
  TLS_HANDSHAKE_RECORD,
} from './starttls';
import { seederVerifier } from './known-trackers';

describe('STARTTLS', () => {
  let dir: string;
  let server: Identity;
  let client: Identity;
  let listener: Server;
  let port: number;
  let onConnection: (socket: Socket) => void;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'starttls-'));
    server = loadOrCreateIdentity(join(dir, 's'), 'server');
    client = loadOrCreateIdentity(join(dir, 'c'), 'client');
    listener = createServer((socket) => onConnection(socket));
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    port = (listener.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => listener.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const dial = () =>
    new Promise<Socket>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => resolve(socket));
      socket.once('error', reject);
    });

  /** A server that upgrades when asked and echoes every line back with what it learnt of the client. */
  function echoServer(requestCert: boolean): Promise<FirstBytes> {
    return new Promise((resolve) => {
      onConnection = (socket) => {
        void sniffStartTls(socket)
          .then(async (first) => {
            resolve(first);
            if (first.kind !== 'starttls') return socket.destroy();
            const secure = await acceptTls(socket, { context: serverContext(server), requestCert, timeoutMs: 2000 });
            secure.on('data', (d: Buffer) => secure.write(`${peerFingerprint(secure) ?? 'none'} ${d.toString()}`));
          })
          .catch(() => undefined); // a client that refused the server leaves mid-handshake
      };
    });
  }

  it('upgrades, checks the server by fingerprint, and carries lines inside TLS with the client known', async () => {
    const sniffed = echoServer(true);
    const raw = await dial();
    const seen: string[] = [];
    const secure = await startTlsClient(raw, {
      peer: 'test',
      timeoutMs: 2000,
      identity: client,
      verify: (fp) => seen.push(fp),
    });
    expect(await sniffed).toEqual({ kind: 'starttls' });
    expect(seen).toEqual([server.fingerprint]);
    expect(secure.getProtocol()).toBe('TLSv1.3');
    expect(secure.getCipher().name).toBe('TLS_AES_128_GCM_SHA256');
    const echoed = new Promise<string>((resolve) => secure.once('data', (d: Buffer) => resolve(d.toString())));
    secure.write('HELLO p2p-share/2\n');
    expect(await echoed).toBe(`${client.fingerprint} HELLO p2p-share/2\n`);
    secure.destroy();
  });

  it('sends nothing inside TLS to a server whose certificate is not the one expected', async () => {
    const got: Buffer[] = [];
    onConnection = (socket) => {
      void sniffStartTls(socket)
        .then(async (first) => {
          if (first.kind !== 'starttls') return;
          const secure = await acceptTls(socket, { context: serverContext(client), timeoutMs: 2000 });
          secure.on('data', (d: Buffer) => got.push(d));
        })
        .catch(() => undefined);
    };
    const raw = await dial();
    await expect(
      startTlsClient(raw, { peer: 'p', timeoutMs: 2000, verify: seederVerifier('p', server.fingerprint) }),
    ).rejects.toBeInstanceOf(FingerprintMismatchError);
    await new Promise((r) => setTimeout(r, 100));
    expect(Buffer.concat(got).length).toBe(0);
    expect(raw.destroyed).toBe(true);
  });

  it('reports a server that does not speak TLS, with its answer', async () => {
    onConnection = (socket) => socket.once('data', () => socket.write("error: unknown command 'STARTTLS'\n"));
    const raw = await dial();
    const err = await startTlsClient(raw, { peer: 'old', timeoutMs: 2000, verify: () => undefined }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StartTlsRefusedError);
    expect((err as StartTlsRefusedError).answer).toBe("error: unknown command 'STARTTLS'");
  });

  it('refuses an answer with bytes behind it (injected before TLS)', async () => {
    onConnection = (socket) => socket.once('data', () => socket.write(`${STARTTLS_REPLY}\nOK 0 forged\n`));
    const raw = await dial();
    await expect(startTlsClient(raw, { peer: 'x', timeoutMs: 2000, verify: () => undefined })).rejects.toThrow(
      'sent bytes after OK 0 STARTTLS',
    );
  });

  it('hands a plain connection back with its first bytes, and flags bytes sent behind STARTTLS', async () => {
    let sniffed = echoServer(false);
    let raw = await dial();
    raw.write('login alice pw\n');
    expect(await sniffed).toEqual({ kind: 'plain', head: Buffer.from('login alice pw\n'), ended: false });
    raw.destroy();

    sniffed = echoServer(false);
    raw = await dial();
    raw.write('STARTTLS\nlogin alice pw\n');
    expect(await sniffed).toEqual({ kind: 'injected' });
    raw.destroy();

    sniffed = echoServer(false);
    raw = await dial();
    raw.end('STA');
    expect(await sniffed).toEqual({ kind: 'plain', head: Buffer.from('STA'), ended: true });
  });

  it('takes a STARTTLS line that arrives a byte at a time, and one ending in CRLF', async () => {
    for (const line of ['STARTTLS\n', 'STARTTLS\r\n']) {
      const sniffed = echoServer(false);
      const raw = await dial();
      for (const byte of line) {
        raw.write(byte);
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(await sniffed).toEqual({ kind: 'starttls' });
      raw.destroy();
    }
  });

  describe('TLS from the first byte', () => {
    /** A server that takes the handshake as the first bytes (or STARTTLS) and echoes lines with the client's fingerprint. */
    function directServer(): Promise<FirstBytes> {
      return new Promise((resolve) => {
        onConnection = (socket) => {
          void sniffStartTls(socket, { directTls: true })
            .then(async (first) => {
              resolve(first);
              if (first.kind !== 'tls' && first.kind !== 'starttls') return socket.destroy();
              const head = first.kind === 'tls' ? first.head : undefined;
              const context = serverContext(server);
              const secure = await acceptTls(socket, { context, requestCert: true, timeoutMs: 2000, head });
              secure.on('data', (d: Buffer) => secure.write(`${peerFingerprint(secure) ?? 'none'} ${d.toString()}`));
            })
            .catch(() => undefined);
        };
      });
    }

    /** What `connectTls` to port `to` rejects with (no certificate is checked: only failures matter here). */
    const failureOf = (peer: string, timeoutMs = 2000, to = port) =>
      connectTls({ host: '127.0.0.1', port: to, peer, timeoutMs, verify: () => undefined }).catch((e: unknown) => e);

    it('connects, checks the server by fingerprint, and reads into the buffers the caller names', async () => {
      const sniffed = directServer();
      const seen: string[] = [];
      const target = Buffer.alloc(256);
      let filled = 0;
      let reads = 0;
      const secure = await connectTls({
        host: '127.0.0.1',
        port,
        peer: 'test',
        timeoutMs: 2000,
        identity: client,
        verify: (fp) => seen.push(fp),
        onread: {
          buffer: () => target.subarray(filled),
          callback: (n) => {
            filled += n;
            reads++;
            return true;
          },
        },
      });
      const first = await sniffed;
      expect(first.kind).toBe('tls');
      expect(first.kind === 'tls' && first.head[0]).toBe(TLS_HANDSHAKE_RECORD);
      expect(seen).toEqual([server.fingerprint]);
      expect(secure.getProtocol()).toBe('TLSv1.3');
      secure.write('HELLO p2p-share/2\n');
      const expected = `${client.fingerprint} HELLO p2p-share/2\n`;
      while (filled < expected.length) await new Promise((r) => setTimeout(r, 5));
      expect(target.toString('utf8', 0, filled)).toBe(expected);
      expect(reads).toBeGreaterThan(0);
      secure.destroy();
    });

    it('sends nothing inside TLS to a server whose certificate is not the one expected', async () => {
      const got: Buffer[] = [];
      onConnection = (socket) => {
        void sniffStartTls(socket, { directTls: true })
          .then(async (first) => {
            if (first.kind !== 'tls') return;
            const secure = await acceptTls(socket, {
              context: serverContext(client),
              timeoutMs: 2000,
              head: first.head,
            });
            secure.on('data', (d: Buffer) => got.push(d));
          })
          .catch(() => undefined);
      };
      await expect(
        connectTls({
          host: '127.0.0.1',
          port,
          peer: 'p',
          timeoutMs: 2000,
          verify: seederVerifier('p', server.fingerprint),
        }),
      ).rejects.toBeInstanceOf(FingerprintMismatchError);
      await new Promise((r) => setTimeout(r, 100));
      expect(Buffer.concat(got).length).toBe(0);
    });

    it('reads the handshake as plain bytes where the server does not take it', async () => {
      const sniffed = echoServer(false);
      const err = await failureOf('old');
      const first = await sniffed;
      expect(first.kind).toBe('plain');
      expect(first.kind === 'plain' && first.head[0]).toBe(TLS_HANDSHAKE_RECORD);
      // the server closed it: a handshake that failed, not one that ran out of time
      expect(err).toBeInstanceOf(TlsHandshakeError);
      expect((err as TlsHandshakeError).timedOut).toBe(false);
    });

    it('tells a handshake answered with a line in clear, one with no answer in time, and no connection apart', async () => {
      onConnection = (socket) => socket.resume().end('ERR BUSY too many connections; try later\n');
      const busy = await failureOf('b');
      expect(busy).toBeInstanceOf(TlsHandshakeError);
      expect((busy as TlsHandshakeError).timedOut).toBe(false);

      onConnection = (socket) => void socket.resume(); // reads and never answers
      const silent = await failureOf('s', 200);
      expect(silent).toBeInstanceOf(TlsHandshakeError);
      expect((silent as TlsHandshakeError).timedOut).toBe(true);
      expect((silent as Error).message).toBe('TLS with s: no handshake within 200 ms');

      const closed = createServer();
      await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
      const unused = (closed.address() as AddressInfo).port;
      await new Promise((resolve) => closed.close(resolve));
      const refused = await failureOf('gone', 2000, unused);
      expect(refused).toBeInstanceOf(TlsConnectError);
      expect((refused as Error).message).toMatch(/^cannot connect to gone: .*ECONNREFUSED/);
    });
  });
});
