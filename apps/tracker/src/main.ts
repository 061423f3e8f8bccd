import { formatHostPort, TrackerInfoError } from '@app/protocol';
import { Identity, IdentityError, loadOrCreateIdentity } from '@app/tls';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { MicroserviceOptions } from '@nestjs/microservices';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { assertKeyFileProtected, UnprotectedKeyFileError } from './common/private-files';
import {
  ConfigError,
  infoRequest,
  parseTrackerArgs,
  TRACKER_HELP,
  TrackerConfig,
  TrackerLimits,
} from './config/tracker.config';
import { logFormatFor, TrackerLogger } from './logging/tracker.logger';
import { MetricsModule } from './metrics/metrics.module';
import { TrackerMetrics } from './metrics/tracker.metrics';
import { assertKnownSchema, NewerSchemaError, storedSchemaVersion } from './storage/migrations';
import { SyncService } from './sync/sync.service';
import { TrackerModule } from './tracker.module';
import { ConnectionPolicy } from './transport/connection.policy';
import { TextLineServer } from './transport/text-line.server';

/** File descriptors kept for the database, peer links and the listener beyond client connections. */
const RESERVED_FDS = 128;

/** The soft open-file limit of this process (Linux), or undefined where it cannot be read. */
function openFileLimit(): number | undefined {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Lowers `--max-conns` below the open-file limit, so the limit refuses connections before accept() fails. */
function fitToOpenFiles(limits: TrackerLimits, logger: Logger): TrackerLimits {
  const fds = openFileLimit();
  if (fds === undefined || limits.maxConns + RESERVED_FDS <= fds) return limits;
  const maxConns = Math.max(1, fds - RESERVED_FDS);
  logger.warn(`open-file limit is ${fds}: serving ${maxConns} connections at most, not ${limits.maxConns}`);
  return { ...limits, maxConns };
}

/** The version in the nearest package.json above this file (the workspace's). */
function version(): string {
  for (let dir = __dirname; ; dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'p2p-share' && pkg.version) return pkg.version;
    } catch {
      // none here: look further up
    }
    if (dirname(dir) === dir) return 'unknown';
  }
}

function readConfig(): TrackerConfig {
  const argv = process.argv.slice(2);
  const info = infoRequest(argv);
  if (info) {
    process.stdout.write(info === 'help' ? `${TRACKER_HELP}\n` : `tracker (p2p-share) ${version()}\n`);
    process.exit(0);
  }
  try {
    const config = parseTrackerArgs(argv, (path) => readFileSync(path, 'utf8'), process.env);
    // as ssh does with a private key: a secret others can read is refused before anything starts
    assertKeyFileProtected(config.keyFile);
    return config;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof TrackerInfoError || err instanceof UnprotectedKeyFileError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** The tracker's TLS identity, made in its data directory on first start; one that cannot be used stops it. */
function identityOf(config: TrackerConfig): Identity {
  try {
    return loadOrCreateIdentity(config.dataDir, `p2p-share tracker ${config.trackerNumber}`);
  } catch (err) {
    if (!(err instanceof IdentityError)) throw err;
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(2);
  }
}

/** A database written by a newer version is refused before anything opens it (StorageModule checks again). */
function checkSchema(config: TrackerConfig): void {
  try {
    assertKnownSchema(storedSchemaVersion(join(config.dataDir, 'tracker.db')));
  } catch (err) {
    if (err instanceof NewerSchemaError) {
      process.stderr.write(`error: ${err.message}\n`);
      process.exit(1);
    }
    // a data directory that cannot be read: one line, not a stack trace
    if ((err as NodeJS.ErrnoException).code === undefined) throw err;
    process.stderr.write(`error: cannot use the data directory ${config.dataDir}: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

async function bootstrap(): Promise<void> {
  const config = readConfig();
  if (config.printFingerprint) {
    process.stdout.write(`${identityOf(config).fingerprint}\n`);
    process.exit(0);
  }
  checkSchema(config);
  const identity = identityOf(config);
  const trackerLogger = new TrackerLogger(
    config.logLevel ?? 'info',
    logFormatFor(
      { stdoutIsTTY: !!process.stdout.isTTY, stderrIsTTY: !!process.stderr.isTTY },
      process.env,
      config.logFormat,
    ),
  );
  Logger.overrideLogger(trackerLogger);
  const logger = new Logger('Tracker');
  const policy = new ConnectionPolicy(fitToOpenFiles(config.limits, logger));
  // --http-port: /healthz and /metrics; the transport reports its refusals to the same collectors
  const metrics = config.httpPort !== undefined ? new TrackerMetrics() : undefined;
  const metricsModule =
    metrics &&
    MetricsModule.forRoot({
      metrics,
      port: config.httpPort!,
      host: config.self.host,
      connections: () => policy.usage.connections,
    });
  const server = new TextLineServer({
    host: config.self.host,
    port: config.self.port,
    policy,
    observer: metrics,
    identity,
  });
  const tracker = TrackerModule.forRoot(config, metricsModule ? [metricsModule] : []);
  const app = await NestFactory.createMicroservice<MicroserviceOptions>(tracker, {
    strategy: server,
    logger: trackerLogger,
  });
  app.enableShutdownHooks();
  server.holdClientsUntil(app.get(SyncService).ready);
  try {
    await app.listen();
  } catch (err) {
    process.stderr.write(
      `error: tracker ${config.trackerNumber} cannot listen on ${formatHostPort(config.self)}: ${(err as Error).message}\n`,
    );
    await app.close().catch(() => undefined);
    process.exit(1);
  }
  const peers = config.trackers.flatMap((address, i) =>
    i + 1 === config.trackerNumber ? [] : [formatHostPort(config.peerAddresses.get(i + 1) ?? address)],
  );
  logger.log({
    message: `tracker ${config.trackerNumber} listening on ${formatHostPort(config.self)}, data in ${config.dataDir}`,
    tracker: config.trackerNumber,
    address: formatHostPort(config.self),
    dataDir: config.dataDir,
    peers,
    logLevel: config.logLevel ?? 'info',
  });
  logger.log({
    message: `identity ${identity.fingerprint} (certificate ${identity.certFile}${identity.created ? ', made now' : ''}); pin it in tracker_info.txt as: ${formatHostPort(config.self)} ${identity.fingerprint}`,
    fingerprint: identity.fingerprint,
    certFile: identity.certFile,
    ...(config.requireTls && { requireTls: true }),
  });
}

void bootstrap();
