import { CHUNK_HASHER, ChunkHasher } from '@app/chunking';
import { encodeChunkHashes, ErrorCode, fileNameProblem, formatCommand, joinArgs, Reply } from '@app/protocol';
import { Inject, Injectable } from '@nestjs/common';
import { basename } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT, OutputPort } from '../output/output.port';
import { ChunkServer } from './chunk.server';
import { ShareRegistry } from './share.registry';
import { TransferSettings } from '../settings/transfer-settings.service';
import { fileIdentity, SharedFile, sameIdentity } from './shared-file';
import { NotShareableError } from './seeding.errors';
import { TrackerClient } from '../tracker/tracker.client';
import { ClientSession } from '../session/client-session';
import { describeFsError } from '../common/file-errors';
import { formatBytes, formatRate } from '../common/units';

/** The hashing live line of an upload is redrawn at most this often. */
export const HASH_PROGRESS_MS = 200;

/** `hashing report.pdf 45.0% 90.0 MiB of 200.0 MiB, 150.0 MiB/s` (the speed once there is one). */
export function hashingLine(name: string, bytes: number, size: number, elapsedMs: number): string {
  const percent = size === 0 ? 100 : (100 * Math.min(bytes, size)) / size;
  const speed = elapsedMs > 0 && bytes > 0 ? `, ${formatRate((1000 * bytes) / elapsedMs)}` : '';
  return `hashing ${name} ${percent.toFixed(1)}% ${formatBytes(bytes)} of ${formatBytes(size)}${speed}`;
}

/**
 * What this client seeds: registers uploads and finished downloads with the
 * tracker and the local share registry, re-offers shares after login, and
 * withdraws shares whose file changed or vanished.
 */
