import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { replaceFileAtomically } from '../common/atomic-file';

export const RUNNING_DOWNLOADS_FILE_NAME = 'downloads.json';
const VERSION = 1;

/** A download that was running when the client stopped: continued on the next login of its user. */
export interface RunningDownload {
  readonly userId: string;
  readonly groupId: string;
  readonly fileName: string;
  /** The file's full path (its `.part` and chunk record lie beside it). */
  readonly destPath: string;
}

const same = (a: RunningDownload, b: RunningDownload) =>
  a.userId === b.userId && a.groupId === b.groupId && a.fileName === b.fileName && a.destPath === b.destPath;

function isRunningDownload(v: unknown): v is RunningDownload {
  if (typeof v !== 'object' || v === null) return false;
  const d = v as Record<string, unknown>;
  return ['userId', 'groupId', 'fileName', 'destPath'].every((k) => typeof d[k] === 'string' && d[k] !== '');
}

/**
 * `<dataDir>/downloads.json`, `{ "version": 1, "downloads": [...] }`: the
 * downloads running now (and, after a crash, at the crash). Each change is
 * written to a temp file, synced and renamed over the old one (as
 * `ShareStateFile` does), one change at a time. An unreadable file counts as
 * empty: it only saves typing `download_file` again.
 */
export class RunningDownloadsFile {
  readonly path: string;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(readonly dir: string) {
    this.path = join(dir, RUNNING_DOWNLOADS_FILE_NAME);
  }

  async list(): Promise<RunningDownload[]> {
    await this.chain.catch(() => undefined);
    return this.read();
  }

  /** Adds a download (once). */
  add(d: RunningDownload): Promise<void> {
    return this.change((all) => (all.some((e) => same(e, d)) ? all : [...all, d]));
  }

  remove(d: RunningDownload): Promise<void> {
    return this.change((all) => all.filter((e) => !same(e, d)));
  }

  private change(edit: (all: RunningDownload[]) => RunningDownload[]): Promise<void> {
    const next = this.chain
      .catch(() => undefined)
      .then(async () => {
        const before = await this.read();
        const after = edit(before);
        if (after.length === before.length && after.every((d, i) => same(d, before[i]))) return;
        await this.write(after);
      });
    this.chain = next;
    return next;
  }

  private async read(): Promise<RunningDownload[]> {
    try {
      const state = JSON.parse(await readFile(this.path, 'utf8')) as { version?: unknown; downloads?: unknown };
      if (state?.version !== VERSION || !Array.isArray(state.downloads)) return [];
      return state.downloads.filter(isRunningDownload).map(({ userId, groupId, fileName, destPath }) => ({
        userId,
        groupId,
        fileName,
        destPath,
      }));
    } catch {
      return [];
    }
  }

  private async write(downloads: readonly RunningDownload[]): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await replaceFileAtomically(this.path, JSON.stringify({ version: VERSION, downloads }, null, 2) + '\n', 0o600);
  }
}
