import { formatHostPort, HostPort, parseHostPort, SeederForm } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { PresenceChange, PresenceEntry, SyncService } from '../sync/sync.service';

/** Who announces a share: the user, the connection (session) it came on, and where its client serves chunks. */
export interface Announcer {
  readonly userId: string;
  readonly connectionId: number;
  readonly address: HostPort;
  /** True when the session's connection speaks the seed form (no HELLO): the client then serves paths, not capabilities. */
  readonly seedForm?: boolean;
  /** The fingerprint of the TLS client certificate of the announcing connection; none over a plain one. */
  readonly fingerprint?: string;
}

/** Where an online full seeder serves a file, in which form, and the certificate it presented (if any). */
export interface OnlineSeeder {
  readonly address: HostPort;
  readonly seedForm: boolean;
  readonly fingerprint?: string;
}

/** A member downloading a file that serves the chunks it holds so far (always of this project's form). */
export interface PartialPresence {
  readonly userId: string;
  readonly address: HostPort;
  readonly fingerprint?: string;
}

/** One announcement of this tracker's sessions, as the files module checks it after a replay. */
export interface LocalAnnouncement {
  readonly groupId: string;
  readonly fileName: string;
  readonly userId: string;
}

export interface PresenceCounts {
  /** Live sessions of this tracker that announced something. */
  readonly sessions: number;
  /** Full and partial announcements of this tracker's sessions. */
  readonly full: number;
  readonly partial: number;
  /** The same, as the other trackers reported them. */
  readonly remoteFull: number;
  readonly remotePartial: number;
}

const fileKey = (groupId: string, fileName: string): string => `${groupId}/${fileName}`;
/** Group ids cannot hold '/', so the first one ends the group. */
const splitKey = (key: string): [string, string] => {
  const at = key.indexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
};

interface RemoteSeeder extends OnlineSeeder {
  readonly filePath: string;
}

/** The soft state of one live session that announced shares or partial downloads. */
interface AnnouncingSession {
  readonly userId: string;
  /** Where the user's client serves chunks, as last announced on this session. */
  address: HostPort;
  /** The form of the session's connection: a seed-form seeder is listed with its path and as `seed`. */
  seedForm: boolean;
  /** The fingerprint of the announcing connection's client certificate, as last announced on this session. */
  fingerprint: string | undefined;
  /** Keys (`fileKey`) of the files this session seeds whole, with the path each was registered with. */
  readonly files: Map<string, string>;
  /** Keys of the files this session downloads and serves in part. */
  readonly partial: Set<string>;
}

type ByFile<T> = Map<string, Map<string, T>>;

/**
 * Who is online and serving what: soft state, never logged nor stored. A
 * session's announcements (`upload_file`/`new_seeder` for whole files,
 * `partial_seeder` for files it is downloading) count while it lives; other
 * trackers report theirs over sync (presence lines, section 6.6), which count
 * while their link lives. Every local change is handed to `SyncService` for
 * the other trackers. This service checks no membership nor file: the files
 * module asks it only after its own checks, and tells it when a file goes or a
 * member leaves.
 */
@Injectable()
export class PresenceService {
  /** fileKey -> userId -> connection id of the session that announced the whole file. */
  private readonly online = new Map<string, Map<string, number>>();
  /** fileKey -> userId -> connection id of the session that announced it downloads the file and serves its part. */
  private readonly partial = new Map<string, Map<string, number>>();
  /** connection id -> its announcements. */
  private readonly sessions = new Map<number, AnnouncingSession>();

  /** Presence reported by other trackers: tracker -> fileKey -> userId -> where and what. */
  private readonly remote = new Map<number, ByFile<RemoteSeeder>>();
  private readonly remotePartial = new Map<number, ByFile<Omit<PartialPresence, 'userId'>>>();

  constructor(private readonly sync: SyncService) {
    sync.addPresenceSource(() => this.localEntries());
    sync.onRemotePresence((tracker, change) => this.remoteChange(tracker, change));
  }

