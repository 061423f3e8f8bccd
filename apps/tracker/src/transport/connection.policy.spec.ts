import { DEFAULT_TRACKER_LIMITS } from '../config/tracker.config';
import {
  ConnectionLimits,
  ConnectionPolicy,
  ConnectionSlot,
  FORM_PROBE_BYTES,
  normalizeAddress,
  Refusal,
  refusalForm,
} from './connection.policy';

/** A connection's standing the test can change, as PeerContext changes on login or sync_auth. */
const standing = () => ({ user: undefined as string | undefined, trackerNumber: undefined as number | undefined });

function setup(limits: Partial<ConnectionLimits> = {}) {
  let now = 1_000_000;
  const policy = new ConnectionPolicy({ ...DEFAULT_TRACKER_LIMITS, ...limits }, () => now);
  const admit = (address = '10.0.0.1', peer = standing()) => policy.admit(address, peer);
  const slot = (address?: string, peer = standing()) => {
    const got = admit(address, peer);
    if (!(got instanceof ConnectionSlot)) throw new Error(`refused: ${got.reply.message}`);
    return got;
  };
  return { policy, admit, slot, advance: (ms: number) => (now += ms) };
}

const refusalCode = (got: ConnectionSlot | Refusal | undefined) =>
  got instanceof ConnectionSlot || got === undefined ? undefined : { code: got.reply.code, close: got.close };

