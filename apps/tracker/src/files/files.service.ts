import { planChunks } from '@app/chunking';
import {
  digestsToHexList,
  fileNameProblem,
  isSha1Hex,
  OpKind,
  PackedFileMetadata,
  quoteArg,
  SeederInfo,
} from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { AuthService } from '../auth/auth.service';
import { CapabilitySigner } from '../capability/capability.signer';
import { createHash } from 'node:crypto';
import { GroupsService } from '../groups/groups.service';
import { SyncService } from '../sync/sync.service';
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
import { Announcer, PresenceService } from './presence.service';

export type { Announcer } from './presence.service';

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

/** The online seeders and partial seeders of a file, for `download_file` and `list_seeders`. */
export interface SeederListing {
  readonly fileHash: string;
  readonly seeders: SeederInfo[];
  readonly partialSeeders: SeederInfo[];
}

export interface PartialOutcome {
  /** False when `stop_partial` found nothing to withdraw. */
  readonly withdrawn: boolean;
}

/**
 * Shared files and their seeders. Who shares what is stored; who is online is
 * soft state, kept by `PresenceService`: a seeder counts for a file only while
 * the session that announced it (by upload_file or new_seeder) lives. A file
 * with no seeder left is deleted. Members downloading a file may announce that
 * they serve the chunks they hold (`partial_seeder`): never stored, listed only
 * in the extended form.
 */
@Injectable()
export class FilesService {
  constructor(
    @Inject(FILE_STORE) private readonly files: FileStore,
    private readonly groups: GroupsService,
    auth: AuthService,
    private readonly sync: SyncService,
    private readonly capabilities: CapabilitySigner,
    private readonly presence: PresenceService,
  ) {
    auth.onSessionEnded((_userId, connectionId) => this.presence.sessionEnded(connectionId));
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
    this.presence.announceFull(by, groupId, fileName, req.filePath);
    return { fileName, chunkCount: expected, created };
  }

