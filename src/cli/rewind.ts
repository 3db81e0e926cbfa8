import { createRequire } from 'node:module';
import { isRewindError, ErrorCodes } from '../core/errors.js';
import { parseCommandArgs, type CliIo, type Command } from './args.js';
import { dumpCommand, repairCommand, replayCommand, verifyCommand } from './cmd-journal.js';
import { serveCommand } from './cmd-serve.js';
import { controllerCommand } from './cmd-controller.js';
import { upCommand } from './cmd-up.js';
import { collectorCommand } from './cmd-collector.js';
import { diffCommand, markCommand, restoreCommand, statusCommand } from './cmd-client.js';
import { exportCommand } from './cmd-export.js';
import { planCommand } from './cmd-plan.js';
import { csiCommand } from './cmd-csi.js';

/** Every command, in the order `rewind --help` lists them. */
export const COMMANDS: Command[] = [
  upCommand,
  statusCommand,
  markCommand,
  restoreCommand,
  diffCommand,
  planCommand,
  exportCommand,
  serveCommand,
  collectorCommand,
  controllerCommand,
  csiCommand,
  verifyCommand,
  dumpCommand,
  replayCommand,
  repairCommand,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `rewind — continuous data protection for block volumes

Usage: rewind <command> [options]      (rewind <command> --help for its options)

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Environment: REWIND_LOG=debug|info|warn|error|silent (logs go to stderr as JSON lines).
`;
}

function version(): string {
  const require = createRequire(import.meta.url);
  return (require('../../../package.json') as { version: string }).version;
}

function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => resolve(sig));
  });
}

/** Entry point used by bin/rewind; returns the exit status. */
export async function main(argv: string[], io?: Partial<CliIo>): Promise<number> {
  const cli: CliIo = {
    out: io?.out ?? ((s) => void process.stdout.write(s)),
    err: io?.err ?? ((s) => void process.stderr.write(s)),
    stopSignal: io?.stopSignal ?? stopSignal(),
  };
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    cli.out(overview());
    return argv.length === 0 ? 2 : 0;
  }
  if (argv[0] === '--version') {
    cli.out(`${version()}\n`);
    return 0;
  }
  // Two-word commands ("journal verify") match before one-word ones.
  const cmd =
    COMMANDS.find((c) => c.name === `${argv[0]} ${argv[1]}`) ?? COMMANDS.find((c) => c.name === argv[0]);
  if (!cmd) {
    const group = COMMANDS.filter((c) => c.name.startsWith(`${argv[0]} `));
    if (group.length > 0) {
      cli.err(`rewind ${argv[0]}: choose one of: ${group.map((c) => c.name.split(' ')[1]).join(', ')}\n`);
      return 2;
    }
    cli.err(`rewind: unknown command "${argv[0]}"; run \`rewind --help\` for the list\n`);
    return 2;
  }
  const rest = argv.slice(cmd.name.split(' ').length);
  if (rest.includes('--help') || rest.includes('-h')) {
    cli.out(`${cmd.summary}\n\nUsage: ${cmd.usage}\n`);
    return 0;
  }
  try {
    return await cmd.run(parseCommandArgs(cmd, rest), cli);
  } catch (err) {
    if (isRewindError(err)) {
      cli.err(`rewind ${cmd.name}: ${err.code}: ${err.message}\n`);
      return err.code === ErrorCodes.INVALID_ARGUMENT ? 2 : 1;
    }
    cli.err(`rewind ${cmd.name}: ${(err as Error)?.stack ?? String(err)}\n`);
    return 1;
  }
}
