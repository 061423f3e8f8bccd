import { chmod, lstat, mkdir, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFileAtomically } from '../common/atomic-file';
import { SharedFile, toSharedFile } from './shared-file';

export const SHARES_FILE_NAME = 'shares.json';
const STATE_VERSION = 1;
/** The data folder and the state file are the user's own: they list every path this client seeds. */
export const STATE_DIR_MODE = 0o700;
export const STATE_FILE_MODE = 0o600;

export interface ShareStateLoad {
  readonly shares: SharedFile[];
  /** Set when the state file could not be used: why, and where it was moved. */
  readonly warning?: string;
  /** Where an unusable state file was moved to, if it could be moved. */
  readonly movedTo?: string;
}

const reasonOf = (err: unknown): string =>
  (err as NodeJS.ErrnoException)?.code ?? (err instanceof Error ? err.message : String(err));

/**
 * The registry's state on disk: `<dir>/shares.json`, `{ "version": 1, "shares": [...] }`.
 * The folder is owner-only (0700) and the file owner-only (0600), whatever the umask; an
 * older, more open folder or file is tightened at load.
 *
 * Every save writes a temp file next to it (`shares.json.tmp-<pid>-<n>`),
 * fsyncs it, renames it over the old file and fsyncs the folder, so a crash
 * leaves either the old or the new state, never half of one. A file that
 * cannot be read or parsed is moved aside to `shares.json.corrupt-<timestamp>`.
 */
export class ShareStateFile {
  readonly path: string;

  constructor(readonly dir: string) {
    this.path = join(dir, SHARES_FILE_NAME);
  }

  async load(): Promise<ShareStateLoad> {
    await mkdir(this.dir, { recursive: true, mode: STATE_DIR_MODE });
    await chmod(this.dir, STATE_DIR_MODE);
    const state = await lstat(this.path).catch(() => undefined);
    if (state?.isFile() && (state.mode & 0o077) !== 0) await chmod(this.path, STATE_FILE_MODE);
    await this.removeStaleTempFiles();
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { shares: [] };
      return this.moveAside(`cannot read ${this.path} (${reasonOf(err)})`);
    }
    try {
      return { shares: parseState(text) };
    } catch (err) {
      return this.moveAside(`${this.path} is corrupt (${err instanceof Error ? err.message : String(err)})`);
    }
  }

  async save(shares: readonly SharedFile[]): Promise<void> {
    const text = JSON.stringify({ version: STATE_VERSION, shares }, null, 2) + '\n';
    await replaceFileAtomically(this.path, text, STATE_FILE_MODE);
  }

  /** Temp files left by a crash mid-save (never by this process) are garbage: the rename never happened. */
  private async removeStaleTempFiles(): Promise<void> {
    const prefix = `${SHARES_FILE_NAME}.tmp-`;
    const own = `${prefix}${process.pid}-`;
    const names = await readdir(this.dir).catch(() => [] as string[]);
    await Promise.all(
      names
        .filter((n) => n.startsWith(prefix) && !n.startsWith(own))
        .map((n) => unlink(join(this.dir, n)).catch(() => undefined)),
    );
  }

  private async moveAside(reason: string): Promise<ShareStateLoad> {
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    let target = `${this.path}.corrupt-${stamp}`;
    for (let n = 2; await exists(target); n++) target = `${this.path}.corrupt-${stamp}-${n}`;
    try {
      await rename(this.path, target);
    } catch (err) {
      return {
        shares: [],
        warning: `${reason}; could not move it aside (${reasonOf(err)}); starting with no shares`,
      };
    }
    return { shares: [], warning: `${reason}; moved it to ${target} and started with no shares`, movedTo: target };
  }
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

function parseState(text: string): SharedFile[] {
  const state: unknown = JSON.parse(text);
  if (typeof state !== 'object' || state === null || Array.isArray(state)) throw new Error('not a JSON object');
  const { version, shares } = state as { version?: unknown; shares?: unknown };
  if (version !== STATE_VERSION) throw new Error(`unknown version ${JSON.stringify(version)}`);
  if (!Array.isArray(shares)) throw new Error('no shares list');
  return shares.map((s, i) => {
    try {
      return toSharedFile(s);
    } catch (err) {
      throw new Error(`share ${i}: ${(err as Error).message}`);
    }
  });
}
