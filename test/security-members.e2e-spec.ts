import { FrameDecoder, HELLO_LINE, HELLO_REPLY, OkReply, PROTOCOL_NAME, Reply, ReplyAssembler } from '@app/protocol';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer, Server, Socket } from 'node:net';
import { join } from 'node:path';
import {
  eventually,
  freePort,
  Proc,
  removeDir,
  sleep,
  startClient,
  startTracker,
  startTrackerReady,
  trackerNetwork,
} from './support/processes';

/** Bytes a terminal acts on or that reorder or hide text, as the client's stdout would carry them. */
const RAW_CONTROL = /[\x00-\x09\x0b-\x1f\x7f\u0080-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff]/;
const modeOf = (path: string) => statSync(path).mode & 0o777;
const sha1Of = (n: number) => n.toString(16).padStart(40, '0');

/** A protocol connection from a chosen loopback address, as a member's own script would open. */
class LineConn {
  private readonly decoder = new FrameDecoder(16 * 1024 * 1024);
  private readonly assembler = new ReplyAssembler();
  private readonly replies: Reply[] = [];
  private closed = false;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.decoder.push(chunk);
      for (let f = this.decoder.next(); f; f = this.decoder.next()) {
        if (f.type !== 'line') continue;
        const reply = this.assembler.push(f.line);
        if (reply) this.replies.push(reply);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  /** Connects and says `HELLO p2p-share/2` first: replies are framed from then on. */
  static async open(port: number, localAddress = '127.0.0.1'): Promise<LineConn> {
    const conn = await new Promise<LineConn>((resolve, reject) => {
      const s = new Socket();
      s.once('error', reject);
      s.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(new LineConn(s)));
    });
    const hello = await conn.must(HELLO_LINE);
    if (hello.message !== PROTOCOL_NAME) throw new Error(`HELLO answered with ${hello.message}`);
    return conn;
  }

  async request(line: string, timeoutMs = 10_000): Promise<Reply> {
    this.socket.write(line + '\n');
    const deadline = Date.now() + timeoutMs;
    while (this.replies.length === 0) {
      if (this.closed) throw new Error(`connection closed before the reply to ${line}`);
      if (Date.now() > deadline) throw new Error(`no reply to ${line}`);
      await sleep(10);
    }
    return this.replies.shift()!;
  }

  async must(line: string): Promise<OkReply> {
    const reply = await this.request(line);
    if (!reply.ok) throw new Error(`${line} -> ERR ${reply.code} ${reply.message}`);
    return reply;
  }

  close(): void {
    this.socket.destroy();
  }
}

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 15_000) => eventually(check, timeoutMs);

/** A legitimate member's request from 127.0.0.1 is answered within a second (generous for a loaded machine). */
async function answeredPromptly(conn: LineConn): Promise<void> {
  const started = Date.now();
  const reply = await conn.request('list_groups', 5_000);
  expect(reply.ok).toBe(true);
  expect(Date.now() - started).toBeLessThan(1_000);
}

