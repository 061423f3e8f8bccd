import { TrackerInfoError } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { EXIT_USAGE, StartupError } from '../client.errors';
import { ClientConfig, ClientOptions, ConfigError, parseClientArgs } from './client.config';

/**
 * Holds the config once the root command has its arguments. Commander parses
 * argv inside the Nest context, so the config cannot be a plain value
 * provider; services read it with `get()` when they need it.
 */
@Injectable()
export class ClientConfigService {
  private config: ClientConfig | undefined;

  /** Parses arguments and reads the tracker info file; throws StartupError (exit 2) when either is bad. */
  load(positional: readonly string[], options: ClientOptions): ClientConfig {
    try {
      this.config = parseClientArgs(positional, options, (path) => readFileSync(path, 'utf8'));
    } catch (err) {
      if (err instanceof ConfigError || err instanceof TrackerInfoError)
        throw new StartupError(err.message, EXIT_USAGE);
      throw err;
    }
    return this.config;
  }

  set(config: ClientConfig): void {
    this.config = config;
  }

  get(): ClientConfig {
    if (!this.config) throw new Error('client config is not loaded yet');
    return this.config;
  }
}
