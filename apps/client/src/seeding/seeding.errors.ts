/** An entry handed to `ShareRegistry.add` that cannot be a share (relative path, sizes that do not add up...). */
export class InvalidShareError extends Error {
  override readonly name = 'InvalidShareError';
}

/** The chunk server could not listen on the client's address; the message names the address and the reason. */
export class ChunkServerListenError extends Error {
  override readonly name = 'ChunkServerListenError';
  constructor(
    message: string,
    readonly errno?: string,
  ) {
    super(message);
  }
}

/** A file that cannot be shared as it is (not a regular file, unreadable...). */
export class NotShareableError extends Error {
  override readonly name = 'NotShareableError';
}
