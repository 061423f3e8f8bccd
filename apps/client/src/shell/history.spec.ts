import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forHistory, HistoryFile } from './history';

describe(forHistory.name, () => {
  it.each([
    ['login alice s3cret', 'login alice'],
    ['  login   alice "pass with spaces"  ', 'login alice'],
    ['create_user bob hunter2', 'create_user bob'],
    ['login alice', 'login alice'],
    ['login', 'login'],
    ['list_files team', 'list_files team'],
    ['upload_file team "~/my report.pdf"', 'upload_file team "~/my report.pdf"'],
  ])('%j is kept as %j', (line, kept) => {
    expect(forHistory(line)).toBe(kept);
  });

  it.each(['', '   ', 'login "alice s3cret', 'login "a b" s3cret'])('%j is not kept at all', (line) => {
    expect(forHistory(line)).toBeUndefined();
  });
});

describe(HistoryFile.name, () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'history-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('keeps lines across instances, newest first for readline, mode 0600, never a password', () => {
    const path = join(dir, 'state', 'history');
    const first = new HistoryFile(path);
    expect(first.load()).toEqual([]);
    first.add('create_user ann pw1');
    first.add('login ann pw1');
    first.add('list_groups');
    first.add('list_groups');
    expect(readFileSync(path, 'utf8')).toBe('create_user ann\nlogin ann\nlist_groups\n');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(new HistoryFile(path).load()).toEqual(['list_groups', 'login ann', 'create_user ann']);
  });

  it('is bounded, and filters a file written by an older client', () => {
    const path = join(dir, 'history');
    writeFileSync(path, 'login ann old-password\nlist_groups\n');
    const history = new HistoryFile(path, 3);
    expect(history.load()).toEqual(['list_groups', 'login ann']);
    ['a', 'b', 'c', 'd'].forEach((l) => history.add(l));
    expect(readFileSync(path, 'utf8')).toBe('b\nc\nd\n');
    expect(new HistoryFile(path, 3).load()).toEqual(['d', 'c', 'b']);
  });
});
