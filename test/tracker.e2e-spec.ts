import { Reply } from '@app/protocol';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  eventually,
  Proc,
  RawConn,
  removeDir,
  startTrackerReady,
  TRACKER_MAIN,
  trackerNetwork,
} from './support/processes';

const okLines = (r: Reply) => {
  if (!r.ok) throw new Error(`expected OK, got ERR ${r.code} ${r.message}`);
  return r.lines;
};
const errCode = (r: Reply) => (r.ok ? `OK ${r.message}` : r.code);

describe('tracker process', () => {
  let net: Awaited<ReturnType<typeof trackerNetwork>>;
  let tracker: Proc;
  const conns: RawConn[] = [];
  const open = async () => {
    const c = await RawConn.open(net.ports[0]);
    conns.push(c);
    return c;
  };
  /** A fresh connection that logs in as `user`. */
  const as = async (user: string) => {
    const c = await open();
    expect((await c.request(`login ${user} pw-${user}`)).ok).toBe(true);
    return c;
  };

  beforeAll(async () => {
    net = await trackerNetwork(2);
    // these tests send many wrong passwords from one address on purpose: login backoff (tested in
    // security-limits) would answer most of them TRY_LATER, so it is turned off here
    tracker = await startTrackerReady(net.infoFile, 1, join(net.dir, 'data1'), ['--login-backoff-after', '1000000']);
    const c = await open();
    for (const u of ['alice', 'bob', 'carol']) expect((await c.request(`create_user ${u} pw-${u}`)).ok).toBe(true);
  });

  afterEach(() => {
    conns.splice(0).forEach((c) => c.close());
  });

  afterAll(async () => {
    await tracker.stop('SIGKILL');
    removeDir(net.dir);
  });

  /** After every bad input the tracker must still be up and answering. */
  afterEach(async () => {
    expect(tracker.running).toBe(true);
    const probe = await RawConn.open(net.ports[0]);
    expect(errCode(await probe.request('list_groups'))).toBe('NOT_LOGGED_IN');
    probe.close();
  });

  describe('bad input gets a clear error and changes nothing', () => {
    it.each([
      ['frobnicate', 'UNKNOWN_COMMAND'],
      ['create_user onlyone', 'BAD_ARGUMENTS'],
      ['login alice', 'BAD_ARGUMENTS'],
      ['login alice pw-alice extra', 'BAD_ARGUMENTS'],
      ['login alice wrong', 'LOGIN_FAILED'],
      ['login nobody pw', 'LOGIN_FAILED'],
      ['create_group g1', 'NOT_LOGGED_IN'],
      ['list_groups', 'NOT_LOGGED_IN'],
      ['create_user "bad id" pw', 'INVALID_ID'],
      ['create_user ' + 'x'.repeat(33) + ' pw', 'INVALID_ID'],
      ['create_user alice again', 'USER_EXISTS'],
      ['login "unterminated', 'BAD_SYNTAX'],
      ['123456789 create_user mallory pw', 'FORBIDDEN'],
    ])('%s -> %s', async (line, code) => {
      const c = await open();
      expect(errCode(await c.request(line))).toBe(code);
    });

    it('the reply is plain text a person can read', async () => {
      const c = await open();
      const reply = await c.request('login alice wrong');
      expect(reply).toEqual({ ok: false, code: 'LOGIN_FAILED', message: 'wrong user id or password' });
    });

    it('unknown group, non-member, non-owner and missing request are refused', async () => {
      const alice = await as('alice');
      const bob = await as('bob');
      expect((await alice.request('create_group g-owned')).ok).toBe(true);
      expect(errCode(await bob.request('join_group no-such-group'))).toBe('UNKNOWN_GROUP');
      expect(errCode(await bob.request('leave_group g-owned'))).toBe('NOT_MEMBER');
      expect((await bob.request('join_group g-owned')).ok).toBe(true);
      expect(errCode(await bob.request('join_group g-owned'))).toBe('REQUEST_PENDING');
      expect(errCode(await bob.request('list_requests g-owned'))).toBe('NOT_OWNER');
      expect(errCode(await bob.request('accept_request g-owned bob'))).toBe('NOT_OWNER');
      expect(errCode(await alice.request('accept_request g-owned carol'))).toBe('NO_SUCH_REQUEST');
      expect(errCode(await alice.request('join_group g-owned'))).toBe('ALREADY_MEMBER');
      expect(errCode(await alice.request('create_group g-owned'))).toBe('GROUP_EXISTS');
      // nothing above changed the group: still one member, bob's request still pending
      expect(okLines(await alice.request('list_requests g-owned'))).toEqual(['bob']);
      expect(okLines(await alice.request('list_groups'))).toContain('g-owned owner=alice members=1 you=owner');
    });

    it('a user logged in on one connection is refused on a second until the first goes', async () => {
      const first = await as('carol');
      const second = await open();
      expect(errCode(await second.request('login carol pw-carol'))).toBe('ALREADY_LOGGED_IN');
      expect(errCode(await first.request('login bob pw-bob'))).toBe('ALREADY_LOGGED_IN');
      first.close();
      await waitUntil(async () => (await second.request('login carol pw-carol')).ok);
      expect((await second.request('logout')).ok).toBe(true);
      expect(errCode(await second.request('list_groups'))).toBe('NOT_LOGGED_IN');
    });

    it('a 1 MB line is refused and the same connection goes on', async () => {
      const c = await open();
      c.write('create_user ' + 'a'.repeat(1024 * 1024) + ' pw\n');
      expect(errCode(await c.reply())).toBe('LINE_TOO_LONG');
      expect(errCode(await c.request('login alice wrong'))).toBe('LOGIN_FAILED');
    });

    it('binary garbage is refused without crashing anything', async () => {
      const c = await open();
      const garbage = Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256));
      c.write(Buffer.concat([garbage, Buffer.from('\n')]));
      // garbage holds several newlines: every piece gets an error reply, none succeeds
      const replies: Reply[] = [];
      const pieces = garbage.toString('latin1').split('\n').length;
      for (let i = 0; i < pieces; i++) {
        const r = await c.reply();
        replies.push(r);
      }
      expect(replies.every((r) => !r.ok)).toBe(true);
      expect(errCode(await c.request('login alice wrong'))).toBe('LOGIN_FAILED');
    });

    // The end of the stream ends the last line (pinned by the transport spec): the command runs and is answered.
    it('a client that half-closes mid-line has that last line run and answered', async () => {
      const c = await open();
      const d = await open();
      expect(errCode(await d.request('login halfway pw'))).toBe('LOGIN_FAILED');
      c.socket.end('create_user halfway pw');
      expect((await c.reply()).ok).toBe(true);
      expect((await d.request('login halfway pw')).ok).toBe(true);
    });

    it('a half-closed socket still gets its replies', async () => {
      const c = await open();
      c.socket.end('login alice wrong\nlogin bob wrong\n');
      expect(errCode(await c.reply())).toBe('LOGIN_FAILED');
      expect(errCode(await c.reply())).toBe('LOGIN_FAILED');
    });

    it('pipelined requests are answered in order', async () => {
      const c = await open();
      c.write(Array.from({ length: 60 }, (_, i) => (i % 2 ? 'login alice wrong' : 'frob')).join('\n') + '\n');
      for (let i = 0; i < 60; i++) expect(errCode(await c.reply())).toBe(i % 2 ? 'LOGIN_FAILED' : 'UNKNOWN_COMMAND');
    });
  });

  describe('argv handling', () => {
    const run = (...args: string[]) =>
      spawnSync(process.execPath, [TRACKER_MAIN, ...args], { encoding: 'utf8', timeout: 15_000 });

    it('refuses a missing tracker_info file with one line and status 2', () => {
      const r = run(join(net.dir, 'missing.txt'), '1');
      expect(r.status).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(/missing\.txt/);
    });

    it('names the file and line of a bad entry', () => {
      const bad = join(net.dir, 'bad.txt');
      writeFileSync(bad, '# trackers\n127.0.0.1:7000\nnot-an-address!\n');
      const r = run(bad, '1');
      expect(r.status).toBe(2);
      expect(r.stderr.trim()).toMatch(/bad\.txt:3: .*not-an-address!/);
    });

    it.each([['0'], ['3'], ['x']])('refuses tracker number %s', (n) => {
      const r = run(net.infoFile, n);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/out of range/);
    });

    it('prints usage for a wrong argument count', () => {
      const r = run(net.infoFile);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/^error: usage: tracker <tracker_info_file> <tracker_number>/);
    });
  });
});

const waitUntil = (check: () => boolean | Promise<boolean>, timeoutMs = 5_000) => eventually(check, timeoutMs);
