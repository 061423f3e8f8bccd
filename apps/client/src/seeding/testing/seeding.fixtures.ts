import { planChunks } from '@app/chunking';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NewShare } from '../share.registry';
import { fileIdentity, SharedFile } from '../shared-file';

/** Fresh temp folders (realpath'd, since /tmp may be a symlink); `cleanup` removes them all. */
export class TempDirs {
  private readonly dirs: string[] = [];

  make(prefix = 'seeding-spec-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.dirs.push(dir);
    return realpathSync(dir);
  }

  cleanup(): void {
    for (const dir of this.dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** A well-formed share of a file that need not exist. */
export function aShare(overrides: Partial<SharedFile> = {}): SharedFile {
  const size = overrides.size ?? 1000;
  return {
    groupId: 'g1',
    fileName: 'a.bin',
    userId: 'alice',
    path: '/srv/shared/a.bin',
    size,
    mtimeMs: 1_700_000_000_000.5,
    dev: 2049,
    ino: 1234,
    fileHash: 'a'.repeat(40),
    chunkCount: planChunks(size).count,
    sharedAt: 1_700_000_000_000,
    ...overrides,
  };
}

export const sha1 = (data: Buffer): string => createHash('sha1').update(data).digest('hex');

/** The share of a real file as the upload flow would build it: realpath, identity, SHA-1, chunk count. */
export async function shareOf(path: string, overrides: Partial<NewShare> = {}): Promise<NewShare> {
  const id = await fileIdentity(path);
  return {
    groupId: 'g1',
    fileName: path.split('/').pop()!,
    userId: 'alice',
    ...id,
    fileHash: sha1(readFileSync(id.path)),
    chunkCount: planChunks(id.size).count,
    ...overrides,
  };
}

export const listDir = (dir: string): string[] => readdirSync(dir).sort();

/** Polls `check` (no fixed sleep) until it holds; fails after `timeoutMs`. */
export async function eventually(check: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