describe('members cannot hurt each other', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  let trackerPort: number;
  let carol: Proc;
  let carolDir: string;
  let mallory: LineConn;
  let legit: LineConn;
  const servers: Server[] = [];

  beforeAll(async () => {
    net = await trackerNetwork(1);
    trackerPort = net.ports[0];
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    // mallory is a member who scripts the protocol from 127.0.0.2; carol runs the real client
    mallory = await LineConn.open(trackerPort, '127.0.0.2');
    await mallory.must('create_user mallory pw-m');
    await mallory.must('login mallory pw-m');
    await mallory.must('create_group team');
    carolDir = join(net.dir, 'carol');
    mkdirSync(carolDir);
    carol = startClient(
      `127.0.0.1:${await freePort()}`,
      net.infoFile,
      ['--data-dir', join(carolDir, '.state')],
      carolDir,
    );
    await carol.run('create_user carol pw-c', /created/);
    await carol.run('login carol pw-c', /logged in/);
    await carol.run('join_group team', /asked to join/);
    await mallory.must('accept_request team carol');
    legit = await LineConn.open(trackerPort, '127.0.0.1');
    await legit.must('create_user dave pw-d');
    await legit.must('login dave pw-d');
  }, 60_000);

  afterAll(async () => {
    mallory?.close();
    legit?.close();
    for (const s of servers) s.close();
    await carol?.stop('SIGKILL');
    await tracker?.stop('SIGKILL');
    if (net) removeDir(net.dir);
  });

  it('refuses a file named with a right-to-left override in the client, before hashing, and registers nothing', async () => {
    const name = 'invoice\u202efdp.exe';
    writeFileSync(join(carolDir, name), 'MZ not really a pdf');
    const answer = await carol.run(`upload_file team "${name}"`, /^error: .*$/m);
    expect(answer).toMatch(
      /^error: cannot share invoice\\u\{202e\}fdp\.exe: a file name cannot contain control, bidi or invisible format characters \(it has \\u\{202e\}\); rename the file first$/m,
    );
    expect(answer).not.toContain('\u202e');
    expect(await carol.run('list_files team', /no files in group team/)).toMatch(/no files in group team/);
  });

  it.each([
    ['a right-to-left override', '/m/invoice\u202efdp.exe'],
    ['a C1 control', '/m/report\u009b31m.pdf'],
    ['a bidi isolate', '/m/\u2066report.pdf'],
    ['a zero-width space', '/m/pay\u200bpal.pdf'],
    ['a byte order mark', '/m/\ufeffreport.pdf'],
  ])('refuses a raw upload_file whose name holds %s (INVALID_NAME) and registers nothing', async (_, path) => {
    const reply = await mallory.request(`upload_file team "${path}" 1 ${sha1Of(1)} ${sha1Of(2)} 7000`);
    expect(reply).toMatchObject({ ok: false, code: 'INVALID_NAME' });
    expect((reply as { message: string }).message).toMatch(/file name cannot contain control, bidi or invisible/);
    expect((await mallory.must('list_files team')).lines).toEqual([]);
    await answeredPromptly(legit);
  });

  it('lists a seeder at its own connection host and its port, never at a typed IP or the tracker itself', async () => {
    // typed: the tracker's own address; the connection comes from 127.0.0.2, so only the port is taken
    await mallory.must(`upload_file team /m/one.bin 1 ${sha1Of(3)} ${sha1Of(4)} 127.0.0.1:${trackerPort}`);
    let lines = (await mallory.must('download_file team one.bin')).lines;
    expect(lines).toContain('seeders:mallory');
    expect(lines).toContain(`seeder_ports:${trackerPort}`);
    expect(lines).toContain('seeder_hosts:127.0.0.2');

    // typed: some other machine; listed at the connection's host
    const other = await LineConn.open(trackerPort, '127.0.0.3');
    try {
      await other.must('create_user oscar pw-o');
      await other.must('login oscar pw-o');
      await other.must('join_group team');
      await mallory.must('accept_request team oscar');
      await other.must(`new_seeder team one.bin /o/one.bin 10.9.9.9:7777`);
      lines = (await mallory.must('download_file team one.bin')).lines;
      expect(lines).toContain('seeders:mallory,oscar');
      expect(lines).toContain(`seeder_ports:${trackerPort},7777`);
      expect(lines).toContain('seeder_hosts:127.0.0.2,127.0.0.3');
    } finally {
      other.close();
    }

    // from the tracker's own host, the tracker's port is the tracker: refused, for upload_file and new_seeder
    const local = await LineConn.open(trackerPort, '127.0.0.1');
    try {
      await local.must('create_user tom pw-t');
      await local.must('login tom pw-t');
      await local.must('join_group team');
      await mallory.must('accept_request team tom');
      for (const myPort of [String(trackerPort), `127.0.0.1:${trackerPort}`, `10.1.1.1:${trackerPort}`]) {
        const up = await local.request(`upload_file team /t/two.bin 1 ${sha1Of(5)} ${sha1Of(6)} ${myPort}`);
        expect(up).toMatchObject({ ok: false, code: 'BAD_ARGUMENTS' });
        expect((up as { message: string }).message).toContain(`127.0.0.1:${trackerPort} is where a tracker`);
        const seed = await local.request(`new_seeder team one.bin /t/one.bin ${myPort}`);
        expect(seed).toMatchObject({ ok: false, code: 'BAD_ARGUMENTS' });
      }
      for (const myPort of ['0', '65536', '127.0.0.1:0', 'nope']) {
        expect(await local.request(`new_seeder team one.bin /t/one.bin ${myPort}`)).toMatchObject({
          ok: false,
          code: 'BAD_ARGUMENTS',
        });
      }
    } finally {
      local.close();
    }
    const meta = (await mallory.must('download_file team one.bin')).lines.join('\n');
    expect(meta).not.toMatch(/tom/);
    // oscar's session is over, so only mallory is online; tom was never listed
    expect(meta).toMatch(/^seeders:mallory\nseeder_ports:\d+\n.*\nseeder_hosts:127\.0\.0\.2$/m);
    await answeredPromptly(legit);
  }, 60_000);

  it('never lets a seeder’s escape sequences or bidi overrides reach the downloader’s terminal', async () => {
    const hostile = Buffer.from('\x1b[2J\x1b[H\x1b]0;owned\x07\u202eexe.pdf \x9b31m\r\n', 'utf8');
    // it answers our HELLO as ours do, then the request with the hostile bytes where a chunk header belongs
    const server = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write(`${HELLO_REPLY}\n`);
        socket.once('data', () => socket.end(hostile));
      });
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
    const seederPort = (server.address() as { port: number }).port;
    await mallory.must(`upload_file team /m/evil.bin 10 ${sha1Of(7)} ${sha1Of(8)} ${seederPort}`);
    const before = carol.stdout.length;
    await carol.run('download_file team evil.bin .', /downloading evil\.bin/);
    const failed = await carol.waitFor(/^error: download of evil\.bin failed: .*$/m, 30_000);
    const printed = Buffer.from(carol.stdout.slice(before), 'utf8');
    expect(printed.includes(0x1b)).toBe(false);
    expect(printed.includes(Buffer.from('\u202e', 'utf8'))).toBe(false);
    expect(printed.includes(Buffer.from('\u009b', 'utf8'))).toBe(false);
    expect(RAW_CONTROL.test(carol.stdout.replace(/\n/g, ''))).toBe(false);
    expect(failed).toContain('sent a malformed reply ("\\x1b[2J\\x1b[H\\x1b]0;owned\\x07\\u{202e}exe.pd...")');
    expect(await carol.run('show_downloads', /\[F\] \[team\] evil\.bin/)).not.toMatch(RAW_CONTROL);
    expect(existsSync(join(carolDir, 'evil.bin'))).toBe(false);

    // one that answers the HELLO itself with them is taken for a seed-form seeder: its bytes are chunk data, checked
    // by their SHA-1 and never shown
    const seedLike = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => socket.end(hostile));
    });
    servers.push(seedLike);
    await new Promise<void>((resolve) => seedLike.listen(0, '127.0.0.2', resolve));
    const seedLikePort = (seedLike.address() as { port: number }).port;
    await mallory.must(`upload_file team /m/evil2.bin 10 ${sha1Of(7)} ${sha1Of(8)} ${seedLikePort}`);
    const before2 = carol.stdout.length;
    await carol.run('download_file team evil2.bin .', /downloading evil2\.bin/);
    const failed2 = await carol.waitFor(/^error: download of evil2\.bin failed: .*$/m, 30_000);
    expect(failed2).toMatch(/corrupt/);
    const printed2 = Buffer.from(carol.stdout.slice(before2), 'utf8');
    expect(printed2.includes(0x1b)).toBe(false);
    expect(RAW_CONTROL.test(carol.stdout.replace(/\n/g, ''))).toBe(false);
    expect(existsSync(join(carolDir, 'evil2.bin'))).toBe(false);
    await answeredPromptly(legit);
  }, 60_000);
});

