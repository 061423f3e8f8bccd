import { Inject, Injectable } from '@nestjs/common';
import { lstat } from 'node:fs/promises';
import { SEEDING_OPTIONS, ShareRegistryOptions } from './seeding.tokens';
import { ShareStateFile } from './share-state.file';
import { FileIdentity, identityFromStats, sameIdentity, SharedFile, toSharedFile } from './shared-file';

/** A share as handed to `add`; `sharedAt` defaults to now. */
export type NewShare = Omit<SharedFile, 'sharedAt'> & { readonly sharedAt?: number };

/** What `check` finds at a share's path: the same file, another or a modified one, or nothing. */
export type ShareCheck = 'ok' | 'changed' | 'missing';

const keyOf = (groupId: string, fileName: string, userId: string): string =>
  JSON.stringify([groupId, fileName, userId]);
const keyOfShare = (s: SharedFile): string => keyOf(s.groupId, s.fileName, s.userId);
/** What a capability names: a file by hash, in a group, seeded by a user. */
const contentKey = (groupId: string, fileHash: string, userId: string): string =>
  JSON.stringify([groupId, fileHash, userId]);
const contentKeyOf = (s: SharedFile): string => contentKey(s.groupId, s.fileHash, s.userId);

const byName = (a: SharedFile, b: SharedFile): number =>
  a.groupId.localeCompare(b.groupId) || a.fileName.localeCompare(b.fileName) || a.userId.localeCompare(b.userId);

/**
 * The files this client seeds: one entry per group, file name and user, each
 * pinned to the realpath and identity (dev, ino, size, mtime) the file had
 * when it was hashed. The chunk server serves nothing else.
 *
 * State lives in `<dataDir>/shares.json` (see `ShareStateFile`). Every change
 * is saved before its promise resolves; changes made while a save runs are
 * saved together by the next one, so a burst of hundreds of changes costs a
 * few small asynchronous writes. A change whose save fails is undone in
 * memory and its promise rejects.
 */
@Injectable()
export class ShareRegistry {
  private readonly shares = new Map<string, SharedFile>();
  private readonly keysByPath = new Map<string, Set<string>>();
  private readonly keysByContent = new Map<string, Set<string>>();
  private stateFileCache: ShareStateFile | undefined;
  private loading: Promise<void> | undefined;
  private warning: string | undefined;
  /** The save being written, if any. */
  private saving: Promise<void> | undefined;
  /** The save that will start after `saving`; changes made now join it. */
  private queued: Promise<void> | undefined;

  constructor(@Inject(SEEDING_OPTIONS) private readonly options: ShareRegistryOptions) {}

  /** Created on first use: the data directory is known only once the command line has been read. */
  private get state(): ShareStateFile {
    this.stateFileCache ??= new ShareStateFile(this.options.dataDir);
    return this.stateFileCache;
  }

  /** Path of the state file. */
  get stateFile(): string {
    return this.state.path;
  }

  /** Why the state file could not be used at load (it was moved aside and the registry started empty). */
  get loadWarning(): string | undefined {
    return this.warning;
  }

  /** Reads the state file once; later calls return the same promise. Changes wait for it. */
  load(): Promise<void> {
    this.loading ??= this.state.load().then(
      ({ shares, warning }) => {
        this.warning = warning;
        for (const share of shares) this.put(share);
      },
      (err: unknown) => {
        this.loading = undefined;
        throw err;
      },
    );
    return this.loading;
  }

  /** Adds a share, replacing the one with the same group, file name and user; resolves once saved. */
  async add(share: NewShare): Promise<SharedFile> {
    const entry = toSharedFile({ ...share, sharedAt: share.sharedAt ?? Date.now() });
    await this.load();
    const previous = this.shares.get(keyOfShare(entry));
    this.put(entry);
    await this.save(() => {
      if (this.shares.get(keyOfShare(entry)) !== entry) return;
      if (previous) this.put(previous);
      else this.delete(entry);
    });
    return entry;
  }

  /** Removes one share; false when there was none. */
  async remove(groupId: string, fileName: string, userId: string): Promise<boolean> {
    await this.load();
    const entry = this.shares.get(keyOf(groupId, fileName, userId));
    if (!entry) return false;
    await this.removeAll([entry]);
    return true;
  }

