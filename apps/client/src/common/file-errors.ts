/** Turns a filesystem error about `path` into a sentence for the user. */
export function describeFsError(err: unknown, path: string): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return `no such file: ${path}`;
    case 'EACCES':
    case 'EPERM':
      return `permission denied: ${path}`;
    case 'EISDIR':
      return `${path} is a directory, not a file`;
    case 'ENOTDIR':
      return `a part of ${path} is not a directory`;
    case 'ELOOP':
      return `too many symbolic links in ${path}`;
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
