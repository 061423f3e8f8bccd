import { Injectable, Logger } from '@nestjs/common';
import { RatePacer } from '../common/rate-pacer';
import { ClientConfig, MIN_RATE_LIMIT } from '../config/client.config';
import { ClientConfigService } from '../config/client-config.service';
import { InvalidSettingError } from './settings.errors';

/** The transfer settings at one moment. Rates are bytes per second, 0 for no limit. */
export interface TransferSettingsSnapshot {
  readonly uploadLimit: number;
  readonly downloadLimit: number;
  readonly partialSeeding: boolean;
}

/** One setting that took a new value. */
export type TransferSettingChange =
  | { readonly name: 'upload_limit'; readonly value: number }
  | { readonly name: 'download_limit'; readonly value: number }
  | { readonly name: 'partial_seeding'; readonly value: boolean };

export type TransferSettingsListener = (change: TransferSettingChange, now: TransferSettingsSnapshot) => void;

/** Before the command line is read: no limits, partial seeding on. */
const DEFAULTS: TransferSettingsSnapshot = { uploadLimit: 0, downloadLimit: 0, partialSeeding: true };

/**
 * The limits and switches of this client that can change while it runs: the
 * upload and download rate limits and partial seeding. They start from the
 * command line (and its `P2P_*` variables) once that is read, and `set` in the
 * shell changes them. Whoever applies one reads it here and follows `onChange`;
 * the downloads share `downloadPacer`, whose rate always equals `downloadLimit`.
 */
@Injectable()
export class TransferSettings {
  private readonly logger = new Logger(TransferSettings.name);
  private current: TransferSettingsSnapshot = DEFAULTS;
  private readonly listeners = new Set<TransferSettingsListener>();
  /** Paces the bytes of every download together to `downloadLimit` (0: unlimited), fair between downloads by key. */
  readonly downloadPacer = new RatePacer(0);

  constructor(config: ClientConfigService) {
    config.onLoaded((c) => this.loadFrom(c));
  }

  /** Bytes per second this client may upload in all, 0 for no limit. */
  get uploadLimit(): number {
    return this.current.uploadLimit;
  }

  /** Bytes per second this client may download in all, 0 for no limit. */
  get downloadLimit(): number {
    return this.current.downloadLimit;
  }

  /** Whether downloads in progress serve the chunks they have verified. */
  get partialSeeding(): boolean {
    return this.current.partialSeeding;
  }

  snapshot(): TransferSettingsSnapshot {
    return this.current;
  }

  /** Throws InvalidSettingError, changing nothing, for a rate that is not 0 or a whole number of at least 1 KiB/s. */
  setUploadLimit(bytesPerSecond: number): void {
    this.apply({ name: 'upload_limit', value: checkLimit('upload_limit', bytesPerSecond) });
  }

  /** As `setUploadLimit`; the download pacer follows at once, for the requests already waiting too. */
  setDownloadLimit(bytesPerSecond: number): void {
    this.apply({ name: 'download_limit', value: checkLimit('download_limit', bytesPerSecond) });
  }

  setPartialSeeding(on: boolean): void {
    if (typeof on !== 'boolean') throw new InvalidSettingError(`partial_seeding is on or off, not ${String(on)}`);
    this.apply({ name: 'partial_seeding', value: on });
  }

  /**
   * Calls `listener` after each setting that takes a new value (setting the value it has is no change), with the
   * change and all the settings now; returns the function that unsubscribes it. A listener that throws is logged
   * and does not keep the others from hearing of the change.
   */
  onChange(listener: TransferSettingsListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** The command line was read: its values are in force (the listeners hear of each that differs). */
  private loadFrom(config: ClientConfig): void {
    this.apply({ name: 'upload_limit', value: config.uploadLimit ?? 0 });
    this.apply({ name: 'download_limit', value: config.downloadLimit ?? 0 });
    this.apply({ name: 'partial_seeding', value: config.partialSeeding ?? true });
  }

  private apply(change: TransferSettingChange): void {
    const before = this.current;
    switch (change.name) {
      case 'upload_limit':
        if (before.uploadLimit === change.value) return;
        this.current = { ...before, uploadLimit: change.value };
        break;
      case 'download_limit':
        if (before.downloadLimit === change.value) return;
        this.current = { ...before, downloadLimit: change.value };
        this.downloadPacer.setRate(change.value);
        break;
      case 'partial_seeding':
        if (before.partialSeeding === change.value) return;
        this.current = { ...before, partialSeeding: change.value };
        break;
    }
    for (const listener of this.listeners) {
      try {
        listener(change, this.current);
      } catch (err) {
        this.logger.error(`settings listener failed on ${change.name}: ${String(err)}`);
      }
    }
  }
}

function checkLimit(name: string, bytesPerSecond: number): number {
  if (bytesPerSecond === 0) return 0;
  if (!Number.isSafeInteger(bytesPerSecond) || bytesPerSecond < MIN_RATE_LIMIT) {
    throw new InvalidSettingError(
      `${name} is a whole number of bytes per second of at least ${MIN_RATE_LIMIT}, or 0 for none, not ${bytesPerSecond}`,
    );
  }
  return bytesPerSecond;
}
