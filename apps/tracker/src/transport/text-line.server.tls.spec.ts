import { Cmd, JoinGroupCmd, okReply, OkReply } from '@app/protocol';
import { Controller, INestMicroservice } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Ctx, MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { connect, Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { LineSocket } from '../testing/line-socket';
import { testIdentity } from '../testing/test-identity';
import { waitUntil } from '../testing/wait-until';
import { DEFAULT_TRACKER_LIMITS, TrackerLimits } from '../config/tracker.config';
import { ConnectionPolicy } from './connection.policy';
import { PassThroughExceptionFilter } from './pass-through.filter';
import { PeerContext } from './peer.context';
import { TextLineServer } from './text-line.server';

const SYNC_LABEL = 'EXPORTER-p2p-share-sync';

/** Each command shows one thing the transport hands a handler over TLS. */
@Controller()
class TlsProbeController {
  @MessagePattern(Cmd.JoinGroup)
  join(@Payload() cmd: JoinGroupCmd): OkReply {
    return okReply(`joined ${cmd.groupId}`);
  }

  /** The fingerprint of the client's certificate, as the transport saw it. */
  @MessagePattern(Cmd.ListGroups)
  who(@Ctx() ctx: PeerContext): OkReply {
    return okReply(ctx.tls ? `tls ${ctx.tls.peerFingerprint ?? 'no-certificate'}` : 'plain');
  }

  /** The keying material of the session (what the sync proofs are bound to). */
  @MessagePattern(Cmd.LeaveGroup)
  ekm(@Ctx() ctx: PeerContext): OkReply {
    return okReply(ctx.tls ? ctx.tls.exportKeyingMaterial(32, SYNC_LABEL).toString('hex') : 'plain');
  }
}

describe(`${TextLineServer.name} with STARTTLS`, () => {
  const tracker = testIdentity('tracker under test');
  const client = testIdentity('a client');
  let app: INestMicroservice;
  let server: TextLineServer;
  let policy: ConnectionPolicy;
  let port: number;
  const opened: { destroy(): void }[] = [];

  const start = async (limits: Partial<TrackerLimits> = {}) => {
    const moduleRef = await Test.createTestingModule({
      controllers: [TlsProbeController],
      providers: [{ provide: APP_FILTER, useClass: PassThroughExceptionFilter }],
    }).compile();
    policy = new ConnectionPolicy({ ...DEFAULT_TRACKER_LIMITS, ...limits });
    server = new TextLineServer({ host: '127.0.0.1', port: 0, policy, identity: tracker });
    app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
    await app.listen();
    port = server.address().port;
  };
  const tls = async (options: Parameters<typeof LineSocket.openTls>[1] = {}) => {
    const conn = await LineSocket.openTls(port, options);
    opened.push(conn);
    return conn;
  };
  const plain = async (hello = true) => {
    const conn = await LineSocket.open(port, '127.0.0.1', { hello });
    opened.push(conn);
    return conn;
  };
  /** A bare TCP socket and everything it receives. */
  const raw = async () => {
    const socket = await new Promise<Socket>((resolve, reject) => {
      const s = connect({ port, host: '127.0.0.1' }, () => resolve(s));
      s.once('error', reject);
    });
    opened.push(socket);
    const got: Buffer[] = [];
    let closed = false;
    socket.on('data', (d: Buffer) => got.push(d)).on('close', () => (closed = true));
    socket.on('error', () => undefined);
    return { socket, received: () => Buffer.concat(got).toString('latin1'), closed: () => closed };
  };

  afterEach(async () => {
    for (const c of opened.splice(0)) c.destroy();
    await app.close();
  });

  describe('with the default limits', () => {
    beforeEach(() => start());

    it('upgrades on STARTTLS, presents the tracker identity, and serves the HELLO and requests inside TLS', async () => {
      const seen: string[] = [];
      const conn = await tls({ identity: client, verify: (fp) => seen.push(fp) });
      expect(seen).toEqual([tracker.fingerprint]);
      expect(conn.socket).toBeInstanceOf(TLSSocket);
      expect((conn.socket as TLSSocket).getProtocol()).toBe('TLSv1.3');
      expect(await conn.request('join_group g1')).toEqual(['OK 0 joined g1']);
      // pipelined, in order
      conn.write('join_group g2\n#b join_group g3\n');
      expect(await conn.readLines(2)).toEqual(['OK 0 joined g2', 'OK 0 joined g3']);
    });

    it("hands handlers the fingerprint of the client's certificate, and none when it presented none", async () => {
      expect(await (await tls({ identity: client })).request('list_groups')).toEqual([
        `OK 0 tls ${client.fingerprint}`,
      ]);
      expect(await (await tls()).request('list_groups')).toEqual(['OK 0 tls no-certificate']);
      expect(await (await plain()).request('list_groups')).toEqual(['OK 0 plain']);
    });

    it('gives handlers the keying material of the TLS session, the same the client exports', async () => {
      const conn = await tls({ identity: client });
      const mine = (conn.socket as TLSSocket)
        .exportKeyingMaterial(32, SYNC_LABEL, undefined as unknown as Buffer)
        .toString('hex');
      expect(await conn.request('leave_group g')).toEqual([`OK 0 ${mine}`]);
      const other = await tls({ identity: client });
      expect(await other.request('leave_group g')).not.toEqual([`OK 0 ${mine}`]);
    });

    it('serves the seed form inside TLS when the first line there is not the HELLO', async () => {
      const conn = await tls({ hello: false });
      expect(await conn.request('join_group g1')).toEqual(['joined g1']);
      expect((await conn.request('STARTTLS'))[0]).toMatch(/^error: /);
    });

    it('answers a later STARTTLS in the extended form with BAD_SYNTAX, on plain and TLS connections alike', async () => {
      for (const conn of [await tls(), await plain()]) {
        expect(await conn.request('STARTTLS')).toEqual(['ERR BAD_SYNTAX STARTTLS is only the first line']);
        expect(await conn.request('join_group g')).toEqual(['OK 0 joined g']);
      }
    });

    it('answers a later STARTTLS in the seed form as any unknown command', async () => {
      const conn = await plain(false);
      expect(await conn.request('join_group g')).toEqual(['joined g']);
      const [answer] = await conn.request('STARTTLS');
      const [unknown] = await conn.request('NOSUCHTHING');
      expect(answer).toMatch(/^error: /);
      expect(answer.replace('STARTTLS', 'X')).toEqual(unknown.replace('NOSUCHTHING', 'X'));
    });

    it('closes without a byte a connection that sent anything after STARTTLS before the answer', async () => {
      for (const injected of ['STARTTLS\nlogin alice pw\n', 'STARTTLS\r\nx', 'STARTTLS\nHELLO p2p-share/2\n']) {
        const peer = await raw();
        peer.socket.write(injected);
        await waitUntil(() => peer.closed(), 'the condition', 10_000);
        expect(peer.received()).toBe('');
      }
      await waitUntil(() => policy.usage.connections === 0, 'the condition', 10_000);
    });

    it('takes STARTTLS sent in pieces and with CRLF', async () => {
      const peer = await raw();
      peer.socket.write('START');
      await waitUntil(() => policy.usage.connections === 1, 'the condition', 10_000);
      peer.socket.write('TLS\r\n');
      await waitUntil(() => peer.received() === 'OK 0 STARTTLS\n', 'the condition', 10_000);
    });

    it('keeps HELLO and the seed form without STARTTLS exactly as before, first bytes split or not', async () => {
      const conn = await plain(false);
      conn.write('HEL');
      await waitUntil(() => policy.usage.connections === 1, 'the condition', 10_000);
      conn.write('LO p2p-share/2\njoin_group a\n');
      expect(await conn.readLines(2)).toEqual(['OK 0 p2p-share/2', 'OK 0 joined a']);
      const seed = await plain(false);
      seed.write('S'); // could still be STARTTLS
      await waitUntil(() => policy.usage.connections === 2, 'the condition', 10_000);
      seed.write('TART\n');
      expect((await seed.readLines(1))[0]).toMatch(/^error: /);
      expect(await seed.request('join_group b')).toEqual(['joined b']);
    });

    it('answers requests a TLS client sent before it ended its side', async () => {
      const conn = await tls();
      conn.write('join_group a\njoin_group b\n');
      (conn.socket as TLSSocket).end();
      expect(await conn.readLines(2)).toEqual(['OK 0 joined a', 'OK 0 joined b']);
      await conn.waitClosed();
    });
  });

  describe('with limits', () => {
    it('refuses STARTTLS past the connection cap with one framed ERR line in clear, then closes', async () => {
      await start({ maxConnsPerIp: 1 });
      await tls();
      const peer = await raw();
      peer.socket.write('STARTTLS\n');
      await waitUntil(() => peer.closed(), 'the condition', 10_000);
      expect(peer.received()).toBe('ERR TOO_MANY_CONNECTIONS at most 1 connections from 127.0.0.1\n');
    });

    it('closes a silent connection and a stalled handshake within the pre-login idle time', async () => {
      await start({ idleTimeoutLoginMs: 300 });
      const silent = await raw();
      const stalled = await raw();
      stalled.socket.write('STARTTLS\n');
      await waitUntil(() => silent.closed() && stalled.closed(), 'the condition', 10_000);
      expect(silent.received()).toBe('error: closed after 0.3 s without a request before login\n');
      expect(stalled.received()).toBe('OK 0 STARTTLS\n'); // and nothing in clear inside the handshake
      await waitUntil(() => policy.usage.connections === 0, 'the condition', 10_000);
    });

    it('closes a TLS connection idle before login with the refusal written inside TLS', async () => {
      await start({ idleTimeoutLoginMs: 300 });
      const conn = await tls();
      expect(await conn.readLines(1, 5000)).toEqual([
        'ERR IDLE_TIMEOUT closed after 0.3 s without a request before login',
      ]);
      await conn.waitClosed();
    });
  });
});
