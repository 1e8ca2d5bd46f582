#!/usr/bin/env node
/**
 * The `erl-peb` command (package.json "bin": dist/cli/main.js).
 *
 *   erl-peb server start|stop|status ...   the session server (lib/cli/server.ts)
 *   erl-peb demo ...                        lib/cli/demo.ts, when the package has it: a module
 *                                           exporting `main(args: string[], out: Output)`
 *                                           resolving to an exit status (or nothing for 0)
 *
 * Exit status: 0 done, 1 the command failed, 2 a mistake in the command line (usage printed).
 */
import { join } from 'node:path';
import { ErlPebError } from '../errors';
import { CliError, UsageError } from './args';
import { CommandUsageError, serverCommand, type Output } from './server';
import type { CliEnvironment } from './server-options';

export const USAGE = `Usage: erl-peb <command> [options]

Commands:
  server start|stop|status   run the erl-peb session server (an Erlang node on 127.0.0.1)
  demo                       run the demo application
  help                       this help

Options:
  -h, --help                 help (also after a command: erl-peb server start --help)
  --version                  the erl-peb version
`;

interface DemoModule {
  main(args: string[], out: Output): Promise<number | void> | number | void;
}

function loadDemo(): DemoModule | undefined {
  // A computed path: the demo is optional, and the compiler must not insist on it.
  const path = join(__dirname, 'demo');
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require(path) as DemoModule;
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'MODULE_NOT_FOUND' && err.message.includes(path)) return undefined;
    throw e;
  }
}

function version(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(join(__dirname, '..', '..', 'package.json')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

/** Runs the command line `argv` (without node and the script) and resolves to the exit status. */
export async function main(argv: readonly string[], e: CliEnvironment, o: Output): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case undefined:
        o.err(USAGE);
        return 2;
      case '-h':
      case '--help':
      case 'help':
        o.out(USAGE);
        return 0;
      case '--version':
        o.out(`${version()}\n`);
        return 0;
      case 'server':
        return await serverCommand(rest, e, o);
      case 'demo': {
        const demo = loadDemo();
        if (demo === undefined) {
          o.err('erl-peb: the demo is not part of this installation\n');
          return 1;
        }
        const status = await demo.main(rest, o);
        return typeof status === 'number' ? status : 0;
      }
      default:
        throw new CommandUsageError(`unknown command '${command}'`, USAGE);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      o.err(`erl-peb: ${err.message}\n\n${err instanceof CommandUsageError ? err.usage : USAGE}`);
      return 2;
    }
    if (err instanceof CliError) {
      o.err(`erl-peb: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof ErlPebError) {
      o.err(`erl-peb: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (require.main === module) {
  const out: Output = {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  };
  const argv = process.argv.slice(2);
  main(argv, { env: process.env, cwd: process.cwd() }, out).then(
    (status) => {
      process.exitCode = status;
      // `server` commands are done when main resolves: a handle left open by a connection that
      // misbehaved must not keep the command from exiting. (The demo may keep serving.)
      if (argv[0] === 'server') setTimeout(() => process.exit(), 2000).unref();
    },
    (err: unknown) => {
      process.stderr.write(`erl-peb: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
