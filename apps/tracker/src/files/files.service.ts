import { planChunks } from '@app/chunking';
import {
  digestsToHexList,
  fileNameProblem,
  formatHostPort,
  HostPort,
  isSha1Hex,
  OpKind,
  PackedFileMetadata,
  parseHostPort,
  quoteArg,
  SeederForm,
  SeederInfo,
} from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { CapabilitySigner } from '../capability/capability.signer';
import { createHash } from 'node:crypto';
import { GroupsService } from '../groups/groups.service';
import { PresenceChange, PresenceEntry, SyncService } from '../sync/sync.service';
import { FileStore, packChunkHashes } from './file.store';
import { baseName, registerFileAppliers } from './files.appliers';
import {
  BadFileMetadataError,
  FileConflictError,
  InvalidFileNameError,
  NotSeedingError,
  shownName,
  UnknownFileError,
} from './files.errors';
import { FILE_STORE } from './files.tokens';

/** Who announces a share: the user, the connection (session) it came on, and where its client serves chunks. */
export interface Announcer {
  readonly userId: string;
  readonly connectionId: number;
  readonly address: HostPort;
  /** True when the session's connection speaks the seed form (no HELLO): the client then serves paths, not capabilities. */
  readonly seedForm?: boolean;
}

export interface ShareRequest {
  readonly groupId: string;
  /** Absolute path of the file on the announcer's machine; its basename names the file in the group. */
  readonly filePath: string;
  readonly fileSize: number;
  readonly fileHash: string;
  /** Hex SHA-1 of each 512 KiB chunk, in order... */
  readonly chunkHashes?: readonly string[];
  /** ...or the same already packed, 20 raw bytes each (a long inline list read as it streamed in). */
  readonly chunkDigests?: Buffer;
}

export interface ShareOutcome {
  readonly fileName: string;
  readonly chunkCount: number;
  /** True when this upload created the file; false when it joined the seeders of the same file. */
  readonly created: boolean;
}

export interface FileListing {
  readonly fileName: string;
  readonly fileSize: number;
  readonly onlineSeeders: number;
}

export interface StopOutcome {
  /** True when the file had no seeder left and is gone from the group. */
  readonly fileDeleted: boolean;
}

const MAX_PATH_CHARS = 4096;
const CONTROL = /[\x00-\x1f\x7f]/;

const fileKey = (groupId: string, fileName: string): string => `${groupId}/${fileName}`;
/** Group ids cannot hold '/', so the first one ends the group. */
const splitKey = (key: string): [string, string] => {
  const at = key.indexOf('/');
  return [key.slice(0, at), key.slice(at + 1)];
};

interface RemoteSeeder {
  readonly address: HostPort;
  readonly filePath: string;
  readonly seedForm: boolean;
}

/** The soft state of one live session that announced shares. */
interface AnnouncingSession {
  readonly userId: string;
  /** Where the user's client serves chunks, as last announced on this session. */
  address: HostPort;
  /** The form of the session's connection: a seed-form seeder is listed with its path and as `seed`. */
  seedForm: boolean;
  /** Keys (`fileKey`) of the files this session announced. */
  readonly files: Set<string>;
}

/**
 * Shared files and their seeders. Who shares what is stored; who is online is
 * soft state: a seeder counts for a file only while the session that announced
 * it (by upload_file or new_seeder) lives. A file with no seeder left is deleted.
 */
@Injectable()
export class FilesService {
  /** fileKey -> userId -> connection id of the session that announced the share. */
  private readonly online = new Map<string, Map<string, number>>();
  /** connection id -> its announcements. */
  private readonly sessions = new Map<number, AnnouncingSession>();

  /** Presence reported by other trackers: tracker -> fileKey -> userId -> where and what. */
  private readonly remote = new Map<number, Map<string, Map<string, RemoteSeeder>>>();

  constructor(
    @Inject(FILE_STORE) private readonly files: FileStore,
    private readonly groups: GroupsService,
    auth: AuthService,
    private readonly sync: SyncService,
    private readonly capabilities: CapabilitySigner,
  ) {
    auth.onSessionEnded((_userId, connectionId) => this.forgetSession(connectionId));
    groups.onMemberLeft((userId, groupId, groupDeleted) => this.dropMember(userId, groupId, groupDeleted));
    registerFileAppliers(sync, files, {
      isMember: (userId, groupId) => groups.isMember(userId, groupId),
      deleteIfUnseeded: (groupId, fileName) => this.deleteIfUnseeded(groupId, fileName),
    });
    sync.participate({
      name: 'files',
      reset: () => this.files.clear(),
      describe: () => this.describe(),
      afterReplay: () => this.dropStalePresence(),
      exportRows: () => this.files.exportRows(),
      importRow: (row) => this.files.importRow(row),
    });
    sync.addPresenceSource(() => this.localPresence());
    sync.onRemotePresence((tracker, change) => this.remotePresence(tracker, change));
  }

