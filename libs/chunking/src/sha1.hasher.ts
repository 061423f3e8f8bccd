import { Injectable } from '@nestjs/common';
import { createHash, Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { ChunkHasher, FileDigest } from './chunk-hasher';
import { CHUNK_SIZE } from './chunk-plan';

@Injectable()
export class Sha1ChunkHasher implements ChunkHasher {
  constructor(private readonly chunkSize: number = CHUNK_SIZE) {}

  hashChunk(buf: Buffer): string {
    return createHash('sha1').update(buf).digest('hex');
  }

  verifyChunk(buf: Buffer, expectedHash: string): boolean {
    return this.hashChunk(buf) === expectedHash.toLowerCase();
  }

  async hashFile(path: string, onProgress?: (bytes: number) => void): Promise<FileDigest> {
    const whole = createHash('sha1');
    const chunkHashes: string[] = [];
    let chunk: Hash | undefined;
    let inChunk = 0;
    let size = 0;
    const stream = createReadStream(path, { highWaterMark: this.chunkSize });
    for await (const data of stream as AsyncIterable<Buffer>) {
      whole.update(data);
      let at = 0;
      while (at < data.length) {
        const take = Math.min(this.chunkSize - inChunk, data.length - at);
        chunk ??= createHash('sha1');
        chunk.update(at === 0 && take === data.length ? data : data.subarray(at, at + take));
        inChunk += take;
        at += take;
        if (inChunk === this.chunkSize) {
          chunkHashes.push(chunk.digest('hex'));
          chunk = undefined;
          inChunk = 0;
        }
      }
      size += data.length;
      onProgress?.(size);
    }
    if (chunk) chunkHashes.push(chunk.digest('hex'));
    return { size, fileHash: whole.digest('hex'), chunkHashes };
  }
}
