import { ErrReply } from '@app/protocol';
import { Admission, ConnectionWatch, SeederLimits, SeederPolicy, WatchedConnection } from './seeder.policy';
import { ManualClock } from './testing/manual-clock';

const limits: SeederLimits = {
  maxConnections: 10,
  maxConnectionsPerAddress: 3,
  requestTimeoutMs: 5_000,
  lineTimeoutMs: 2_000,
  idleTimeoutMs: 30_000,
};

class FakeConnection implements WatchedConnection {
  sent = 0;
  expired: ErrReply[] = [];
  sentBytes(): number {
    return this.sent;
  }
  expire(reply: ErrReply): void {
    this.expired.push(reply);
  }
}

/** A promise settled by hand, for work that lasts as long as a test says. */
function manualWork() {
  let finish!: () => void;
  const promise = new Promise<void>((resolve) => (finish = resolve));
  return { promise, finish };
}

/** Has the connection served one request. */
const served = (watch: ConnectionWatch) => watch.during(Promise.resolve(), () => true);

describe(SeederPolicy.name, () => {
  let clock: ManualClock;
  let policy: SeederPolicy;

  const admitted = (a: Admission): ConnectionWatch => {
    if (!a.ok) throw new Error(`refused: ${a.reply.code} ${a.reply.message}`);
    return a.watch;
  };
  const open = (address = '127.0.0.1', overrides: Partial<SeederLimits> = {}) => {
    if (Object.keys(overrides).length > 0) policy = new SeederPolicy({ ...limits, ...overrides }, clock);
    const conn = new FakeConnection();
    return { conn, watch: admitted(policy.admit(address, conn)) };
  };

  beforeEach(() => {
    clock = new ManualClock();
    policy = new SeederPolicy(limits, clock);
  });

  describe('admission', () => {
    it('admits up to the per-address cap, then refuses that address with TOO_MANY_CONNECTIONS', () => {
      const watches = [open('10.0.0.2'), open('10.0.0.2'), open('10.0.0.2')];
      const refused = policy.admit('10.0.0.2', new FakeConnection());
      expect(refused).toEqual({
        ok: false,
        reply: {
          ok: false,
          code: 'TOO_MANY_CONNECTIONS',
          message: '3 connections from 10.0.0.2 already (at most 3); try later',
        },
      });
      // another address is still welcome
      expect(policy.admit('10.0.0.3', new FakeConnection()).ok).toBe(true);
      expect(policy.connectionsFrom('10.0.0.2')).toBe(3);

      watches[0].watch.release();
      expect(policy.connectionsFrom('10.0.0.2')).toBe(2);
      expect(policy.admit('10.0.0.2', new FakeConnection()).ok).toBe(true);
    });

    it('counts an IPv4 address seen on a dual-stack socket as that address', () => {
      open('::ffff:10.0.0.2');
      open('10.0.0.2');
      open('::ffff:10.0.0.2');
      expect(policy.admit('10.0.0.2', new FakeConnection()).ok).toBe(false);
      expect(policy.connectionsFrom('::ffff:10.0.0.2')).toBe(3);
    });

    it('refuses anyone with BUSY once every slot is taken by a served connection, and admits again when one frees', async () => {
      const watches = Array.from({ length: 10 }, (_, i) => open(`10.0.1.${i}`).watch);
      for (const watch of watches) await served(watch);
      expect(policy.connectionCount).toBe(10);
      const refused = policy.admit('10.0.2.1', new FakeConnection());
      expect(refused.ok).toBe(false);
      expect(!refused.ok && refused.reply.code).toBe('BUSY');
      expect(!refused.ok && refused.reply.message).toBe('serving 10 connections already; try later');

      watches[4].release();
      watches[4].release(); // twice is harmless
      expect(policy.connectionCount).toBe(9);
      expect(policy.admit('10.0.2.1', new FakeConnection()).ok).toBe(true);
    });

    it('makes room for a newcomer by closing the oldest connection not served yet', async () => {
      const conns = Array.from({ length: 10 }, (_, i) => open(`10.0.1.${i}`));
      await served(conns[0].watch); // the oldest was served: it stays
      const work = manualWork();
      const answering = conns[1].watch.during(work.promise); // the next is being answered: it stays too
      const newcomer = policy.admit('10.0.2.1', new FakeConnection());
      expect(newcomer.ok).toBe(true);
      expect(policy.connectionCount).toBe(10);
      expect(conns.map((c) => c.conn.expired.length)).toEqual([0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
      expect(conns[2].conn.expired[0]).toEqual({
        ok: false,
        code: 'BUSY',
        message: 'every slot is taken; making room for a newer connection; try later',
      });
      expect(policy.connectionsFrom('10.0.1.2')).toBe(0);
      // the next newcomer takes the slot of the next oldest, and so on
      expect(policy.admit('10.0.2.2', new FakeConnection()).ok).toBe(true);
      expect(conns[3].conn.expired.map((r) => r.code)).toEqual(['BUSY']);
      work.finish();
      await answering;
    });
  });

  describe('deadlines', () => {
    it('closes a connection that has no request served within the request deadline', () => {
      const { conn } = open();
      clock.advance(4_999);
      expect(conn.expired).toEqual([]);
      clock.advance(1);
      expect(conn.expired).toEqual([
        { ok: false, code: 'IDLE_TIMEOUT', message: 'no request served within 5 s; closing' },
      ]);
      // the slot is free as soon as the deadline passes
      expect(policy.connectionCount).toBe(0);
      expect(clock.pending).toBe(0);
    });

    it('does not count requests answered with an error as served', async () => {
      const { conn, watch } = open();
      for (let i = 0; i < 4; i++) {
        clock.advance(1_000);
        watch.received(Buffer.from('GET_CHUNK 0 nope\n'));
        await watch.during(Promise.resolve('ERR NOT_SHARED'), (answer) => answer.startsWith('CHUNK')); // not served
      }
      clock.advance(1_000);
      expect(conn.expired.map((r) => r.code)).toEqual(['IDLE_TIMEOUT']);
    });

    it('lets a served connection stay past the request deadline, until it is idle for the idle timeout', async () => {
      const { conn, watch } = open();
      clock.advance(1_000);
      watch.received(Buffer.from('GET_CHUNK 0 x\n'));
      await watch.during(Promise.resolve('CHUNK'), () => true);
      clock.advance(29_999);
      expect(conn.expired).toEqual([]);
      // a new request: the idle clock starts again
      watch.received(Buffer.from('GET_CHUNK 1 x\n'));
      clock.advance(29_999);
      expect(conn.expired).toEqual([]);
      clock.advance(1);
      expect(conn.expired).toEqual([{ ok: false, code: 'IDLE_TIMEOUT', message: 'idle for 30 s; closing' }]);
    });

    it('counts bytes the peer takes from us as activity', async () => {
      const { conn, watch } = open();
      await served(watch);
      for (let i = 0; i < 8; i++) {
        clock.advance(20_000);
        conn.sent += 65_536; // a slow reader of a large chunk
      }
      expect(conn.expired).toEqual([]);
      // it stops reading: closed within two idle periods
      clock.advance(60_000);
      expect(conn.expired.map((r) => r.message)).toEqual(['idle for 30 s; closing']);
    });

    it('closes a peer that trickles a request line, served or not', async () => {
      const { conn, watch } = open();
      await served(watch);
      clock.advance(10_000);
      watch.received(Buffer.from('G'));
      for (let i = 0; i < 3; i++) {
        clock.advance(500);
        watch.received(Buffer.from('E'));
      }
      clock.advance(499);
      expect(conn.expired).toEqual([]);
      clock.advance(1);
      expect(conn.expired).toEqual([
        { ok: false, code: 'IDLE_TIMEOUT', message: 'request line not complete within 2 s; closing' },
      ]);
    });

    it('starts the line deadline afresh for each line', async () => {
      const { conn, watch } = open();
      await served(watch);
      for (let i = 0; i < 10; i++) {
        watch.received(Buffer.from('GET_CHU'));
        clock.advance(1_500);
        watch.received(Buffer.from(`NK ${i} x\nGET`)); // ends one line and starts the next
        clock.advance(1_500);
        watch.received(Buffer.from(`_CHUNK ${i} x\n`));
      }
      expect(conn.expired).toEqual([]);
    });

    it('runs no deadline while our side works on a request, and checks them once it is done', async () => {
      const { conn, watch } = open();
      watch.received(Buffer.from('GET_CHUNK 0 x\n'));
      const work = manualWork();
      const answered = watch.during(work.promise);
      clock.advance(60_000); // a long wait for the upload cap, say
      expect(conn.expired).toEqual([]);
      work.finish();
      await answered;
      // the request deadline passed meanwhile and nothing was served
      expect(conn.expired.map((r) => r.code)).toEqual(['IDLE_TIMEOUT']);
    });

    it('lets a connection whose request was served after a long wait go on', async () => {
      const { conn, watch } = open();
      watch.received(Buffer.from('GET_CHUNK 0 x\n'));
      const work = manualWork();
      const answered = watch.during(work.promise, () => true);
      clock.advance(60_000);
      work.finish();
      await answered;
      expect(watch.served).toBe(true);
      clock.advance(29_999);
      expect(conn.expired).toEqual([]);
    });

    it('stops watching a released connection', () => {
      const { conn, watch } = open();
      watch.release();
      expect(clock.pending).toBe(0);
      clock.advance(120_000);
      expect(conn.expired).toEqual([]);
    });

    it('runs no deadline set to 0', () => {
      const { conn, watch } = open('127.0.0.1', { requestTimeoutMs: 0, lineTimeoutMs: 0, idleTimeoutMs: 0 });
      watch.received(Buffer.from('GET'));
      clock.advance(24 * 3600_000);
      expect(conn.expired).toEqual([]);
      expect(clock.pending).toBe(0);
    });
  });
});