  /** `upload_file`: registers a new file with its first seeder, or adds a seeder to the same file. */
  share(by: Announcer, req: ShareRequest): ShareOutcome {
    this.groups.assertMember(by.userId, req.groupId);
    assertValidPath(req.filePath);
    const fileName = baseName(req.filePath);
    const problem = fileNameProblem(fileName);
    if (problem) throw new InvalidFileNameError(problem);
    if (!Number.isSafeInteger(req.fileSize) || req.fileSize < 0) {
      throw new BadFileMetadataError(`file_size must be a non-negative integer, not ${String(req.fileSize)}`);
    }
    const fileHash = req.fileHash.toLowerCase();
    if (!isSha1Hex(fileHash)) throw new BadFileMetadataError('file_hash must be a 40-digit hex SHA-1');
    const expected = planChunks(req.fileSize).count;
    const given = req.chunkDigests ? Math.floor(req.chunkDigests.length / 20) : (req.chunkHashes?.length ?? 0);
    if (given !== expected || (req.chunkDigests && req.chunkDigests.length % 20 !== 0)) {
      throw new BadFileMetadataError(
        `a file of ${req.fileSize} bytes has ${expected} chunk${expected === 1 ? '' : 's'} of 512 KiB, but ${given} chunk hash${given === 1 ? ' was' : 'es were'} given`,
      );
    }
    let chunkHashes: Buffer;
    if (req.chunkDigests) {
      chunkHashes = req.chunkDigests;
    } else {
      const hashes = req.chunkHashes ?? [];
      const bad = hashes.findIndex((h) => !isSha1Hex(h.toLowerCase()));
      if (bad >= 0) throw new BadFileMetadataError(`chunk hash ${bad} is not a 40-digit hex SHA-1`);
      chunkHashes = packChunkHashes(hashes);
    }

    const { groupId } = req;
    const existing = this.files.getFile(groupId, fileName);
    if (existing) {
      if (existing.fileHash !== fileHash || existing.fileSize !== req.fileSize) {
        throw new FileConflictError(groupId, fileName);
      }
      if (!this.files.chunkHashes(groupId, fileName)?.equals(chunkHashes)) {
        throw new BadFileMetadataError(
          `the chunk hashes differ from those registered for ${shownName(fileName)}, which has the same file hash`,
        );
      }
    }
    const created = !existing;
    this.sync.commit({
      kind: OpKind.UploadFile,
      actor: by.userId,
      groupId,
      filePath: req.filePath,
      fileSize: req.fileSize,
      fileHash,
      // the replicated change carries the list as text (8.4 MB for 204,800 chunks), as every tracker's log has it
      chunkHashList: digestsToHexList(chunkHashes),
    });
    this.markOnline(by, groupId, fileName);
    return { fileName, chunkCount: expected, created };
  }

  /** `list_files`: files with at least one seeder, by name, with how many seeders are online now. */
  list(userId: string, groupId: string): FileListing[] {
    this.groups.assertMember(userId, groupId);
    return this.files.listFiles(groupId).map((f) => ({
      fileName: f.fileName,
      fileSize: f.fileSize,
      onlineSeeders: this.onlineUsers(fileKey(groupId, f.fileName)).size,
    }));
  }

