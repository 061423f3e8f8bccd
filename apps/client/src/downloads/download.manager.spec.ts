import { CHUNK_HASHER, CHUNK_SIZE, Sha1ChunkHasher } from '@app/chunking';
import { FileMetadata, SeederInfo } from '@app/protocol';
import { Test, TestingModule } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DownloadError } from '../download/download.errors';
import * as downloadJobModule from '../download/download.job';
import { DownloadJob, DownloadProgress, DownloadState, SeederProgress } from '../download/download.job';
import { Decide, FakeSeeder } from '../download/testing/fake-seeder.server';
import { OUTPUT } from '../output/output.port';
import { eventually, sha1, TempDirs } from '../seeding/testing/seeding.fixtures';
import { CollectingOutput } from '../testing/collecting.output';

/** Keeps, besides the lines, every live-line update in order (`undefined` when a line is taken away). */
class ProgressOutput extends CollectingOutput {
  readonly updates: { key: string; text: string | undefined }[] = [];
  /** Lines and live-line updates in the order they came. */
  readonly events: string[] = [];

  override progress(key: string, text: string | undefined): void {
    this.updates.push({ key, text });
    this.events.push(text === undefined ? `cleared ${key}` : `live ${key}`);
  }

  override line(text: string): void {
    super.line(text);
    this.events.push('line');
  }
}
import { DownloadManager, PROGRESS_REFRESH_MS } from './download.manager';
import { ClientConfigService } from '../config/client-config.service';
import { PartialShares } from '../seeding/partial-shares';
import { TransferSettings } from '../settings/transfer-settings.service';
import { configService } from '../testing/files.fixtures';
import { SharingService } from '../seeding/sharing.service';
import { tick } from '../testing/files.fixtures';

function metadataFor(data: Buffer, seeders: SeederInfo[], fileName = 'report.pdf'): FileMetadata {
  const chunkHashes: string[] = [];
  for (let at = 0; at < data.length; at += CHUNK_SIZE) chunkHashes.push(sha1(data.subarray(at, at + CHUNK_SIZE)));
  return { fileName, fileSize: data.length, fileHash: sha1(data), chunkHashes, seeders };
}

const seederInfo = (userId: string, port: number, capability = 'test-capability'): SeederInfo => ({
  userId,
  address: { host: '127.0.0.1', port },
  capability,
});

/**
 * Stands in for DownloadJob (DownloadManager builds its jobs itself): `run`
 * settles when the test calls `finish` or `fail`; `progress` is what the test set.
 */
class FakeJob {
  state: DownloadState = 'downloading';
  reason: string | undefined;
  seeders: SeederProgress[] = [];
  elapsedMs = 1_000;
  bytesDone = 0;
  speed = 0;
  private settle: { resolve: () => void; reject: (err: Error) => void } | undefined;
  readonly cancel = jest.fn(() => this.fail('cancelled'));

  constructor(
    readonly metadata: FileMetadata,
    readonly destPath: string,
  ) {}

  run(): Promise<void> {
    return new Promise((resolve, reject) => (this.settle = { resolve, reject }));
  }

  finish(): void {
    this.state = 'complete';
    this.settle!.resolve();
  }

  fail(reason: string | undefined, err: Error = new DownloadError(reason ?? 'failed')): void {
    this.state = 'failed';
    this.reason = reason;
    this.settle!.reject(err);
  }

  get progress(): Partial<DownloadProgress> {
    return {
      fileName: this.metadata.fileName,
      destPath: this.destPath,
      state: this.state,
      reason: this.reason,
      seeders: this.seeders,
      elapsedMs: this.elapsedMs,
      bytesDone: this.bytesDone,
      totalBytes: this.metadata.fileSize,
      percent: (100 * this.bytesDone) / this.metadata.fileSize,
      speed: this.speed,
    };
  }
}

const seederProgress = (userId: string, progress: Partial<SeederProgress> = {}): SeederProgress => ({
  userId,
  address: '127.0.0.1:7002',
  state: 'finished',
  chunks: 0,
  corrupt: 0,
  refused: 0,
  retries: 0,
  ...progress,
});

