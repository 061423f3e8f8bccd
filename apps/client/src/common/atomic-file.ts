import { FileHandle, open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

let tempSeq = 0;

/**
 * Replaces the file at `path` with `text` so that a crash leaves either the old file or the new one, never a mix:
 * writes `<path>.tmp-<pid>-<n>` with `mode` (set again after open, which the umask cuts), syncs it, renames it over
 * `path`, then syncs the folder so the rename itself is durable (best effort: some platforms cannot sync a folder).
 * On failure the temp file is removed and the error goes on; `path` is untouched.
 */
export async function replaceFileAtomically(path: string, text: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${process.pid}-${++tempSeq}`;
  let handle: FileHandle | undefined;
  try {
    handle = await open(temp, 'wx', mode);
    await handle.chmod(mode);
    await handle.writeFile(text, 'utf8');
    await handle.sync();
    await handle.close();
    handle = undefined;
    await rename(temp, path);
  } catch (err) {
    await handle?.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw err;
  }
  let dir: FileHandle | undefined;
  try {
    dir = await open(dirname(path), 'r');
    await dir.sync();
  } catch {
    // best effort
  } finally {
    await dir?.close().catch(() => undefined);
  }
}
