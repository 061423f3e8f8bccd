export const CHUNK_HASHER = Symbol('CHUNK_HASHER');

export interface FileDigest {
  readonly size: number;
  /** Hex SHA-1 of the whole file. */
  readonly fileHash: string;
  /** Hex SHA-1 of each chunk, in order. */
  readonly chunkHashes: readonly string[];
}

export interface ChunkHasher {
  hashChunk(buf: Buffer): string;
  verifyChunk(buf: Buffer, expectedHash: string): boolean;
  /** Hashes the file without holding it in memory; `onProgress` gets the bytes hashed so far. */
  hashFile(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest>;
}