  /** `list_files`: files with at least one seeder, by name, with how many seeders are online now. */
  list(userId: string, groupId: string): FileListing[] {
    this.groups.assertMember(userId, groupId);
    return this.files.listFiles(groupId).map((f) => ({
      fileName: f.fileName,
      fileSize: f.fileSize,
      onlineSeeders: this.presence.onlineFullCount(groupId, f.fileName),
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
    const { seeders, partialSeeders } = this.listSeeders(userId, groupId, file.fileName, file.fileHash);
    return {
      fileName: file.fileName,
      fileSize: file.fileSize,
      fileHash: file.fileHash,
      chunkDigests: packed,
      seeders,
      partialSeeders,
    };
  }

  /**
   * `list_seeders`: the seeders and partial seeders `download` would list, with fresh capabilities, without reading
   * the chunk hashes (downloaders poll it during a swarm download).
   */
  seeders(userId: string, groupId: string, fileName: string): SeederListing {
    this.groups.assertMember(userId, groupId);
    const file = this.files.getFile(groupId, fileName);
    if (!file) throw new UnknownFileError(groupId, fileName);
    return { fileHash: file.fileHash, ...this.listSeeders(userId, groupId, file.fileName, file.fileHash) };
  }

  /**
   * `partial_seeder`: the announcer, a member, downloads the file and serves the chunks it holds. It lasts until
   * `stop_partial`, the end of its session, its leaving the group, the file's deletion, or its seeding it whole.
   */
  announcePartial(by: Announcer, groupId: string, fileName: string): void {
    this.groups.assertMember(by.userId, groupId);
    if (!this.files.getFile(groupId, fileName)) throw new UnknownFileError(groupId, fileName);
    this.presence.announcePartial(by, groupId, fileName);
  }

  /** `stop_partial`: the member no longer serves its part of the file; not announced is no error. */
  stopPartial(userId: string, groupId: string, fileName: string): PartialOutcome {
    this.groups.assertMember(userId, groupId);
    return { withdrawn: this.presence.withdrawPartial(groupId, fileName, userId) };
  }

  /**
   * The online seeders (a seeder of ours gets a capability for `userId` in
   * place of its path, which never leaves the trackers; a seed-form seeder,
   * which serves `GET_CHUNK <i> <file_path>` and cannot check capabilities,
   * gets the path it registered, and is marked `seedForm`), then the partial
   * seeders that are neither among them nor the asker, each with a capability.
   */
  private listSeeders(
    userId: string,
    groupId: string,
    fileName: string,
    fileHash: string,
  ): Omit<SeederListing, 'fileHash'> {
    const capability = (seederId: string) =>
      this.capabilities.issue({ fileHash, groupId, seederId, downloaderId: userId });
    const seeders: SeederInfo[] = [];
    for (const s of this.files.seeders(groupId, fileName)) {
      const online = this.presence.fullSeeder(groupId, fileName, s.userId);
      if (!online) continue;
      if (online.seedForm) {
        seeders.push({ userId: s.userId, address: online.address, capability: s.filePath, seedForm: true });
        continue;
      }
      seeders.push({
        userId: s.userId,
        address: online.address,
        capability: capability(s.userId),
        ...(online.fingerprint && { fingerprint: online.fingerprint }),
      });
    }
    const full = new Set(seeders.map((s) => s.userId));
    const partialSeeders = this.presence
      .partialSeeders(groupId, fileName)
      .filter((p) => !full.has(p.userId) && p.userId !== userId)
      .map((p) => ({
        userId: p.userId,
        address: p.address,
        capability: capability(p.userId),
        partial: true,
        ...(p.fingerprint && { fingerprint: p.fingerprint }),
      }));
    return { seeders, partialSeeders };
  }

  /** `new_seeder`: the announcer now has the whole file at `filePath` and serves it. */
  addSeeder(by: Announcer, groupId: string, fileName: string, filePath: string): void {
    this.groups.assertMember(by.userId, groupId);
    assertValidPath(filePath);
    if (!this.files.getFile(groupId, fileName)) throw new UnknownFileError(groupId, fileName);
    this.sync.commit({ kind: OpKind.NewSeeder, actor: by.userId, groupId, fileName, filePath });
    this.presence.announceFull(by, groupId, fileName, filePath);
  }

  /** `stop_share`: the user no longer seeds the file; the file goes when nobody seeds it. */
  stopShare(userId: string, groupId: string, fileName: string): StopOutcome {
    this.groups.assertMember(userId, groupId);
    if (!this.files.getSeeder(groupId, fileName, userId)) throw new NotSeedingError(groupId, fileName);
    this.sync.commit({ kind: OpKind.StopShare, actor: userId, groupId, fileName });
    this.presence.withdrawFull(groupId, fileName, userId);
    return { fileDeleted: !this.files.getFile(groupId, fileName) };
  }

  /** A member left: their shares in the group go, then every file nobody seeds; with the group, all of its files. */
  private dropMember(userId: string, groupId: string, groupDeleted: boolean): void {
    this.files.transaction(() => {
      for (const fileName of this.files.removeSeedersOf(groupId, userId)) {
        this.presence.withdrawFull(groupId, fileName, userId);
        this.deleteIfUnseeded(groupId, fileName);
      }
      this.presence.memberLeft(groupId, userId);
      if (groupDeleted) {
        for (const fileName of this.files.deleteGroupFiles(groupId)) this.presence.fileForgotten(groupId, fileName);
      }
    });
  }

  private deleteIfUnseeded(groupId: string, fileName: string): boolean {
    if (this.files.seederCount(groupId, fileName) > 0) return false;
    this.files.deleteFile(groupId, fileName);
    this.presence.fileForgotten(groupId, fileName);
    return true;
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

  /**
   * After a replay: a session counts as seeding a file only if the rebuilt state still has it as a seeder, and as
   * serving part of one only if the file is still there and it is still a member.
   */
  private dropStalePresence(): void {
    for (const { groupId, fileName, userId } of this.presence.localFullSeeders()) {
      if (!this.files.getSeeder(groupId, fileName, userId)) this.presence.withdrawFull(groupId, fileName, userId);
    }
    for (const { groupId, fileName, userId } of this.presence.localPartialSeeders()) {
      if (!this.files.getFile(groupId, fileName) || !this.groups.isMember(userId, groupId)) {
        this.presence.withdrawPartial(groupId, fileName, userId);
      }
    }
  }
}

function assertValidPath(path: string): void {
  if (path.length < 1 || path.length > MAX_PATH_CHARS) {
    throw new BadFileMetadataError(`file_path must be 1-${MAX_PATH_CHARS} characters`);
  }
  if (CONTROL.test(path)) throw new BadFileMetadataError('file_path cannot contain control characters');
}
