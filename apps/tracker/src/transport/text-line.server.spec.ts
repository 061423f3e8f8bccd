import { Cmd, JoinGroupCmd, okReply, OkReply, Reply, ReplyAssembler, SYNC_MARKER, SyncCmd } from '@app/protocol';
import { Controller, INestMicroservice, ModuleMetadata } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { of } from 'rxjs';
import { AuthController } from '../auth/auth.controller';
import { AuthService } from '../auth/auth.service';
import { PASSWORD_HASHER, USER_STORE } from '../auth/auth.tokens';
import { InMemoryUserStore } from '../auth/in-memory-user.store';
import { ScryptPasswordHasher } from '../auth/password.hasher';
import { GroupsController } from '../groups/groups.controller';
import { NotGroupOwnerError } from '../groups/groups.errors';
import { GroupsService } from '../groups/groups.service';
import { GROUP_STORE } from '../groups/groups.tokens';
import { InMemoryGroupStore } from '../groups/in-memory-group.store';
import { LineSocket } from '../testing/line-socket';
import { waitUntil } from '../testing/wait-until';
import { testIdentity } from '../testing/test-identity';
import { TLSSocket } from 'node:tls';
import { syncTestingProviders, TEST_CLUSTER_KEY } from '../testing/sync-testing';
import {
  checkSyncProof,
  LinkParties,
  newNonce,
  syncEkm,
  syncProof,
  SyncLinkSecurity,
} from '../sync/sync-link.security';
import { SyncController } from '../sync/sync.controller';
import { SyncService } from '../sync/sync.service';
import { PassThroughExceptionFilter } from './pass-through.filter';
import { PeerContext } from './peer.context';
import { ConnectionPolicy } from './connection.policy';
import { TextLineServer } from './text-line.server';
import { TransportEvent } from './transport.events';
import { DEFAULT_TRACKER_LIMITS, TrackerLimits } from '../config/tracker.config';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Stands in for real controllers: each command exercises one transport path. */
@Controller()
class ProbeController {
  /** What the probe saw, in order: `join <group>` per join_group run, `closed <connection>` per closed peer. */
  static readonly seen: string[] = [];

  @EventPattern(TransportEvent.PeerClosed)
  closed(@Ctx() ctx: PeerContext): void {
    ProbeController.seen.push(`closed ${ctx.connectionId}`);
  }

  @MessagePattern(Cmd.ListGroups)
  list(): OkReply {
    return okReply('2 groups', ['g1 owner=alice', 'g2 owner=bob']);
  }

  @MessagePattern(Cmd.JoinGroup)
  async join(@Payload() cmd: JoinGroupCmd): Promise<OkReply> {
    ProbeController.seen.push(`join ${cmd.groupId}`);
    switch (cmd.groupId) {
      case 'boom':
        throw new Error('kaboom');
      case 'denied':
        throw new NotGroupOwnerError('denied');
      case 'slow':
        await delay(40);
        return okReply('slow done');
      default:
        return okReply(`joined ${cmd.groupId}`);
    }
  }

  @MessagePattern(Cmd.AcceptRequest)
  echo(@Payload() cmd: { groupId: string; userId: string }): OkReply {
    return okReply('args', [cmd.groupId, cmd.userId]);
  }

  @MessagePattern(Cmd.CreateGroup)
  plainString(@Payload() cmd: { groupId: string }): string {
    return `made ${cmd.groupId}`;
  }

  @MessagePattern(Cmd.LeaveGroup)
  observable(@Payload() cmd: { groupId: string }) {
    return of(okReply(`left ${cmd.groupId}`));
  }

  @MessagePattern(Cmd.UploadFile)
  upload(@Payload() cmd: { groupId: string; chunkHashes: string }): OkReply {
    return okReply(`upload to ${cmd.groupId}`, [cmd.chunkHashes]);
  }

  /** Stands in for a login: continuation lines are only taken from a logged-in session. */
  @MessagePattern(Cmd.Login)
  login(@Ctx() ctx: PeerContext): OkReply {
    ctx.setUser('probe');
    return okReply('logged in');
  }

  /** Stands in for a tracker's sync_auth: the connection is an authenticated tracker from now on. */
  @MessagePattern(Cmd.Resume)
  becomeTracker(@Ctx() ctx: PeerContext): OkReply {
    ctx.trackerNumber = 2;
    return okReply('tracker 2');
  }

  /** Metadata-like: the seed form shows only its first seven lines. */
  @MessagePattern(Cmd.DownloadFile)
  download(@Payload() cmd: { fileName: string }): OkReply {
    const hashes = cmd.fileName === 'big' ? Array(2000).fill('a'.repeat(40)).join(',') : 'a'.repeat(40);
    const lines = ['file_name:f', 'file_size:3', `file_hash:${'b'.repeat(40)}`, `chunk_hashes:${hashes}`];
    lines.push('seeders:u', 'seeder_ports:7001', 'seeder_file_paths:/p', 'seeder_hosts:h', 'seeder_protocols:seed');
    return okReply('f: 3 bytes', lines, 'metadata');
  }

  @MessagePattern(Cmd.Logout)
  whoAmI(@Ctx() ctx: PeerContext): OkReply {
    return okReply(`connection ${ctx.connectionId}`);
  }
}

interface Harness {
  app: INestMicroservice;
  server: TextLineServer;
  port: number;
}

/** Every server of these tests has an identity: plain connections go through the STARTTLS sniffing as in a tracker. */
const identity = testIdentity('text-line test tracker');

async function startTracker(metadata: ModuleMetadata, policy?: ConnectionPolicy): Promise<Harness> {
  const moduleRef = await Test.createTestingModule({
    ...metadata,
    providers: [...(metadata.providers ?? []), { provide: APP_FILTER, useClass: PassThroughExceptionFilter }],
  }).compile();
  const server = new TextLineServer({
    host: '127.0.0.1',
    port: 0,
    policy,
    identity,
  });
  const app = moduleRef.createNestMicroservice({ strategy: server, logger: false });
  await app.listen();
  return { app, server, port: server.address().port };
}

