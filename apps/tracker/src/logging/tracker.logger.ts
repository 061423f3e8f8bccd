import { ConsoleLogger, LogLevel } from '@nestjs/common';
import { requestContext } from '../common/request-context';

/** `--log-level` values, least to most verbose; each shows itself and everything before it. */
export const TRACKER_LOG_LEVELS = ['error', 'warn', 'info', 'debug'] as const;
export type TrackerLogLevel = (typeof TRACKER_LOG_LEVELS)[number];

/** The Nest levels a `--log-level` turns on (Nest calls info `log`). */
export function nestLogLevels(level: TrackerLogLevel): LogLevel[] {
  const all: LogLevel[] = ['fatal', 'error', 'warn', 'log', 'debug'];
  return all.slice(0, 2 + TRACKER_LOG_LEVELS.indexOf(level));
}

/** How log lines look: JSON lines for files and pipes, text (coloured unless NO_COLOR) on a terminal. */
export interface LogFormat {
  readonly json: boolean;
  readonly colors: boolean;
}

/**
 * JSON unless both stdout and stderr are terminals (info and warn lines go to stdout, errors to stderr: a
 * tracker with either one redirected writes the same JSON lines to both). Colour only on a terminal, and
 * never with NO_COLOR set (https://no-color.org: any non-empty value).
 */
export function logFormatFor(
  streams: { stdoutIsTTY: boolean; stderrIsTTY: boolean },
  env: NodeJS.ProcessEnv,
  chosen?: 'json' | 'text',
): LogFormat {
  const terminal = streams.stdoutIsTTY && streams.stderrIsTTY;
  const json = chosen ? chosen === 'json' : !terminal;
  return { json, colors: !json && terminal && !env.NO_COLOR };
}

/**
 * An event with fields: `logger.log({ message: 'login', user: 'alice', address: '10.0.0.5:51000' })`.
 * In JSON the fields sit beside the message; in text they follow it as `key=value`.
 */
export interface LogEvent {
  readonly message: string;
  readonly [field: string]: unknown;
}

const isLogEvent = (value: unknown): value is LogEvent =>
  typeof value === 'object' &&
  value !== null &&
  !Array.isArray(value) &&
  typeof (value as LogEvent).message === 'string';

/** Fields no line may carry, whatever a caller passes: secrets and what proves a right. */
const SECRET_FIELDS = /pass|token|capab|mac|key|secret/i;

/** `key=value` for text lines; a value with spaces or quotes is JSON-quoted. */
function formatField(key: string, value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return `${key}=${/^[^\s"=]+$/.test(text) ? text : JSON.stringify(text)}`;
}

/**
 * The tracker's Nest logger. One line per event: JSON lines (`time`, `level`, `context`, `message`,
 * `requestId` inside a request, then the event's fields) off a terminal, Nest's text lines on one; every line
 * written inside a request carries the request id kept in async context.
 */
export class TrackerLogger extends ConsoleLogger {
  constructor(level: TrackerLogLevel, format: LogFormat) {
    super({ logLevels: nestLogLevels(level), json: format.json, colors: format.colors });
  }

  protected override printAsJson(
    message: unknown,
    options: { context: string; logLevel: LogLevel; writeStreamType?: 'stdout' | 'stderr'; errorStack?: unknown },
  ): void {
    process[options.writeStreamType ?? 'stdout'].write(`${JSON.stringify(this.jsonLine(message, options))}\n`);
  }

  /** One JSON line's object: time, level, context, message, requestId, then the event's fields. */
  jsonLine(
    message: unknown,
    options: { context: string; logLevel: LogLevel; errorStack?: unknown },
  ): Record<string, unknown> {
    const line: Record<string, unknown> = {
      time: new Date().toISOString(),
      level: options.logLevel === 'log' ? 'info' : options.logLevel,
    };
    if (options.context) line.context = options.context;
    const request = requestContext.getStore();
    const event = isLogEvent(message) ? message : { message: typeof message === 'string' ? message : String(message) };
    line.message = event.message;
    if (request?.logId) line.requestId = request.logId;
    for (const [key, value] of Object.entries(event)) {
      if (key !== 'message' && !(key in line) && !SECRET_FIELDS.test(key) && value !== undefined) line[key] = value;
    }
    if (options.errorStack) line.stack = options.errorStack;
    return line;
  }

  protected override stringifyMessage(message: unknown, logLevel: LogLevel): string {
    const request = requestContext.getStore();
    const id = request?.logId ? ` [#${request.logId}]` : '';
    if (!isLogEvent(message)) return `${super.stringifyMessage(message, logLevel)}${id}`;
    const fields = Object.entries(message)
      .filter(([key, value]) => key !== 'message' && !SECRET_FIELDS.test(key) && value !== undefined)
      .map(([key, value]) => formatField(key, value));
    return `${super.stringifyMessage([message.message, ...fields].join(' '), logLevel)}${id}`;
  }
}
