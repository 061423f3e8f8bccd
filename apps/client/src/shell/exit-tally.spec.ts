import { ExitTally } from './exit-tally';

describe(ExitTally.name, () => {
  it('says nothing when everything succeeded', () => {
    const tally = new ExitTally();
    tally.record(true);
    tally.record(true);
    expect(tally.summary()).toBeUndefined();
    expect(tally.failed).toBe(0);
  });

  it('counts failed commands among all of them', () => {
    const tally = new ExitTally();
    [true, false, true, true, true, true, true].forEach((ok) => tally.record(ok));
    expect(tally.summary()).toBe('1 of 7 commands failed');
    tally.record(false);
    expect(tally.summary()).toBe('2 of 8 commands failed');
  });

  it('counts a background failure of a command that had succeeded (a download)', () => {
    const tally = new ExitTally();
    tally.record(true);
    tally.failLater();
    expect(tally.summary()).toBe('1 of 1 command failed');
  });
});
