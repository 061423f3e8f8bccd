import { HostPort, SeederForm } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { PresenceChange, PresenceEntry, SyncService } from '../sync/sync.service';
import { Announcer, PresenceService } from './presence.service';

/** The part of SyncService presence uses, as a fake: what it pushed, and a way to play the other trackers. */
class FakeSync {
  replaying = false;
  readonly pushed: PresenceChange[] = [];
  private source: (() => PresenceEntry[]) | undefined;
  private remote: ((tracker: number, change: PresenceChange | 'reset') => void) | undefined;

  addPresenceSource(source: () => PresenceEntry[]): void {
    this.source = source;
  }
  onRemotePresence(listener: (tracker: number, change: PresenceChange | 'reset') => void): void {
    this.remote = listener;
  }
  presenceChanged(change: PresenceChange): void {
    this.pushed.push(change);
  }
  /** What a fresh link to another tracker would send. */
  localPresence(): PresenceEntry[] {
    return this.source!();
  }
  fromTracker(tracker: number, change: PresenceChange | 'reset'): void {
    this.remote!(tracker, change);
  }
}

const at = (port: number, host = '10.0.0.1'): HostPort => ({ host, port });
const as = (userId: string, connectionId: number, port = 7000, seedForm = false): Announcer => ({
  userId,
  connectionId,
  address: at(port),
  seedForm,
});
/** A pushed change, short: `+alice g1/f` or `-alice g1/f`, partial ones with `~`. */
const short = (c: PresenceChange) =>
  `${c.on ? '+' : '-'}${c.entry.partial ? '~' : ''}${c.entry.userId} ${c.entry.groupId}/${c.entry.fileName}`;

