import { HELLO_LINE, HELLO_REPLY, Reply } from '@app/protocol';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect, Socket } from 'node:net';
import { join } from 'node:path';
import {
  freePort,
  Proc,
  RawConn,
  removeDir,
  startClient,
  startTrackerReady,
  TRACKER_MAIN,
  trackerNetwork,
} from './support/processes';

/**
 * Attacks on a tracker's connection, buffering and login limits, against a
 * real tracker process. Attackers connect from 127.0.0.2 and up; a legitimate
 * client on 127.0.0.1 must be answered within a second throughout.
 */

/**
 * A raw attacker socket from `localAddress`: collects what it is sent, knows when it is closed. It opens with
 * `HELLO p2p-share/2` and waits for the answer so that what it is sent is framed; `text` is what came after the
 * `OK 0 p2p-share/2` (or everything, when the connection was refused).
 */
class Attacker {
  text = '';
  closed = false;
  greeted = false;
  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.text += d;
      if (!this.greeted && this.text.length >= HELLO_REPLY.length + 1) {
        this.greeted = true;
        if (this.text.startsWith(`${HELLO_REPLY}\n`)) this.text = this.text.slice(HELLO_REPLY.length + 1);
      }
    });
    socket.on('close', () => (this.closed = true));
    socket.on('error', () => undefined);
  }

  static open(port: number, localAddress: string): Promise<Attacker> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port, localAddress });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        socket.write(`${HELLO_LINE}\n`);
        const attacker = new Attacker(socket);
        // the answer to the HELLO (or the refusal and the close) is in before anything else is sent
        until(() => attacker.greeted || attacker.closed, 10_000, 'the answer to HELLO').then(
          () => resolve(attacker),
          reject,
        );
      });
    });
  }

  /** The first line it was sent (waits for it). */
  async firstLine(timeoutMs = 10_000): Promise<string> {
    await until(() => this.text.includes('\n') || this.closed, timeoutMs, 'a line to the attacker');
    return this.text.split('\n')[0];
  }
}

/** Polls `check` until it holds; fails after `timeoutMs`. */
async function until(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const rssMb = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
/** CPU time the process has used so far, in clock ticks (user + system, all threads). */
const cpuTicks = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(fields[11]) + Number(fields[12]);
};
const code = (r: Reply) => (r.ok ? 'OK' : r.code);

/** Sends `line` and returns the reply with how long it took. */
async function timed(conn: RawConn, line: string): Promise<{ reply: Reply; ms: number }> {
  const began = performance.now();
  const reply = await conn.request(line);
  return { reply, ms: performance.now() - began };
}

/**
 * Keeps asking `list_groups` on a logged-in connection from 127.0.0.1 until
 * stopped; the slowest answer is what the legitimate client saw.
 */
