import { CHUNK_HASHER, Sha1ChunkHasher } from '@app/chunking';
import { okReply } from '@app/protocol';
import { Test } from '@nestjs/testing';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT } from '../output/output.port';
import { ChunkServer } from '../seeding/chunk.server';
import { ShareRegistry } from '../seeding/share.registry';
import { TempDirs } from '../seeding/testing/seeding.fixtures';
import { clientConfig } from '../testing/client-config.factory';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient } from '../tracker/tracker.client';
import { DownloadManager } from '../downloads/download.manager';
import { DOWNLOAD_COMMANDS } from '../downloads/downloads.module';
import { SHARING_COMMANDS } from '../seeding/sharing.module';
import { SharingService } from '../seeding/sharing.service';
import { fakeTracker } from '../testing/files.fixtures';
import { ClientSession } from './client-session';
import { SESSION_COMMANDS, SessionCommandsModule } from './session-commands.module';

describe(SessionCommandsModule.name, () => {
  const temp = new TempDirs();
  afterEach(() => temp.cleanup());

  it('wires the session, sharing and download modules and reads the config only when it is used', async () => {
    const tracker = fakeTracker(() => okReply('ok'));
    const moduleRef = await Test.createTestingModule({ imports: [SessionCommandsModule] })
      .overrideProvider(TrackerClient)
      .useValue(tracker)
      .overrideProvider(OUTPUT)
      .useValue(new CollectingOutput())
      .compile();
    try {
      // Compiled before the command line is read: nothing has asked for the config yet.
      const dataDir = join(temp.make('session-commands-module-'), 'data');
      moduleRef.get(ClientConfigService).set(clientConfig({ self: { host: '127.0.0.1', port: 0 }, dataDir }));

      for (const command of [...SESSION_COMMANDS, ...SHARING_COMMANDS, ...DOWNLOAD_COMMANDS])
        expect(moduleRef.get(command)).toBeInstanceOf(command);
      expect(moduleRef.get(SharingService)).toBeInstanceOf(SharingService);
      expect(moduleRef.get(DownloadManager)).toBeInstanceOf(DownloadManager);
      expect(moduleRef.get(CHUNK_HASHER)).toBeInstanceOf(Sha1ChunkHasher);
      expect(moduleRef.get(ShareRegistry).stateFile).toBe(join(dataDir, 'shares.json'));

      await moduleRef.get(SharingService).start();
      expect(moduleRef.get(ChunkServer).address()).toMatchObject({ address: '127.0.0.1' });

      moduleRef.get(ClientSession).loggedIn('alice');
      const path = join(temp.make('session-commands-module-'), 'a.txt');
      writeFileSync(path, 'hello');
      await moduleRef.get(SharingService).upload('g1', path);
      expect(tracker.lines[0]).toMatch(/^upload_file g1 .*a\.txt 5 [0-9a-f]{40} [0-9a-f]{40} 0$/);
      expect(existsSync(join(dataDir, 'shares.json'))).toBe(true);
    } finally {
      await moduleRef.close();
    }
    expect(moduleRef.get(ChunkServer).address()).toBeUndefined();
  });
});