  /** The announcer serves the whole file at `filePath` (`upload_file`, `new_seeder`); it is no partial seeder of it. */
  announceFull(by: Announcer, groupId: string, fileName: string, filePath: string): void {
    const key = fileKey(groupId, fileName);
    const session = this.sessionOf(by);
    session.files.set(key, filePath);
    this.withdrawPartial(groupId, fileName, by.userId);
    const previous = this.claim(this.online, key, by);
    if (previous !== undefined) this.sessions.get(previous)?.files.delete(key);
    this.sync.presenceChanged({
      on: true,
      entry: {
        userId: by.userId,
        address: formatHostPort(by.address),
        groupId,
        fileName,
        filePath,
        form: formOf(session),
        ...(session.fingerprint && { fingerprint: session.fingerprint }),
      },
    });
  }

  /** The announcer downloads the file and serves the chunks it holds (`partial_seeder`, extended form only). */
  announcePartial(by: Announcer, groupId: string, fileName: string): void {
    const key = fileKey(groupId, fileName);
    const session = this.sessionOf(by);
    session.partial.add(key);
    const previous = this.claim(this.partial, key, by);
    if (previous !== undefined) this.sessions.get(previous)?.partial.delete(key);
    this.sync.presenceChanged({ on: true, entry: partialEntry(by.userId, session, groupId, fileName) });
  }

  /** The user no longer seeds the whole file here (`stop_share`, left the group, gone after a replay). */
  withdrawFull(groupId: string, fileName: string, userId: string): void {
    if (this.sync.replaying) return; // history is being re-applied; the files module settles presence afterwards
    const key = fileKey(groupId, fileName);
    const connectionId = this.release(this.online, key, userId);
    if (connectionId === undefined) return;
    this.sessions.get(connectionId)?.files.delete(key);
    this.sync.presenceChanged({ on: false, entry: { userId, groupId, fileName } });
  }

  /** The user no longer serves its part of the file here; false when it did not. */
  withdrawPartial(groupId: string, fileName: string, userId: string): boolean {
    const key = fileKey(groupId, fileName);
    const connectionId = this.release(this.partial, key, userId);
    if (connectionId === undefined) return false;
    this.sessions.get(connectionId)?.partial.delete(key);
    this.sync.presenceChanged({ on: false, entry: { userId, groupId, fileName, partial: true } });
    return true;
  }

  /** The user left the group: it serves no part of any of its files any more, here or, as far as we know, elsewhere. */
  memberLeft(groupId: string, userId: string): void {
    if (this.sync.replaying) return;
    const prefix = fileKey(groupId, '');
    for (const [key, users] of [...this.partial]) {
      if (key.startsWith(prefix) && users.has(userId)) this.withdrawPartial(groupId, key.slice(prefix.length), userId);
    }
    for (const byFile of this.remotePartial.values()) {
      for (const [key, users] of byFile) if (key.startsWith(prefix)) users.delete(userId);
    }
  }

  /** The session on `connectionId` ended (logout, closed connection, replaced by a login): all it announced goes. */
  sessionEnded(connectionId: number): void {
    const session = this.sessions.get(connectionId);
    if (!session) return;
    this.sessions.delete(connectionId);
    for (const key of session.files.keys()) {
      if (this.release(this.online, key, session.userId, connectionId) === undefined) continue;
      const [groupId, fileName] = splitKey(key);
      this.sync.presenceChanged({ on: false, entry: { userId: session.userId, groupId, fileName } });
    }
    for (const key of session.partial) {
      if (this.release(this.partial, key, session.userId, connectionId) === undefined) continue;
      const [groupId, fileName] = splitKey(key);
      this.sync.presenceChanged({ on: false, entry: { userId: session.userId, groupId, fileName, partial: true } });
    }
  }