  /** Removes every share a user has in a group (after leaving it); returns how many there were. */
  async removeGroup(groupId: string, userId: string): Promise<number> {
    await this.load();
    const entries = [...this.shares.values()].filter((s) => s.groupId === groupId && s.userId === userId);
    if (entries.length > 0) await this.removeAll(entries);
    return entries.length;
  }

  get(groupId: string, fileName: string, userId: string): SharedFile | undefined {
    return this.shares.get(keyOf(groupId, fileName, userId));
  }

  /** Every share, or a user's, ordered by group, file name and user. */
  list(userId?: string): SharedFile[] {
    const all = [...this.shares.values()];
    return (userId === undefined ? all : all.filter((s) => s.userId === userId)).sort(byName);
  }

  /**
   * Shares whose stored realpath is exactly `path` (no normalisation, no
   * filesystem lookup), newest first; one file may be shared in several groups.
   */
  findByPath(path: string): SharedFile[] {
    const keys = this.keysByPath.get(path);
    if (!keys) return [];
    return [...keys].map((k) => this.shares.get(k)!).sort((a, b) => b.sharedAt - a.sharedAt);
  }

  /**
   * Shares of the file with SHA-1 `fileHash` that `userId` seeds in `groupId`
   * (what a download capability names), newest first; usually one.
   */
  findByHash(groupId: string, fileHash: string, userId: string): SharedFile[] {
    const keys = this.keysByContent.get(contentKey(groupId, fileHash, userId));
    if (!keys) return [];
    const found = [...keys].map((k) => this.shares.get(k)!);
    return found.length === 1 ? found : found.sort((a, b) => b.sharedAt - a.sharedAt);
  }

  /**
   * Stats the share's path afresh (without following a final symlink):
   * 'missing' when nothing can be stat'ed there, 'changed' when what is there
   * is not the same regular file with the same size and mtime, else 'ok'.
   */
  async check(entry: FileIdentity): Promise<ShareCheck> {
    let st;
    try {
      st = await lstat(entry.path);
    } catch {
      return 'missing';
    }
    if (!st.isFile()) return 'changed';
    return sameIdentity(identityFromStats(entry.path, st), entry) ? 'ok' : 'changed';
  }

  private async removeAll(entries: readonly SharedFile[]): Promise<void> {
    for (const entry of entries) this.delete(entry);
    await this.save(() => {
      for (const entry of entries) if (!this.shares.has(keyOfShare(entry))) this.put(entry);
    });
  }

  /** Saves the current state; on failure undoes the caller's change, tries once more to save what is left, and rethrows. */
  private async save(undo: () => void): Promise<void> {
    try {
      await this.persist();
    } catch (err) {
      undo();
      // A save queued meanwhile may have written the change just undone: write the state as it is now.
      await this.persist().catch(() => undefined);
      throw err;
    }
  }

  private persist(): Promise<void> {
    this.queued ??= this.saveAfter(this.saving);
    return this.queued;
  }

  private async saveAfter(before: Promise<void> | undefined): Promise<void> {
    await before?.catch(() => undefined);
    this.queued = undefined; // from here on a change needs the next save
    const write = this.state.save(this.list());
    this.saving = write;
    try {
      await write;
    } finally {
      if (this.saving === write) this.saving = undefined;
    }
  }

  private put(entry: SharedFile): void {
    const key = keyOfShare(entry);
    const old = this.shares.get(key);
    if (old) this.unindex(old, key);
    this.shares.set(key, entry);
    addTo(this.keysByPath, entry.path, key);
    addTo(this.keysByContent, contentKeyOf(entry), key);
  }

  private delete(entry: SharedFile): void {
    const key = keyOfShare(entry);
    if (this.shares.get(key) !== entry) return;
    this.shares.delete(key);
    this.unindex(entry, key);
  }

  private unindex(entry: SharedFile, key: string): void {
    removeFrom(this.keysByPath, entry.path, key);
    removeFrom(this.keysByContent, contentKeyOf(entry), key);
  }
}

function addTo(index: Map<string, Set<string>>, at: string, key: string): void {
  let keys = index.get(at);
  if (!keys) index.set(at, (keys = new Set()));
  keys.add(key);
}

function removeFrom(index: Map<string, Set<string>>, at: string, key: string): void {
  const keys = index.get(at);
  keys?.delete(key);
  if (keys?.size === 0) index.delete(at);
}
