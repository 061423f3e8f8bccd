/** Files travel in 512 KiB chunks; the last one may be shorter. */
export const CHUNK_SIZE = 512 * 1024;

export interface ChunkPlan {
  readonly fileSize: number;
  readonly chunkSize: number;
  readonly count: number;
  readonly lastChunkSize: number;
}

export function planChunks(fileSize: number, chunkSize: number = CHUNK_SIZE): ChunkPlan {
  if (!Number.isSafeInteger(fileSize) || fileSize < 0) throw new RangeError(`bad file size ${fileSize}`);
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new RangeError(`bad chunk size ${chunkSize}`);
  const count = Math.ceil(fileSize / chunkSize);
  return { fileSize, chunkSize, count, lastChunkSize: count === 0 ? 0 : fileSize - (count - 1) * chunkSize };
}

/** Byte offset and length of chunk `index`. */
export function chunkRange(plan: ChunkPlan, index: number): { offset: number; length: number } {
  if (!Number.isInteger(index) || index < 0 || index >= plan.count) {
    throw new RangeError(`chunk ${index} is outside 0..${plan.count - 1}`);
  }
  const offset = index * plan.chunkSize;
  return { offset, length: index === plan.count - 1 ? plan.lastChunkSize : plan.chunkSize };
}
