import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TempDirs } from '../seeding/testing/seeding.fixtures';
import { RunningDownload, RunningDownloadsFile } from './running-downloads.file';

const download = (fileName: string, userId = 'alice'): RunningDownload => ({
  userId,
  groupId: 'g1',
  fileName,
  destPath: `/downloads/${fileName}`,
});

describe(RunningDownloadsFile.name, () => {
  const temp = new TempDirs();
  let dir: string;
  let file: RunningDownloadsFile;

  beforeEach(() => {
    dir = join(temp.make('running-downloads-'), 'state');
    file = new RunningDownloadsFile(dir);
  });

  afterEach(() => temp.cleanup());

  it('lists nothing before the first download, then what was added and not removed, once each', async () => {
    await expect(file.list()).resolves.toEqual([]);
    await Promise.all([file.add(download('a')), file.add(download('b')), file.add(download('a'))]);
    await file.add(download('a', 'bob'));
    await file.remove(download('b'));
    expect(await file.list()).toEqual([download('a'), download('a', 'bob')]);
    // what another process (the next start) reads
    expect(await new RunningDownloadsFile(dir).list()).toEqual([download('a'), download('a', 'bob')]);
    expect(JSON.parse(readFileSync(join(dir, 'downloads.json'), 'utf8'))).toEqual({
      version: 1,
      downloads: [download('a'), download('a', 'bob')],
    });
    // every change is a temp file renamed into place: none is left over
    expect(readdirSync(dir)).toEqual(['downloads.json']);
  });

  it.each([
    ['not JSON', '{"version": 1, "downl'],
    ['another version', JSON.stringify({ version: 2, downloads: [download('a')] })],
    ['no list', JSON.stringify({ version: 1 })],
  ])('reads a file that is %s as an empty list, and writes a good one over it', async (_, text) => {
    await file.add(download('x'));
    writeFileSync(join(dir, 'downloads.json'), text);
    await expect(file.list()).resolves.toEqual([]);
    await file.add(download('b'));
    expect(await file.list()).toEqual([download('b')]);
  });

  it('skips entries that are not downloads', async () => {
    await file.add(download('x'));
    writeFileSync(
      join(dir, 'downloads.json'),
      JSON.stringify({
        version: 1,
        downloads: [download('a'), { userId: 'alice' }, 7, { ...download('b'), extra: 1 }],
      }),
    );
    expect(await file.list()).toEqual([download('a'), download('b')]);
  });
});
