import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';

/** Owner read and write only: the tracker's database files and the network key. */
export const PRIVATE_FILE_MODE = 0o600;
/** Owner only: the tracker's data directory. */
export const PRIVATE_DIR_MODE = 0o700;

/** Creates `dir` (and missing parents) owner-only, and makes an existing one owner-only too. */
export function makePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/** Creates `path` empty and owner-only when missing; makes it owner-only when it exists. */
export function makePrivateFile(path: string): void {
  closeSync(openSync(path, 'a', PRIVATE_FILE_MODE));
  chmodSync(path, PRIVATE_FILE_MODE);
}

/** Makes `path` owner-only if it exists. */
export function makePrivateIfExists(path: string): void {
  try {
    chmodSync(path, PRIVATE_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

/** A secret file that group or others may read or write, as ssh refuses a private key. */
export class UnprotectedKeyFileError extends Error {
  override readonly name = 'UnprotectedKeyFileError';
  constructor(
    readonly path: string,
    readonly mode: number,
  ) {
    super(
      `key file ${path} is readable or writable by group or others (mode ${mode.toString(8).padStart(4, '0')}); ` +
        `it holds the network's secret: run chmod 600 ${path}`,
    );
  }
}

/** Throws `UnprotectedKeyFileError` when `path` exists with any group or other permission bit; a missing file is fine. */
export function assertKeyFileProtected(path: string): void {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if ((mode & 0o077) !== 0) throw new UnprotectedKeyFileError(path, mode);
}