describe(ConnectionPolicy.name, () => {
  describe('admission', () => {
    it('admits up to the per-address cap, then refuses that address with TOO_MANY_CONNECTIONS only', () => {
      const { admit, slot } = setup({ maxConnsPerIp: 3 });
      for (let i = 0; i < 3; i++) slot('10.0.0.1');
      expect(refusalCode(admit('10.0.0.1'))).toEqual({ code: 'TOO_MANY_CONNECTIONS', close: true });
      expect(admit('10.0.0.2')).toBeInstanceOf(ConnectionSlot);
    });

    it('counts ::ffff:-mapped and plain IPv4 as one address', () => {
      const { admit, slot } = setup({ maxConnsPerIp: 1 });
      slot('::ffff:10.0.0.1');
      expect(refusalCode(admit('10.0.0.1'))?.code).toBe('TOO_MANY_CONNECTIONS');
      expect(normalizeAddress(undefined)).toBe('?');
    });

    it('refuses everyone past the total cap, and admits again once a connection is released', () => {
      const { admit, slot, policy } = setup({ maxConns: 2 });
      const first = slot('10.0.0.1');
      slot('10.0.0.2');
      expect(refusalCode(admit('10.0.0.3'))?.code).toBe('TOO_MANY_CONNECTIONS');
      first.release();
      first.release(); // twice is harmless
      expect(policy.usage.connections).toBe(1);
      expect(admit('10.0.0.3')).toBeInstanceOf(ConnectionSlot);
    });

    it('frees the address slot on release', () => {
      const { admit, slot } = setup({ maxConnsPerIp: 1 });
      slot('10.0.0.1').release();
      expect(admit('10.0.0.1')).toBeInstanceOf(ConnectionSlot);
    });

    it('stops counting an authenticated tracker against its address, but still in the total', () => {
      const { admit, slot, policy } = setup({ maxConnsPerIp: 1, maxConns: 3 });
      const tracker = slot('10.0.0.9');
      tracker.authenticated();
      expect(admit('10.0.0.9')).toBeInstanceOf(ConnectionSlot);
      expect(policy.usage.connections).toBe(2);
      tracker.release(); // does not free the address slot a second time
      expect(refusalCode(admit('10.0.0.9'))?.code).toBe('TOO_MANY_CONNECTIONS');
    });
  });

  describe('idle connections', () => {
    it('reports a connection with no one logged in after the pre-login timeout, not before', () => {
      const { policy, slot, advance } = setup({ idleTimeoutLoginMs: 15_000, idleTimeoutMs: 3_600_000 });
      const s = slot();
      advance(14_999);
      expect(policy.idle()).toEqual([]);
      advance(1);
      expect(policy.idle()).toEqual([s]);
      expect(s.idleRefusal().reply).toEqual({
        ok: false,
        code: 'IDLE_TIMEOUT',
        message: 'closed after 15 s without a request before login',
      });
    });

    it('restarts the clock on each line or reply (touch)', () => {
      const { policy, slot, advance } = setup({ idleTimeoutLoginMs: 1000 });
      const s = slot();
      advance(900);
      s.touch();
      advance(900);
      expect(policy.idle()).toEqual([]);
      advance(100);
      expect(policy.idle()).toEqual([s]);
    });

    it('gives a logged-in connection the longer timeout, and never closes a tracker', () => {
      const { policy, slot, advance } = setup({ idleTimeoutLoginMs: 1000, idleTimeoutMs: 60_000 });
      const user = standing();
      const tracker = standing();
      const u = slot('10.0.0.1', user);
      slot('10.0.0.2', tracker);
      user.user = 'alice';
      tracker.trackerNumber = 2;
      advance(59_999);
      expect(policy.idle()).toEqual([]);
      advance(1);
      expect(policy.idle()).toEqual([u]);
      expect(u.idleRefusal().reply.message).toBe('closed after 60 s without a request');
      advance(10 * 86_400_000);
      expect(policy.idle()).toEqual([u]);
    });

    it('does not report a connection while one of its requests is being handled', () => {
      const { policy, slot, advance } = setup({ idleTimeoutLoginMs: 1000 });
      const s = slot();
      s.busy++;
      advance(5000);
      expect(policy.idle()).toEqual([]);
      s.busy--;
      expect(policy.idle()).toEqual([s]);
    });

    it('treats a timeout of 0 as never, and sweeps often enough for the shortest timeout', () => {
      const { policy, slot, advance } = setup({ idleTimeoutLoginMs: 0, idleTimeoutMs: 0 });
      slot();
      advance(365 * 86_400_000);
      expect(policy.idle()).toEqual([]);
      expect(policy.sweepEveryMs).toBe(0);
      expect(setup({ idleTimeoutLoginMs: 400 }).policy.sweepEveryMs).toBe(100);
      expect(setup({ idleTimeoutLoginMs: 15_000 }).policy.sweepEveryMs).toBe(1000);
      expect(setup({ idleTimeoutLoginMs: 10 }).policy.sweepEveryMs).toBe(50);
    });
  });

  describe('continuation lines', () => {
    it('are refused (NOT_LOGGED_IN, connection kept) before login, allowed after it or for a tracker', () => {
      const { slot } = setup();
      const peer = standing();
      const s = slot('10.0.0.1', peer);
      expect(refusalCode(s.mayContinue())).toEqual({ code: 'NOT_LOGGED_IN', close: false });
      peer.user = 'alice';
      expect(s.mayContinue()).toBeUndefined();
      const tracker = standing();
      tracker.trackerNumber = 3;
      expect(slot('10.0.0.2', tracker).mayContinue()).toBeUndefined();
    });

    it('are held up to the per-connection budget; past it the request is refused and the connection closed', () => {
      const { slot, policy } = setup({ maxBufferedBytes: 100 });
      const s = slot();
      expect(s.hold(60)).toBeUndefined();
      expect(s.hold(40)).toBeUndefined();
      expect(refusalCode(s.hold(1))).toEqual({ code: 'REQUEST_TOO_LARGE', close: true });
      expect(policy.usage.pendingBytes).toBe(100);
      s.dropHeld();
      expect(policy.usage.pendingBytes).toBe(0);
    });

    it('share one budget across connections; past it the request gets TRY_LATER and the connection stays', () => {
      const { slot, policy } = setup({ maxBufferedBytes: 100, maxPendingBytes: 150 });
      const a = slot('10.0.0.1');
      const b = slot('10.0.0.2');
      expect(a.hold(100)).toBeUndefined();
      expect(refusalCode(b.hold(60))).toEqual({ code: 'TRY_LATER', close: false });
      expect(b.hold(50)).toBeUndefined();
      a.release();
      expect(policy.usage.pendingBytes).toBe(50);
      expect(b.hold(50)).toBeUndefined();
    });

    it('counts a streamed upload’s digests against the global budget only, and gives them back', () => {
      const { slot, policy } = setup({ maxBufferedBytes: 10, maxPendingBytes: 1000 });
      const a = slot('10.0.0.1');
      expect(a.holdDigests(800)).toBeUndefined(); // past one connection's --max-buffered: that caps continuation lines
      expect(refusalCode(slot('10.0.0.2').holdDigests(201))).toEqual({ code: 'TRY_LATER', close: false });
      a.dropHeld();
      expect(policy.usage.pendingBytes).toBe(0);
      expect(a.holdDigests(800)).toBeUndefined();
      a.release();
      expect(policy.usage.pendingBytes).toBe(0);
    });

    it('lets an authenticated tracker hold more than one connection may, within the global budget', () => {
      const { slot } = setup({ maxBufferedBytes: 10, maxPendingBytes: 1000 });
      const tracker = standing();
      tracker.trackerNumber = 2;
      const s = slot('10.0.0.1', tracker);
      expect(s.hold(500)).toBeUndefined();
      expect(refusalCode(s.hold(501))?.code).toBe('TRY_LATER');
    });
  });

  it('reads one line and a bit ahead before login, at least 1 MiB after, always more than a line', () => {
    const { slot } = setup({ maxLineBytes: 65_536 });
    const peer = standing();
    const s = slot('10.0.0.1', peer);
    expect(s.readAheadBytes(65_536)).toBe(131_072);
    peer.user = 'alice';
    expect(s.readAheadBytes(65_536)).toBe(1024 * 1024);
    peer.trackerNumber = 2;
    expect(s.readAheadBytes(64 * 1024 * 1024)).toBe(64 * 1024 * 1024 + 65_536);
  });

  it('lets only a logged-in client stream an upload_file line, up to --max-upload-line', () => {
    const { slot } = setup({ maxUploadLineBytes: 1 << 27 });
    const peer = standing();
    const s = slot('10.0.0.1', peer);
    expect(s.maxUploadLineBytes()).toBe(0);
    peer.user = 'alice';
    expect(s.maxUploadLineBytes()).toBe(1 << 27);
  });

  it('gives a client the configured line limit and a tracker the one given for trackers', () => {
    const { slot } = setup({ maxLineBytes: 2048 });
    const tracker = standing();
    expect(slot('10.0.0.1').maxLineBytes(1 << 26)).toBe(2048);
    const t = slot('10.0.0.2', tracker);
    tracker.trackerNumber = 2;
    expect(t.maxLineBytes(1 << 26)).toBe(1 << 26);
  });
});

describe(refusalForm.name, () => {
  const form = (text: string, final = false) => refusalForm(Buffer.from(text, 'latin1'), final);

  it('is framed for a HELLO or a sync line, the seed form for anything else', () => {
    expect(form('HELLO ')).toBe('extended');
    expect(form('HELLO p2p-share/2\n')).toBe('extended');
    expect(form('123456789 sync_hello 2 ab')).toBe('extended');
    expect(form('login alice pw\n')).toBe('seed');
    expect(form('HELLX')).toBe('seed');
    expect(form('HELLO\n')).toBe('seed');
    expect(form('1234x')).toBe('seed');
    expect(form('\x00\xff')).toBe('seed');
  });

  it('waits while the bytes could still be either, unless nothing more will come', () => {
    for (const part of ['', 'H', 'HELL', 'HELLO', '1', '123456789']) {
      expect(form(part)).toBeUndefined();
      expect(form(part, true)).toBe('seed');
    }
  });

  it('never needs more than FORM_PROBE_BYTES bytes', () => {
    expect(FORM_PROBE_BYTES).toBe('123456789 '.length);
    expect(form('x'.repeat(FORM_PROBE_BYTES))).toBe('seed');
  });
});
