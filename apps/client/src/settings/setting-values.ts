import { parseRateLimit, parseSwitch, RATE_LIMIT_FORMS } from '../config/client.config';
import { formatRate } from '../common/units';
import { InvalidSettingError } from './settings.errors';
import { TransferSettingChange, TransferSettingsSnapshot } from './transfer-settings.service';

/** The names `set` takes, in the order `set` lists them. */
export const SETTING_NAMES = ['upload_limit', 'download_limit', 'partial_seeding'] as const;
export type SettingName = (typeof SETTING_NAMES)[number];

const isSettingName = (name: string): name is SettingName => (SETTING_NAMES as readonly string[]).includes(name);

/**
 * `set <name> <value>` as a change, checked; throws InvalidSettingError naming what is accepted. Rates as
 * `parseRateLimit` reads them (`5M`, `500K`, `0`/`none`/`off`), switches `on` or `off`.
 */
export function parseSetting(name: string, value: string): TransferSettingChange {
  if (!isSettingName(name)) {
    throw new InvalidSettingError(`unknown setting '${name}'; the settings are ${SETTING_NAMES.join(', ')}`);
  }
  if (name === 'partial_seeding') {
    const on = parseSwitch(value);
    if (on === undefined) throw new InvalidSettingError(`partial_seeding is on or off, not '${value}'`);
    return { name, value: on };
  }
  const rate = parseRateLimit(value);
  if (rate === undefined) throw new InvalidSettingError(`${name} is ${RATE_LIMIT_FORMS}, not '${value}'`);
  return { name, value: rate };
}

/** `5.0 MiB/s`, or `none` for 0. */
export const formatLimit = (bytesPerSecond: number): string =>
  bytesPerSecond === 0 ? 'none' : formatRate(bytesPerSecond);

/** One setting as the shell shows it: `upload limit: 5.0 MiB/s`, `partial seeding: off`. */
export function formatSetting(name: SettingName, settings: TransferSettingsSnapshot): string {
  switch (name) {
    case 'upload_limit':
      return `upload limit: ${formatLimit(settings.uploadLimit)}`;
    case 'download_limit':
      return `download limit: ${formatLimit(settings.downloadLimit)}`;
    case 'partial_seeding':
      return `partial seeding: ${settings.partialSeeding ? 'on' : 'off'}`;
  }
}

/** Every setting, one line each, in SETTING_NAMES order. */
export const formatSettings = (settings: TransferSettingsSnapshot): string[] =>
  SETTING_NAMES.map((name) => formatSetting(name, settings));
