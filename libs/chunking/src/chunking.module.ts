import { Module } from '@nestjs/common';
import { CHUNK_HASHER } from './chunk-hasher';
import { Sha1ChunkHasher } from './sha1.hasher';

@Module({
  providers: [{ provide: CHUNK_HASHER, useFactory: () => new Sha1ChunkHasher() }],
  exports: [CHUNK_HASHER],
})
export class ChunkingModule {}