describe(PresenceService.name, () => {
  let presence: PresenceService;
  let sync: FakeSync;

  beforeEach(async () => {
    sync = new FakeSync();
    const moduleRef = await Test.createTestingModule({
      providers: [PresenceService, { provide: SyncService, useValue: sync }],
    }).compile();
    presence = moduleRef.get(PresenceService);
  });

  const partialUsers = (g = 'g1', f = 'f') => presence.partialSeeders(g, f).map((p) => p.userId);

  describe('fingerprints', () => {
    const fpA = `sha256:${'a'.repeat(64)}`;
    const fpB = `sha256:${'b'.repeat(64)}`;
    const withFp = (a: Announcer, fingerprint: string): Announcer => ({ ...a, fingerprint });

    it('keeps the fingerprint of the announcing connection with a full and a partial seeder, and pushes it', () => {
      presence.announceFull(withFp(as('alice', 1, 7001), fpA), 'g1', 'f', '/a/f');
      presence.announcePartial(withFp(as('bob', 2, 7002), fpB), 'g1', 'f');
      presence.announceFull(as('carol', 3, 7003), 'g1', 'f', '/c/f'); // a plain connection: none
      expect(presence.fullSeeder('g1', 'f', 'alice')).toEqual({ address: at(7001), seedForm: false, fingerprint: fpA });
      expect(presence.fullSeeder('g1', 'f', 'carol')).toEqual({ address: at(7003), seedForm: false });
      expect(presence.partialSeeders('g1', 'f')).toEqual([{ userId: 'bob', address: at(7002), fingerprint: fpB }]);
      expect(sync.pushed.map((c) => (c.on ? c.entry.fingerprint : 'off'))).toEqual([fpA, fpB, undefined]);
      expect(sync.localPresence().map((e) => e.fingerprint)).toEqual([fpA, undefined, fpB]);
    });

    it('gives a seed-form seeder none, and takes the one of the connection that announced last', () => {
      presence.announceFull(withFp(as('alice', 1, 7001, true), fpA), 'g1', 'f', '/a/f');
      expect(presence.fullSeeder('g1', 'f', 'alice')).toEqual({ address: at(7001), seedForm: true });
      presence.announceFull(withFp(as('alice', 2, 7001), fpB), 'g1', 'f', '/a/f'); // after a resume elsewhere
      expect(presence.fullSeeder('g1', 'f', 'alice')?.fingerprint).toBe(fpB);
    });

    it("lists other trackers' seeders with the fingerprint their presence line carried, or none", () => {
      const entry = { address: '10.0.0.1:7001', groupId: 'g1', fileName: 'f', filePath: '/a/f' };
      sync.fromTracker(2, {
        on: true,
        entry: { ...entry, userId: 'alice', form: SeederForm.Extended, fingerprint: fpA },
      });
      sync.fromTracker(2, { on: true, entry: { ...entry, userId: 'bob', form: SeederForm.Extended } });
      sync.fromTracker(2, { on: true, entry: { ...entry, userId: 'old', form: SeederForm.Seed, fingerprint: fpB } });
      sync.fromTracker(2, {
        on: true,
        entry: { ...entry, userId: 'dan', filePath: '', form: SeederForm.Extended, partial: true, fingerprint: fpB },
      });
      expect(presence.fullSeeder('g1', 'f', 'alice')?.fingerprint).toBe(fpA);
      expect(presence.fullSeeder('g1', 'f', 'bob')?.fingerprint).toBeUndefined();
      expect(presence.fullSeeder('g1', 'f', 'old')?.fingerprint).toBeUndefined();
      expect(presence.partialSeeders('g1', 'f')).toEqual([{ userId: 'dan', address: at(7001), fingerprint: fpB }]);
    });
  });

  describe('full seeders', () => {
    it('knows where and in which form an announcer serves a file, and counts it', () => {
      presence.announceFull(as('alice', 1, 7001), 'g1', 'f', '/a/f');
      presence.announceFull(as('bob', 2, 7002, true), 'g1', 'f', '/b/f');
      expect(presence.fullSeeder('g1', 'f', 'alice')).toEqual({ address: at(7001), seedForm: false });
      expect(presence.fullSeeder('g1', 'f', 'bob')).toEqual({ address: at(7002), seedForm: true });
      expect(presence.fullSeeder('g1', 'f', 'carol')).toBeUndefined();
      expect(presence.fullSeeder('g1', 'other', 'alice')).toBeUndefined();
      expect(presence.onlineFullCount('g1', 'f')).toBe(2);
      expect(sync.pushed.map(short)).toEqual(['+alice g1/f', '+bob g1/f']);
      expect(sync.localPresence()).toEqual([
        {
          userId: 'alice',
          address: '10.0.0.1:7001',
          groupId: 'g1',
          fileName: 'f',
          filePath: '/a/f',
          form: 'p2p-share/2',
        },
        {
          userId: 'bob',
          address: '10.0.0.1:7002',
          groupId: 'g1',
          fileName: 'f',
          filePath: '/b/f',
          form: SeederForm.Seed,
        },
      ]);
    });

    it('uses the address a session announced last, for every file of it', () => {
      presence.announceFull(as('alice', 1, 7001), 'g1', 'f', '/a/f');
      presence.announceFull(as('alice', 1, 9001), 'g1', 'other', '/a/other');
      expect(presence.fullSeeder('g1', 'f', 'alice')?.address).toEqual(at(9001));
    });

    it('forgets every announcement of a session when it ends, and tells the other trackers', () => {
      presence.announceFull(as('alice', 1), 'g1', 'f', '/a/f');
      presence.announceFull(as('alice', 1), 'g1', 'g', '/a/g');
      presence.announceFull(as('bob', 2), 'g1', 'f', '/b/f');
      sync.pushed.length = 0;
      presence.sessionEnded(1);
      presence.sessionEnded(99); // announced nothing
      expect(presence.onlineFullCount('g1', 'f')).toBe(1);
      expect(presence.onlineFullCount('g1', 'g')).toBe(0);
      expect(sync.pushed.map(short)).toEqual(['-alice g1/f', '-alice g1/g']);
      expect(presence.counts()).toEqual({ sessions: 1, full: 1, partial: 0, remoteFull: 0, remotePartial: 0 });
    });

    it('moves an announcement to the user’s newer session; the older one ending no longer takes it away', () => {
      presence.announceFull(as('alice', 1, 7001), 'g1', 'f', '/a/f');
      presence.announceFull(as('alice', 2, 7002), 'g1', 'f', '/a/f');
      presence.sessionEnded(1);
      expect(presence.fullSeeder('g1', 'f', 'alice')?.address).toEqual(at(7002));
    });

    it('starts afresh when another user announces on the same connection', () => {
      presence.announceFull(as('alice', 1), 'g1', 'f', '/a/f');
      presence.announceFull(as('bob', 1), 'g1', 'g', '/b/g');
      expect(presence.fullSeeder('g1', 'f', 'alice')).toBeUndefined();
      expect(presence.localFullSeeders()).toEqual([{ groupId: 'g1', fileName: 'g', userId: 'bob' }]);
    });

    it('withdraws one user’s file, except while the log is replayed', () => {
      presence.announceFull(as('alice', 1), 'g1', 'f', '/a/f');
      sync.replaying = true;
      presence.withdrawFull('g1', 'f', 'alice');
      expect(presence.onlineFullCount('g1', 'f')).toBe(1);
      sync.replaying = false;
      presence.withdrawFull('g1', 'f', 'alice');
      presence.withdrawFull('g1', 'f', 'alice'); // nothing left: nothing pushed
      expect(presence.onlineFullCount('g1', 'f')).toBe(0);
      expect(sync.pushed.map(short)).toEqual(['+alice g1/f', '-alice g1/f']);
    });

    it('counts a seeder another tracker reports while that tracker says so', () => {
      const entry = { userId: 'bob', address: '10.0.0.9:7002', groupId: 'g1', fileName: 'f', filePath: '/b/f' };
      sync.fromTracker(2, { on: true, entry: { ...entry, form: SeederForm.Seed } });
      presence.announceFull(as('alice', 1), 'g1', 'f', '/a/f');
      expect(presence.fullSeeder('g1', 'f', 'bob')).toEqual({ address: at(7002, '10.0.0.9'), seedForm: true });
      expect(presence.onlineFullCount('g1', 'f')).toBe(2);
      sync.fromTracker(2, { on: false, entry: { userId: 'bob', groupId: 'g1', fileName: 'f' } });
      expect(presence.fullSeeder('g1', 'f', 'bob')).toBeUndefined();
      sync.fromTracker(3, { on: true, entry: { ...entry, form: SeederForm.Extended } });
      sync.fromTracker(3, 'reset');
      expect(presence.onlineFullCount('g1', 'f')).toBe(1);
    });
  });

  describe('partial seeders', () => {
    it('lists a partial seeder at its address, tells the other trackers, and sends it on a fresh link', () => {
      presence.announcePartial(as('carol', 3, 7003), 'g1', 'f');
      expect(presence.partialSeeders('g1', 'f')).toEqual([{ userId: 'carol', address: at(7003) }]);
      expect(presence.partialSeeders('g1', 'other')).toEqual([]);
      expect(presence.onlineFullCount('g1', 'f')).toBe(0); // list_files counts full seeders only
      expect(sync.pushed.map(short)).toEqual(['+~carol g1/f']);
      expect(sync.localPresence()).toEqual([
        {
          userId: 'carol',
          address: '10.0.0.1:7003',
          groupId: 'g1',
          fileName: 'f',
          filePath: '',
          form: SeederForm.Extended,
          partial: true,
        },
      ]);
    });

    it('withdraws it on stop_partial, saying whether there was anything to withdraw', () => {
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      expect(presence.withdrawPartial('g1', 'f', 'carol')).toBe(true);
      expect(presence.withdrawPartial('g1', 'f', 'carol')).toBe(false);
      expect(partialUsers()).toEqual([]);
      expect(sync.pushed.map(short)).toEqual(['+~carol g1/f', '-~carol g1/f']);
    });

    it('ends with its session, beside the session’s full announcements', () => {
      presence.announceFull(as('carol', 3), 'g1', 'done', '/c/done');
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      presence.announcePartial(as('dave', 4), 'g1', 'f');
      sync.pushed.length = 0;
      presence.sessionEnded(3);
      expect(partialUsers()).toEqual(['dave']);
      expect(sync.pushed.map(short)).toEqual(['-carol g1/done', '-~carol g1/f']);
    });

    it('ends when the same user becomes a full seeder of the file, on any of its sessions', () => {
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      presence.announcePartial(as('carol', 3), 'g1', 'g');
      presence.announceFull(as('carol', 5), 'g1', 'f', '/c/f');
      expect(partialUsers('g1', 'f')).toEqual([]);
      expect(partialUsers('g1', 'g')).toEqual(['carol']);
      expect(sync.pushed.map(short)).toEqual(['+~carol g1/f', '+~carol g1/g', '-~carol g1/f', '+carol g1/f']);
    });

    it('ends when the member leaves the group, only for that group’s files', () => {
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      presence.announcePartial(as('carol', 3), 'g2', 'f');
      presence.announcePartial(as('dave', 4), 'g1', 'f');
      sync.fromTracker(2, {
        on: true,
        entry: {
          userId: 'carol',
          address: '10.0.0.9:7003',
          groupId: 'g1',
          fileName: 'x',
          filePath: '',
          form: SeederForm.Extended,
          partial: true,
        },
      });
      presence.memberLeft('g1', 'carol');
      expect(partialUsers('g1', 'f')).toEqual(['dave']);
      expect(partialUsers('g1', 'x')).toEqual([]);
      expect(partialUsers('g2', 'f')).toEqual(['carol']);
    });

    it('ends when the file is forgotten, here and as other trackers reported it', () => {
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      sync.fromTracker(2, {
        on: true,
        entry: {
          userId: 'dave',
          address: '10.0.0.9:7004',
          groupId: 'g1',
          fileName: 'f',
          filePath: '',
          form: SeederForm.Extended,
          partial: true,
        },
      });
      presence.fileForgotten('g1', 'f');
      expect(partialUsers()).toEqual([]);
      expect(presence.counts()).toEqual({ sessions: 1, full: 0, partial: 0, remoteFull: 0, remotePartial: 0 });
      // a file of the same name shared later starts with no partial seeder
      presence.announcePartial(as('carol', 3), 'g1', 'f');
      expect(partialUsers()).toEqual(['carol']);
    });

    it('lists another tracker’s partial seeders until it unsets them or its link resets, this tracker’s first', () => {
      const entry = (userId: string, port: number): PresenceEntry => ({
        userId,
        address: `10.0.0.9:${port}`,
        groupId: 'g1',
        fileName: 'f',
        filePath: '',
        form: SeederForm.Extended,
        partial: true,
      });
      sync.fromTracker(2, { on: true, entry: entry('dave', 7004) });
      sync.fromTracker(2, { on: true, entry: entry('carol', 7999) });
      sync.fromTracker(2, { on: true, entry: { ...entry('erin', 7005), address: 'no address' } }); // ignored
      presence.announcePartial(as('carol', 3, 7003), 'g1', 'f');
      expect(presence.partialSeeders('g1', 'f')).toEqual([
        { userId: 'carol', address: at(7003) },
        { userId: 'dave', address: at(7004, '10.0.0.9') },
      ]);
      // a partial presence is not a full one
      expect(presence.fullSeeder('g1', 'f', 'dave')).toBeUndefined();
      expect(presence.counts()).toMatchObject({ partial: 1, remotePartial: 2, remoteFull: 0 });
      sync.fromTracker(2, { on: false, entry: { userId: 'dave', groupId: 'g1', fileName: 'f', partial: true } });
      expect(partialUsers()).toEqual(['carol']);
      sync.fromTracker(2, { on: true, entry: entry('dave', 7004) });
      sync.fromTracker(2, 'reset');
      expect(partialUsers()).toEqual(['carol']);
    });

    it('lists a user once per tracker session, on the connection that announced last', () => {
      presence.announcePartial(as('carol', 3, 7003), 'g1', 'f');
      presence.announcePartial(as('carol', 6, 7006), 'g1', 'f');
      presence.sessionEnded(3);
      expect(presence.partialSeeders('g1', 'f')).toEqual([{ userId: 'carol', address: at(7006) }]);
    });
  });
});