  /**
   * The file is gone from the group (on every tracker, as each applies its deletion): nobody serves it, whole or in
   * part. Nothing is pushed: the other trackers forget it when they delete the file.
   */
  fileForgotten(groupId: string, fileName: string): void {
    if (this.sync.replaying) return;
    const key = fileKey(groupId, fileName);
    for (const connectionId of this.online.get(key)?.values() ?? []) this.sessions.get(connectionId)?.files.delete(key);
    this.online.delete(key);
    for (const connectionId of this.partial.get(key)?.values() ?? [])
      this.sessions.get(connectionId)?.partial.delete(key);
    this.partial.delete(key);
    for (const byFile of this.remotePartial.values()) byFile.delete(key);
  }

  // queries

  /** Where `userId` serves the whole file now, through a session of this tracker (first) or of another. */
  fullSeeder(groupId: string, fileName: string, userId: string): OnlineSeeder | undefined {
    const key = fileKey(groupId, fileName);
    const connectionId = this.online.get(key)?.get(userId);
    const session = connectionId === undefined ? undefined : this.sessions.get(connectionId);
    if (session) return onlineSeeder(session);
    for (const byFile of this.remote.values()) {
      const seeder = byFile.get(key)?.get(userId);
      if (seeder) return onlineSeeder(seeder);
    }
    return undefined;
  }

  /** How many users seed the whole file online, on any tracker. */
  onlineFullCount(groupId: string, fileName: string): number {
    const key = fileKey(groupId, fileName);
    const users = new Set(this.online.get(key)?.keys() ?? []);
    for (const byFile of this.remote.values()) for (const u of byFile.get(key)?.keys() ?? []) users.add(u);
    return users.size;
  }

