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

  it('tells its listeners of the config when it is loaded, and a late listener of the one it has', () => {
    const service = new ClientConfigService();
    const early = jest.fn();
    const unsubscribed = jest.fn();
    service.onLoaded(early);
    service.onLoaded(unsubscribed)();
    expect(early).not.toHaveBeenCalled();

    const loaded = service.load(['127.0.0.1:7001', infoFile], {}, {});
    expect(early).toHaveBeenCalledWith(loaded);
    expect(unsubscribed).not.toHaveBeenCalled();

    const late = jest.fn();
    service.onLoaded(late);
    expect(late).toHaveBeenCalledWith(loaded);
  });

  it('is set once and hands out a frozen config, down to its nested values', () => {
    const service = new ClientConfigService();
    service.set(clientConfig({ peerLimits: { maxConnections: 4 } }));
    const config = service.get();

    expect(() => service.set(clientConfig())).toThrow('the client config is set once, at start');
    expect(service.get()).toBe(config);
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.self)).toBe(true);
    expect(Object.isFrozen(config.trackers)).toBe(true);
    expect(Object.isFrozen(config.trackers[0])).toBe(true);
    expect(Object.isFrozen(config.peerLimits)).toBe(true);
    expect(() => {
      (config as { dataDir: string }).dataDir = '/elsewhere';
    }).toThrow(TypeError);
    expect(config.dataDir).not.toBe('/elsewhere');
  });
});