function legitimateProbe(conn: RawConn) {
  let stop = false;
  let slowest = 0;
  let answered = 0;
  const running = (async () => {
    while (!stop) {
      const { reply, ms } = await timed(conn, 'list_groups');
      if (!reply.ok) throw new Error(`legitimate request refused: ${reply.code} ${reply.message}`);
      slowest = Math.max(slowest, ms);
      answered++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    async finish() {
      stop = true;
      await running;
      return { slowest, answered };
    },
  };
}

describe('tracker limits under attack', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc | undefined;
  const attackers: Attacker[] = [];
  const conns: RawConn[] = [];

  async function startWith(flags: string[]): Promise<number> {
    net = await trackerNetwork(1);
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'data'), flags);
    return net.ports[0];
  }
  async function legitimate(port: number, user = 'alice'): Promise<RawConn> {
    const c = await RawConn.open(port);
    conns.push(c);
    const created = await c.request(`create_user ${user} pw-${user}`);
    if (!created.ok && created.code !== 'USER_EXISTS') throw new Error(created.message);
    expect(code(await c.request(`login ${user} pw-${user}`))).toBe('OK');
    return c;
  }
  const attack = async (port: number, from: string) => {
    const a = await Attacker.open(port, from);
    attackers.push(a);
    return a;
  };

  afterEach(async () => {
    attackers.splice(0).forEach((a) => a.socket.destroy());
    conns.splice(0).forEach((c) => c.close());
    await tracker?.stop('SIGKILL');
    tracker = undefined;
    removeDir(net.dir);
  });

  it('(a) sixteen connections streaming continuation lines before login are refused and hold no memory', async () => {
    const port = await startWith([]);
    const pid = tracker!.child.pid!;
    const user = await legitimate(port);
    const baseline = rssMb(pid);
    const probe = legitimateProbe(user);
    const line = Buffer.from('f'.repeat(65_000) + '\n');
    const command = `upload_file g /x 1 ${'a'.repeat(40)} @4096 18999\n`;
    let sentMb = 0;
    let peakMb = baseline;
    const sampler = setInterval(() => (peakMb = Math.max(peakMb, rssMb(pid))), 100);
    const ATTACK_MS = 8000;
    const attackEnds = Date.now() + ATTACK_MS;
    const streams = Array.from({ length: 16 }, async (_, i) => {
      const a = await attack(port, `127.0.0.${2 + i}`);
      a.socket.write(command);
      // as fast as the tracker reads: write again whenever the socket drains
      while (Date.now() < attackEnds && !a.closed) {
        sentMb += line.length / 1e6;
        if (!a.socket.write(line)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              a.socket.off('drain', done).off('close', done);
              resolve();
            };
            a.socket.on('drain', done).on('close', done);
            setTimeout(done, 500);
          });
        }
      }
      return a;
    });
    const attacked = await Promise.all(streams);
    clearInterval(sampler);
    const { slowest, answered } = await probe.finish();
    peakMb = Math.max(peakMb, rssMb(pid));

    expect(tracker!.running).toBe(true);
    for (const a of attacked) expect(await a.firstLine()).toMatch(/^ERR NOT_LOGGED_IN /);
    // the tracker read a lot and kept none of it: far more went in than it ever held
    expect(sentMb).toBeGreaterThan(300);
    // ~110 MB at rest; what it holds is a line and a bit per connection, the rest is read buffers
    // waiting for the garbage collector at gigabytes a second (before: ~300 MB per connection, then a crash)
    expect(peakMb).toBeLessThan(256);
    expect(answered).toBeGreaterThan(5);
    expect(slowest).toBeLessThan(1000);
    expect(code(await user.request('list_groups'))).toBe('OK');
    process.stdout.write(
      `(a) ${Math.round(sentMb)} MB sent by 16 attackers in ${ATTACK_MS / 1000} s; tracker RSS ${Math.round(baseline)} MB before, ${Math.round(peakMb)} MB at most; slowest legitimate answer ${Math.round(slowest)} ms\n`,
    );
  });

  it('(b) connections past the per-address cap, idle ones and a slowloris sender are refused or closed', async () => {
    const port = await startWith(['--max-conns-per-ip', '10', '--idle-timeout-login', '1500ms']);
    const user = await legitimate(port);
    const probe = legitimateProbe(user);

    const idle = await Promise.all(Array.from({ length: 10 }, () => attack(port, '127.0.0.2')));
    const beyond = await attack(port, '127.0.0.2');
    expect(await beyond.firstLine()).toBe('ERR TOO_MANY_CONNECTIONS at most 10 connections from 127.0.0.2');
    await until(() => beyond.closed, 5000, 'the refused connection to close');
    // another address is not affected by 127.0.0.2's cap
    const other = await attack(port, '127.0.0.3');
    expect(code(await timed(await RawConn.open(port), 'list_groups').then((t) => t.reply))).toBe('NOT_LOGGED_IN');

    const slow = await attack(port, '127.0.0.4');
    const opened = Date.now();
    const drip = setInterval(() => slow.socket.write('l'), 200); // never a whole line
    for (const a of [...idle, other, slow]) {
      expect(await a.firstLine(10_000)).toMatch(/^ERR IDLE_TIMEOUT closed after 1.5 s without a request before login$/);
      await until(() => a.closed, 5000, 'an idle connection to close');
    }
    clearInterval(drip);
    const lasted = Date.now() - opened;
    expect(lasted).toBeGreaterThanOrEqual(1400);
    expect(lasted).toBeLessThan(8000);

    const { slowest } = await probe.finish();
    expect(slowest).toBeLessThan(1000);
    // the logged-in connection has the long timeout: still open and served
    expect(code(await user.request('list_groups'))).toBe('OK');
    // 127.0.0.2's slots are free again
    const again = await attack(port, '127.0.0.2');
    again.socket.write('frobnicate\n');
    expect(await again.firstLine()).toMatch(/^ERR UNKNOWN_COMMAND /);
  });

  it('(c) thousands of idle connections from many addresses do not stop the legitimate client', async () => {
    const port = await startWith([]);
    const user = await legitimate(port);
    const probe = legitimateProbe(user);
    const PER_ADDRESS = 40;
    const held: Attacker[] = [];
    for (let host = 2; host <= 50; host++) {
      held.push(...(await Promise.all(Array.from({ length: PER_ADDRESS }, () => attack(port, `127.0.0.${host}`)))));
    }
    expect(held).toHaveLength(49 * PER_ADDRESS);
    // a fresh connection from 127.0.0.1 still gets in and logs in promptly
    const began = performance.now();
    const fresh = await RawConn.open(port);
    conns.push(fresh);
    expect(code(await fresh.request('create_user bob pw-bob'))).toBe('OK');
    expect(code(await fresh.request('login bob pw-bob'))).toBe('OK');
    expect(performance.now() - began).toBeLessThan(1000);
    const { slowest } = await probe.finish();
    expect(slowest).toBeLessThan(1000);
    expect(held.every((a) => !a.closed && a.text === '')).toBe(true);
    process.stdout.write(
      `(c) ${held.length} idle connections held; slowest legitimate answer ${Math.round(slowest)} ms\n`,
    );
  });

  it('(c) past the total cap new connections are refused, and those already in are still served', async () => {
    const port = await startWith(['--max-conns', '100']);
    const user = await legitimate(port);
    const held: Attacker[] = [];
    for (let host = 2; host <= 7; host++) {
      held.push(...(await Promise.all(Array.from({ length: 20 }, () => attack(port, `127.0.0.${host}`)))));
    }
    await until(() => held.filter((a) => a.closed).length === 21, 10_000, '21 refusals');
    const refused = held.filter((a) => a.closed);
    for (const a of refused)
      expect(a.text).toBe('ERR TOO_MANY_CONNECTIONS this tracker serves 100 connections at most\n');
    const { reply, ms } = await timed(user, 'list_groups');
    expect(code(reply)).toBe('OK');
    expect(ms).toBeLessThan(1000);
  });

  it('(d) guessing passwords is answered TRY_LATER without scrypt; the owner still logs in; one answer for all', async () => {
    const port = await startWith([]);
    const pid = tracker!.child.pid!;
    const owner = await RawConn.open(port);
    conns.push(owner);
    expect(code(await owner.request('create_user victim right-pw'))).toBe('OK');

    const guesser = await attack(port, '127.0.0.2');
    const answers: string[] = [];
    const ask = async (line: string) => {
      const before = guesser.text.length;
      guesser.socket.write(line + '\n');
      await until(() => guesser.text.indexOf('\n', before) >= 0, 10_000, 'an answer');
      const answer = guesser.text.slice(before, guesser.text.indexOf('\n', before));
      answers.push(answer);
      return answer;
    };
    const cpuBefore = cpuTicks(pid);
    for (let i = 0; i < 5; i++)
      expect(await ask(`login victim guess-${i}`)).toBe('ERR LOGIN_FAILED wrong user id or password');
    const cpuFailures = cpuTicks(pid) - cpuBefore;
    // 50 more guesses in one burst; a backoff that ran out meanwhile (1 s, then 2 s, ...) lets one through
    const began = performance.now();
    const before = guesser.text.length;
    guesser.socket.write(Array.from({ length: 50 }, (_, i) => `login victim guess-${5 + i}\n`).join(''));
    await until(() => guesser.text.slice(before).split('\n').length > 50, 30_000, '50 answers');
    const burst = guesser.text.slice(before).split('\n').slice(0, 50);
    const refused = burst.filter((l) => /^ERR TRY_LATER too many failed logins; try again in [1-9]\d* s$/.test(l));
    const checked = burst.filter((l) => l === 'ERR LOGIN_FAILED wrong user id or password');
    expect(refused.length + checked.length).toBe(50);
    expect(checked.length).toBeLessThanOrEqual(2);
    const guessMs = performance.now() - began;
    const cpuRefusals = cpuTicks(pid) - cpuBefore - cpuFailures;
    // 50 refusals cost the tracker less than 5 password checks did: no scrypt ran for them
    expect(cpuRefusals).toBeLessThan(cpuFailures);
    // even the right password waits on the guessing address
    expect(await ask('login victim right-pw')).toMatch(/^ERR TRY_LATER /);

    // the owner, from its own address, logs in at once
    const { reply, ms } = await timed(owner, 'login victim right-pw');
    expect(code(reply)).toBe('OK');
    expect(ms).toBeLessThan(1000);

    // unknown user and wrong password: the same bytes, in about the same time (fresh addresses, below the backoff)
    const samples: Record<'unknown' | 'wrong', { text: string; ms: number }[]> = { unknown: [], wrong: [] };
    for (let round = 0; round < 3; round++) {
      for (const [kind, line] of [
        ['unknown', 'login nobody-here guess'],
        ['wrong', 'login victim guess'],
      ] as const) {
        const a = await attack(port, `127.0.0.${10 + round}`);
        const t0 = performance.now();
        a.socket.write(line + '\n');
        await until(() => a.text.includes('\n'), 10_000, 'an answer');
        samples[kind].push({ text: a.text, ms: performance.now() - t0 });
      }
    }
    const texts = new Set([...samples.unknown, ...samples.wrong].map((s) => s.text));
    expect([...texts]).toEqual(['ERR LOGIN_FAILED wrong user id or password\n']);
    const median = (xs: { ms: number }[]) => xs.map((x) => x.ms).sort((a, b) => a - b)[1];
    const ratio = median(samples.unknown) / median(samples.wrong);
    expect(ratio).toBeGreaterThan(1 / 3);
    expect(ratio).toBeLessThan(3);
    process.stdout.write(
      `(d) 5 failures: ${cpuFailures} CPU ticks; 50 more guesses (${refused.length} TRY_LATER): ${cpuRefusals} ticks in ${Math.round(guessMs)} ms; owner login ${Math.round(ms)} ms; unknown/wrong time ratio ${ratio.toFixed(2)}\n`,
    );
  });

  it('(d) one address flooding create_user cannot fill the password-hashing queue for everyone', async () => {
    const port = await startWith(['--max-scrypt-per-ip', '2']);
    const owner = await RawConn.open(port);
    conns.push(owner);
    expect(code(await owner.request('create_user owner pw-owner'))).toBe('OK');
    // a first login also prepares the dummy hash unknown users are checked against
    expect(code(await owner.request('login owner pw-owner'))).toBe('OK');
    expect(code(await owner.request('logout'))).toBe('OK');
    const flood = await Promise.all(Array.from({ length: 30 }, () => attack(port, '127.0.0.2')));
    // each connection keeps one create_user in flight, 30 at once from one address
    let stop = false;
    const flooding = flood.map(async (a, i) => {
      for (let n = 0; !stop && !a.closed; n++) {
        const before = a.text.length;
        a.socket.write(`create_user f${i}x${n} pw\n`);
        await until(() => a.text.indexOf('\n', before) >= 0 || a.closed, 30_000, 'a flood answer');
      }
    });
    await until(
      () => flood.some((a) => a.text.includes('ERR TRY_LATER too many password checks')),
      30_000,
      'a refusal',
    );
    const { reply, ms } = await timed(owner, 'login owner pw-owner');
    stop = true;
    await Promise.all(flooding);
    expect(code(reply)).toBe('OK');
    expect(ms).toBeLessThan(1000);
    const answers = flood.flatMap((a) => a.text.split('\n').filter(Boolean));
    expect(answers.every((l) => /^(OK 0 user \S+ created|ERR TRY_LATER too many password checks)/.test(l))).toBe(true);
    process.stdout.write(
      `(d) create_user flood from one address: ${answers.filter((l) => l.startsWith('OK')).length} created, ${answers.filter((l) => l.startsWith('ERR')).length} TRY_LATER; owner login ${Math.round(ms)} ms\n`,
    );
  });

  it('fits the connection cap under the open-file limit, so the cap and not accept() is the first wall', async () => {
    net = await trackerNetwork(1);
    const args = [TRACKER_MAIN, net.infoFile, '1', '--data-dir', join(net.dir, 'data')];
    tracker = new Proc(
      spawn('bash', ['-c', 'ulimit -n 400 && exec "$0" "$@"', process.execPath, ...args], {
        stdio: ['ignore', 'pipe', 'pipe'],
      }),
    );
    await tracker.waitFor(/listening on/, 15_000);
    expect(tracker.stdout).toMatch(/open-file limit is 400: serving 272 connections at most, not 10000/);
    const held = await Promise.all(
      Array.from({ length: 6 }, (_, h) => h + 2).flatMap((host) =>
        Array.from({ length: 50 }, () => attack(net.ports[0], `127.0.0.${host}`)),
      ),
    );
    await until(() => held.filter((a) => a.closed).length === 300 - 272, 10_000, 'the refusals');
    expect(held.filter((a) => a.closed).every((a) => a.text.startsWith('ERR TOO_MANY_CONNECTIONS'))).toBe(true);
    expect(tracker.running).toBe(true);
  });

  it('our client is not cut off: idle before and after login, it reconnects and resumes without a word', async () => {
    // debug logs say when the tracker closes a connection for being idle
    net = await trackerNetwork(1);
    const flags = ['--idle-timeout-login', '1s', '--idle-timeout', '2s', '--data-dir', join(net.dir, 'data')];
    tracker = new Proc(
      spawn(process.execPath, [TRACKER_MAIN, net.infoFile, '1', ...flags], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TRACKER_LOG: 'debug' },
      }),
    );
    await tracker.waitFor(/listening on/, 15_000);
    const client = startClient(`127.0.0.1:${await freePort()}`, net.infoFile, ['--data-dir', join(net.dir, 'c')]);
    try {
      const closedIdle = (n: number) => new RegExp(`(closed: IDLE_TIMEOUT[\\s\\S]*){${n}}`);
      await tracker.waitFor(closedIdle(1), 15_000); // the client's connection, idle before login
      await client.run('create_user erin pw-erin', /user erin created/, 15_000);
      await client.run('login erin pw-erin', /logged in as erin/, 15_000);
      await tracker.waitFor(closedIdle(2), 15_000); // idle after login
      await client.run('create_group idlers', /group idlers created/, 15_000);
      await client.run('list_groups', /idlers owner=erin/, 15_000);
      expect(client.stdout).not.toMatch(/went away|session lost|error:/);
    } finally {
      await client.stop();
    }
  });
});