  /** The partial seeders of the file, on any tracker, once each (this tracker's session first), by user id. */
  partialSeeders(groupId: string, fileName: string): PartialPresence[] {
    const key = fileKey(groupId, fileName);
    const found = new Map<string, Omit<PartialPresence, 'userId'>>();
    for (const [userId, connectionId] of this.partial.get(key) ?? []) {
      const session = this.sessions.get(connectionId);
      if (session) {
        found.set(userId, {
          address: session.address,
          ...(session.fingerprint && { fingerprint: session.fingerprint }),
        });
      }
    }
    for (const byFile of this.remotePartial.values()) {
      for (const [userId, where] of byFile.get(key) ?? []) if (!found.has(userId)) found.set(userId, where);
    }
    return [...found].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([userId, where]) => ({ userId, ...where }));
  }

  /** Whole files announced by this tracker's sessions. */
  localFullSeeders(): LocalAnnouncement[] {
    return announcements(this.online);
  }

  /** Partial downloads announced by this tracker's sessions. */
  localPartialSeeders(): LocalAnnouncement[] {
    return announcements(this.partial);
  }

  counts(): PresenceCounts {
    const size = (m: Map<string, Map<string, unknown>>) => [...m.values()].reduce((n, users) => n + users.size, 0);
    const remote = (m: Map<number, ByFile<unknown>>) => [...m.values()].reduce((n, byFile) => n + size(byFile), 0);
    return {
      sessions: this.sessions.size,
      full: size(this.online),
      partial: size(this.partial),
      remoteFull: remote(this.remote),
      remotePartial: remote(this.remotePartial),
    };
  }

  // internals

  /** The announcer's session record, a fresh one when the connection changed hands; its address and form updated. */
  private sessionOf(by: Announcer): AnnouncingSession {
    let session = this.sessions.get(by.connectionId);
    if (!session || session.userId !== by.userId) {
      if (session) this.sessionEnded(by.connectionId);
      session = {
        userId: by.userId,
        address: by.address,
        seedForm: false,
        fingerprint: undefined,
        files: new Map(),
        partial: new Set(),
      };
      this.sessions.set(by.connectionId, session);
    }
    session.address = by.address;
    session.seedForm = by.seedForm === true;
    // a seed-form seeder is always spoken to in clear: it has no fingerprint to check
    session.fingerprint = session.seedForm ? undefined : by.fingerprint;
    return session;
  }

  /** Records the announcer's connection for `key`; returns the connection that held it before, if another. */
  private claim(map: Map<string, Map<string, number>>, key: string, by: Announcer): number | undefined {
    let users = map.get(key);
    if (!users) map.set(key, (users = new Map<string, number>()));
    const previous = users.get(by.userId);
    users.set(by.userId, by.connectionId);
    return previous !== undefined && previous !== by.connectionId ? previous : undefined;
  }

  /** Drops `userId` from `key` (only if held by `connectionId`, when given); returns the connection that held it. */
  private release(
    map: Map<string, Map<string, number>>,
    key: string,
    userId: string,
    connectionId?: number,
  ): number | undefined {
    const users = map.get(key);
    const holder = users?.get(userId);
    if (holder === undefined || (connectionId !== undefined && holder !== connectionId)) return undefined;
    users!.delete(userId);
    if (users!.size === 0) map.delete(key);
    return holder;
  }

  private localEntries(): PresenceEntry[] {
    const entries: PresenceEntry[] = [];
    for (const [key, users] of this.online) {
      const [groupId, fileName] = splitKey(key);
      for (const [userId, connectionId] of users) {
        const session = this.sessions.get(connectionId);
        if (!session) continue;
        const filePath = session.files.get(key) ?? '';
        const address = formatHostPort(session.address);
        const fingerprint = session.fingerprint;
        entries.push({
          userId,
          address,
          groupId,
          fileName,
          filePath,
          form: formOf(session),
          ...(fingerprint && { fingerprint }),
        });
      }
    }
    for (const [key, users] of this.partial) {
      const [groupId, fileName] = splitKey(key);
      for (const [userId, connectionId] of users) {
        const session = this.sessions.get(connectionId);
        if (session) entries.push(partialEntry(userId, session, groupId, fileName));
      }
    }
    return entries;
  }

  private remoteChange(tracker: number, change: PresenceChange | 'reset'): void {
    if (change === 'reset') {
      this.remote.delete(tracker);
      this.remotePartial.delete(tracker);
      return;
    }
    const { entry } = change;
    const key = fileKey(entry.groupId, entry.fileName);
    const table = (entry.partial ? this.remotePartial : this.remote) as Map<number, ByFile<unknown>>;
    let byFile = table.get(tracker);
    if (!byFile) table.set(tracker, (byFile = new Map<string, Map<string, unknown>>()));
    if (!change.on) {
      const users = byFile.get(key);
      users?.delete(entry.userId);
      if (users?.size === 0) byFile.delete(key);
      return;
    }
    const address = parseHostPort(change.entry.address);
    if (!address) return;
    let users = byFile.get(key);
    if (!users) byFile.set(key, (users = new Map<string, unknown>()));
    const on = change.entry;
    const seedForm = !on.partial && on.form === SeederForm.Seed;
    const fingerprint = seedForm ? undefined : on.fingerprint;
    users.set(
      on.userId,
      on.partial
        ? { address, ...(fingerprint && { fingerprint }) }
        : { address, filePath: on.filePath, seedForm, ...(fingerprint && { fingerprint }) },
    );
  }
}

const formOf = (session: AnnouncingSession): SeederForm => (session.seedForm ? SeederForm.Seed : SeederForm.Extended);

const partialEntry = (
  userId: string,
  session: Pick<AnnouncingSession, 'address' | 'fingerprint'>,
  groupId: string,
  fileName: string,
): PresenceEntry => ({
  userId,
  address: formatHostPort(session.address),
  groupId,
  fileName,
  filePath: '',
  form: SeederForm.Extended,
  ...(session.fingerprint && { fingerprint: session.fingerprint }),
  partial: true,
});

const onlineSeeder = (s: { address: HostPort; seedForm: boolean; fingerprint?: string }): OnlineSeeder => ({
  address: s.address,
  seedForm: s.seedForm,
  ...(s.fingerprint && { fingerprint: s.fingerprint }),
});

function announcements(map: Map<string, Map<string, number>>): LocalAnnouncement[] {
  const found: LocalAnnouncement[] = [];
  for (const [key, users] of map) {
    const [groupId, fileName] = splitKey(key);
    for (const userId of users.keys()) found.push({ groupId, fileName, userId });
  }
  return found;
}