  /**
   * `download_file`: the file's metadata with its online seeders only (possibly
   * none). A seeder of ours gets a capability for `userId` in place of its path
   * (its path never leaves the trackers); a seed-form seeder, which serves
   * `GET_CHUNK <i> <file_path>` and cannot check capabilities, gets the path it
   * registered, and is marked `seedForm`.
   */
  download(userId: string, groupId: string, fileName: string): PackedFileMetadata {
    this.groups.assertMember(userId, groupId);
    const file = this.files.getFile(groupId, fileName);
    const packed = file && this.files.chunkHashes(groupId, fileName);
    if (!file || !packed) throw new UnknownFileError(groupId, fileName);
    const key = fileKey(groupId, fileName);
    const announced = this.online.get(key);
    const seeders: SeederInfo[] = [];
    for (const s of this.files.seeders(groupId, fileName)) {
      const connectionId = announced?.get(s.userId);
      const session = connectionId === undefined ? undefined : this.sessions.get(connectionId);
      const elsewhere = session ? undefined : this.remoteSeeder(key, s.userId);
      const address = session?.address ?? elsewhere?.address;
      if (!address) continue;
      if (session?.seedForm ?? elsewhere?.seedForm) {
        seeders.push({ userId: s.userId, address, capability: s.filePath, seedForm: true });
        continue;
      }
      const capability = this.capabilities.issue({
        fileHash: file.fileHash,
        groupId,
        seederId: s.userId,
        downloaderId: userId,
      });
      seeders.push({ userId: s.userId, address, capability });
    }
    return {
      fileName: file.fileName,
      fileSize: file.fileSize,
      fileHash: file.fileHash,
      chunkDigests: packed,
      seeders,
    };
  }

  /** `new_seeder`: the announcer now has the whole file at `filePath` and serves it. */
  addSeeder(by: Announcer, groupId: string, fileName: string, filePath: string): void {
    this.groups.assertMember(by.userId, groupId);
    assertValidPath(filePath);
    if (!this.files.getFile(groupId, fileName)) throw new UnknownFileError(groupId, fileName);
    this.sync.commit({ kind: OpKind.NewSeeder, actor: by.userId, groupId, fileName, filePath });
    this.markOnline(by, groupId, fileName);
  }

  /** `stop_share`: the user no longer seeds the file; the file goes when nobody seeds it. */
  stopShare(userId: string, groupId: string, fileName: string): StopOutcome {
    this.groups.assertMember(userId, groupId);
    if (!this.files.getSeeder(groupId, fileName, userId)) throw new NotSeedingError(groupId, fileName);
    this.sync.commit({ kind: OpKind.StopShare, actor: userId, groupId, fileName });
    this.markOffline(groupId, fileName, userId);
    return { fileDeleted: !this.files.getFile(groupId, fileName) };
  }

  /** A member left: their shares in the group go, then every file nobody seeds; with the group, all of its files. */
  private dropMember(userId: string, groupId: string, groupDeleted: boolean): void {
    this.files.transaction(() => {
      for (const fileName of this.files.removeSeedersOf(groupId, userId)) {
        this.markOffline(groupId, fileName, userId);
        this.deleteIfUnseeded(groupId, fileName);
      }
      if (groupDeleted) {
        for (const fileName of this.files.deleteGroupFiles(groupId)) this.forgetFile(groupId, fileName);
      }
    });
  }

  private deleteIfUnseeded(groupId: string, fileName: string): boolean {
    if (this.files.seederCount(groupId, fileName) > 0) return false;
    this.files.deleteFile(groupId, fileName);
    this.forgetFile(groupId, fileName);
    return true;
  }

  private markOnline(by: Announcer, groupId: string, fileName: string): void {
    const key = fileKey(groupId, fileName);
    let session = this.sessions.get(by.connectionId);
    if (!session || session.userId !== by.userId) {
      if (session) this.forgetSession(by.connectionId);
      session = { userId: by.userId, address: by.address, seedForm: by.seedForm === true, files: new Set() };
      this.sessions.set(by.connectionId, session);
    }
    session.address = by.address;
    session.seedForm = by.seedForm === true;
    session.files.add(key);
    let users = this.online.get(key);
    if (!users) this.online.set(key, (users = new Map<string, number>()));
    const previous = users.get(by.userId);
    if (previous !== undefined && previous !== by.connectionId) this.sessions.get(previous)?.files.delete(key);
    users.set(by.userId, by.connectionId);
    const filePath = this.files.getSeeder(groupId, fileName, by.userId)?.filePath ?? '';
    this.sync.presenceChanged({
      on: true,
      entry: {
        userId: by.userId,
        address: formatHostPort(by.address),
        groupId,
        fileName,
        filePath,
        form: formOf(session),
      },
    });
  }

  private markOffline(groupId: string, fileName: string, userId: string): void {
    if (this.sync.replaying) return; // history is being re-applied; dropStalePresence settles it afterwards
    const key = fileKey(groupId, fileName);
    const users = this.online.get(key);
    const connectionId = users?.get(userId);
    if (connectionId === undefined) return;
    users!.delete(userId);
    if (users!.size === 0) this.online.delete(key);
    this.sessions.get(connectionId)?.files.delete(key);
    this.sync.presenceChanged({ on: false, entry: { userId, groupId, fileName } });
  }

