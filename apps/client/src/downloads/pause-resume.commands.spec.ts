import { Test } from '@nestjs/testing';
import { DownloadProgress } from '../download/download.job';
import { DownloadManager } from './download.manager';
import { DownloadFileCommand } from './download-file.command';
import { OUTPUT } from '../output/output.port';
import { CollectingOutput } from '../testing/collecting.output';
import { PauseDownloadCommand } from './pause-download.command';
import { ResumeDownloadCommand } from './resume-download.command';

type Entry = { job: { destPath: string; progress: Partial<DownloadProgress> }; done: Promise<void> };

describe('pause_download and resume_download', () => {
  let out: CollectingOutput;
  let pause: PauseDownloadCommand;
  let resume: ResumeDownloadCommand;
  let entry: Entry;
  const paused = new Set<unknown>();
  let downloads: {
    find: jest.Mock<Entry | undefined, [string, string]>;
    isPaused: jest.Mock<boolean, [Entry]>;
    pause: jest.Mock<Promise<void>, [Entry]>;
  };
  let downloadFile: { run: jest.Mock<Promise<void>, [readonly string[]]> };

  beforeEach(async () => {
    out = new CollectingOutput();
    paused.clear();
    entry = {
      job: {
        destPath: '/home/bob/got.bin',
        progress: { state: 'downloading', percent: 37.5, chunksDone: 6, chunkCount: 16 },
      },
      done: Promise.resolve(),
    };
    downloads = {
      find: jest.fn((group: string, file: string) => (group === 'team' && file === 'big.bin' ? entry : undefined)),
      isPaused: jest.fn((e: Entry) => paused.has(e)),
      pause: jest.fn((e: Entry) => {
        paused.add(e);
        e.job.progress = { ...e.job.progress, state: 'failed' };
        return Promise.resolve();
      }),
    };
    downloadFile = { run: jest.fn((_args: readonly string[]) => Promise.resolve()) };
    const moduleRef = await Test.createTestingModule({
      providers: [
        PauseDownloadCommand,
        ResumeDownloadCommand,
        { provide: DownloadManager, useValue: downloads },
        { provide: DownloadFileCommand, useValue: downloadFile },
        { provide: OUTPUT, useValue: out },
      ],
    }).compile();
    pause = moduleRef.get(PauseDownloadCommand);
    resume = moduleRef.get(ResumeDownloadCommand);
  });

  it('pauses a running download and says where it stands and how to go on', async () => {
    await pause.run(['team', 'big.bin']);

    expect(downloads.pause).toHaveBeenCalledWith(entry);
    expect(out.lines).toEqual([
      'paused [team] big.bin at 37.5% (6 of 16 chunks in /home/bob/got.bin.part); resume_download team big.bin continues it',
    ]);
  });

  it('resumes a paused download into the same destination, as download_file does', async () => {
    await pause.run(['team', 'big.bin']);
    await resume.run(['team', 'big.bin']);

    expect(downloadFile.run).toHaveBeenCalledWith(['team', 'big.bin', '/home/bob/got.bin']);
  });

  it.each([
    ['an unknown download', ['team', 'other.bin'], 'no download of other.bin in group team in this session'],
    ['an unknown group', ['crew', 'big.bin'], 'no download of big.bin in group crew in this session'],
  ])('refuses %s for both, changing nothing', async (_, args, message) => {
    await expect(pause.run(args)).rejects.toThrow(message);
    await expect(resume.run(args)).rejects.toThrow(message);
    expect(downloads.pause).not.toHaveBeenCalled();
    expect(downloadFile.run).not.toHaveBeenCalled();
  });

  it('refuses to pause one that is not running, or paused already', async () => {
    entry.job.progress = { ...entry.job.progress, state: 'complete' };
    await expect(pause.run(['team', 'big.bin'])).rejects.toThrow('the download of big.bin is not running (complete)');
    entry.job.progress = { ...entry.job.progress, state: 'downloading' };
    await pause.run(['team', 'big.bin']);
    await expect(pause.run(['team', 'big.bin'])).rejects.toThrow('the download of big.bin is paused already');
    expect(downloads.pause).toHaveBeenCalledTimes(1);
  });

  it('refuses to resume one that is not paused', async () => {
    await expect(resume.run(['team', 'big.bin'])).rejects.toThrow(
      'the download of big.bin is not paused (it is running)',
    );
    entry.job.progress = { ...entry.job.progress, state: 'failed' };
    await expect(resume.run(['team', 'big.bin'])).rejects.toThrow(
      'the download of big.bin is not paused (it is failed)',
    );
    expect(downloadFile.run).not.toHaveBeenCalled();
  });
});