@Injectable()
export class SharingService {
  constructor(
    private readonly tracker: TrackerClient,
    private readonly registry: ShareRegistry,
    private readonly server: ChunkServer,
    private readonly config: ClientConfigService,
    private readonly session: ClientSession,
    private readonly settings: TransferSettings,
    @Inject(CHUNK_HASHER) private readonly hasher: ChunkHasher,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  /** Numbers the hashing live lines (`out.progress` keys). */
  private hashing = 0;
  private readonly now = () => performance.now();

  /** Downloads this client announced as partial seeders (`<group>/<file>` keys), announced again after a failover. */
  private readonly partials = new Map<string, { groupId: string; fileName: string; userId: string }>();

  /** Loads the remembered shares and starts serving chunks on this client's address, under the upload limit. */
  async start(): Promise<void> {
    await this.registry.load();
    if (this.registry.loadWarning) this.out.error(this.registry.loadWarning);
    this.server.onShareChanged((share) => void this.withdraw(share, 'it changed on disk'));
    this.server.setUploadLimit(this.settings.uploadLimit);
    this.settings.onChange((change) => {
      if (change.name === 'upload_limit') this.server.setUploadLimit(change.value);
    });
    await this.server.start();
  }

  /**
   * A download of `fileName` serves the chunks it holds: the tracker lists this client as a partial seeder of it
   * (`partial_seeder`). False, with the reason said, when the tracker would not.
   */
  async announcePartial(groupId: string, fileName: string, userId: string): Promise<boolean> {
    if (this.session.user !== userId) return false;
    const reply = await this.tracker.request(joinArgs(['partial_seeder', groupId, fileName, this.myPort]));
    if (!reply.ok) {
      this.out.error(`cannot serve the chunks of ${fileName} while downloading it: ${reply.message}`);
      return false;
    }
    this.partials.set(`${groupId}/${fileName}`, { groupId, fileName, userId });
    return true;
  }

  /** The download no longer serves what it holds (it failed, was cancelled, or partial seeding was turned off). */
  async withdrawPartial(groupId: string, fileName: string): Promise<void> {
    const key = `${groupId}/${fileName}`;
    const announced = this.partials.get(key);
    if (!announced) return;
    this.partials.delete(key);
    if (this.session.user !== announced.userId) return;
    await this.tracker.request(joinArgs(['stop_partial', groupId, fileName])).catch(() => undefined);
  }

  /** The download completed and is seeded whole now: the tracker dropped the partial listing with `new_seeder`. */
  partialDone(groupId: string, fileName: string): void {
    this.partials.delete(`${groupId}/${fileName}`);
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  /**
   * `my_port` in upload_file and new_seeder: the port chunks are served on. The tracker lists this client at
   * the host its tracker connection comes from, whatever host we would name.
   */
  private get myPort(): string {
    return String(this.config.get().self.port);
  }

  /** Hashes the file, registers it with the tracker, and seeds it. */
  async upload(groupId: string, filePath: string): Promise<Reply> {
    const userId = this.session.requireUser();
    const before = await this.identify(filePath);
    // the name the group will see is the base name of the realpath: refused here before any byte is hashed
    const problem = fileNameProblem(basename(before.path));
    if (problem) throw new Error(`cannot share ${filePath}: ${problem}; rename the file first`);
    const digest = await this.hashShowingProgress(before.path, before.size).catch((err: unknown) => {
      throw new Error(describeFsError(err, filePath));
    });
    const after = await this.identify(filePath);
    if (!sameIdentity(before, after) || digest.size !== before.size) {
      throw new Error(`${filePath} changed while it was being hashed; try again`);
    }
    const hashes = encodeChunkHashes(digest.chunkHashes);
    const line = formatCommand({
      kind: 'upload_file',
      groupId,
      filePath: before.path,
      fileSize: String(digest.size),
      fileHash: digest.fileHash,
      chunkHashes: hashes.arg,
      myPort: this.myPort,
    });
    const reply = await this.tracker.request(line, hashes.lines);
    if (reply.ok) {
      await this.registry.add({
        ...before,
        groupId,
        fileName: basename(before.path),
        userId,
        fileHash: digest.fileHash,
        chunkCount: digest.chunkHashes.length,
      });
    }
    return reply;
  }

  /**
   * Hashes the file with a live line (`hashing report.pdf 45.0% 90.0 MiB of 200.0 MiB, 150.0 MiB/s`), redrawn at
   * most every HASH_PROGRESS_MS once hashing has taken that long (a small file shows none), and taken away at the end.
   */
  private async hashShowingProgress(path: string, size: number) {
    const key = `hash ${++this.hashing}`;
    const started = this.now();
    let drawn = started;
    let shown = false;
    const onProgress = (bytes: number) => {
      const now = this.now();
      if (now - drawn < HASH_PROGRESS_MS) return;
      drawn = now;
      shown = true;
      this.out.progress(key, hashingLine(basename(path), bytes, size, now - started));
    };
    try {
      return await this.hasher.hashFile(path, onProgress);
    } finally {
      if (shown) this.out.progress(key, undefined);
    }
  }

  /** A download finished and verified: seed it. */
  async seedDownloaded(share: {
    groupId: string;
    userId: string;
    fileName: string;
    path: string;
    fileHash: string;
    chunkCount: number;
  }): Promise<void> {
    const identity = await fileIdentity(share.path);
    await this.registry.add({
      ...identity,
      groupId: share.groupId,
      fileName: share.fileName,
      userId: share.userId,
      fileHash: share.fileHash,
      chunkCount: share.chunkCount,
    });
    if (this.session.user !== share.userId) return; // offered again at the next login
    const reply = await this.tracker.request(
      joinArgs(['new_seeder', share.groupId, share.fileName, identity.path, this.myPort]),
    );
    if (!reply.ok) throw new Error(`could not announce ${share.fileName} as seeded: ${reply.message}`);
  }

  /**
   * After a login (or a failover): offers again every file this user shared
   * from this client, and forgets those that changed, vanished, or the tracker
   * no longer knows. Stops, forgetting nothing more, once the user is no longer
   * logged in.
   */
  async reoffer(userId: string): Promise<{ offered: number; dropped: string[] }> {
    let offered = 0;
    const dropped: string[] = [];
    for (const share of this.registry.list(userId)) {
      // Logged out meanwhile (or the session was lost in a failover): offered again at the next login.
      if (this.session.user !== userId) break;
      const state = await this.registry.check(share);
      if (state !== 'ok') {
        dropped.push(`${share.fileName} (${state === 'missing' ? 'gone' : 'changed on disk'})`);
        await this.forget(share, true);
        continue;
      }
      const reply = await this.tracker.request(
        joinArgs(['new_seeder', share.groupId, share.fileName, share.path, this.myPort]),
      );
      if (reply.ok) offered++;
      else if (reply.code === ErrorCode.NotLoggedIn) break;
      else {
        dropped.push(`${share.fileName} (${reply.message})`);
        await this.forget(share, false);
      }
    }
    for (const p of [...this.partials.values()]) {
      if (p.userId !== userId || this.session.user !== userId) continue;
      const reply = await this.tracker.request(joinArgs(['partial_seeder', p.groupId, p.fileName, this.myPort]));
      if (!reply.ok) this.partials.delete(`${p.groupId}/${p.fileName}`);
    }
    return { offered, dropped };
  }

  /** stop_share went through at the tracker (or it did not know us as a seeder). */
  async stopped(groupId: string, fileName: string): Promise<void> {
    const userId = this.session.user;
    if (userId !== undefined) await this.registry.remove(groupId, fileName, userId);
  }

  /** leave_group went through: the tracker dropped our shares there. */
  async leftGroup(groupId: string): Promise<number> {
    const userId = this.session.user;
    return userId === undefined ? 0 : this.registry.removeGroup(groupId, userId);
  }

  private async identify(filePath: string) {
    try {
      return await fileIdentity(filePath);
    } catch (err) {
      if (err instanceof NotShareableError) throw new Error(`${filePath} is not a regular file`);
      throw new Error(describeFsError(err, filePath));
    }
  }

  private async withdraw(share: SharedFile, why: string): Promise<void> {
    try {
      await this.forget(share, true);
      this.out.line(`stopped sharing ${share.fileName} in group ${share.groupId}: ${why}`);
    } catch (err) {
      this.out.error(`could not stop sharing ${share.fileName}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Drops a share here and, when logged in as its user and asked to, at the tracker too. */
  private async forget(share: SharedFile, tellTracker: boolean): Promise<void> {
    await this.registry.remove(share.groupId, share.fileName, share.userId);
    if (tellTracker && this.session.user === share.userId) {
      await this.tracker.request(joinArgs(['stop_share', share.groupId, share.fileName])).catch(() => undefined);
    }
  }
}