  private forgetFile(groupId: string, fileName: string): void {
    if (this.sync.replaying) return;
    const key = fileKey(groupId, fileName);
    for (const connectionId of this.online.get(key)?.values() ?? []) this.sessions.get(connectionId)?.files.delete(key);
    this.online.delete(key);
  }

  private forgetSession(connectionId: number): void {
    const session = this.sessions.get(connectionId);
    if (!session) return;
    this.sessions.delete(connectionId);
    for (const key of session.files) {
      const users = this.online.get(key);
      if (users?.get(session.userId) !== connectionId) continue;
      users.delete(session.userId);
      if (users.size === 0) this.online.delete(key);
      const [groupId, fileName] = splitKey(key);
      this.sync.presenceChanged({ on: false, entry: { userId: session.userId, groupId, fileName } });
    }
  }

  private describe(): string[] {
    const lines: string[] = [];
    for (const g of this.groups.allGroupIds()) {
      for (const f of this.files.listFiles(g)) {
        const info = this.files.getFile(g, f.fileName)!;
        const chunks = createHash('sha1')
          .update(this.files.chunkHashes(g, f.fileName) ?? Buffer.alloc(0))
          .digest('hex');
        lines.push(
          `file ${g} ${quoteArg(f.fileName)} ${info.fileSize} ${info.fileHash} ${chunks} ${info.uploader} ${info.createdAt}`,
        );
        for (const s of this.files.seeders(g, f.fileName))
          lines.push(`seeder ${g} ${quoteArg(f.fileName)} ${s.userId} ${quoteArg(s.filePath)}`);
      }
    }
    return lines;
  }

  /** After a replay: a session counts as seeding a file only if the rebuilt state still has it as a seeder. */
  private dropStalePresence(): void {
    for (const [key, users] of [...this.online]) {
      const [groupId, fileName] = splitKey(key);
      for (const userId of [...users.keys()]) {
        if (!this.files.getSeeder(groupId, fileName, userId)) this.markOffline(groupId, fileName, userId);
      }
    }
  }

  // Presence: who seeds what through the sessions of this tracker (local) and of the others (remote).

  private onlineUsers(key: string): Set<string> {
    const users = new Set(this.online.get(key)?.keys() ?? []);
    for (const byFile of this.remote.values()) for (const u of byFile.get(key)?.keys() ?? []) users.add(u);
    return users;
  }

  private remoteSeeder(key: string, userId: string): RemoteSeeder | undefined {
    for (const byFile of this.remote.values()) {
      const seeder = byFile.get(key)?.get(userId);
      if (seeder) return seeder;
    }
    return undefined;
  }

  private localPresence(): PresenceEntry[] {
    const entries: PresenceEntry[] = [];
    for (const [key, users] of this.online) {
      const [groupId, fileName] = splitKey(key);
      for (const [userId, connectionId] of users) {
        const session = this.sessions.get(connectionId);
        if (!session) continue;
        const filePath = this.files.getSeeder(groupId, fileName, userId)?.filePath ?? '';
        entries.push({
          userId,
          address: formatHostPort(session.address),
          groupId,
          fileName,
          filePath,
          form: formOf(session),
        });
      }
    }
    return entries;
  }

  private remotePresence(tracker: number, change: PresenceChange | 'reset'): void {
    if (change === 'reset') {
      this.remote.delete(tracker);
      return;
    }
    let byFile = this.remote.get(tracker);
    if (!byFile) this.remote.set(tracker, (byFile = new Map<string, Map<string, RemoteSeeder>>()));
    const key = fileKey(change.entry.groupId, change.entry.fileName);
    if (!change.on) {
      byFile.get(key)?.delete(change.entry.userId);
      return;
    }
    const address = parseHostPort(change.entry.address);
    if (!address) return;
    let users = byFile.get(key);
    if (!users) byFile.set(key, (users = new Map<string, RemoteSeeder>()));
    users.set(change.entry.userId, {
      address,
      filePath: change.entry.filePath,
      seedForm: change.entry.form === SeederForm.Seed,
    });
  }
}

const formOf = (session: AnnouncingSession): SeederForm => (session.seedForm ? SeederForm.Seed : SeederForm.Extended);

function assertValidPath(path: string): void {
  if (path.length < 1 || path.length > MAX_PATH_CHARS) {
    throw new BadFileMetadataError(`file_path must be 1-${MAX_PATH_CHARS} characters`);
  }
  if (CONTROL.test(path)) throw new BadFileMetadataError('file_path cannot contain control characters');
}
