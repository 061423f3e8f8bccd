import {
  errReply,
  FileMetadata,
  formatFileMetadata,
  formatSeederLists,
  okReply,
  Reply,
  SeederInfo,
} from '@app/protocol';
import { Test, TestingModule } from '@nestjs/testing';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { DownloadError } from '../download/download.errors';
import { DownloadJobOptions, DownloadProgress, DownloadState, SeederProgress } from '../download/download.job';
import { OUTPUT } from '../output/output.port';
import { CapabilityVerifier } from '../seeding/capability.verifier';
import { SEEDING_OPTIONS } from '../seeding/seeding.tokens';
import { eventually, TempDirs } from '../seeding/testing/seeding.fixtures';
import { LOCAL_COMMANDS, LocalCommand } from './local-command';
import { ShellService } from '../shell/shell.service';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient, TrackerListener } from '../tracker/tracker.client';
import { TrackerReplyError } from '../tracker/tracker-reply.errors';
import { CancelDownloadCommand } from '../downloads/cancel-download.command';
import { DownloadFileCommand } from '../downloads/download-file.command';
import { DownloadManager } from '../downloads/download.manager';
import { DownloadStarter, SWARM_REDISCOVER_MS } from '../downloads/download-starter';
import { DOWNLOAD_COMMANDS } from '../downloads/downloads.module';
import { RunningDownloadsFile } from '../downloads/running-downloads.file';
import { ShowDownloadsCommand } from '../downloads/show-downloads.command';
import { LeaveGroupCommand } from '../seeding/leave-group.command';
import { SharingService } from '../seeding/sharing.service';
import { SHARING_COMMANDS } from '../seeding/sharing.module';
import { StopShareCommand } from '../seeding/stop-share.command';
import { UploadFileCommand } from '../seeding/upload-file.command';
import { ClientSession } from '../session/client-session';
import { LoginCommand } from '../session/login.command';
import { LogoutCommand } from '../session/logout.command';
import { SESSION_COMMANDS } from '../session/session-commands.module';
import { TransferSettings } from '../settings/transfer-settings.service';
import { configService, fakeTracker, FakeTracker, SELF, tick } from '../testing/files.fixtures';

/** The commands of the session, sharing and downloads modules, tested together over one set of fakes. */
const FILE_COMMANDS = [...SESSION_COMMANDS, ...SHARING_COMMANDS, ...DOWNLOAD_COMMANDS];

const seeder = (userId: string, host: string, port: number): SeederInfo => ({
  userId,
  address: { host, port },
  capability: `cap-${userId}`,
});
const BOB = seeder('bob', '127.0.0.1', 7002);
/** Same port as this client, other host: not this client. */
const CAROL = seeder('carol', '10.0.0.5', SELF.port);
/** This very client (alice seeding from here). */
const ME = seeder('alice', SELF.host, SELF.port);

/** 1,300,000 bytes: three chunks. */
const metadata = (seeders: SeederInfo[], fileName = 'report.pdf'): FileMetadata => ({
  fileName,
  fileSize: 1_300_000,
  fileHash: 'f'.repeat(40),
  chunkHashes: ['1', '2', '3'].map((c) => c.repeat(40)),
  seeders,
});
const metadataReply = (meta: FileMetadata): Reply =>
  okReply(`${meta.fileName}: ${meta.fileSize} bytes, ${meta.seeders.length} online seeders`, formatFileMetadata(meta));

const seederListsReply = (meta: FileMetadata): Reply =>
  okReply(`${meta.fileName}: ${meta.seeders.length} online seeders`, formatSeederLists(meta));

