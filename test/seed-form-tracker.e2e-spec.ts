import { HELLO_LINE, HELLO_REPLY } from '@app/protocol';
import { Socket } from 'node:net';
import { join } from 'node:path';
import { Proc, RawConn, removeDir, startTrackerReady, trackerNetwork } from './support/processes';

/**
 * The tracker as a client written from README-seed.md sees it: a raw socket,
 * no HELLO, bare command lines, readable text back. Every answer here is read
 * up to a sentinel request pipelined behind it (an unknown command, whose one
 * `error:` line is known), so that a line too many or too few shows.
 */
class SeedConn {
  private buffer = '';
  closed = false;
  private sentinels = 0;
  private waiter: (() => void) | undefined;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (text: string) => {
      this.buffer += text;
      this.waiter?.();
    });
    socket.on('close', () => {
      this.closed = true;
      this.waiter?.();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, localAddress = '127.0.0.1'): Promise<SeedConn> {
    return new Promise((resolve, reject) => {
      const socket = new Socket();
      socket.once('error', reject);
      socket.connect({ port, host: '127.0.0.1', localAddress }, () => {
        socket.off('error', reject);
        resolve(new SeedConn(socket));
      });
    });
  }

  write(text: string): void {
    this.socket.write(text);
  }

  /** Waits until `test` holds for what has arrived (or the connection closed); fails after `timeoutMs`. */
  async until(test: (text: string) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!test(this.buffer)) {
      if (this.closed) throw new Error(`closed; got ${JSON.stringify(this.buffer.slice(0, 300))}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; got ${JSON.stringify(this.buffer.slice(0, 300))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, left);
        function done() {
          clearTimeout(timer);
          resolve();
        }
        this.waiter = done;
      });
      this.waiter = undefined;
    }
  }

  /** Sends `line` and returns every line of its answer: all that came before the sentinel's. */
  async ask(line: string, timeoutMs?: number): Promise<string[]> {
    const sentinel = `sentinel${++this.sentinels}`;
    const end = `error: unknown command '${sentinel}'\n`;
    this.write(`${line}\n${sentinel}\n`);
    await this.until((text) => text.includes(end), timeoutMs);
    const at = this.buffer.indexOf(end);
    const answer = this.buffer.slice(0, at);
    this.buffer = this.buffer.slice(at + end.length);
    expect(answer.endsWith('\n')).toBe(true);
    return answer.split('\n').slice(0, -1);
  }

  /** Everything received so far and not yet taken. */
  get pending(): string {
    return this.buffer;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Nothing of the extended form's framing: no `OK <n>` header, no `ERR <CODE>`. */
const FRAMING = /^(OK \d+|ERR [A-Z_]+)( |$)/;
const HASH = (n: number) => n.toString(16).padStart(40, '0');

describe('tracker in the seed form (no HELLO)', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const conns: (SeedConn | RawConn)[] = [];
  const seed = async (localAddress?: string) => {
    const c = await SeedConn.open(net.ports[0], localAddress);
    conns.push(c);
    return c;
  };

  beforeAll(async () => {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'data'), [
      '--max-conns-per-ip',
      '3',
      '--idle-timeout-login',
      '2s',
    ]);
  });

  afterEach(() => {
    conns.splice(0).forEach((c) => c.close());
  });

  afterAll(async () => {
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  it('answers every command of the seed README in readable text, errors as error: lines', async () => {
    const alice = await seed();
    const all: string[] = [];
    const ask = async (line: string) => {
      const answer = await alice.ask(line);
      all.push(...answer);
      return answer;
    };
    expect(await ask('create_user alice pw-a')).toEqual(['user alice created']);
    expect(await ask('create_user alice pw-a')).toEqual([expect.stringMatching(/^error: .*alice/)]);
    expect(await ask('list_groups')).toEqual([expect.stringMatching(/^error: .*log in/)]);
    expect(await ask('login alice wrong')).toEqual(['error: wrong user id or password']);
    // no session_token: or capability_key: line: those are extensions
    expect(await ask('login alice pw-a')).toEqual(['logged in as alice']);
    expect(await ask('create_group team')).toEqual(['group team created; you own it']);
    expect(await ask('list_groups')).toEqual(['1 group', 'team owner=alice members=1 you=owner']);
    expect(await ask('list_requests team')).toEqual(['no pending requests for group team']);

    const bob = await seed();
    expect(await bob.ask('create_user bob pw-b')).toEqual(['user bob created']);
    expect(await bob.ask('login bob pw-b')).toEqual(['logged in as bob']);
    expect(await bob.ask('join_group team')).toEqual(['asked to join group team; waiting for the owner to accept']);
    expect(await ask('list_requests team')).toEqual(['1 pending request for group team', 'bob']);
    expect(await ask('accept_request team bob')).toEqual(['bob is now a member of group team']);

    // a seed client's upload: every hash inline, a bare port
    const chunks = [HASH(1), HASH(2), HASH(3)];
    const upload = `upload_file team /home/alice/report.pdf 1048577 ${HASH(9)} ${chunks.join(',')} 7001`;
    expect(await ask(upload)).toEqual(['shared report.pdf in group team (3 chunks)']);
    expect(await ask('list_files team')).toEqual(['1 file in group team', 'report.pdf size=1048577 seeders=1']);

    const meta = await bob.ask('download_file team report.pdf /tmp/out.pdf');
    expect(meta.map((l) => l.slice(0, l.indexOf(':') + 1))).toEqual([
      'file_name:',
      'file_size:',
      'file_hash:',
      'chunk_hashes:',
      'seeders:',
      'seeder_ports:',
      'seeder_file_paths:',
    ]);
    expect(meta.slice(0, 6)).toEqual([
      'file_name:report.pdf',
      'file_size:1048577',
      `file_hash:${HASH(9)}`,
      `chunk_hashes:${chunks.join(',')}`,
      'seeders:alice',
      'seeder_ports:7001',
    ]);
    expect(meta[6].slice('seeder_file_paths:'.length).split(',')).toHaveLength(1);
    // without the destination too, as the tracker command of the README has it
    expect(await bob.ask('download_file team report.pdf')).toHaveLength(7);
    expect(await bob.ask('download_file team nothing.bin')).toEqual([expect.stringMatching(/^error: /)]);

    expect(await bob.ask('new_seeder team report.pdf /home/bob/report.pdf 7002')).toEqual([
      'now seeding report.pdf in group team',
    ]);
    expect(await bob.ask('stop_share team report.pdf')).toEqual(['stopped sharing report.pdf in group team']);
    expect(await bob.ask('leave_group team')).toEqual(['left group team']);
    expect(await bob.ask('logout')).toEqual(['bob logged out']);
    expect(await ask('stop_share team report.pdf')).toEqual([
      'stopped sharing report.pdf in group team; nobody else seeds it, so it is no longer listed',
    ]);
    expect(await ask('list_files team')).toEqual(['no files in group team']);
    expect(await ask('leave_group team')).toEqual(['left group team; it had no members left and was deleted']);
    expect(await ask('frobnicate x')).toEqual(["error: unknown command 'frobnicate'"]);
    expect(await ask('logout')).toEqual(['alice logged out']);

    expect(all.filter((l) => FRAMING.test(l))).toEqual([]);
    expect(all.filter((l) => /^(session_token|capability_key|seeder_hosts|seeder_protocols):/.test(l))).toEqual([]);
  });

  it('takes a request id and @N as what they are in the seed form: an unknown command and a bad list', async () => {
    const c = await seed();
    expect(await c.ask('create_user carol pw-c')).toEqual(['user carol created']);
    expect(await c.ask('#1 login carol pw-c')).toEqual(["error: unknown command '#1'"]);
    expect(await c.ask('login carol pw-c')).toEqual(['logged in as carol']);
    expect(await c.ask('create_group cg')).toEqual(['group cg created; you own it']);
    // the line after an @2 upload is a command of its own, not a continuation line
    const answer = await c.ask(`upload_file cg /tmp/x.bin 10 ${HASH(5)} @1 7001\nlist_groups`);
    expect(answer).toEqual([expect.stringMatching(/^error: /), '1 group', 'cg owner=carol members=1 you=owner']);
  });

  it('honours HELLO only as the first line: later it is an unknown command and the replies stay text', async () => {
    const c = await seed();
    expect(await c.ask('create_user dave pw-d')).toEqual(['user dave created']);
    expect(await c.ask(HELLO_LINE)).toEqual(["error: unknown command 'HELLO'"]);
    expect(await c.ask('login dave pw-d')).toEqual(['logged in as dave']);
    expect(await c.ask('logout')).toEqual(['dave logged out']);

    // and as the first line it switches the connection to the extended form
    const framed = await seed();
    framed.write(`${HELLO_LINE}\n#7 login dave pw-d\n`);
    await framed.until((t) => t.split('\n').length > 4);
    const lines = framed.pending.split('\n');
    expect(lines.slice(0, 2)).toEqual([HELLO_REPLY, 'OK 2 logged in as dave']);
    expect(lines[2]).toMatch(/^session_token:[0-9a-f]{64}$/);
    expect(lines[3]).toMatch(/^capability_key:/);
  });

  it('answers sync lines framed, and refuses them without the network key', async () => {
    const c = await seed();
    expect(await c.ask('123456789 sync_fetch - 0')).toEqual([
      'ERR FORBIDDEN only a tracker of this network may send sync lines',
    ]);
    expect(await c.ask('123456789 create_user mallory x')).toEqual([
      'ERR FORBIDDEN only a tracker of this network may send sync lines',
    ]);
    expect(await c.ask('login mallory x')).toEqual(['error: wrong user id or password']);
  });

  it('refuses a connection past the per-address cap in the form its first line asks for', async () => {
    const from = '127.0.0.2';
    const held = [await seed(from), await seed(from), await seed(from)];
    // the held connections are admitted: each answers a request
    for (const h of held) expect(await h.ask('list_groups')).toEqual([expect.stringMatching(/^error: .*log in/)]);

    const seedForm = await seed(from);
    seedForm.write('create_user eve pw\n');
    await seedForm.until((t) => t.includes('\n'));
    expect(seedForm.pending).toBe(`error: at most 3 connections from ${from}\n`);

    const extended = await seed(from);
    extended.write(`${HELLO_LINE}\n`);
    await extended.until((t) => t.includes('\n'));
    expect(extended.pending).toBe(`ERR TOO_MANY_CONNECTIONS at most 3 connections from ${from}\n`);

    // a connection that says nothing is told in the seed form after a second
    const silent = await seed(from);
    const began = Date.now();
    await silent.until((t) => t.includes('\n'), 10_000);
    expect(Date.now() - began).toBeGreaterThanOrEqual(900);
    expect(silent.pending).toBe(`error: at most 3 connections from ${from}\n`);
    for (const refused of [seedForm, extended, silent])
      await refused.until(() => refused.closed).catch(() => undefined);
    expect([seedForm, extended, silent].every((r) => r.closed)).toBe(true);
  });

  it('closes an idle connection with a notice in its form', async () => {
    const quiet = await seed('127.0.0.3');
    const framed = await RawConn.open(net.ports[0], '127.0.0.3');
    conns.push(framed);
    await quiet.until((t) => t.includes('\n'), 15_000);
    expect(quiet.pending).toBe('error: closed after 2 s without a request before login\n');
    const notice = await framed.reply(15_000);
    expect(notice).toEqual({
      ok: false,
      code: 'IDLE_TIMEOUT',
      message: 'closed after 2 s without a request before login',
    });
  });
});
