/**
 * A small, strict command-line parser: `--flag value`, `--flag=value`, boolean switches and short
 * aliases. Anything it does not know is a UsageError naming the offending argument, so a typo
 * never silently changes what a command does.
 */

/** A mistake in the command line: the CLI prints the message and the command's usage, exit 2. */
export class UsageError extends Error {
  override get name(): string {
    return 'UsageError';
  }
}

/** A command that could not do its work (not running, port in use, ...): printed, exit 1. */
export class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.exitCode = exitCode;
  }
  override get name(): string {
    return 'CliError';
  }
}

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** A one-letter alias, used as `-x`. */
  short?: string;
  /** May be given more than once (the values are collected in order). */
  multiple?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export interface Parsed {
  /** Flag values by long name: string, string[] (multiple) or true. */
  flags: Record<string, string | string[] | true>;
  positionals: string[];
}

/** Parses `argv` against `specs`. Stops treating arguments as flags after `--`. */
export function parseArgs(argv: readonly string[], specs: FlagSpecs): Parsed {
  const flags: Parsed['flags'] = Object.create(null);
  const positionals: string[] = [];
  const byShort = new Map<string, string>();
  for (const [name, spec] of Object.entries(specs)) if (spec.short) byShort.set(spec.short, name);

  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else if (arg.length === 2 && arg[0] === '-' && arg[1] !== '-') {
      const long = byShort.get(arg[1]!);
      if (long === undefined) throw new UsageError(`unknown option ${arg}`);
      name = long;
    } else if (arg.startsWith('-') && arg !== '-') {
      throw new UsageError(`unknown option ${arg}`);
    } else {
      positionals.push(arg);
      continue;
    }
    const spec = Object.prototype.hasOwnProperty.call(specs, name) ? specs[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown option --${name}`);

    let value: string | true;
    if (spec.type === 'boolean') {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value`);
      value = true;
    } else if (inline !== undefined) {
      value = inline;
    } else {
      const next = argv[i + 1];
      if (next === undefined || next.startsWith('--')) throw new UsageError(`--${name} needs a value`);
      value = next;
      i++;
    }
    if (spec.type === 'string' && value === '') throw new UsageError(`--${name} needs a non-empty value`);

    const prev = flags[name];
    if (spec.multiple) {
      flags[name] = [...((prev as string[] | undefined) ?? []), value as string];
    } else if (prev !== undefined) {
      throw new UsageError(`--${name} is given more than once`);
    } else {
      flags[name] = value;
    }
  }
  return { flags, positionals };
}

/** The single string value of a flag, if given. */
export function stringFlag(p: Parsed, name: string): string | undefined {
  const v = p.flags[name];
  return typeof v === 'string' ? v : undefined;
}

/** The values of a `multiple` flag (empty when not given). */
export function listFlag(p: Parsed, name: string): string[] {
  const v = p.flags[name];
  return Array.isArray(v) ? v : [];
}

export function boolFlag(p: Parsed, name: string): boolean {
  return p.flags[name] === true;
}