describe('file commands', () => {
  const temp = new TempDirs();
  let moduleRef: TestingModule;
  let tracker: FakeTracker & {
    setSessionToken: jest.Mock<void, [string | undefined]>;
    onResumed: jest.Mock<() => void, [TrackerListener]>;
    onSessionLost: jest.Mock<() => void, [TrackerListener]>;
  };
  let out: CollectingOutput;
  let session: ClientSession;
  let sharing: {
    upload: jest.Mock<Promise<Reply>, [string, string]>;
    reoffer: jest.Mock<Promise<{ offered: number; dropped: string[] }>, [string]>;
    stopped: jest.Mock<Promise<void>, [string, string]>;
    leftGroup: jest.Mock<Promise<number>, [string]>;
  };
  let downloads: {
    downloads: { groupId: string; userId: string; job: { progress: Partial<DownloadProgress> }; resume?: unknown }[];
    isBusy: jest.Mock<boolean, [string]>;
    start: jest.Mock<
      unknown,
      [string, string, FileMetadata, string, (() => Promise<readonly SeederInfo[]>)?, unknown?, DownloadJobOptions?]
    >;
    prepareResume: jest.Mock<Promise<unknown>, [FileMetadata, string]>;
    find: jest.Mock<unknown, [string, string]>;
    isPaused: jest.Mock<boolean, [unknown]>;
  };
  /** What `prepareResume` gives: a fresh start. */
  const freshStart = { resuming: false };
  let dataDir: string;
  let capabilities: CapabilityVerifier;

  beforeEach(async () => {
    tracker = Object.assign(fakeTracker(), {
      setSessionToken: jest.fn<void, [string | undefined]>(),
      onResumed: jest.fn<() => void, [TrackerListener]>(() => () => undefined),
      onSessionLost: jest.fn<() => void, [TrackerListener]>(() => () => undefined),
    });
    out = new CollectingOutput();
    sharing = {
      upload: jest.fn<Promise<Reply>, [string, string]>(() => Promise.resolve(okReply('shared'))),
      reoffer: jest.fn<Promise<{ offered: number; dropped: string[] }>, [string]>(() =>
        Promise.resolve({ offered: 0, dropped: [] }),
      ),
      stopped: jest.fn<Promise<void>, [string, string]>(() => Promise.resolve()),
      leftGroup: jest.fn<Promise<number>, [string]>(() => Promise.resolve(0)),
    };
    downloads = {
      downloads: [],
      isBusy: jest.fn<boolean, [string]>(() => false),
      start: jest.fn<
        unknown,
        [string, string, FileMetadata, string, (() => Promise<readonly SeederInfo[]>)?, unknown?, DownloadJobOptions?]
      >(() => ({ done: new Promise(() => undefined), interrupted: false })),
      prepareResume: jest.fn<Promise<unknown>, [FileMetadata, string]>(() => Promise.resolve(freshStart)),
      find: jest.fn<unknown, [string, string]>(() => undefined),
      isPaused: jest.fn<boolean, [unknown]>(() => false),
    };
    dataDir = temp.make('file-commands-data-');
    moduleRef = await Test.createTestingModule({
      providers: [
        ...FILE_COMMANDS,
        ClientSession,
        ShellService,
        CapabilityVerifier,
        { provide: SEEDING_OPTIONS, useValue: {} },
        { provide: LOCAL_COMMANDS, useFactory: (...commands: LocalCommand[]) => commands, inject: FILE_COMMANDS },
        DownloadStarter,
        TransferSettings,
        { provide: ClientConfigService, useValue: configService({ dataDir, stallTimeoutMs: 120_000 }) },
        { provide: TrackerClient, useValue: tracker },
        { provide: SharingService, useValue: sharing },
        { provide: DownloadManager, useValue: downloads },
        { provide: OUTPUT, useValue: out },
      ],
    }).compile();
    session = moduleRef.get(ClientSession);
    capabilities = moduleRef.get(CapabilityVerifier);
  });

  afterEach(async () => {
    await moduleRef.close();
    temp.cleanup();
  });

  const answer = (reply: Reply) => tracker.request.mockResolvedValue(reply);

  describe(LoginCommand.name, () => {
    const login = () => moduleRef.get(LoginCommand).run(['alice', 'secret']);

    it('logs in, then offers the remembered shares again and says what it dropped', async () => {
      answer(okReply('logged in as alice'));
      sharing.reoffer.mockImplementation((userId) => {
        expect(session.user).toBe(userId);
        return Promise.resolve({ offered: 2, dropped: ['b.bin (gone)', 'c.bin (changed on disk)'] });
      });

      await login();

      expect(tracker.lines).toEqual(['login alice secret']);
      expect(session.user).toBe('alice');
      expect(sharing.reoffer).toHaveBeenCalledWith('alice');
      expect(out.lines).toEqual([
        'logged in as alice',
        'seeding 2 files again',
        'no longer sharing b.bin (gone)',
        'no longer sharing c.bin (changed on disk)',
      ]);
    });

    it('hands the session token to the tracker client, trusts the capability key, and prints neither', async () => {
      const token = '0123456789abcdef'.repeat(4);
      const key = Buffer.alloc(32, 9).toString('base64url');
      answer(okReply('logged in as alice', [`session_token:${token}`, `capability_key:${key}`]));

      await login();

      expect(tracker.setSessionToken.mock.calls).toEqual([[token]]);
      expect(out.lines).toEqual(['logged in as alice']);
      expect(session.user).toBe('alice');
      expect(capabilities.seederId).toBe('alice');
    });

    it('logs in without a token when the tracker sends none, and then honours no capability', async () => {
      answer(okReply('logged in as alice'));
      await login();
      expect(tracker.setSessionToken.mock.calls).toEqual([[undefined]]);
      expect(session.user).toBe('alice');
      expect(capabilities.seederId).toBeUndefined();
    });

    it.each([
      [0, []],
      [1, ['seeding 1 file again']],
    ])('announces %d re-offered shares only when there are some', async (offered, lines) => {
      answer(okReply(''));
      sharing.reoffer.mockResolvedValue({ offered, dropped: [] });
      await login();
      expect(out.lines).toEqual(lines);
    });

    it('leaves the session and the shares alone when the login fails', async () => {
      session.loggedIn('bob');
      answer(errReply('LOGIN_FAILED', 'wrong user id or password'));

      await expect(login()).rejects.toThrow(new Error('wrong user id or password'));
      expect(session.user).toBe('bob');
      expect(tracker.setSessionToken).not.toHaveBeenCalled();
      expect(sharing.reoffer).not.toHaveBeenCalled();
      expect(out.lines).toEqual([]);
    });

    it('continues the downloads of this user that were running when the client stopped', async () => {
      const dir = temp.make('files-commands-');
      const list = new RunningDownloadsFile(dataDir);
      const mine = { userId: 'alice', groupId: 'g1', fileName: 'report.pdf', destPath: join(dir, 'report.pdf') };
      const gone = { ...mine, fileName: 'gone.pdf', destPath: join(dir, 'gone.pdf') };
      const busy = { ...mine, destPath: join(dir, 'busy.pdf') };
      const bobs = { ...mine, userId: 'bob', destPath: join(dir, 'bob.pdf') };
      for (const d of [mine, gone, busy, bobs]) await list.add(d);
      downloads.isBusy.mockImplementation((path) => path === busy.destPath);
      tracker.request.mockImplementation((line: string) =>
        Promise.resolve(
          line.startsWith('login')
            ? okReply('logged in as alice')
            : line === 'download_file g1 report.pdf'
              ? metadataReply(metadata([BOB]))
              : errReply('UNKNOWN_FILE', 'no file gone.pdf in group g1'),
        ),
      );

      await login();

      expect(downloads.start).toHaveBeenCalledTimes(1);
      expect(downloads.start).toHaveBeenCalledWith(
        'g1',
        'alice',
        metadata([BOB]),
        mine.destPath,
        expect.any(Function),
        freshStart,
        { stallTimeoutMs: 120_000, rediscoverEveryMs: SWARM_REDISCOVER_MS },
      );
      expect(out.lines).toEqual([
        'logged in as alice',
        `resuming the download of report.pdf in group g1 to ${mine.destPath}`,
        `downloading report.pdf (1.2 MiB, 3 chunks) from 1 seeder to ${mine.destPath}`,
        `resuming the download of gone.pdf in group g1 to ${gone.destPath}`,
        `error: cannot resume the download of gone.pdf: no file gone.pdf in group g1 (download_file g1 gone.pdf ${gone.destPath} tries again)`,
      ]);
      // the one that cannot go on is taken off the list; the running one, the busy one and bob's stay
      expect(await list.list()).toEqual([mine, busy, bobs]);
    });

    it('shows the code of an ERR without a message', async () => {
      answer(errReply('LOGIN_FAILED', ''));
      await expect(login()).rejects.toThrow(new Error('LOGIN_FAILED'));
      expect(session.user).toBeUndefined();
    });

    describe('after a failover', () => {
      const NEW_TRACKER = { host: '127.0.0.1', port: 6002 };
      const listener = (hook: jest.Mock<() => void, [TrackerListener]>) => {
        expect(hook).toHaveBeenCalledTimes(1);
        return hook.mock.calls[0][0];
      };

      beforeEach(() => moduleRef.init());

      it('offers the shares again on the new tracker, quietly unless some are dropped', async () => {
        session.loggedIn('alice');
        sharing.reoffer
          .mockResolvedValueOnce({ offered: 2, dropped: [] })
          .mockResolvedValueOnce({ offered: 1, dropped: ['b.bin (gone)'] });

        listener(tracker.onResumed)(NEW_TRACKER);
        await tick();
        expect(sharing.reoffer.mock.calls).toEqual([['alice']]);
        expect(out.lines).toEqual([]);

        listener(tracker.onResumed)(NEW_TRACKER);
        await tick();
        expect(sharing.reoffer.mock.calls).toEqual([['alice'], ['alice']]);
        expect(out.lines).toEqual(['no longer sharing b.bin (gone)']);
      });

      it('offers again one failover after the other', async () => {
        session.loggedIn('alice');
        let finish!: () => void;
        sharing.reoffer.mockImplementationOnce(
          () => new Promise((resolve) => (finish = () => resolve({ offered: 0, dropped: [] }))),
        );
        listener(tracker.onResumed)(NEW_TRACKER);
        listener(tracker.onResumed)(NEW_TRACKER);
        await tick();
        expect(sharing.reoffer).toHaveBeenCalledTimes(1);
        finish();
        await tick();
        expect(sharing.reoffer).toHaveBeenCalledTimes(2);
      });

      it('says when the shares cannot be offered again', async () => {
        session.loggedIn('alice');
        sharing.reoffer.mockRejectedValue(new Error('lost connection to every tracker (tried 127.0.0.1:6001)'));
        listener(tracker.onResumed)(NEW_TRACKER);
        await tick();
        expect(out.lines).toEqual([
          'error: could not offer your files again: lost connection to every tracker (tried 127.0.0.1:6001)',
        ]);
      });

      it('offers nothing when nobody is logged in', async () => {
        listener(tracker.onResumed)(NEW_TRACKER);
        await tick();
        expect(sharing.reoffer).not.toHaveBeenCalled();
      });

      it('forgets the login when the new tracker lost the session', () => {
        session.loggedIn('alice');
        listener(tracker.onSessionLost)(NEW_TRACKER);
        expect(session.user).toBeUndefined();
      });
    });
  });

  describe(LogoutCommand.name, () => {
    const logout = () => moduleRef.get(LogoutCommand).run();
    beforeEach(() => session.loggedIn('alice'));

    it('logs out and forgets the session token and the capability key', async () => {
      capabilities.trust('alice', Buffer.alloc(32, 9));
      answer(okReply('logged out'));
      await logout();
      expect(capabilities.seederId).toBeUndefined();
      expect(tracker.lines).toEqual(['logout']);
      expect(session.user).toBeUndefined();
      expect(tracker.setSessionToken.mock.calls).toEqual([[undefined]]);
      expect(out.lines).toEqual(['logged out']);
    });

    it('forgets the session when the tracker says nobody was logged in', async () => {
      answer(errReply('NOT_LOGGED_IN', 'you are not logged in'));
      await expect(logout()).rejects.toThrow('you are not logged in');
      expect(session.user).toBeUndefined();
      expect(tracker.setSessionToken.mock.calls).toEqual([[undefined]]);
    });

    it('keeps the session on another error', async () => {
      answer(errReply('INTERNAL', 'try again'));
      await expect(logout()).rejects.toThrow('try again');
      expect(session.user).toBe('alice');
      expect(tracker.setSessionToken).not.toHaveBeenCalled();
    });
  });

  describe(UploadFileCommand.name, () => {
    it("hands the file to the sharing service and prints the tracker's answer", async () => {
      sharing.upload.mockResolvedValue(okReply('shared report.pdf in group g1 (3 chunks)'));
      await moduleRef.get(UploadFileCommand).run(['g1', 'docs/report.pdf']);
      expect(sharing.upload).toHaveBeenCalledWith('g1', 'docs/report.pdf');
      expect(out.lines).toEqual(['shared report.pdf in group g1 (3 chunks)']);
    });

    it('fails with the message of a refusal', async () => {
      sharing.upload.mockResolvedValue(errReply('NOT_MEMBER', 'you are not a member of g1'));
      await expect(moduleRef.get(UploadFileCommand).run(['g1', 'a'])).rejects.toThrow('you are not a member of g1');
      expect(out.lines).toEqual([]);
    });
  });

  describe(DownloadFileCommand.name, () => {
    let dir: string;
    const download = (destination: string, fileName = 'report.pdf') =>
      moduleRef.get(DownloadFileCommand).run(['g1', fileName, destination]);

    beforeEach(() => {
      dir = temp.make('files-commands-');
      session.loggedIn('alice');
      answer(metadataReply(metadata([BOB, ME, CAROL])));
    });

    it('refuses before asking the tracker when nobody is logged in', async () => {
      session.loggedOut();
      await expect(download(dir)).rejects.toThrow('you must log in first');
      expect(tracker.request).not.toHaveBeenCalled();
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it('downloads into a directory under the file name, from every online seeder but this client', async () => {
      await download(dir);

      const dest = join(dir, 'report.pdf');
      expect(tracker.lines).toEqual(['download_file g1 report.pdf']);
      expect(downloads.isBusy).toHaveBeenCalledWith(dest);
      expect(downloads.start).toHaveBeenCalledTimes(1);
      expect(downloads.start).toHaveBeenCalledWith(
        'g1',
        'alice',
        { ...metadata([BOB, CAROL]) },
        dest,
        expect.any(Function),
        freshStart,
        { stallTimeoutMs: 120_000, rediscoverEveryMs: SWARM_REDISCOVER_MS },
      );
      expect(out.lines).toEqual([`downloading report.pdf (1.2 MiB, 3 chunks) from 2 seeders to ${dest}`]);
    });

    it('hands the download a way to renew capabilities and find seeders: asking the tracker again for the same file', async () => {
      await download(dir);
      const renew = downloads.start.mock.calls[0][4]!;
      const fresh = { ...BOB, capability: 'cap-bob-2' };
      const dave = { userId: 'dave', address: { host: '127.0.0.1', port: 7004 }, capability: 'cap-dave' };
      answer(seederListsReply({ ...metadata([fresh, ME, CAROL]), partialSeeders: [dave, { ...ME, userId: 'me' }] }));
      // seeders and partial seeders that came online are taken from the same answer (the seeder lists alone, no
      // chunk hashes); this client never downloads from itself
      await expect(renew()).resolves.toEqual([fresh, CAROL, { ...dave, partial: true }]);
      expect(tracker.lines).toEqual(['download_file g1 report.pdf', 'list_seeders g1 report.pdf']);
      expect(out.lines).toHaveLength(1); // renewing is silent

      // a tracker that does not know list_seeders is asked with download_file
      tracker.request.mockResolvedValueOnce(errReply('UNKNOWN_COMMAND', "unknown command 'list_seeders'"));
      tracker.request.mockResolvedValueOnce(metadataReply(metadata([fresh])));
      await expect(renew()).resolves.toEqual([fresh]);
      expect(tracker.lines.slice(2)).toEqual(['list_seeders g1 report.pdf', 'download_file g1 report.pdf']);

      answer(seederListsReply({ ...metadata([fresh]), fileHash: 'e'.repeat(40) }));
      await expect(renew()).rejects.toThrow('report.pdf is now another file on the tracker');
      answer(errReply('NOT_MEMBER', 'you are not a member of group g1'));
      await expect(renew()).rejects.toThrow('you are not a member of group g1');
    });

    it('downloads to a new file name in an existing directory', async () => {
      answer(metadataReply(metadata([BOB])));
      const dest = join(dir, 'copy.pdf');
      await download(dest);
      expect(downloads.start).toHaveBeenCalledWith(
        'g1',
        'alice',
        metadata([BOB]),
        dest,
        expect.any(Function),
        freshStart,
        { stallTimeoutMs: 120_000, rediscoverEveryMs: SWARM_REDISCOVER_MS },
      );
      expect(out.lines).toEqual([`downloading report.pdf (1.2 MiB, 3 chunks) from 1 seeder to ${dest}`]);
    });

    it.each([
      ['slashes', '../../etc/evil.pdf', "cannot contain '/'"],
      ['a right-to-left override', 'invoice\u202efdp.exe', '\\u{202e}'],
      ['a dot name', '..', "cannot be named '..'"],
    ])('refuses a file name with %s from the tracker: it never names a file here', async (_, name, why) => {
      answer(metadataReply(metadata([BOB], name)));
      await expect(download(dir, 'x')).rejects.toThrow(`the tracker sent an unusable name for x: `);
      await expect(download(dir, 'x')).rejects.toThrow(why);
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it('refuses an existing destination file', async () => {
      const existing = join(dir, 'copy.pdf');
      writeFileSync(existing, 'mine');
      await expect(download(existing)).rejects.toThrow(
        new Error(`${existing} already exists; choose another destination`),
      );
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it('refuses a directory that already holds a file of that name', async () => {
      writeFileSync(join(dir, 'report.pdf'), 'mine');
      await expect(download(dir)).rejects.toThrow(
        new Error(`${join(dir, 'report.pdf')} already exists; choose another destination`),
      );
      mkdirSync(join(dir, 'sub', 'report.pdf'), { recursive: true });
      await expect(download(join(dir, 'sub'))).rejects.toThrow(
        new Error(`${join(dir, 'sub', 'report.pdf')} already exists; choose another destination`),
      );
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it('refuses a destination whose directory does not exist', async () => {
      const missing = join(dir, 'no', 'such');
      await expect(download(join(missing, 'copy.pdf'))).rejects.toThrow(new Error(`no such directory: ${missing}`));
      writeFileSync(join(dir, 'plain'), 'x');
      await expect(download(join(dir, 'plain', 'copy.pdf'))).rejects.toThrow(
        new Error(`no such directory: ${join(dir, 'plain')}`),
      );
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it.each([
      ['no seeder is online', []],
      ['the only seeder is this client', [ME]],
    ])('refuses when %s', async (_, seeders) => {
      answer(metadataReply(metadata(seeders)));
      await expect(download(dir)).rejects.toThrow(
        new Error('no seeder is online for report.pdf in group g1; try again later'),
      );
      expect(downloads.start).not.toHaveBeenCalled();
      expect(out.lines).toEqual([]);
    });

    it('refuses a destination a running download writes into', async () => {
      const dest = join(dir, 'report.pdf');
      downloads.isBusy.mockImplementation((path) => path === dest);
      await expect(download(dir)).rejects.toThrow(new Error(`a download into ${dest} is already running`));
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it("fails with the tracker's refusal", async () => {
      answer(errReply('UNKNOWN_FILE', 'no file report.pdf in group g1'));
      await expect(download(dir)).rejects.toThrow(new Error('no file report.pdf in group g1'));
      expect(downloads.start).not.toHaveBeenCalled();
    });

    it('lists the download in downloads.json while it runs, and still when it stopped because the client quit', async () => {
      const ends: { entry: { interrupted: boolean }; end: () => void }[] = [];
      downloads.start.mockImplementation(() => {
        let end!: () => void;
        const entry = { done: new Promise<void>((resolve) => (end = resolve)), interrupted: false };
        ends.push({ entry, end });
        return entry;
      });
      const list = new RunningDownloadsFile(dataDir);
      const listed = (name: string) => ({
        userId: 'alice',
        groupId: 'g1',
        fileName: 'report.pdf',
        destPath: join(dir, name),
      });
      await download(join(dir, 'a.pdf'));
      await download(join(dir, 'b.pdf'));
      expect(await list.list()).toEqual([listed('a.pdf'), listed('b.pdf')]);

      // b ends first, so that its change of the list (none) is made before a's
      ends[1].entry.interrupted = true; // stopped by Ctrl-C
      ends[1].end();
      ends[0].end(); // completed, failed or cancelled by the user
      const listedNow = () =>
        (JSON.parse(readFileSync(join(dataDir, 'downloads.json'), 'utf8')) as { downloads: { destPath: string }[] })
          .downloads;
      await eventually(() => !listedNow().some((d) => d.destPath.endsWith('a.pdf')), 'a.pdf is taken off the list');
      expect(await list.list()).toEqual([listed('b.pdf')]);
    });

    it('says when it resumes a .part, and passes on a refusal of one', async () => {
      const dest = join(dir, 'report.pdf');
      downloads.prepareResume.mockResolvedValueOnce({ resuming: true, partPath: `${dest}.part`, listedCount: 2 });
      await download(dir);
      expect(out.lines).toEqual([
        `downloading report.pdf (1.2 MiB, 3 chunks) from 2 seeders to ${dest}, resuming from ${dest}.part (2 chunks recorded there)`,
      ]);
      expect(downloads.prepareResume).toHaveBeenCalledWith(metadata([BOB, ME, CAROL]), dest);

      downloads.start.mockClear();
      downloads.prepareResume.mockRejectedValueOnce(new DownloadError(`${dest}.part belongs to another file`));
      await expect(download(dir)).rejects.toThrow(`${dest}.part belongs to another file`);
      expect(downloads.start).not.toHaveBeenCalled();
    });
  });

  describe(CancelDownloadCommand.name, () => {
    const cancel = (...args: string[]) => moduleRef.get(CancelDownloadCommand).run(args);
    /** A download in the given state whose `cancel` ends it. */
    const entryIn = (state: DownloadState) => {
      let end!: () => void;
      const done = new Promise<void>((resolve) => (end = resolve));
      const resume = { discard: jest.fn(() => Promise.resolve()) };
      const job = { destPath: '/downloads/report.pdf', progress: { state }, cancel: jest.fn(() => end()) };
      if (state !== 'downloading') end();
      downloads.find.mockReturnValue({ job, done, resume });
      return { job, resume };
    };

    it('stops a running download and keeps its .part', async () => {
      const { job, resume } = entryIn('downloading');
      await cancel('g1', 'report.pdf');
      expect(downloads.find).toHaveBeenCalledWith('g1', 'report.pdf');
      expect(job.cancel).toHaveBeenCalledTimes(1);
      expect(resume.discard).not.toHaveBeenCalled();
      expect(out.lines).toEqual([
        'kept /downloads/report.pdf.part: download_file g1 report.pdf /downloads/report.pdf resumes it',
      ]);
    });

    it('with --discard, deletes the .part of a running or failed download', async () => {
      for (const state of ['downloading', 'failed'] as const) {
        const { resume } = entryIn(state);
        await cancel('g1', 'report.pdf', '--discard');
        expect(resume.discard).toHaveBeenCalledTimes(1);
      }
      expect(out.lines).toEqual([
        'deleted /downloads/report.pdf.part and its chunk record',
        'deleted /downloads/report.pdf.part and its chunk record',
      ]);
    });

    it('refuses what it cannot cancel, changing nothing', async () => {
      await expect(cancel('g1', 'report.pdf')).rejects.toThrow('no download of report.pdf in group g1 in this session');
      const complete = entryIn('complete');
      await expect(cancel('g1', 'report.pdf', '--discard')).rejects.toThrow('the download of report.pdf is complete');
      expect(complete.resume.discard).not.toHaveBeenCalled();
      entryIn('failed');
      await expect(cancel('g1', 'report.pdf')).rejects.toThrow('the download of report.pdf is not running');
      const running = entryIn('downloading');
      await expect(cancel('g1', 'report.pdf', '--force')).rejects.toThrow(
        "unknown option '--force'; usage: cancel_download <group_id> <file_name> [--discard]",
      );
      expect(running.job.cancel).not.toHaveBeenCalled();
      expect(out.lines).toEqual([]);
    });
  });

  describe(StopShareCommand.name, () => {
    const stop = () => moduleRef.get(StopShareCommand).run(['g1', 'a.bin']);

    it('stops sharing here once the tracker agrees', async () => {
      answer(okReply('stopped sharing a.bin in group g1'));
      await stop();
      expect(tracker.lines).toEqual(['stop_share g1 a.bin']);
      expect(sharing.stopped).toHaveBeenCalledWith('g1', 'a.bin');
      expect(out.lines).toEqual(['stopped sharing a.bin in group g1']);
    });

    it('stops sharing here too when the tracker did not know this client as a seeder', async () => {
      answer(errReply('NOT_SEEDING', 'you do not seed a.bin in group g1'));
      await expect(stop()).rejects.toThrow('you do not seed a.bin in group g1');
      expect(sharing.stopped).toHaveBeenCalledWith('g1', 'a.bin');
    });

    it('keeps sharing when the tracker refuses for another reason', async () => {
      answer(errReply('NOT_MEMBER', 'you are not a member of g1'));
      const refused = stop();
      await expect(refused).rejects.toThrow('you are not a member of g1');
      await expect(refused).rejects.toBeInstanceOf(TrackerReplyError);
      await expect(refused).rejects.toMatchObject({ code: 'NOT_MEMBER' });
      expect(sharing.stopped).not.toHaveBeenCalled();
    });
  });

  describe(LeaveGroupCommand.name, () => {
    const leave = () => moduleRef.get(LeaveGroupCommand).run(['g1']);

    it('drops the shares in the group once left', async () => {
      answer(okReply('left group g1'));
      await leave();
      expect(tracker.lines).toEqual(['leave_group g1']);
      expect(sharing.leftGroup).toHaveBeenCalledWith('g1');
      expect(out.lines).toEqual(['left group g1']);
    });

    it('keeps them when leaving fails', async () => {
      answer(errReply('NOT_MEMBER', 'you are not a member of g1'));
      await expect(leave()).rejects.toThrow('you are not a member of g1');
      expect(sharing.leftGroup).not.toHaveBeenCalled();
    });
  });

  describe(ShowDownloadsCommand.name, () => {
    const MIB = 1024 ** 2;
    const GIB = 1024 ** 3;
    const seederProgress = (userId: string, progress: Partial<SeederProgress>): SeederProgress => ({
      userId,
      address: '127.0.0.1:7002',
      state: 'active',
      chunks: 0,
      corrupt: 0,
      refused: 0,
      retries: 0,
      ...progress,
    });
    const show = () => moduleRef.get(ShowDownloadsCommand).run();
    const entry = (groupId: string, progress: Partial<DownloadProgress>) => ({
      groupId,
      userId: 'alice',
      job: {
        progress: {
          verifying: false,
          percent: 0,
          speed: 0,
          bytesDone: 0,
          totalBytes: 0,
          elapsedMs: 0,
          seeders: [],
          ...progress,
        },
      },
    });

    it('says when there are none', async () => {
      await show();
      expect(out.lines).toEqual(['no downloads yet']);
    });

    it('lists running, verifying, waiting, complete and failed downloads in start order', async () => {
      downloads.downloads = [
        entry('g1', {
          fileName: 'movie.mkv',
          state: 'downloading',
          percent: 12.345,
          bytesDone: 4 * MIB,
          totalBytes: 32 * MIB,
          speed: 1.5 * MIB,
          seeders: [
            seederProgress('bob', { state: 'active', chunks: 5, tls: true }),
            seederProgress('carol', { state: 'active', partial: true, chunks: 3 }),
            seederProgress('dave', { state: 'retrying' }),
            seederProgress('erin', { state: 'dropped' }),
          ],
        }),
        entry('g1', {
          fileName: 'big.iso',
          state: 'downloading',
          percent: 100,
          bytesDone: 2 * GIB,
          totalBytes: 2 * GIB,
          speed: 0,
          verifying: true,
          seeders: [seederProgress('bob', { state: 'active' })],
        }),
        entry('g1', {
          fileName: 'solo.bin',
          state: 'downloading',
          percent: 40,
          bytesDone: 400 * 1024,
          totalBytes: 1000 * 1024,
          waiting: 'waiting for a seeder (bob busy, retry in 2 s; gives up in 9m 40s without progress)',
        }),
        entry('g2', {
          fileName: 'notes.txt',
          state: 'complete',
          destPath: '/home/alice/notes.txt',
          totalBytes: 3 * MIB,
          elapsedMs: 2_000,
        }),
        entry('g2', {
          fileName: 'resumed.txt',
          state: 'complete',
          destPath: '/home/alice/resumed.txt',
          totalBytes: 3 * MIB,
          resumedBytes: 2 * MIB,
          elapsedMs: 4_000,
        }),
        entry('g2', { fileName: 'broken.bin', state: 'failed', reason: 'no seeders left: bob timed out' }),
        entry('g3', { fileName: 'other.bin', state: 'failed' }),
      ];
      await show();
      expect(out.lines).toEqual([
        '[D] [g1] movie.mkv 12.3% 4.0 MiB of 32.0 MiB, 1.5 MiB/s, 2 peers (1 partial), ETA 19 s; from bob 5 over TLS, carol 3',
        '[D] [g1] big.iso 100.0% 2.0 GiB of 2.0 GiB, 0 B/s, 1 peer, verifying',
        '[D] [g1] solo.bin 40.0% 400.0 KiB of 1000.0 KiB, 0 B/s, 0 peers, ' +
          'waiting for a seeder (bob busy, retry in 2 s; gives up in 9m 40s without progress)',
        '[C] [g2] notes.txt -> /home/alice/notes.txt: 3.0 MiB in 2.0 s (1.5 MiB/s)',
        '[C] [g2] resumed.txt -> /home/alice/resumed.txt: 3.0 MiB in 4.0 s (256.0 KiB/s)',
        '[F] [g2] broken.bin (no seeders left: bob timed out)',
        '[F] [g3] other.bin (failed)',
      ]);
    });

    it('shows a resumed download checking its .part, then how many chunks it resumed', async () => {
      const resume = { isChecking: true, checkedCount: 3, listedCount: 40, partPath: '/home/alice/movie.mkv.part' };
      const resumed = {
        ...entry('g1', { fileName: 'movie.mkv', state: 'downloading', percent: 0 }),
        resume,
      };
      downloads.downloads = [resumed];
      await show();
      resume.isChecking = false;
      resumed.job.progress = {
        ...resumed.job.progress,
        percent: 55,
        bytesDone: 11 * MIB,
        totalBytes: 20 * MIB,
        resumedChunks: 40,
        chunkCount: 80,
      };
      await show();
      expect(out.lines).toEqual([
        '[D] [g1] movie.mkv checking 3 of 40 chunks in /home/alice/movie.mkv.part',
        '[D] [g1] movie.mkv 55.0% 11.0 MiB of 20.0 MiB, 0 B/s, 0 peers (resumed 40 of 80 chunks)',
      ]);
    });
  });

  describe('through the shell', () => {
    const execute = (line: string) => moduleRef.get(ShellService).execute(line);

    it('replaces the forwarded tracker commands and prints failures as error lines', async () => {
      await execute('download_file g1 report.pdf /tmp');
      await execute('download_file g1 report.pdf');
      await execute('show_downloads');
      expect(out.lines).toEqual([
        'error: you must log in first',
        'error: usage: download_file <group_id> <file_name> <destination_path>',
        'no downloads yet',
      ]);
      expect(tracker.request).not.toHaveBeenCalled();
    });
  });
});
