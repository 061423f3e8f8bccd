import { Logger } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { ClientConfigService } from '../config/client-config.service';
import { clientConfig } from '../testing/client-config.factory';
import { InvalidSettingError } from './settings.errors';
import { TransferSettingChange, TransferSettings } from './transfer-settings.service';

describe(TransferSettings.name, () => {
  let config: ClientConfigService;
  let settings: TransferSettings;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({ providers: [ClientConfigService, TransferSettings] }).compile();
    config = moduleRef.get(ClientConfigService);
    settings = moduleRef.get(TransferSettings);
  });

  it('has no limits and partial seeding on until the command line is read', () => {
    expect(settings.snapshot()).toEqual({ uploadLimit: 0, downloadLimit: 0, partialSeeding: true });
    expect(settings.downloadPacer.rate).toBe(0);
  });

  it('takes its first values from the config, when it is loaded', () => {
    config.set(clientConfig({ uploadLimit: 5 * 1024 ** 2, downloadLimit: 500 * 1024, partialSeeding: false }));

    expect(settings.uploadLimit).toBe(5 * 1024 ** 2);
    expect(settings.downloadLimit).toBe(500 * 1024);
    expect(settings.partialSeeding).toBe(false);
    expect(settings.downloadPacer.rate).toBe(500 * 1024);
  });

  it('takes the values of a config loaded before it was made', async () => {
    const loaded = new ClientConfigService();
    loaded.set(clientConfig({ downloadLimit: 2048, partialSeeding: false }));
    const moduleRef = await Test.createTestingModule({
      providers: [{ provide: ClientConfigService, useValue: loaded }, TransferSettings],
    }).compile();

    expect(moduleRef.get(TransferSettings).snapshot()).toEqual({
      uploadLimit: 0,
      downloadLimit: 2048,
      partialSeeding: false,
    });
  });

  it('changes each setting, and the download pacer follows the download limit', () => {
    settings.setUploadLimit(5 * 1024 ** 2);
    settings.setDownloadLimit(500 * 1024);
    settings.setPartialSeeding(false);
    expect(settings.snapshot()).toEqual({
      uploadLimit: 5 * 1024 ** 2,
      downloadLimit: 500 * 1024,
      partialSeeding: false,
    });
    expect(settings.downloadPacer.rate).toBe(500 * 1024);

    settings.setDownloadLimit(0);
    expect(settings.downloadLimit).toBe(0);
    expect(settings.downloadPacer.rate).toBe(0);
  });

  it('tells its listeners of each change, with the settings now, until they unsubscribe', () => {
    const heard: [TransferSettingChange, unknown][] = [];
    const unsubscribe = settings.onChange((change, now) => heard.push([change, now]));

    settings.setUploadLimit(4096);
    settings.setUploadLimit(4096); // no change
    settings.setPartialSeeding(false);
    config.set(clientConfig({ downloadLimit: 8192 })); // loaded: upload limit back to none, partial seeding on
    unsubscribe();
    settings.setDownloadLimit(1024);

    expect(heard).toEqual([
      [
        { name: 'upload_limit', value: 4096 },
        { uploadLimit: 4096, downloadLimit: 0, partialSeeding: true },
      ],
      [
        { name: 'partial_seeding', value: false },
        { uploadLimit: 4096, downloadLimit: 0, partialSeeding: false },
      ],
      [
        { name: 'upload_limit', value: 0 },
        { uploadLimit: 0, downloadLimit: 0, partialSeeding: false },
      ],
      [
        { name: 'download_limit', value: 8192 },
        { uploadLimit: 0, downloadLimit: 8192, partialSeeding: false },
      ],
      [
        { name: 'partial_seeding', value: true },
        { uploadLimit: 0, downloadLimit: 8192, partialSeeding: true },
      ],
    ]);
  });

  it('lets every listener hear of a change when one throws, and logs the failure', () => {
    const logged = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const second = jest.fn();
    settings.onChange(() => {
      throw new Error('listener bug');
    });
    settings.onChange(second);

    settings.setUploadLimit(2048);

    expect(second).toHaveBeenCalledWith({ name: 'upload_limit', value: 2048 }, expect.anything());
    expect(settings.uploadLimit).toBe(2048);
    expect(logged).toHaveBeenCalledWith('settings listener failed on upload_limit: Error: listener bug');
    logged.mockRestore();
  });

  it.each([-1, 1, 1023, 1024.5, NaN, Infinity, Number.MAX_SAFE_INTEGER + 1])(
    'refuses the limit %d, changing nothing and telling no one',
    (rate) => {
      settings.setUploadLimit(4096);
      settings.setDownloadLimit(8192);
      const listener = jest.fn();
      settings.onChange(listener);

      expect(() => settings.setUploadLimit(rate)).toThrow(InvalidSettingError);
      expect(() => settings.setDownloadLimit(rate)).toThrow(
        /^download_limit is a whole number of bytes per second of at least 1024, or 0 for none, not /,
      );

      expect(settings.snapshot()).toEqual({ uploadLimit: 4096, downloadLimit: 8192, partialSeeding: true });
      expect(settings.downloadPacer.rate).toBe(8192);
      expect(listener).not.toHaveBeenCalled();
    },
  );

  it('refuses a partial seeding switch that is not a boolean', () => {
    expect(() => settings.setPartialSeeding('off' as unknown as boolean)).toThrow(InvalidSettingError);
    expect(settings.partialSeeding).toBe(true);
  });
});
