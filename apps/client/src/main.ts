import { escapeForTerminal } from '@app/protocol';
import { CommandFactory } from 'nest-commander';
import { ClientModule } from './client.module';
import { EXIT_FAILURE, EXIT_USAGE, StartupError } from './client.errors';
import { CLIENT_USAGE } from './config/client.config';
import { clientLogger, clientVersion } from './config/client-logging';

/** Prints one `error:` line on stderr and sets the exit status; never a stack trace, never a raw control character. */
function fail(err: unknown): void {
  const message = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ').trim();
  process.stderr.write(`error: ${escapeForTerminal(message)}\n`);
  process.exitCode = err instanceof StartupError ? err.exitCode : EXIT_FAILURE;
}

interface CommanderFailure {
  readonly exitCode: number;
  readonly message: string;
}

async function bootstrap(): Promise<void> {
  // A reader that went away (e.g. `| head`) is not worth a stack trace.
  process.stdout.on('error', () => process.exit(EXIT_FAILURE));
  await CommandFactory.run(ClientModule, {
    logger: clientLogger(process.argv.slice(2), process.env),
    cliName: 'client',
    version: clientVersion(),
    // commander prints nothing itself on bad arguments; errorHandler turns them into a StartupError.
    outputConfiguration: { outputError: () => undefined },
    errorHandler: (err: Error) => {
      const { exitCode, message } = err as unknown as CommanderFailure;
      if (exitCode === 0) process.exit(0); // --help, --version
      throw new StartupError(`${message.replace(/^error:\s*/, '')}; ${CLIENT_USAGE}`, EXIT_USAGE);
    },
    serviceErrorHandler: fail,
  });
}

bootstrap().catch(fail);
