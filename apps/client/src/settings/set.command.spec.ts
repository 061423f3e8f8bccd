import { Test } from '@nestjs/testing';
import { ClientConfigService } from '../config/client-config.service';
import { OUTPUT } from '../output/output.port';
import { ShellService } from '../shell/shell.service';
import { clientConfig } from '../testing/client-config.factory';
import { CollectingOutput } from '../testing/collecting.output';
import { TrackerClient } from '../tracker/tracker.client';
import { SetCommand } from './set.command';
import { TransferSettings } from './transfer-settings.service';

describe(SetCommand.name, () => {
  let settings: TransferSettings;
  let out: CollectingOutput;
  let shell: ShellService;
  let tracker: { request: jest.Mock };

  beforeEach(async () => {
    out = new CollectingOutput();
    tracker = { request: jest.fn() };
    const config = new ClientConfigService();
    config.set(clientConfig({ uploadLimit: 1024 ** 2 }));
    const moduleRef = await Test.createTestingModule({
      providers: [
        { provide: ClientConfigService, useValue: config },
        TransferSettings,
        SetCommand,
        { provide: OUTPUT, useValue: out },
      ],
    }).compile();
    settings = moduleRef.get(TransferSettings);
    shell = new ShellService(tracker as unknown as TrackerClient, out, [moduleRef.get(SetCommand)]);
  });

  /** Runs shell lines; resolves with what they printed. */
  async function run(...lines: string[]): Promise<string[]> {
    out.lines.length = 0;
    for (const line of lines) await shell.execute(line);
    return [...out.lines];
  }

  it('lists the settings in force when given no argument', async () => {
    expect(await run('set')).toEqual(['upload limit: 1.0 MiB/s', 'download limit: none', 'partial seeding: on']);
  });

  it.each([
    ['set upload_limit 5M', 'upload limit: 5.0 MiB/s', { uploadLimit: 5 * 1024 ** 2 }],
    ['set upload_limit 1.5K', 'upload limit: 1.5 KiB/s', { uploadLimit: 1536 }],
    ['set upload_limit 2097152', 'upload limit: 2.0 MiB/s', { uploadLimit: 2 * 1024 ** 2 }],
    ['set upload_limit 1G/s', 'upload limit: 1.0 GiB/s', { uploadLimit: 1024 ** 3 }],
    ['set upload_limit 0', 'upload limit: none', { uploadLimit: 0 }],
    ['set upload_limit none', 'upload limit: none', { uploadLimit: 0 }],
    ['set upload_limit OFF', 'upload limit: none', { uploadLimit: 0 }],
    ['set download_limit 500K', 'download limit: 500.0 KiB/s', { downloadLimit: 500 * 1024 }],
    ['set download_limit 3MiB', 'download limit: 3.0 MiB/s', { downloadLimit: 3 * 1024 ** 2 }],
    ['set download_limit off', 'download limit: none', { downloadLimit: 0 }],
    ['set partial_seeding off', 'partial seeding: off', { partialSeeding: false }],
    ['set partial_seeding On', 'partial seeding: on', { partialSeeding: true }],
  ])('%s confirms what is now in force', async (line, confirmed, changed) => {
    const before = settings.snapshot();

    expect(await run(line)).toEqual([confirmed]);

    expect(settings.snapshot()).toEqual({ ...before, ...changed });
  });

  it('sets the download pacer to the new download limit', async () => {
    await run('set download_limit 500K');
    expect(settings.downloadPacer.rate).toBe(500 * 1024);
    await run('set download_limit none');
    expect(settings.downloadPacer.rate).toBe(0);
  });

  it('tells the listeners of a change', async () => {
    const listener = jest.fn();
    settings.onChange(listener);
    await run('set upload_limit 5M');
    expect(listener).toHaveBeenCalledWith({ name: 'upload_limit', value: 5 * 1024 ** 2 }, settings.snapshot());
  });

  const rates = 'a rate such as 500K, 5M or 1G per second (at least 1K), or 0, none or off for no limit';
  it.each([
    [
      'set upload_lmit 5M',
      "unknown setting 'upload_lmit'; the settings are upload_limit, download_limit, partial_seeding",
    ],
    ['set upload_limit 5X', `upload_limit is ${rates}, not '5X'`],
    ['set upload_limit -5M', `upload_limit is ${rates}, not '-5M'`],
    ['set upload_limit 100', `upload_limit is ${rates}, not '100'`],
    ['set download_limit fast', `download_limit is ${rates}, not 'fast'`],
    ['set download_limit ""', `download_limit is ${rates}, not ''`],
    ['set partial_seeding maybe', "partial_seeding is on or off, not 'maybe'"],
    ['set partial_seeding 5M', "partial_seeding is on or off, not '5M'"],
    [
      'set upload_limit',
      'usage: set <name> <value> (set alone lists the settings: upload_limit, download_limit, partial_seeding)',
    ],
    ['set upload_limit 5M extra', 'usage: set [<name>] [<value>]'],
  ])('%s is refused with a clear error and changes nothing', async (line, message) => {
    const listener = jest.fn();
    settings.onChange(listener);
    const before = settings.snapshot();

    expect(await run(line)).toEqual([`error: ${message}`]);

    expect(settings.snapshot()).toEqual(before);
    expect(settings.downloadPacer.rate).toBe(before.downloadLimit);
    expect(listener).not.toHaveBeenCalled();
    expect(tracker.request).not.toHaveBeenCalled();
  });

  it('shows in help', () => {
    const entry = shell.commands.find((c) => c.name === 'set');
    expect(entry?.usage).toBe('set [<name>] [<value>]');
    expect(entry?.summary).toMatch(/^change a limit or switch while running/);
  });
});