describe('files at rest', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  const procs: Proc[] = [];
  beforeEach(async () => {
    net = await trackerNetwork(1);
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.stop('SIGKILL')));
    removeDir(net.dir);
  });

  it('keeps the tracker data folder 0700, tracker.db, -wal, -shm and the key file 0600, also after a restart', async () => {
    const dataDir = join(net.dir, 'tracker-data');
    const keyFile = net.infoFile.replace(/\.txt$/, '.key');
    const check = () => {
      expect(modeOf(dataDir)).toBe(0o700);
      for (const f of ['tracker.db', 'tracker.db-wal', 'tracker.db-shm']) {
        expect([f, modeOf(join(dataDir, f))]).toEqual([f, 0o600]);
      }
      expect(modeOf(keyFile)).toBe(0o600);
    };
    for (const round of [1, 2]) {
      const tracker = await startTrackerReady(net.infoFile, 1, dataDir);
      procs.push(tracker);
      const conn = await LineConn.open(net.ports[0]);
      await conn.must(`create_user u${round} pw`);
      conn.close();
      await waitUntil(() => existsSync(join(dataDir, 'tracker.db-wal')) && existsSync(join(dataDir, 'tracker.db-shm')));
      check();
      await tracker.stop('SIGKILL');
    }
  }, 60_000);

  it('keeps the client data folder 0700 and shares.json 0600 after an upload', async () => {
    const tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'tracker-data'));
    procs.push(tracker);
    const state = join(net.dir, 'client-state');
    writeFileSync(join(net.dir, 'a.txt'), 'hello');
    const client = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, ['--data-dir', state]);
    procs.push(client);
    await client.run('create_user alice pw', /created/);
    await client.run('login alice pw', /logged in/);
    await client.run('create_group g', /created/);
    await client.run(`upload_file g ${join(net.dir, 'a.txt')}`, /shared a\.txt|already shared/);
    await waitUntil(() => existsSync(join(state, 'shares.json')));
    expect(modeOf(state)).toBe(0o700);
    expect(modeOf(join(state, 'shares.json'))).toBe(0o600);
    expect(JSON.parse(readFileSync(join(state, 'shares.json'), 'utf8'))).toMatchObject({ version: 1 });
  }, 60_000);

  it.each(['644', '640', '606'])(
    'refuses to start with a key file of mode %s: exit 2, one line naming the fix',
    async (octal) => {
      const mode = parseInt(octal, 8);
      const keyFile = join(net.dir, 'net.key');
      writeFileSync(keyFile, `${'ab'.repeat(32)}\n`);
      chmodSync(keyFile, mode);
      const tracker = startTracker(net.infoFile, 1, join(net.dir, 'tracker-data'), ['--key-file', keyFile]);
      procs.push(tracker);
      const { code } = await tracker.exited;
      expect(code).toBe(2);
      expect(tracker.stderr).toBe(
        `error: key file ${keyFile} is readable or writable by group or others (mode 0${mode.toString(8)}); it holds the network's secret: run chmod 600 ${keyFile}\n`,
      );
      expect(existsSync(join(net.dir, 'tracker-data'))).toBe(false);
      chmodSync(keyFile, 0o600);
      const again = startTracker(net.infoFile, 1, join(net.dir, 'tracker-data'), ['--key-file', keyFile]);
      procs.push(again);
      await again.waitFor(/listening on/, 15_000);
    },
  );
});
