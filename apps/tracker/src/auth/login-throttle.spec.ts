import { LoginThrottle } from './login-throttle';

function setup(after = 3, maxMs = 300_000) {
  let now = 5_000_000;
  const throttle = new LoginThrottle(
    { loginBackoffAfter: after, loginBackoffMaxMs: maxMs, maxScryptPerIp: 2 },
    () => now,
  );
  return { throttle, advance: (ms: number) => (now += ms) };
}

describe(LoginThrottle.name, () => {
  it('lets an address try freely until the n-th failure, then makes it wait 1 s, 2 s, 4 s ... up to the cap', () => {
    const { throttle, advance } = setup(3, 5000);
    for (let i = 0; i < 2; i++) throttle.failed('10.0.0.2', 'alice');
    expect(throttle.waitMs('10.0.0.2', 'alice')).toBe(0);
    const waits: number[] = [];
    for (let i = 0; i < 5; i++) {
      throttle.failed('10.0.0.2', 'alice');
      const wait = throttle.waitMs('10.0.0.2', 'alice');
      waits.push(wait);
      advance(wait);
      expect(throttle.waitMs('10.0.0.2', 'alice')).toBe(0);
    }
    expect(waits).toEqual([1000, 2000, 4000, 5000, 5000]);
  });

  it('holds back every user id tried from that address, and no other address', () => {
    const { throttle } = setup(3);
    for (const user of ['a', 'b', 'c']) throttle.failed('10.0.0.2', user);
    expect(throttle.waitMs('10.0.0.2', 'zed')).toBe(1000);
    expect(throttle.waitMs('10.0.0.3', 'a')).toBe(0);
  });

  it('does not forgive an address for a success (its own account would reset the count)', () => {
    const { throttle } = setup(3);
    for (let i = 0; i < 2; i++) throttle.failed('10.0.0.2', 'alice');
    throttle.succeeded('10.0.0.2', 'mallory');
    throttle.failed('10.0.0.2', 'alice');
    expect(throttle.waitMs('10.0.0.2', 'alice')).toBe(1000);
  });

  it('forgets failures 15 minutes after the last one', () => {
    const { throttle, advance } = setup(3);
    for (let i = 0; i < 2; i++) throttle.failed('10.0.0.2', 'alice');
    advance(15 * 60_000 + 1);
    throttle.failed('10.0.0.2', 'alice');
    expect(throttle.waitMs('10.0.0.2', 'alice')).toBe(0);
  });

  describe('guessing one user from many addresses', () => {
    /** 4 x 3 = 12 failures for alice, two from each of six addresses: no address reaches its own backoff. */
    const spread = (throttle: LoginThrottle) => {
      for (let i = 0; i < 12; i++) throttle.failed(`10.0.1.${i % 6}`, 'alice');
    };

    it('holds the user back on every address it never logged in from', () => {
      const { throttle } = setup(3);
      spread(throttle);
      expect(throttle.waitMs('10.0.1.0', 'bob')).toBe(0);
      expect(throttle.waitMs('10.0.9.9', 'alice')).toBe(1000);
    });

    it('never holds the owner back on an address it logged in from before', () => {
      const { throttle } = setup(3);
      throttle.succeeded('127.0.0.1', 'alice');
      spread(throttle);
      expect(throttle.waitMs('127.0.0.1', 'alice')).toBe(0);
      expect(throttle.waitMs('10.0.9.9', 'alice')).toBe(1000);
    });

    it('remembers the last 8 addresses a user logged in from', () => {
      const { throttle } = setup(3);
      for (let i = 0; i < 9; i++) throttle.succeeded(`192.168.0.${i}`, 'alice');
      spread(throttle);
      expect(throttle.waitMs('192.168.0.0', 'alice')).toBe(1000);
      expect(throttle.waitMs('192.168.0.1', 'alice')).toBe(0);
      expect(throttle.waitMs('192.168.0.8', 'alice')).toBe(0);
    });
  });

  describe('password hashing turns', () => {
    it('gives one address two turns at once, and another address its own', () => {
      const { throttle } = setup();
      const first = throttle.startHashing('10.0.0.2');
      const second = throttle.startHashing('10.0.0.2');
      expect(first && second).toBeDefined();
      expect(throttle.startHashing('10.0.0.2')).toBeUndefined();
      expect(throttle.startHashing('10.0.0.3')).toBeDefined();
      first!();
      first!(); // giving a turn back twice frees only one
      expect(throttle.startHashing('10.0.0.2')).toBeDefined();
      expect(throttle.startHashing('10.0.0.2')).toBeUndefined();
    });

    it('does not limit an in-process caller (no address)', () => {
      const { throttle } = setup();
      for (let i = 0; i < 10; i++) expect(throttle.startHashing('')).toBeDefined();
    });
  });
});
