/** A reason the client cannot start; `main.ts` prints it as one `error:` line on stderr and exits with `exitCode`. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

/** Bad arguments or a bad tracker info file: exit status 2. */
export const EXIT_USAGE = 2;
/** The client started but could not do its job (no tracker answered): exit status 1. */
export const EXIT_FAILURE = 1;
/** Stopped by Ctrl-C (SIGINT), as shells report it: exit status 130. */
export const EXIT_INTERRUPTED = 130;