describe(TextLineServer.name, () => {
  let harness: Harness;
  const sockets: LineSocket[] = [];
  /** An extended-form connection (it sent the HELLO), or with `{ hello: false }` a seed-form one. */
  const open = async (options: { hello?: boolean } = {}) => {
    const s = await LineSocket.open(harness.port, '127.0.0.1', options);
    sockets.push(s);
    return s;
  };

  let running = false;
  const stop = async () => {
    if (running) await harness.app.close();
    running = false;
  };

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    await stop();
  });

  describe('with a probe controller', () => {
    let conn: LineSocket;

    beforeEach(async () => {
      harness = await startTracker({ controllers: [ProbeController] });
      running = true;
      conn = await open();
    });

    it('listens on the port it was given (0: any free one) and reports it', () => {
      expect(harness.port).toBeGreaterThan(0);
      expect(harness.server.address().address).toBe('127.0.0.1');
    });

    it('holds client requests until the gate given to holdClientsUntil opens; sync lines are not held', async () => {
      let release!: () => void;
      harness.server.holdClientsUntil(new Promise<void>((resolve) => (release = resolve)));
      const replies: string[][] = [];
      const held = conn.request('list_groups', 3).then((r) => replies.push(r));
      // a sync line from a peer that has not authenticated is answered at once, past the held request
      const other = await open();
      expect(await other.request('123456789 sync_fetch')).toEqual([expect.stringMatching(/^ERR FORBIDDEN /)]);
      await delay(30); // the behaviour under test: for a while, the held request gets no answer
      expect(replies).toEqual([]);
      release();
      await held;
      expect(replies).toEqual([['OK 2 2 groups', 'g1 owner=alice', 'g2 owner=bob']]);
      expect(await conn.request('create_group g1')).toEqual(['OK 0 made g1']);
    });

    it('serves clients as usual when the gate fails instead of opening', async () => {
      harness.server.holdClientsUntil(Promise.reject(new Error('catch-up failed')));
      expect(await conn.request('create_group g1')).toEqual(['OK 0 made g1']);
    });

    describe('in the seed form (no HELLO)', () => {
      let seed: LineSocket;
      beforeEach(async () => (seed = await open({ hello: false })));

      it('answers with readable text: the message and the body lines, errors as error:', async () => {
        expect(await seed.request('list_groups', 3)).toEqual(['2 groups', 'g1 owner=alice', 'g2 owner=bob']);
        expect(await seed.request('join_group denied')).toEqual(['error: only the owner of group denied can do that']);
        expect(await seed.request('join_group boom')).toEqual(['error: internal error; the request was not completed']);
        expect(await seed.request('frobnicate')).toEqual(["error: unknown command 'frobnicate'"]);
        expect(await seed.request('create_group g9')).toEqual(['made g9']);
        expect(await seed.request('leave_group x')).toEqual(['left x']);
        expect(seed.pending).toBe('');
      });

      it('shows only the seven seed lines of a metadata reply, a long chunk list too', async () => {
        const lines = await seed.request('download_file g f', 7);
        expect(lines.map((l) => l.slice(0, l.indexOf(':')))).toEqual([
          'file_name',
          'file_size',
          'file_hash',
          'chunk_hashes',
          'seeders',
          'seeder_ports',
          'seeder_file_paths',
        ]);
        const big = await seed.request('download_file g big', 7);
        expect(big[3]).toBe(`chunk_hashes:${Array(2000).fill('a'.repeat(40)).join(',')}`);
        expect(big[6]).toBe('seeder_file_paths:/p');
        expect(await seed.request('create_group after')).toEqual(['made after']);
      });

      it('honours neither request ids nor a later HELLO, and answers pipelined requests in order', async () => {
        seed.write('#7 create_group a\ncreate_group b\nHELLO p2p-share/2\ncreate_group c\n');
        expect(await seed.readLines(4)).toEqual([
          "error: unknown command '#7'",
          'made b',
          "error: unknown command 'HELLO'",
          'made c',
        ]);
      });

      it('reads an @N chunk list as a bad argument, not as continuation lines', async () => {
        expect(await seed.request('login u p')).toEqual(['logged in']);
        seed.write(`upload_file g1 /tmp/f 10 ${'a'.repeat(40)} @1 7001\ncreate_group next\n`);
        // the probe echoes the chunk list; the next line is a command of its own
        expect(await seed.readLines(3)).toEqual(['upload to g1', '@1', 'made next']);
      });

      it('answers sync lines framed', async () => {
        expect(await seed.request('123456789 sync_fetch')).toEqual([expect.stringMatching(/^ERR FORBIDDEN /)]);
      });
    });

    describe('after HELLO p2p-share/2', () => {
      it('answers OK 0 p2p-share/2, then framed replies; a later HELLO is a syntax error', async () => {
        const raw = await open({ hello: false });
        raw.write('HELLO p2p-share/2\n#1 create_group a\nHELLO p2p-share/2\n');
        expect(await raw.readLines(3)).toEqual([
          'OK 0 p2p-share/2',
          'OK 0 made a',
          'ERR BAD_SYNTAX HELLO is only the first line',
        ]);
      });

      it('gives the whole metadata reply with its count', async () => {
        const lines = await conn.request('download_file g f', 10);
        expect(lines[0]).toBe('OK 9 f: 3 bytes');
        expect(lines.slice(8)).toEqual(['seeder_hosts:h', 'seeder_protocols:seed']);
      });

      it('takes HELLO only as the very first line, HELLO with another version is not it', async () => {
        const other = await open({ hello: false });
        expect(await other.request('HELLO p2p-share/3')).toEqual(["error: unknown command 'HELLO'"]);
        expect(await other.request('HELLO p2p-share/2')).toEqual(["error: unknown command 'HELLO'"]);
        // a first line too long to read is a first line too
        const long = await open({ hello: false });
        long.write(`${'x'.repeat(70 * 1024)}\n`);
        expect(await long.readLines(1)).toEqual(['error: line longer than 65536 bytes ignored']);
        expect(await long.request('HELLO p2p-share/2')).toEqual(["error: unknown command 'HELLO'"]);
      });
    });

    it('answers OK with the count and the body lines', async () => {
      expect(await conn.request('list_groups', 3)).toEqual(['OK 2 2 groups', 'g1 owner=alice', 'g2 owner=bob']);
    });

    it('turns a string, an observable and an async result into OK replies', async () => {
      expect(await conn.request('create_group g9')).toEqual(['OK 0 made g9']);
      expect(await conn.request('leave_group g9')).toEqual(['OK 0 left g9']);
      expect(await conn.request('join_group g9')).toEqual(['OK 0 joined g9']);
    });

    it('accepts CRLF line endings', async () => {
      conn.write('join_group crlf\r\n');
      expect(await conn.readLines(1)).toEqual(['OK 0 joined crlf']);
    });

    it('refuses an unknown command', async () => {
      expect(await conn.request('frobnicate now')).toEqual(["ERR UNKNOWN_COMMAND unknown command 'frobnicate'"]);
    });

    it('refuses a protocol command that no controller serves', async () => {
      expect(await conn.request('create_user alice pw')).toEqual([
        "ERR UNKNOWN_COMMAND this tracker does not serve 'create_user'",
      ]);
    });

    it.each(['join_group', 'join_group a b'])('refuses %j with the usage', async (line) => {
      expect(await conn.request(line)).toEqual(['ERR BAD_ARGUMENTS usage: join_group <group_id>']);
    });

    it('refuses a malformed quote with BAD_SYNTAX', async () => {
      expect(await conn.request('join_group "open')).toEqual(['ERR BAD_SYNTAX unterminated quote']);
    });

    it('passes a domain error’s code and message through', async () => {
      expect(await conn.request('join_group denied')).toEqual([
        'ERR NOT_OWNER only the owner of group denied can do that',
      ]);
    });

    it('answers any other exception with ERR INTERNAL, without details, and keeps the connection usable', async () => {
      const [reply] = await conn.request('join_group boom');
      expect(reply).toBe('ERR INTERNAL internal error; the request was not completed');
      expect(reply).not.toContain('kaboom');
      expect(await conn.request('join_group after')).toEqual(['OK 0 joined after']);
    });

    it('refuses a 1 MB line with LINE_TOO_LONG and then serves the next command on the same connection', async () => {
      conn.write(`join_group ${'x'.repeat(1024 * 1024)}\n`);
      conn.write('join_group next\n');
      const [tooLong, next] = await conn.readLines(2, 5000);
      expect(tooLong).toMatch(/^ERR LINE_TOO_LONG /);
      expect(next).toBe('OK 0 joined next');
    });

    it('refuses a 1 MB line sent in pieces, and the command glued after its newline still works', async () => {
      const piece = 'y'.repeat(64 * 1024);
      for (let i = 0; i < 16; i++) conn.write(piece);
      conn.write('\njoin_group glued\n');
      expect(await conn.readLines(2, 5000)).toEqual([
        expect.stringMatching(/^ERR LINE_TOO_LONG /),
        'OK 0 joined glued',
      ]);
    });

    it('refuses binary garbage with one-line errors and keeps serving', async () => {
      conn.write(Buffer.from([0x00, 0xff, 0xfe, 0x01, 0x80, 0x1b, 0x0a]));
      conn.write(Buffer.from([0xff, 0xfe, 0xc3, 0x0a]));
      conn.write('join_group ok\n');
      const [controlChars, invalidUtf8, ok] = await conn.readLines(3);
      expect(controlChars).toMatch(/^ERR BAD_SYNTAX /);
      expect(invalidUtf8).toMatch(/^ERR UNKNOWN_COMMAND /);
      expect(ok).toBe('OK 0 joined ok');
    });

    it.each(['123456789 create_user a b', '123456789 join_group g1', '"123456789" join_group g1', '123456789'])(
      'refuses the sync-marker line %j from a client with FORBIDDEN',
      async (line) => {
        expect(await conn.request(line)).toEqual([expect.stringMatching(/^ERR FORBIDDEN /)]);
      },
    );

    it('answers pipelined requests in order, even when an earlier one is slower', async () => {
      conn.write('join_group slow\njoin_group fast\nlist_groups\njoin_group denied\nnope\n');
      expect(await conn.readLines(7)).toEqual([
        'OK 0 slow done',
        'OK 0 joined fast',
        'OK 2 2 groups',
        'g1 owner=alice',
        'g2 owner=bob',
        'ERR NOT_OWNER only the owner of group denied can do that',
        "ERR UNKNOWN_COMMAND unknown command 'nope'",
      ]);
    });

    it('reassembles a request split across many small writes', async () => {
      // 'é' is two bytes in UTF-8, so one write ends in the middle of a character.
      const request = Buffer.from('accept_request "my group" bé\n');
      for (const byte of request) {
        await new Promise<void>((resolve) => conn.socket.write(Buffer.from([byte]), () => resolve()));
      }
      expect(await conn.readLines(3)).toEqual(['OK 2 args', 'my group', 'bé']);
    });

    it('gives blank and whitespace-only lines no reply', async () => {
      conn.write('\n\r\n   \n\t\n');
      conn.write('join_group first\n\n\njoin_group second\n');
      expect(await conn.readLines(2)).toEqual(['OK 0 joined first', 'OK 0 joined second']);
      expect(conn.pending).toBe('');
    });

    it('passes quoted arguments with spaces and escapes to the handler', async () => {
      expect(await conn.request('accept_request "my group" "say \\"hi\\" \\\\ bye"', 3)).toEqual([
        'OK 2 args',
        'my group',
        'say "hi" \\ bye',
      ]);
      expect(await conn.request('accept_request "" x', 3)).toEqual(['OK 2 args', '', 'x']);
    });

    it('still answers a client that half-closes right after its request', async () => {
      conn.write('join_group slow\n');
      conn.socket.end();
      expect(await conn.readLines(1)).toEqual(['OK 0 slow done']);
    });

    describe('a last line without its newline', () => {
      beforeEach(() => ProbeController.seen.splice(0));

      // The rule: the peer's FIN ends its last line, as a newline would. Such a line runs and is answered
      // before the tracker closes its side (what `printf 'join_group g1' | nc` expects).
      it('runs and is answered when the peer half-closes after it', async () => {
        conn.write('join_group a\njoin_group tail');
        conn.socket.end();
        expect(await conn.readLines(2)).toEqual(['OK 0 joined a', 'OK 0 joined tail']);
        await conn.waitClosed();
        await waitUntil(() => ProbeController.seen.some((e) => e.startsWith('closed ')), 'the close event');
        expect(ProbeController.seen).toEqual(['join a', 'join tail', expect.stringMatching(/^closed /)]);
      });

      it('runs in the seed form too', async () => {
        const seed = await open({ hello: false });
        seed.write('join_group tail');
        seed.socket.end();
        expect(await seed.readLines(1)).toEqual(['joined tail']);
      });

      it('still runs when the peer closes both ways (its FIN too ends the line), unanswered', async () => {
        conn.write('join_group tail');
        conn.destroy();
        await waitUntil(() => ProbeController.seen.some((e) => e.startsWith('closed ')), 'the close event');
        expect(ProbeController.seen).toEqual(['join tail', expect.stringMatching(/^closed /)]);
      });
    });

    it('still answers every pipelined request of a client that half-closes', async () => {
      conn.write('join_group a\njoin_group slow\njoin_group b\n');
      conn.socket.end();
      expect(await conn.readLines(3)).toEqual(['OK 0 joined a', 'OK 0 slow done', 'OK 0 joined b']);
    });

    describe('continuation lines (upload_file ... @N)', () => {
      const upload = (hashes: string) => `upload_file g1 /tmp/f 10 ${'a'.repeat(40)} ${hashes} 7001`;

      beforeEach(async () => expect(await conn.request('login probe pw')).toEqual(['OK 0 logged in']));

      it('refuses the command before login with NOT_LOGGED_IN and drops its lines unread as commands', async () => {
        const anon = await open();
        anon.write(`${upload('@3')}\nh1\nlist_groups\n${'x'.repeat(60_000)}\njoin_group after\n`);
        expect(await anon.readLines(2)).toEqual([expect.stringMatching(/^ERR NOT_LOGGED_IN /), 'OK 0 joined after']);
      });

      it('reads the N lines after the command into its argument, without running them as commands', async () => {
        conn.write(`${upload('@3')}\nh1,h2\nlist_groups\n\n`);
        conn.write('join_group after\n');
        expect(await conn.readLines(3)).toEqual(['OK 1 upload to g1', 'h1,h2,list_groups,', 'OK 0 joined after']);
      });

      it('passes an inline list through unchanged', async () => {
        expect(await conn.request(upload('h1,h2'), 2)).toEqual(['OK 1 upload to g1', 'h1,h2']);
      });

      it('waits for continuation lines that arrive in later writes', async () => {
        conn.write(`${upload('@2')}\nh1`);
        conn.write(',h2\n');
        conn.write('h3\n');
        expect(await conn.readLines(2)).toEqual(['OK 1 upload to g1', 'h1,h2,h3']);
      });

      it.each(['@0', '@x', '@4097'])(
        'refuses %s with BAD_ARGUMENTS and reads the next line as a command',
        async (n) => {
          conn.write(`${upload(n)}\njoin_group next\n`);
          expect(await conn.readLines(2)).toEqual([expect.stringMatching(/^ERR BAD_ARGUMENTS /), 'OK 0 joined next']);
        },
      );

      it('answers LINE_TOO_LONG once for an over-long continuation line, after all N lines, then resumes', async () => {
        conn.write(`${upload('@3')}\nh1\n${'z'.repeat(100 * 1024)}\nh3\njoin_group next\n`);
        expect(await conn.readLines(2)).toEqual([expect.stringMatching(/^ERR LINE_TOO_LONG /), 'OK 0 joined next']);
      });
    });

    it('gives each connection its own context', async () => {
      const other = await open();
      const [a] = await conn.request('logout');
      const [b] = await other.request('logout');
      expect(a).toMatch(/^OK 0 connection \d+$/);
      expect(b).toMatch(/^OK 0 connection \d+$/);
      expect(a).not.toBe(b);
      expect(await conn.request('logout')).toEqual([a]);
    });

    it('serves many connections at once', async () => {
      const conns = [conn, ...(await Promise.all([1, 2, 3, 4].map(() => open())))];
      const replies = await Promise.all(conns.map((c, i) => c.request(`join_group c${i}`)));
      expect(replies).toEqual(conns.map((_, i) => [`OK 0 joined c${i}`]));
    });

    it('closes open connections when the app closes', async () => {
      await stop();
      await conn.waitClosed();
    });
  });

  describe('with limits from a connection policy', () => {
    const start = async (limits: Partial<TrackerLimits>) => {
      const policy = new ConnectionPolicy({ ...DEFAULT_TRACKER_LIMITS, ...limits });
      harness = await startTracker({ controllers: [ProbeController] }, policy);
      running = true;
      return policy;
    };
    const upload = (n: number) => `upload_file g1 /tmp/f 10 ${'a'.repeat(40)} @${n} 7001`;
    /** Waits until `check` holds, polling; fails after `timeoutMs`. */
    const until = async (check: () => boolean, timeoutMs = 5000) => {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        if (Date.now() > deadline) throw new Error('condition not met in time');
        await delay(10);
      }
    };

    it('refuses a connection past the per-address cap with one TOO_MANY_CONNECTIONS line, then closes it', async () => {
      const policy = await start({ maxConnsPerIp: 2 });
      const [a, b, c] = [await open(), await open(), await open({ hello: false })];
      // its HELLO shows it reads the extended form: the refusal is its answer, framed
      expect(await c.request('HELLO p2p-share/2')).toEqual([
        'ERR TOO_MANY_CONNECTIONS at most 2 connections from 127.0.0.1',
      ]);
      await c.waitClosed();
      expect(await a.request('join_group a')).toEqual(['OK 0 joined a']);
      expect(await b.request('join_group b')).toEqual(['OK 0 joined b']);
      a.destroy();
      await until(() => policy.usage.connections === 1);
      expect(await (await open()).request('join_group d')).toEqual(['OK 0 joined d']);
    });

    it('refuses past the cap in the seed form a connection whose first line is not the HELLO, or that sends nothing', async () => {
      await start({ maxConnsPerIp: 1 });
      await open();
      const seed = await open({ hello: false });
      expect(await seed.request('login alice pw')).toEqual(['error: at most 1 connections from 127.0.0.1']);
      await seed.waitClosed();
      const split = await open({ hello: false });
      split.write('HEL'); // not enough to tell yet
      await delay(50); // the behaviour under test: a HELLO that arrives in pieces, some time apart
      split.write('LO p2p-share/2\n');
      expect(await split.readLines(1)).toEqual(['ERR TOO_MANY_CONNECTIONS at most 1 connections from 127.0.0.1']);
      // a tracker's sync line is answered framed, a refusal of it too
      const tracker = await open({ hello: false });
      expect(await tracker.request('123456789 sync_hello 2 ab')).toEqual([
        'ERR TOO_MANY_CONNECTIONS at most 1 connections from 127.0.0.1',
      ]);
      const silent = await open({ hello: false });
      const began = Date.now();
      expect(await silent.readLines(1, 5000)).toEqual(['error: at most 1 connections from 127.0.0.1']);
      expect(Date.now() - began).toBeGreaterThanOrEqual(900); // it waited for a first line
      await silent.waitClosed();
    });

    it('closes an idle seed-form connection with an error: line, an extended one with ERR IDLE_TIMEOUT', async () => {
      await start({ idleTimeoutLoginMs: 300 });
      const [seed, framed] = [await open({ hello: false }), await open()];
      expect(await seed.readLines(1, 5000)).toEqual(['error: closed after 0.3 s without a request before login']);
      expect(await framed.readLines(1, 5000)).toEqual([
        'ERR IDLE_TIMEOUT closed after 0.3 s without a request before login',
      ]);
      await Promise.all([seed.waitClosed(), framed.waitClosed()]);
    });

    it('stops counting a connection against its address once it proved it is a tracker', async () => {
      await start({ maxConnsPerIp: 1 });
      const tracker = await open();
      expect(await tracker.request('resume x')).toEqual(['OK 0 tracker 2']);
      expect(await (await open()).request('join_group next')).toEqual(['OK 0 joined next']);
    });

    it('reads a line of several MiB whole from a tracker (read-ahead grows past its line limit)', async () => {
      await start({});
      const tracker = await open();
      expect(await tracker.request('resume x')).toEqual(['OK 0 tracker 2']);
      const [reply] = await tracker.request(`join_group ${'g'.repeat(3 * 1024 * 1024)}`, 1, 10_000);
      expect(reply).not.toMatch(/LINE_TOO_LONG/);
      expect(await tracker.request('join_group after')).toEqual(['OK 0 joined after']);
    });

    it('reads a 70 MB line whole from a tracker: as long as the longest op a client can make, past the old 64 MiB', async () => {
      await start({});
      const tracker = await open();
      expect(await tracker.request('resume x')).toEqual(['OK 0 tracker 2']);
      // answered in a few bytes: only the line's way in is measured
      expect(await tracker.request(`resume ${'t'.repeat(70_000_000)}`, 1, 60_000)).toEqual(['OK 0 tracker 2']);
      expect(await tracker.request('join_group after')).toEqual(['OK 0 joined after']);
    }, 90_000);

    it('refuses continuation lines before login without reading them as commands, however many', async () => {
      await start({});
      const anon = await open();
      anon.write(`${upload(4096)}\n`);
      const line = `${'f'.repeat(1000)}\n`;
      for (let i = 0; i < 4096; i += 64) anon.write(line.repeat(64));
      anon.write('join_group after\n');
      expect(await anon.readLines(2, 30_000)).toEqual([
        expect.stringMatching(/^ERR NOT_LOGGED_IN /),
        'OK 0 joined after',
      ]);
    });

    it('closes a connection idle before login with IDLE_TIMEOUT, and keeps a logged-in one', async () => {
      await start({ idleTimeoutLoginMs: 300, idleTimeoutMs: 60_000 });
      const idle = await open();
      const user = await open();
      expect(await user.request('login probe pw')).toEqual(['OK 0 logged in']);
      const began = Date.now();
      expect(await idle.readLines(1, 5000)).toEqual([
        'ERR IDLE_TIMEOUT closed after 0.3 s without a request before login',
      ]);
      await idle.waitClosed();
      expect(Date.now() - began).toBeGreaterThanOrEqual(250);
      expect(await user.request('join_group still')).toEqual(['OK 0 joined still']);
    });

    it('counts complete lines as activity, not bytes: a slowloris sender is closed', async () => {
      await start({ idleTimeoutLoginMs: 400 });
      const talker = await open();
      const slow = await open();
      let closed = false;
      void slow.waitClosed(10_000).then(() => (closed = true));
      const began = Date.now();
      while (!closed && Date.now() - began < 5000) {
        slow.write('x'); // never a newline
        expect(await talker.request('join_group t')).toEqual(['OK 0 joined t']); // a line each time: kept
        await delay(50); // the behaviour under test: a byte every so often, never a line
      }
      expect(closed).toBe(true);
      expect(slow.pending).toMatch(/^ERR IDLE_TIMEOUT /);
      expect(await talker.request('join_group alive')).toEqual(['OK 0 joined alive']);
    });

    it('refuses a request whose continuation lines outgrow the per-connection budget, and closes', async () => {
      await start({ maxBufferedBytes: 100_000 });
      const conn = await open();
      expect(await conn.request('login probe pw')).toEqual(['OK 0 logged in']);
      conn.write(`${upload(4)}\n`);
      for (let i = 0; i < 4; i++) conn.write(`${'b'.repeat(60_000)}\n`);
      expect(await conn.readLines(1)).toEqual(['ERR REQUEST_TOO_LARGE a request may hold 100000 bytes at most']);
      await conn.waitClosed();
    });

    it('answers TRY_LATER when all pending requests together hold too much, drops the lines and goes on', async () => {
      const policy = await start({ maxBufferedBytes: 200_000, maxPendingBytes: 150_000 });
      const first = await open();
      const second = await open();
      for (const c of [first, second]) expect(await c.request('login probe pw')).toEqual(['OK 0 logged in']);
      first.write(`${upload(3)}\n${'b'.repeat(60_000)}\n${'b'.repeat(60_000)}\n`); // holds 120,000 bytes
      await until(() => policy.usage.pendingBytes === 120_000);
      second.write(`${upload(2)}\n${'c'.repeat(60_000)}\n${'c'.repeat(60_000)}\njoin_group after\n`);
      expect(await second.readLines(2)).toEqual([
        'ERR TRY_LATER the tracker is busy with other uploads; try again in 1 s',
        'OK 0 joined after',
      ]);
      first.write('h3\n');
      expect((await first.readLines(2))[0]).toBe('OK 1 upload to g1');
      expect(policy.usage.pendingBytes).toBe(0);
    });
  });

  describe('with the real auth, groups and sync controllers', () => {
    let auth: AuthService;
    let sync: SyncService;

    beforeEach(async () => {
      harness = await startTracker({
        controllers: [AuthController, GroupsController, SyncController],
        providers: [
          AuthService,
          GroupsService,
          { provide: USER_STORE, useClass: InMemoryUserStore },
          { provide: GROUP_STORE, useClass: InMemoryGroupStore },
          { provide: PASSWORD_HASHER, useValue: new ScryptPasswordHasher({ N: 1024, r: 8, p: 1 }) },
          // tracker 1 of 2, with the second unreachable: it serves clients once its start-up catch-up gives up
          ...syncTestingProviders({ trackerNumber: 1, trackerCount: 2 }),
        ],
      });
      running = true;
      auth = harness.app.get(AuthService);
      sync = harness.app.get(SyncService);
      await sync.ready;
    });

    const TOKEN_LINE = /^session_token:[0-9a-f]{64}$/;
    const KEY_LINE = /^capability_key:[A-Za-z0-9_-]{43}$/;
    /** Logs in and reads the three reply lines; returns the token. */
    async function login(conn: LineSocket, userId: string, password: string): Promise<string> {
      const [head, token, key] = await conn.request(`login ${userId} ${password}`, 3);
      expect(head).toBe(`OK 2 logged in as ${userId}`);
      expect(key).toMatch(KEY_LINE);
      expect(token).toMatch(TOKEN_LINE);
      return token.slice('session_token:'.length);
    }

    /** Resolves when the tracker has ended the session of a closed connection. */
    function nextEndSession(): Promise<void> {
      const original = auth.endSession.bind(auth);
      return new Promise((resolve) => {
        jest.spyOn(auth, 'endSession').mockImplementationOnce((session) => {
          original(session);
          resolve();
        });
      });
    }

    it('serves a whole session over the wire', async () => {
      const alice = await open();
      expect(await alice.request('create_group g1')).toEqual(['ERR NOT_LOGGED_IN you must log in first']);
      expect(await alice.request('create_user alice "pass word"')).toEqual(['OK 0 user alice created']);
      expect(await alice.request('login alice wrong')).toEqual(['ERR LOGIN_FAILED wrong user id or password']);
      expect(await alice.request('login nobody wrong')).toEqual(['ERR LOGIN_FAILED wrong user id or password']);
      expect(await alice.request('login alice "pass word"', 3)).toEqual([
        'OK 2 logged in as alice',
        expect.stringMatching(TOKEN_LINE),
        expect.stringMatching(KEY_LINE),
      ]);
      expect(await alice.request('create_group g1')).toEqual(['OK 0 group g1 created; you own it']);
      expect(await alice.request('list_groups', 2)).toEqual(['OK 1 1 group', 'g1 owner=alice members=1 you=owner']);
      expect(await alice.request('logout')).toEqual(['OK 0 alice logged out']);
      expect(await alice.request('list_groups')).toEqual(['ERR NOT_LOGGED_IN you must log in first']);
    });

    it('lets a user log in on a new connection once the first one is dropped', async () => {
      const first = await open();
      await first.request('create_user alice pw');
      await login(first, 'alice', 'pw');

      const second = await open();
      expect(await second.request('login alice pw')).toEqual([expect.stringMatching(/^ERR ALREADY_LOGGED_IN /)]);

      const ended = nextEndSession();
      first.destroy();
      await ended;
      expect(auth.isOnline('alice')).toBe(false);
      await login(second, 'alice', 'pw');
    });

    it('lets a user log in on a new connection once the first logs out', async () => {
      const first = await open();
      await first.request('create_user alice pw');
      await login(first, 'alice', 'pw');
      const second = await open();
      expect(await second.request('logout')).toEqual(['ERR NOT_LOGGED_IN you must log in first']);
      expect(await first.request('logout')).toEqual(['OK 0 alice logged out']);
      await login(second, 'alice', 'pw');
    });

    it('keeps a user logged in on its connection when another connection closes', async () => {
      const first = await open();
      await first.request('create_user alice pw');
      await login(first, 'alice', 'pw');
      const bystander = await open();
      const ended = nextEndSession();
      bystander.destroy();
      await ended;
      expect(auth.isOnline('alice')).toBe(true);
      expect(await first.request('create_group g1')).toEqual(['OK 0 group g1 created; you own it']);
    });

    it('answers a create_user sent by a client that half-closes at once', async () => {
      const conn = await open();
      conn.write('create_user alice pw\n');
      conn.socket.end();
      expect(await conn.readLines(1)).toEqual(['OK 0 user alice created']);
    });

    it('resumes a session by its token on another connection once the first dropped, until logout revokes it', async () => {
      const first = await open();
      await first.request('create_user alice pw');
      const token = await login(first, 'alice', 'pw');
      const second = await open();
      expect(await second.request(`resume ${token}`)).toEqual([expect.stringMatching(/^ERR ALREADY_LOGGED_IN /)]);
      const ended = nextEndSession();
      first.destroy();
      await ended;
      expect(await second.request(`resume ${token}`)).toEqual(['OK 0 resumed the session of alice']);
      expect(await second.request('create_group g1')).toEqual(['OK 0 group g1 created; you own it']);
      expect(await second.request('logout')).toEqual(['OK 0 alice logged out']);
      const third = await open();
      expect(await third.request(`resume ${token}`)).toEqual([
        'ERR UNKNOWN_SESSION that session is unknown or over; log in again',
      ]);
      expect(await third.request('resume nonsense')).toEqual([expect.stringMatching(/^ERR UNKNOWN_SESSION /)]);
    });

    describe('request ids', () => {
      it('reads a #id in front of a request and answers as usual', async () => {
        const conn = await open();
        expect(await conn.request('#c1-1 create_user alice pw')).toEqual(['OK 0 user alice created']);
        expect(await conn.request('#c1-2 login alice pw', 3)).toEqual([
          'OK 2 logged in as alice',
          expect.stringMatching(TOKEN_LINE),
          expect.stringMatching(KEY_LINE),
        ]);
        expect(await conn.request('#Z_9 list_groups')).toEqual(['OK 0 no groups yet']);
        // create_user and login came before there was a user: their ids are the connection's alone, no user's
        expect(sync.hasRequest('c1-1', 'alice')).toBe(false);
        expect(sync.hasRequest('c1-2', 'alice')).toBe(false);
        // so alice's own first change may carry the login's id
        expect(await conn.request('#c1-2 create_group team')).toEqual(['OK 0 group team created; you own it']);
      });

      it.each([
        ['#', 'an empty id'],
        ['#a.b', 'a dot'],
        [`#${'x'.repeat(65)}`, '65 characters'],
        ['#é', 'a non-ASCII letter'],
        ['##1', 'a second #'],
      ])('refuses the id %j (%s) with BAD_SYNTAX and keeps serving', async (id) => {
        const conn = await open();
        expect(await conn.request(`${id} create_user alice pw`)).toEqual([
          'ERR BAD_SYNTAX a request id is # and 1-64 letters, digits, _ or -',
        ]);
        expect(auth.exists('alice')).toBe(false);
        expect(await conn.request('create_user alice pw')).toEqual(['OK 0 user alice created']);
      });

      it('accepts a 64-character id', async () => {
        const conn = await open();
        expect(await conn.request(`#${'x'.repeat(64)} create_user alice pw`)).toEqual(['OK 0 user alice created']);
      });

      it('refuses an id with no command with BAD_SYNTAX', async () => {
        const conn = await open();
        expect(await conn.request('#c1-1')).toEqual(['ERR BAD_SYNTAX a request id needs a command']);
      });

      it('answers a retried change with the same id as done, without applying it twice', async () => {
        const conn = await open();
        await conn.request('create_user alice pw');
        await login(conn, 'alice', 'pw');
        expect(await conn.request('#r-7 create_group g1')).toEqual(['OK 0 group g1 created; you own it']);
        const changes = sync.versionVector().get(1);
        // the reply was lost; the client sends the same request again
        expect(await conn.request('#r-7 create_group g1')).toEqual([
          'OK 0 done (request #r-7 had already been applied)',
        ]);
        expect(sync.versionVector().get(1)).toBe(changes);
        // without the id, or with another one, it is a new request, refused as such
        expect(await conn.request('create_group g1')).toEqual([expect.stringMatching(/^ERR GROUP_EXISTS /)]);
        expect(await conn.request('#r-8 create_group g1')).toEqual([expect.stringMatching(/^ERR GROUP_EXISTS /)]);
      });

      it('answers a retried create_user as done on its own connection only: before login an id is the connection’s', async () => {
        const first = await open();
        expect(await first.request('#u-1 create_user alice first')).toEqual(['OK 0 user alice created']);
        expect(await first.request('#u-1 create_user alice again')).toEqual([
          'OK 0 done (request #u-1 had already been applied)',
        ]);
        first.destroy();
        const second = await open();
        expect(await second.request('#u-1 create_user alice second')).toEqual([
          'ERR USER_EXISTS user alice already exists',
        ]);
        expect(await second.request('#u-1 create_user carol pw')).toEqual(['OK 0 user carol created']);
        await login(second, 'alice', 'first');
      });

      it('never answers a change as done for another user’s request id', async () => {
        const mallory = await open();
        await mallory.request('create_user mallory pw');
        await login(mallory, 'mallory', 'pw');
        expect(await mallory.request('#x1 create_group m1')).toEqual(['OK 0 group m1 created; you own it']);
        const bob = await open();
        await bob.request('create_user bob pw');
        await login(bob, 'bob', 'pw');
        expect(await bob.request('#x1 create_group team')).toEqual(['OK 0 group team created; you own it']);
        expect(await bob.request('#x1 create_group team')).toEqual([
          'OK 0 done (request #x1 had already been applied)',
        ]);
      });

      it('runs a refused change again when retried: nothing was applied the first time', async () => {
        const conn = await open();
        expect(await conn.request('#g-1 create_group g1')).toEqual(['ERR NOT_LOGGED_IN you must log in first']);
        await conn.request('create_user alice pw');
        await login(conn, 'alice', 'pw');
        expect(await conn.request('#g-1 create_group g1')).toEqual(['OK 0 group g1 created; you own it']);
      });

      it('does not take a read for a retried change: only changes are answered from the log', async () => {
        const conn = await open();
        await conn.request('#q-1 create_user alice pw');
        await login(conn, 'alice', 'pw');
        expect(await conn.request('#q-1 list_groups')).toEqual(['OK 0 no groups yet']);
      });
    });

    describe('sync lines', () => {
      it('refuses sync lines other than the handshake until the peer proved it is a tracker', async () => {
        const conn = await open();
        for (const line of [
          `${SYNC_MARKER} ${SyncCmd.Digest}`,
          `${SYNC_MARKER} ${SyncCmd.Fetch} - 10`,
          `${SYNC_MARKER} create_user a b`,
        ]) {
          expect(await conn.request(line)).toEqual([
            'ERR FORBIDDEN only a tracker of this network may send sync lines',
          ]);
        }
        expect(await conn.request(`${SYNC_MARKER} ${SyncCmd.Auth} ${'0'.repeat(64)}`)).toEqual([
          expect.stringMatching(/^ERR FORBIDDEN /),
        ]);
        expect(await conn.request(`${SYNC_MARKER} ${SyncCmd.Hello} 1 ${'d'.repeat(64)}`)).toEqual([
          expect.stringMatching(/^ERR FORBIDDEN /),
        ]);
      });

      /** A connection inside TLS, as a tracker's link (no HELLO): sync links need TLS. */
      const openTls = async () => {
        const s = await LineSocket.openTls(harness.port, { hello: false });
        sockets.push(s);
        return s;
      };

      /** Does the dialer's half of the handshake as tracker 2; returns the dialer's end of the link. */
      async function handshake(peer: LineSocket): Promise<SyncLinkSecurity> {
        const dialerNonce = newNonce();
        const [head, listenerNonce, proof] = await peer.request(`${SYNC_MARKER} ${SyncCmd.Hello} 2 ${dialerNonce}`, 3);
        expect(head).toBe('OK 2 prove it');
        const ekm = syncEkm(peer.socket as TLSSocket);
        const parties: LinkParties = { dialer: 2, listener: 1, dialerNonce, listenerNonce, ekm };
        expect(checkSyncProof(TEST_CLUSTER_KEY, 'listener', parties, proof)).toBe(true);
        const link = SyncLinkSecurity.create(TEST_CLUSTER_KEY, 'dialer', parties);
        const welcome = await peer.request(
          `${SYNC_MARKER} ${SyncCmd.Auth} ${syncProof(TEST_CLUSTER_KEY, 'dialer', parties)}`,
          2,
        );
        expect(opened(link, welcome)).toEqual(okReply('welcome, tracker 2', ['-']));
        return link;
      }

      /** Checks and strips the MAC of a reply read as raw lines. */
      function opened(link: SyncLinkSecurity, lines: string[]): Reply {
        const assembler = new ReplyAssembler();
        let reply: Reply | undefined;
        for (const line of lines) reply = assembler.push(line) ?? reply;
        return link.openReply(reply!);
      }

      it('lets a tracker with the key in, then takes its sealed changes and answers the digest, sealed', async () => {
        const peer = await openTls();
        const link = await handshake(peer);
        const ask = async (line: string, n = 1) => opened(link, await peer.request(link.sealRequest(line), n));
        expect(await ask(`${SYNC_MARKER} create_user bob plain$x - 2/1/1/1700000000000/-`)).toEqual(okReply('applied'));
        expect(auth.exists('bob')).toBe(true);
        expect(await ask(`${SYNC_MARKER} ${SyncCmd.Digest}`, 3)).toEqual(
          okReply('state digest', [sync.digest(), '2:1']),
        );
        // a tracker's lines are not client requests: no #id, no replication wait, and never FORBIDDEN
        expect(await ask(`${SYNC_MARKER} ${SyncCmd.Fetch} - 10`, 2)).toEqual(
          okReply('1 changes', ['create_user bob plain$x - 2/1/1/1700000000000/-']),
        );
      });

      it.each([
        ['without a MAC', (_link: SyncLinkSecurity, line: string) => line],
        [
          'with an altered byte',
          (link: SyncLinkSecurity, line: string) => link.sealRequest(line).replace('eve', 'eva'),
        ],
        [
          'out of order',
          (link: SyncLinkSecurity, line: string) => {
            link.sealRequest(`${SYNC_MARKER} ${SyncCmd.Digest}`); // a line the attacker dropped
            return link.sealRequest(line);
          },
        ],
      ])('closes the link on a line %s and applies nothing', async (_what, forge) => {
        const peer = await openTls();
        const link = await handshake(peer);
        peer.write(`${forge(link, `${SYNC_MARKER} create_user eve plain$x - 2/1/1/1700000000000/-`)}\n`);
        await expect(peer.readLines(1)).rejects.toThrow(/connection closed/);
        expect(auth.exists('eve')).toBe(false);
        expect(sync.versionVector()).toEqual(new Map());
      });
    });
  });
});
