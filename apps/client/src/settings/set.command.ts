import { Inject, Injectable } from '@nestjs/common';
import { OUTPUT, OutputPort } from '../output/output.port';
import { LocalCommand } from '../commands/local-command';
import { formatSetting, formatSettings, parseSetting, SETTING_NAMES } from './setting-values';
import { InvalidSettingError } from './settings.errors';
import { TransferSettings } from './transfer-settings.service';

const USAGE = `usage: set <name> <value> (set alone lists the settings: ${SETTING_NAMES.join(', ')})`;

/**
 * `set upload_limit 5M`, `set download_limit none`, `set partial_seeding off`: changes a transfer setting for the
 * rest of this run and prints what is now in force; `set` alone lists them all. A bad name or value changes nothing.
 */
@Injectable()
export class SetCommand implements LocalCommand {
  readonly name = 'set';
  readonly args = [];
  readonly optional = ['name', 'value'];
  readonly summary = 'change a limit or switch while running (set upload_limit 5M); set alone lists them';

  constructor(
    private readonly settings: TransferSettings,
    @Inject(OUTPUT) private readonly out: OutputPort,
  ) {}

  run([name, value]: readonly string[]): Promise<void> {
    if (name === undefined) {
      formatSettings(this.settings.snapshot()).forEach((line) => this.out.line(line));
      return Promise.resolve();
    }
    if (value === undefined) throw new InvalidSettingError(USAGE);
    const change = parseSetting(name, value);
    switch (change.name) {
      case 'upload_limit':
        this.settings.setUploadLimit(change.value);
        break;
      case 'download_limit':
        this.settings.setDownloadLimit(change.value);
        break;
      case 'partial_seeding':
        this.settings.setPartialSeeding(change.value);
        break;
    }
    this.out.line(formatSetting(change.name, this.settings.snapshot()));
    return Promise.resolve();
  }
}
