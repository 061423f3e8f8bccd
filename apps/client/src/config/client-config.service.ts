import { TrackerInfoError } from '@app/protocol';
import { Injectable } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { EXIT_USAGE, StartupError } from '../client.errors';
import { ClientConfig, ClientEnv, ClientOptions, ConfigError, parseClientArgs } from './client.config';

/**
 * Holds the config once the root command has its arguments. Commander parses
 * argv inside the Nest context, so the config cannot be a plain value
 * provider; services read it with `get()` when they need it. It is set once, at
 * start, and frozen: what changes at run time lives in TransferSettings.
 */
@Injectable()
export class ClientConfigService {
  private config: ClientConfig | undefined;
  private readonly listeners = new Set<(config: ClientConfig) => void>();

  /**
   * Parses arguments and the `P2P_*` variables of `env`, and reads the tracker info file; throws StartupError
   * (exit 2) when any is bad.
   */
  load(positional: readonly string[], options: ClientOptions, env: ClientEnv = process.env): ClientConfig {
    let config: ClientConfig;
    try {
      config = parseClientArgs(positional, options, (path) => readFileSync(path, 'utf8'), env);
    } catch (err) {
      if (err instanceof ConfigError || err instanceof TrackerInfoError)
        throw new StartupError(err.message, EXIT_USAGE);
      throw err;
    }
    this.set(config);
    return config;
  }

  /** Sets the config, once; it is frozen (deeply) from then on. */
  set(config: ClientConfig): void {
    if (this.config) throw new Error('the client config is set once, at start');
    this.config = deepFreeze(config);
    this.listeners.forEach((listener) => listener(config));
  }

  /**
   * Calls `listener` with the config when it is loaded or set, or at once when it already is: for
   * services made before the command line is parsed. Returns the function that unsubscribes it.
   */
  onLoaded(listener: (config: ClientConfig) => void): () => void {
    this.listeners.add(listener);
    if (this.config) listener(this.config);
    return () => this.listeners.delete(listener);
  }

  get(): ClientConfig {
    if (!this.config) throw new Error('client config is not loaded yet');
    return this.config;
  }
}

/** Freezes `value` and every object and array in it. */
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}
