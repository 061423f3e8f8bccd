import { expandHome } from './home-path';

describe(expandHome.name, () => {
  it.each([
    ['~', '/home/ann'],
    ['~/report.pdf', '/home/ann/report.pdf'],
    ['~/a b/c.txt', '/home/ann/a b/c.txt'],
    ['~bob/x', '~bob/x'],
    ['/tmp/~/x', '/tmp/~/x'],
    ['report~1.pdf', 'report~1.pdf'],
    ['', ''],
  ])('%s -> %s', (typed, expected) => {
    expect(expandHome(typed, '/home/ann')).toBe(expected);
  });
});