describe(DownloadManager.name, () => {
  const temp = new TempDirs();
  const seeders: FakeSeeder[] = [];
  let moduleRef: TestingModule;
  let manager: DownloadManager;
  let sharing: {
    seedDownloaded: jest.Mock<Promise<void>, [unknown]>;
    announcePartial: jest.Mock<Promise<boolean>, [string, string, string]>;
    withdrawPartial: jest.Mock<Promise<void>, [string, string]>;
    partialDone: jest.Mock<void, [string, string]>;
  };
  let settings: TransferSettings;
  let partials: PartialShares;
  let out: ProgressOutput;
  let dir: string;

  beforeEach(async () => {
    dir = temp.make('download-manager-');
    out = new ProgressOutput();
    sharing = {
      seedDownloaded: jest.fn<Promise<void>, [unknown]>(() => Promise.resolve()),
      announcePartial: jest.fn<Promise<boolean>, [string, string, string]>(() => Promise.resolve(true)),
      withdrawPartial: jest.fn<Promise<void>, [string, string]>(() => Promise.resolve()),
      partialDone: jest.fn<void, [string, string]>(),
    };
    moduleRef = await Test.createTestingModule({
      providers: [
        DownloadManager,
        PartialShares,
        TransferSettings,
        { provide: ClientConfigService, useValue: configService({ dataDir: dir }) },
        { provide: SharingService, useValue: sharing },
        { provide: CHUNK_HASHER, useValue: new Sha1ChunkHasher() },
        { provide: OUTPUT, useValue: out },
      ],
    }).compile();
    manager = moduleRef.get(DownloadManager);
    settings = moduleRef.get(TransferSettings);
    partials = moduleRef.get(PartialShares);
  });

  afterEach(async () => {
    manager.cancelAll();
    await manager.idle();
    await Promise.all(seeders.splice(0).map((s) => s.stop()));
    await moduleRef.close();
    jest.restoreAllMocks();
    temp.cleanup();
  });

  const startSeeder = async (data: Buffer, decide?: Decide) => {
    const seeder = await new FakeSeeder(data, { decide }).start();
    seeders.push(seeder);
    return seeder;
  };

  describe('with real download jobs', () => {
    it('downloads, prints the summary and seeds the file', async () => {
      const data = randomBytes(2 * CHUNK_SIZE + 100_000);
      const bob = await startSeeder(data);
      const meta = metadataFor(data, [seederInfo('bob', bob.port)]);
      const dest = join(dir, 'report.pdf');

      const entry = manager.start('g1', 'alice', meta, dest);
      expect(entry).toMatchObject({ groupId: 'g1', userId: 'alice' });
      expect(entry.job).toBeInstanceOf(DownloadJob);
      expect(manager.downloads).toEqual([entry]);
      expect(manager.isBusy(dest)).toBe(true);
      await entry.done;

      expect(readFileSync(dest).equals(data)).toBe(true);
      expect(manager.isBusy(dest)).toBe(false);
      expect(out.lines).toHaveLength(1);
      expect(out.lines[0]).toMatch(
        new RegExp(
          `^downloaded \\[g1\\] report\\.pdf to ${dest.replace(/[.]/g, '\\.')}: 1\\.1 MiB in \\d+\\.\\d s ` +
            `\\([\\d.]+ ([KMGT]i)?B/s\\), SHA-1 verified; chunks from bob 3$`,
        ),
      );
      expect(sharing.seedDownloaded).toHaveBeenCalledTimes(1);
      expect(sharing.seedDownloaded).toHaveBeenCalledWith({
        groupId: 'g1',
        userId: 'alice',
        fileName: 'report.pdf',
        path: dest,
        fileHash: sha1(data),
        chunkCount: 3,
      });
    });

    it('downloads an empty file without asking any seeder', async () => {
      const bob = await startSeeder(Buffer.alloc(0));
      const dest = join(dir, 'empty.txt');
      await manager.start('g1', 'alice', metadataFor(Buffer.alloc(0), [seederInfo('bob', bob.port)]), dest).done;

      expect(readFileSync(dest)).toHaveLength(0);
      expect(bob.connections).toBe(0);
      expect(out.lines[0]).toMatch(/: 0 B in \d+\.\d s \(0 B\/s\), SHA-1 verified; chunks from nobody \(empty file\)$/);
      expect(sharing.seedDownloaded).toHaveBeenCalledWith(expect.objectContaining({ path: dest, chunkCount: 0 }));
    });

    it('reports a failed download with its reason and does not seed it', async () => {
      const data = randomBytes(1000);
      const dest = join(dir, 'report.pdf');
      // (an unreachable seeder would be retried for 30 s before the download gives up)
      const bob = await startSeeder(data, () => ({ kind: 'corrupt' }));
      const entry = manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), dest);
      await entry.done;

      expect(out.lines).toEqual(['error: download of report.pdf failed: no seeders left: bob served 3 corrupt chunks']);
      expect(entry.job.progress.state).toBe('failed');
      expect(sharing.seedDownloaded).not.toHaveBeenCalled();
      expect(readdirSync(dir)).toEqual([]);
    });

    it('says when a downloaded file cannot be seeded', async () => {
      sharing.seedDownloaded.mockRejectedValue(new Error('could not announce report.pdf as seeded: not a member'));
      const data = randomBytes(1000);
      const bob = await startSeeder(data);
      const dest = join(dir, 'report.pdf');
      await manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), dest).done;

      expect(existsSync(dest)).toBe(true);
      expect(out.lines).toHaveLength(2);
      expect(out.lines[0]).toMatch(/^downloaded \[g1\] report\.pdf /);
      expect(out.lines[1]).toBe(
        'error: downloaded report.pdf but cannot seed it: could not announce report.pdf as seeded: not a member',
      );
    });

    it('cancelAll stops running downloads, and idle waits for them to end', async () => {
      const data = randomBytes(CHUNK_SIZE + 1);
      const bob = await startSeeder(data, () => ({ kind: 'stall' }));
      const first = manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), join(dir, 'a'));
      const second = manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), join(dir, 'b'));
      await bob.receivedRequests(2);

      let idle = false;
      const waiting = manager.idle().then(() => (idle = true));
      await tick(20);
      expect(idle).toBe(false);

      manager.cancelAll();
      await waiting;
      expect([first.job.progress.state, second.job.progress.state]).toEqual(['failed', 'failed']);
      expect(out.lines).toEqual([
        'error: download of report.pdf failed: cancelled',
        'error: download of report.pdf failed: cancelled',
      ]);
      expect(readdirSync(dir)).toEqual([]);
      expect(sharing.seedDownloaded).not.toHaveBeenCalled();
    });
  });

  describe('serving what it holds (partial seeding)', () => {
    it('serves each chunk once it is written, announced to the tracker, until the download stops', async () => {
      const data = randomBytes(3 * CHUNK_SIZE + 100);
      // the fourth chunk asked for never comes (chunks are asked for in a random order when swarming)
      let asked = 0;
      const bob = await startSeeder(data, () => (++asked > 3 ? { kind: 'stall' } : undefined));
      const meta = metadataFor(data, [seederInfo('bob', bob.port)]);
      const dest = join(dir, 'report.pdf');
      const entry = manager.start('g1', 'alice', meta, dest);
      await eventually(() => entry.job.progress.chunksDone === 3, 'three chunks are in');

      const share = partials.find('g1', sha1(data), 'alice')!;
      expect(share).toBeDefined();
      expect(share.partPath).toBe(`${dest}.part`);
      await eventually(() => share.heldCount === 3, 'the three are served');
      const missing = bob.indexes[3];
      expect([0, 1, 2, 3].map((i) => share.has(i))).toEqual([0, 1, 2, 3].map((i) => i !== missing));
      expect(sharing.announcePartial).toHaveBeenCalledWith('g1', 'report.pdf', 'alice');

      entry.job.cancel();
      await entry.done;
      expect(sharing.withdrawPartial).toHaveBeenCalledWith('g1', 'report.pdf');
      expect(share.closed).toBe(true);
      expect(partials.list()).toEqual([]);
      expect(sharing.partialDone).not.toHaveBeenCalled();
    });

    it('hands over to the full share once the download is seeded', async () => {
      const data = randomBytes(2 * CHUNK_SIZE);
      const bob = await startSeeder(data);
      let servingWhenSeeded: boolean | undefined;
      sharing.seedDownloaded.mockImplementation(() => {
        servingWhenSeeded = partials.find('g1', sha1(data), 'alice') !== undefined;
        return Promise.resolve();
      });
      await manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), join(dir, 'r.pdf')).done;

      // still served while the full share is registered, so that no peer is turned away in between
      expect(servingWhenSeeded).toBe(true);
      expect(partials.list()).toEqual([]);
      expect(sharing.partialDone).toHaveBeenCalledWith('g1', 'report.pdf');
      expect(sharing.withdrawPartial).not.toHaveBeenCalled();
    });

    it('serves nothing with partial seeding off, and stops serving when it is turned off', async () => {
      const data = randomBytes(2 * CHUNK_SIZE + 1);
      let asked = 0;
      const bob = await startSeeder(data, () => (++asked > 2 ? { kind: 'stall' } : undefined));
      const running = manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), join(dir, 'a'));
      await eventually(() => partials.list().length === 1, 'the download serves');

      settings.setPartialSeeding(false);
      await eventually(() => partials.list().length === 0, 'it no longer serves');
      expect(sharing.withdrawPartial).toHaveBeenCalledWith('g1', 'report.pdf');
      const off = manager.start('g1', 'alice', metadataFor(data, [seederInfo('bob', bob.port)]), join(dir, 'b'));
      await bob.receivedRequests(4);
      expect(partials.list()).toEqual([]);
      expect(sharing.announcePartial).toHaveBeenCalledTimes(1);
      running.job.cancel();
      off.job.cancel();
    });
  });

  describe('with a .part to resume from', () => {
    // chunks in file order (as without partial seeding), so that the tests know which are in when a seeder stalls
    beforeEach(() => settings.setPartialSeeding(false));

    it('a stopped download keeps its .part and record; the next one fetches only the rest', async () => {
      const data = randomBytes(4 * CHUNK_SIZE + 100);
      const dest = join(dir, 'report.pdf');
      const first = await startSeeder(data, (req) => (req.index >= 2 ? { kind: 'stall' } : undefined));
      const meta = metadataFor(data, [seederInfo('bob', first.port)]);
      const resume = await manager.prepareResume(meta, dest);
      expect(resume.resuming).toBe(false);
      const entry = manager.start('g1', 'alice', meta, dest, undefined, resume);
      await eventually(() => entry.job.progress.chunksDone === 2, 'two chunks are in');
      manager.cancelAll();
      await entry.done;
      expect(entry.interrupted).toBe(true);
      expect(out.lines).toEqual([`error: download of report.pdf failed: cancelled; kept ${dest}.part to resume from`]);
      expect(readdirSync(dir).sort()).toEqual(['report.pdf.part', 'report.pdf.part.chunks']);

      const second = await startSeeder(data);
      const again = { ...meta, seeders: [seederInfo('bob', second.port)] };
      const resumed = await manager.prepareResume(again, dest);
      expect([resumed.resuming, resumed.listedCount]).toEqual([true, 2]);
      await manager.start('g1', 'alice', again, dest, undefined, resumed).done;
      expect(out.lines[1]).toMatch(/; chunks from bob 3; resumed 2 of 5 chunks from .*report\.pdf\.part, fetched 3$/);
      expect(second.indexes.sort((a, b) => a - b)).toEqual([2, 3, 4]);
      expect(readFileSync(dest).equals(data)).toBe(true);
      expect(readdirSync(dir)).toEqual(['report.pdf']);
    });

    it('a download whose whole file fails its check removes the .part and its record', async () => {
      const data = randomBytes(CHUNK_SIZE + 100);
      const bob = await startSeeder(data);
      const meta = { ...metadataFor(data, [seederInfo('bob', bob.port)]), fileHash: sha1(Buffer.from('other')) };
      const dest = join(dir, 'report.pdf');
      await manager.start('g1', 'alice', meta, dest, undefined, await manager.prepareResume(meta, dest)).done;
      expect(out.lines).toEqual([
        expect.stringMatching(/^error: download of report\.pdf failed: .*failed its whole-file check/),
      ]);
      expect(readdirSync(dir)).toEqual([]);
    });
  });

  describe('with fake jobs', () => {
    const jobs: FakeJob[] = [];
    const meta = (fileName = 'report.pdf', fileSize = 5 * 1024 * 1024): FileMetadata => ({
      fileName,
      fileSize,
      fileHash: 'f'.repeat(40),
      chunkHashes: Array(Math.ceil(fileSize / CHUNK_SIZE)).fill('0'.repeat(40)) as string[],
      seeders: [seederInfo('bob', 7002)],
    });

    beforeEach(() => {
      jobs.length = 0;
      jest.spyOn(downloadJobModule, 'DownloadJob').mockImplementation(((metadata: FileMetadata, destPath: string) => {
        const job = new FakeJob(metadata, destPath);
        jobs.push(job);
        return job;
      }) as unknown as () => DownloadJob);
    });

    afterEach(() => {
      for (const job of jobs) if (job.state === 'downloading') job.fail('test over');
    });

    it('keeps a live line per running download, redrawn with its figures and taken away before the summary', async () => {
      jest.useFakeTimers();
      try {
        await liveLines();
      } finally {
        jest.useRealTimers();
      }
    });

    const liveLines = async () => {
      const entry = manager.start('g1', 'alice', meta(), '/downloads/report.pdf');
      const other = manager.start('g1', 'alice', meta('other.bin'), '/downloads/other.bin');
      const [job] = jobs;
      expect(out.updates.map((u) => u.text)).toEqual([
        'report.pdf 0.0% 0 B of 5.0 MiB, 0 B/s, 0 peers',
        'other.bin 0.0% 0 B of 5.0 MiB, 0 B/s, 0 peers',
      ]);
      const [key, otherKey] = out.updates.map((u) => u.key);
      expect(key).not.toBe(otherKey);
      job.bytesDone = 1024 * 1024;
      job.speed = 512 * 1024;
      job.seeders = [
        seederProgress('bob', { state: 'active', chunks: 1 }),
        seederProgress('carol', { state: 'active', partial: true, chunks: 1 }),
        seederProgress('dave', { state: 'connecting' }),
      ];
      // redrawn a few times a second without anyone asking
      jest.advanceTimersByTime(PROGRESS_REFRESH_MS);
      expect(out.updates.filter((u) => u.key === key).at(-1)).toEqual({
        key,
        text: 'report.pdf 20.0% 1.0 MiB of 5.0 MiB, 512.0 KiB/s, 2 peers (1 partial), ETA 8 s',
      });
      jest.advanceTimersByTime(1000);
      expect(out.updates.filter((u) => u.key === key).length).toBeGreaterThanOrEqual(1 + 1000 / PROGRESS_REFRESH_MS);
      job.elapsedMs = 2_500;
      job.finish();
      await entry.done;
      // the live line is gone before the end-of-download line, which says it all
      const events = out.events.filter((e) => !e.endsWith(otherKey));
      expect(events.slice(-2)).toEqual([`cleared ${key}`, 'line']);
      expect(out.lines).toEqual([expect.stringMatching(/^downloaded \[g1\] report\.pdf .*: 5\.0 MiB in 2\.5 s/)]);
      const drawn = out.updates.length;
      jobs[1].fail('cancelled');
      await other.done;
      expect(
        out.updates
          .slice(drawn)
          .filter((u) => u.key === otherKey)
          .at(-1),
      ).toEqual({
        key: otherKey,
        text: undefined,
      });
      // nothing redraws a line once its download ended
      const after = out.updates.length;
      jest.advanceTimersByTime(10 * PROGRESS_REFRESH_MS);
      expect(out.updates).toHaveLength(after);
    };

    it('names in the summary who sent chunks, who sent corrupt ones and who was dropped', async () => {
      const entry = manager.start('g1', 'alice', meta(), '/downloads/report.pdf');
      const [job] = jobs;
      job.elapsedMs = 2_500;
      job.seeders = [
        seederProgress('bob', { chunks: 7 }),
        seederProgress('carol', { chunks: 2, corrupt: 1 }),
        seederProgress('dave', { state: 'dropped', reason: 'is unreachable (connection refused)' }),
        seederProgress('erin', { state: 'dropped', chunks: 1, corrupt: 3, reason: 'served 3 corrupt chunks' }),
        seederProgress('frank', { state: 'dropped' }),
      ];
      job.finish();
      await entry.done;

      expect(out.lines).toEqual([
        'downloaded [g1] report.pdf to /downloads/report.pdf: 5.0 MiB in 2.5 s (2.0 MiB/s), SHA-1 verified; ' +
          'chunks from bob 7, carol 2, erin 1; rejected corrupt chunks: 1 from carol, 3 from erin; ' +
          'dropped dave (is unreachable (connection refused)), erin (served 3 corrupt chunks), frank (failed)',
      ]);
    });

    it('names in the summary the seeders it had to wait for, and why', async () => {
      const entry = manager.start('g1', 'alice', meta(), '/downloads/report.pdf');
      const [job] = jobs;
      job.elapsedMs = 2_500;
      job.seeders = [
        seederProgress('bob', { chunks: 7, retries: 4, retryReason: 'refused the connection (TOO_MANY_CONNECTIONS)' }),
        seederProgress('carol', { chunks: 3, retries: 1, retryReason: 'closed the connection' }),
        seederProgress('dave', { state: 'dropped', retries: 9, reason: 'refused the connection (BUSY); gave up' }),
      ];
      job.finish();
      await entry.done;

      expect(out.lines).toEqual([
        'downloaded [g1] report.pdf to /downloads/report.pdf: 5.0 MiB in 2.5 s (2.0 MiB/s), SHA-1 verified; ' +
          'chunks from bob 7, carol 3; ' +
          'retried bob 4 times (last: refused the connection (TOO_MANY_CONNECTIONS)), carol once (last: closed the connection); ' +
          'dropped dave (refused the connection (BUSY); gave up)',
      ]);
      expect(sharing.seedDownloaded).toHaveBeenCalledWith({
        groupId: 'g1',
        userId: 'alice',
        fileName: 'report.pdf',
        path: '/downloads/report.pdf',
        fileHash: 'f'.repeat(40),
        chunkCount: 10,
      });
    });

    it("falls back to the error's message when the job gives no reason", async () => {
      const entry = manager.start('g1', 'alice', meta(), '/downloads/report.pdf');
      jobs[0].fail(undefined, new Error('disk on fire'));
      await entry.done;
      expect(out.lines).toEqual(['error: download of report.pdf failed: disk on fire']);
      expect(sharing.seedDownloaded).not.toHaveBeenCalled();
    });

    it('idle resolves at once when nothing runs', async () => {
      await expect(manager.idle()).resolves.toBeUndefined();
      const entry = manager.start('g1', 'alice', meta(), '/downloads/a');
      jobs[0].finish();
      await entry.done;
      await expect(manager.idle()).resolves.toBeUndefined();
    });

    it('idle resolves only once every running download has ended, those started meanwhile included', async () => {
      manager.start('g1', 'alice', meta('a'), '/downloads/a');
      manager.start('g1', 'alice', meta('b'), '/downloads/b');
      let idle = false;
      const waiting = manager.idle().then(() => (idle = true));

      jobs[0].finish();
      await tick();
      expect(idle).toBe(false);

      manager.start('g2', 'alice', meta('c'), '/downloads/c');
      jobs[1].fail('no seeders left');
      await tick();
      expect(idle).toBe(false);

      jobs[2].finish();
      await waiting;
      expect(out.lines.map((l) => l.split(' ').slice(0, 3).join(' '))).toEqual([
        'downloaded [g1] a',
        'error: download of',
        'downloaded [g2] c',
      ]);
    });

    // The job's state is 'complete' before seedDownloaded runs: idle() must wait for `entry.done`, or the shell
    // would close the tracker connection and the chunk server while the download is still being announced.
    it('idle waits for a finished download to be seeded', async () => {
      let seeded!: () => void;
      sharing.seedDownloaded.mockReturnValue(new Promise<void>((resolve) => (seeded = resolve)));
      manager.start('g1', 'alice', meta(), '/downloads/report.pdf');
      jobs[0].finish();
      await eventually(() => sharing.seedDownloaded.mock.calls.length === 1, 'seeding starts');

      let idle = false;
      const waiting = manager.idle().then(() => (idle = true));
      await tick();
      expect(idle).toBe(false);

      seeded();
      await waiting;
    });

    it('isBusy is true for the destination of a running download only', async () => {
      manager.start('g1', 'alice', meta(), '/downloads/a');
      manager.start('g1', 'alice', meta(), '/downloads/b');
      expect(manager.isBusy('/downloads/a')).toBe(true);
      expect(manager.isBusy('/downloads/c')).toBe(false);
      jobs[0].fail('cancelled');
      await tick();
      expect(manager.isBusy('/downloads/a')).toBe(false);
      expect(manager.isBusy('/downloads/b')).toBe(true);
    });

    it('pause stops one download quietly, marks it paused, and a new download into the same file takes its place', async () => {
      const a = manager.start('g1', 'alice', meta(), '/downloads/a');
      const b = manager.start('g1', 'alice', meta(), '/downloads/b');

      await manager.pause(a);

      expect(jobs[0].cancel).toHaveBeenCalledTimes(1);
      expect(jobs[1].cancel).not.toHaveBeenCalled();
      expect([manager.isPaused(a), manager.isPaused(b)]).toEqual([true, false]);
      expect(out.lines).toEqual([]); // no "failed: cancelled": pause_download says what happened
      const again = manager.start('g1', 'alice', meta(), '/downloads/a');
      expect(manager.downloads).toEqual([b, again]);
      expect(manager.isPaused(again)).toBe(false);
    });

    it('cancelAll cancels only the downloads still running', async () => {
      const done = manager.start('g1', 'alice', meta(), '/downloads/a');
      manager.start('g1', 'alice', meta(), '/downloads/b');
      jobs[0].finish();
      await done.done;
      manager.cancelAll();
      expect(jobs[0].cancel).not.toHaveBeenCalled();
      expect(jobs[1].cancel).toHaveBeenCalledTimes(1);
    });
  });
});
