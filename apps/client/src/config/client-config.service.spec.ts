import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StartupError } from '../client.errors';
import { clientConfig } from '../testing/client-config.factory';
import { ClientConfigService } from './client-config.service';

describe(ClientConfigService.name, () => {
  let dir: string;
  let infoFile: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'client-config-'));
    infoFile = join(dir, 'tracker_info.txt');
    writeFileSync(infoFile, '127.0.0.1:7000\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads the P2P_* variables of the environment it is given, the flags winning', () => {
    const service = new ClientConfigService();
    const env = { P2P_UPLOAD_LIMIT: '2M', P2P_DOWNLOAD_LIMIT: '1M', P2P_PARTIAL_SEEDING: 'off' };

    const config = service.load(['127.0.0.1:7001', infoFile], { downloadLimit: '4M' }, env);

    expect(config).toMatchObject({ uploadLimit: 2 * 1024 ** 2, downloadLimit: 4 * 1024 ** 2, partialSeeding: false });
    expect(service.get()).toBe(config);
  });

  it('turns a bad variable into a usage error (exit 2)', () => {
    const service = new ClientConfigService();
    expect(() => service.load(['127.0.0.1:7001', infoFile], {}, { P2P_PARTIAL_SEEDING: 'sometimes' })).toThrow(
      expect.objectContaining({ name: 'StartupError', exitCode: 2 }) as StartupError,
    );
    expect(() => service.get()).toThrow(/not loaded/);
  });

  it('tells its listeners of each config loaded or set, and a late listener of the one it has', () => {
    const service = new ClientConfigService();
    const early = jest.fn();
    const unsubscribe = service.onLoaded(early);
    expect(early).not.toHaveBeenCalled();

    const loaded = service.load(['127.0.0.1:7001', infoFile], {}, {});
    expect(early).toHaveBeenCalledWith(loaded);

    const late = jest.fn();
    service.onLoaded(late);
    expect(late).toHaveBeenCalledWith(loaded);

    unsubscribe();
    const replaced = clientConfig();
    service.set(replaced);
    expect(early).toHaveBeenCalledTimes(1);
    expect(late).toHaveBeenLastCalledWith(replaced);
  });
});
