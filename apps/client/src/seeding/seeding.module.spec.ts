import { CHUNK_SIZE } from '@app/chunking';
import { formatBitfieldRequest, formatGetChunk } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { clientConfig } from '../testing/client-config.factory';
import { CapabilityVerifier } from './capability.verifier';
import { ChunkServer } from './chunk.server';
import { PartialShares } from './partial-shares';
import { SeedingModule } from './seeding.module';
import { ShareRegistry } from './share.registry';
import { TestCapabilityIssuer } from './testing/capability.fixtures';
import { ChunkSocket } from './testing/chunk-socket';
import { sha1, TempDirs } from './testing/seeding.fixtures';

describe(SeedingModule.name, () => {
  const temp = new TempDirs();
  afterEach(() => temp.cleanup());

  it('serves the partial shares the download side opens, with the limits of the config read when used', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [SeedingModule] }).compile();
    const app = await moduleRef.init();
    let socket: ChunkSocket | undefined;
    try {
      const dir = temp.make('seeding-module-');
      app
        .get(ClientConfigService)
        .set(clientConfig({ self: { host: '127.0.0.1', port: 0 }, dataDir: join(dir, 'data'), uploadLimit: 9000 }));
      expect(app.get(ShareRegistry).stateFile).toBe(join(dir, 'data', 'shares.json'));
      const server = app.get(ChunkServer);
      const { port } = await server.start();
      expect(server.uploadLimit).toBe(9000);
      server.setUploadLimit(0);

      const issuer = new TestCapabilityIssuer();
      app.get(CapabilityVerifier).trust('alice', issuer.rawPublicKey);
      const data = randomBytes(CHUNK_SIZE + 10);
      const partPath = join(dir, 'f.bin.part');
      writeFileSync(partPath, data);
      const share = app.get(PartialShares).open({
        groupId: 'g1',
        userId: 'alice',
        fileName: 'f.bin',
        fileHash: sha1(data),
        size: data.length,
        chunkCount: 2,
        partPath,
        present: [1],
      });
      const cap = issuer.issue({ fileHash: sha1(data), groupId: 'g1', seederId: 'alice' });
      socket = await ChunkSocket.open(port);
      socket.send(formatBitfieldRequest(cap), formatGetChunk({ index: 1, capability: cap }));
      const [bits, chunk] = await socket.read(2);
      expect(bits).toEqual({ kind: 'bitfield', line: 'BITFIELD 2 QA' });
      expect(chunk).toEqual({ kind: 'chunk', index: 1, data: data.subarray(CHUNK_SIZE) });

      await app.close();
      expect(share.closed).toBe(true);
      expect(server.address()).toBeUndefined();
    } finally {
      socket?.destroy();
      await app.close();
    }
  });
});
