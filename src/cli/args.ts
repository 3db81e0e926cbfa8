import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ErrorCodes, RewindError } from '../core/errors.js';

/** A command of the `rewind` CLI: its help text is the only documentation of its flags. */
export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: ParsedArgs, io: CliIo): Promise<number>;
}

export interface ParsedArgs {
  values: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export interface CliIo {
  out: (s: string) => void;
  err: (s: string) => void;
  /** Resolves when the process is asked to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<string>;
}

export function parseCommandArgs(cmd: Command, argv: string[]): ParsedArgs {
  try {
    const { values, positionals } = parseArgs({ args: argv, options: cmd.options, allowPositionals: true, strict: true });
    return { values: values as ParsedArgs['values'], positionals };
  } catch (err) {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `${(err as Error).message}; see \`rewind ${cmd.name} --help\``, { cause: err });
  }
}

export function str(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === 'string' ? v : undefined;
}

export function need(args: ParsedArgs, name: string, cmd: string): string {
  const v = str(args, name);
  if (v === undefined || v === '') {
    throw new RewindError(ErrorCodes.INVALID_ARGUMENT, `--${name} is required; see \`rewind ${cmd} --help\``);
  }
  return v;
}

export function flag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** JSON that can carry bigints (as decimal strings). */
export function toJson(v: unknown, pretty = true): string {
  return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), pretty ? 2 : undefined);
}
