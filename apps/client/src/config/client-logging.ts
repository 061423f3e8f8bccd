import { ConsoleLogger, LoggerService, LogLevel } from '@nestjs/common';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ClientEnv, ClientLogLevel, ConfigError, logLevelOf } from './client.config';

/** Nest's levels shown at each client level, quietest first (`info` is Nest's `log`). */
const NEST_LEVELS: Record<ClientLogLevel, LogLevel[]> = {
  off: [],
  error: ['fatal', 'error'],
  warn: ['fatal', 'error', 'warn'],
  info: ['fatal', 'error', 'warn', 'log'],
  debug: ['fatal', 'error', 'warn', 'log', 'debug'],
  verbose: ['fatal', 'error', 'warn', 'log', 'debug', 'verbose'],
};

/** Nest's console logger with every line on stderr: stdout belongs to the shell. */
export class StderrLogger extends ConsoleLogger {
  protected override printMessages(
    messages: unknown[],
    context?: string,
    logLevel?: LogLevel,
    _writeStreamType?: 'stdout' | 'stderr',
    errorStack?: unknown,
  ): void {
    super.printMessages(messages, context, logLevel, 'stderr', errorStack);
  }
}

/**
 * The logger for Nest from `--log-level LEVEL` / `--log-level=LEVEL` in `argv`, else `P2P_LOG_LEVEL`: false (none)
 * when off, the default. Read before commander parses the command line, since Nest takes its logger at creation; a
 * bad value also gives false here and is reported by the config as a usage error.
 */
export function clientLogger(argv: readonly string[], env: ClientEnv): LoggerService | false {
  let flag: string | undefined;
  argv.forEach((arg, i) => {
    if (arg === '--log-level') flag = argv[i + 1];
    else if (arg.startsWith('--log-level=')) flag = arg.slice('--log-level='.length);
  });
  let level: ClientLogLevel;
  try {
    level = logLevelOf(flag, env);
  } catch (err) {
    if (err instanceof ConfigError) return false;
    throw err;
  }
  if (level === 'off') return false;
  return new StderrLogger({ logLevels: NEST_LEVELS[level], colors: !env.NO_COLOR && process.stderr.isTTY === true });
}

/** The version in the package.json of the install this file runs from (the nearest one above it). */
export function clientVersion(from: string = __dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (existsSync(file)) {
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
      if (typeof pkg.version === 'string') return pkg.version;
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}
