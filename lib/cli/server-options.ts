/**
 * What `erl-peb server ...` runs with, resolved once: flags > environment > the config file's
 * `server` section > defaults. Pure apart from reading files (the config, a cookie file); the
 * one write, a generated cookie, is `ensureCookie`.
 *
 * Where things live (the state folder: ERL_PEB_STATE_DIR, else ~/.erl-peb):
 *   <state>/<node>/                 the node's folder (mode 0700) and its working directory
 *   <state>/<node>/node.log         the node's output, appended at every start
 *   <state>/<node>/server.json      pid and settings of the running node (removed by `stop`)
 *   <state>/<node>/mnesia/          Mnesia's data (backend mnesia, unless --data-dir is given)
 */
import { closeSync, fchmodSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { homedir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import { DEFAULT_NODE, loadConfigFile, validateNodeName, type ConfigFile } from '../config';
import { ConfigError } from '../errors';
import { boolFlag, CliError, listFlag, stringFlag, UsageError, type Parsed } from './args';

export type Backend = 'ets' | 'mnesia';
export type Copies = 'ram_copies' | 'disc_copies';

export interface CliEnvironment {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface StartSettings {
  node: string;
  backend: Backend;
  /** Mnesia only. */
  copies: Copies | undefined;
  /** Mnesia only: an absolute path. */
  dataDir: string | undefined;
  join: string[];
  port: number | undefined;
  majority: boolean | undefined;
  defaultTtl: number | undefined;
  sweepInterval: number | 'infinity' | undefined;
  stateDir: string;
  nodeDir: string;
}

/** Keys the config file's `server` section may hold. */
const SERVER_KEYS = ['name', 'backend', 'copies', 'dataDir', 'join', 'port', 'majority', 'defaultTtl', 'sweepInterval'] as const;

/** The home folder: HOME when set (tests point it elsewhere), else the OS's idea of it. */
export function homeDir(env: NodeJS.ProcessEnv): string {
  return env.HOME && env.HOME !== '' ? env.HOME : homedir();
}

export function stateDir(env: NodeJS.ProcessEnv): string {
  const s = env.ERL_PEB_STATE_DIR;
  if (s !== undefined && s !== '') return resolve(s);
  return join(homeDir(env), '.erl-peb');
}

export function nodeDir(state: string, node: string): string {
  return join(state, node);
}

export function loadConfig(p: Parsed, e: CliEnvironment): ConfigFile {
  return loadConfigFile(stringFlag(p, 'config'), { env: e.env, cwd: e.cwd });
}

/** The config file's `server` section, checked for unknown keys (a typo stops the command). */
export function serverSection(config: ConfigFile): Record<string, unknown> {
  const s = config.server;
  if (s === undefined) return {};
  if (typeof s !== 'object' || s === null || Array.isArray(s)) throw new ConfigError('the config file\'s `server` must be an object');
  for (const k of Object.keys(s)) {
    if (!(SERVER_KEYS as readonly string[]).includes(k)) {
      throw new ConfigError(`the config file's server section has an unknown key '${k}' (known: ${SERVER_KEYS.join(', ')})`);
    }
  }
  return s;
}

/** The node name: --name > ERL_PEB_NODE > config `server.name` > config `node` > erl_peb@127.0.0.1. */
export function resolveNodeName(p: Parsed, e: CliEnvironment, config: ConfigFile): string {
  const flag = stringFlag(p, 'name');
  if (flag !== undefined) return checkName(flag, '--name', UsageError);
  if (e.env.ERL_PEB_NODE) return checkName(e.env.ERL_PEB_NODE, 'ERL_PEB_NODE', ConfigError);
  const server = serverSection(config);
  if (server.name !== undefined) return checkName(server.name, 'the config file\'s server.name', ConfigError);
  if (config.node !== undefined) return checkName(config.node, 'the config file\'s node', ConfigError);
  return DEFAULT_NODE;
}

function checkName(v: unknown, where: string, E: new (m: string) => Error): string {
  try {
    return validateNodeName(v, where);
  } catch (err) {
    throw new E((err as Error).message);
  }
}

function oneOf<T extends string>(v: unknown, allowed: readonly T[], where: string, E: new (m: string) => Error): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
    throw new E(`${where} must be ${allowed.join(' or ')}, got ${JSON.stringify(v)}`);
  }
  return v as T;
}

function intFrom(v: unknown, min: number, max: number, where: string, E: new (m: string) => Error): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new E(`${where} must be an integer from ${min} to ${max}, got ${JSON.stringify(v)}`);
  }
  return n;
}

/** Resolves `server start`'s settings (no file is written here). */
export function resolveStart(p: Parsed, e: CliEnvironment, config: ConfigFile = loadConfig(p, e)): StartSettings {
  const server = serverSection(config);
  const node = resolveNodeName(p, e, config);

  const backendFlag = stringFlag(p, 'backend');
  const backend: Backend =
    backendFlag !== undefined
      ? oneOf(backendFlag, ['ets', 'mnesia'] as const, '--backend', UsageError)
      : server.backend !== undefined
        ? oneOf(server.backend, ['ets', 'mnesia'] as const, 'the config file\'s server.backend', ConfigError)
        : 'ets';

  const copiesFlag = stringFlag(p, 'copies');
  let copies: Copies | undefined =
    copiesFlag !== undefined
      ? oneOf(copiesFlag, ['ram_copies', 'disc_copies'] as const, '--copies', UsageError)
      : server.copies !== undefined
        ? oneOf(server.copies, ['ram_copies', 'disc_copies'] as const, 'the config file\'s server.copies', ConfigError)
        : undefined;

  const dataDirFlag = stringFlag(p, 'data-dir');
  let dataDirRaw: string | undefined;
  if (dataDirFlag !== undefined) dataDirRaw = dataDirFlag;
  else if (server.dataDir !== undefined) {
    if (typeof server.dataDir !== 'string' || server.dataDir === '') throw new ConfigError('the config file\'s server.dataDir must be a non-empty string');
    dataDirRaw = server.dataDir;
  }

  const joinFlags = listFlag(p, 'join');
  let joinNodes: string[];
  if (joinFlags.length > 0) joinNodes = joinFlags.map((n) => checkName(n, '--join', UsageError));
  else if (server.join !== undefined) {
    const list = Array.isArray(server.join) ? server.join : [server.join];
    joinNodes = list.map((n) => checkName(n, 'the config file\'s server.join', ConfigError));
  } else joinNodes = [];
  if (joinNodes.includes(node)) throw new UsageError(`--join names the node being started (${node}); name a member of the cluster to join`);

  const portFlag = stringFlag(p, 'port');
  const port =
    portFlag !== undefined
      ? intFrom(portFlag, 1, 65535, '--port', UsageError)
      : server.port !== undefined
        ? intFrom(server.port, 1, 65535, 'the config file\'s server.port', ConfigError)
        : undefined;

  let majority: boolean | undefined;
  if (boolFlag(p, 'majority')) majority = true;
  else if (server.majority !== undefined) {
    if (typeof server.majority !== 'boolean') throw new ConfigError('the config file\'s server.majority must be true or false');
    majority = server.majority;
  }

  const defaultTtl =
    server.defaultTtl === undefined ? undefined : intFrom(server.defaultTtl, 1, Number.MAX_SAFE_INTEGER, 'the config file\'s server.defaultTtl', ConfigError);
  const sweepInterval =
    server.sweepInterval === undefined
      ? undefined
      : server.sweepInterval === 'infinity'
        ? ('infinity' as const)
        : intFrom(server.sweepInterval, 1, 4294967295, 'the config file\'s server.sweepInterval', ConfigError);

  // Options that only Mnesia has are refused with ETS rather than ignored.
  if (backend === 'ets') {
    const given = [
      copies !== undefined && '--copies',
      dataDirRaw !== undefined && '--data-dir',
      joinNodes.length > 0 && '--join',
      majority !== undefined && '--majority',
    ].filter(Boolean);
    if (given.length > 0) {
      const fromFlags = copiesFlag !== undefined || dataDirFlag !== undefined || joinFlags.length > 0 || boolFlag(p, 'majority');
      const msg = `${given.join(', ')} ${given.length > 1 ? 'apply' : 'applies'} to the mnesia backend only (add --backend mnesia)`;
      throw fromFlags ? new UsageError(msg) : new ConfigError(`the config file's server section: ${msg}`);
    }
  } else {
    copies ??= 'ram_copies';
  }

  const state = stateDir(e.env);
  const dir = nodeDir(state, node);
  let dataDir: string | undefined;
  if (backend === 'mnesia') {
    dataDir = dataDirRaw === undefined ? join(dir, 'mnesia') : isAbsolute(dataDirRaw) ? dataDirRaw : resolve(e.cwd, dataDirRaw);
  }
  return { node, backend, copies, dataDir, join: joinNodes, port, majority, defaultTtl, sweepInterval, stateDir: state, nodeDir: dir };
}

// ---------------------------------------------------------------------------------------------
// The cookie

export type CookieSource = 'cookie-file' | 'env' | 'config' | 'home' | 'generated';

export interface Cookie {
  readonly value: string;
  readonly source: CookieSource;
  /** The file it came from (or was written to); undefined for ERL_PEB_COOKIE. */
  readonly file: string | undefined;
  /**
   * True when the node must be handed the cookie (it is not in $HOME/.erlang.cookie, which
   * Erlang reads by itself).
   */
  readonly handOver: boolean;
}

/** Bytes of a generated cookie: 160 bits, 40 hex characters. */
const GENERATED_COOKIE_BYTES = 20;

function checkCookie(text: string, where: string): string {
  const cookie = text.trim();
  if (cookie === '') throw new ConfigError(`${where} is empty`);
  // Never echo the cookie: the message only says what is wrong with it.
  if (cookie.length > 255 || /[\s\0]/.test(cookie)) {
    throw new ConfigError(`${where} must hold one cookie of at most 255 characters without spaces`);
  }
  return cookie;
}

function readCookieFile(file: string, where: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${where} ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return checkCookie(text, `${where} ${file}`);
}

/**
 * The configured cookie: --cookie-file > ERL_PEB_COOKIE > config `cookieFile` > ~/.erlang.cookie.
 * Undefined when there is none (then `start` generates one).
 */
export function findCookie(p: Parsed, e: CliEnvironment, config: ConfigFile): Cookie | undefined {
  const flag = stringFlag(p, 'cookie-file');
  if (flag !== undefined) {
    const file = resolve(e.cwd, flag);
    return { value: readCookieFile(file, 'the cookie file'), source: 'cookie-file', file, handOver: true };
  }
  if (e.env.ERL_PEB_COOKIE) {
    return { value: checkCookie(e.env.ERL_PEB_COOKIE, 'ERL_PEB_COOKIE'), source: 'env', file: undefined, handOver: true };
  }
  if (config.cookieFile !== undefined) {
    if (typeof config.cookieFile !== 'string' || config.cookieFile === '') throw new ConfigError('the config file\'s cookieFile must be a file name');
    const file = resolve(e.cwd, config.cookieFile);
    return { value: readCookieFile(file, 'the config file\'s cookieFile'), source: 'config', file, handOver: true };
  }
  const home = join(homeDir(e.env), '.erlang.cookie');
  let mode: number;
  try {
    mode = statSync(home).mode;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`${home} cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  const value = readCookieFile(home, 'the cookie file');
  // Erlang refuses a cookie file others can read; say so before the node fails on it.
  if ((mode & 0o077) !== 0) {
    throw new CliError(`${home} must be readable by its owner only: chmod 600 ${home}`);
  }
  return { value, source: 'home', file: home, handOver: false };
}

/** The configured cookie, or a new one written to ~/.erlang.cookie (mode 0600), where clients look. */
export function ensureCookie(p: Parsed, e: CliEnvironment, config: ConfigFile): Cookie {
  const found = findCookie(p, e, config);
  if (found !== undefined) return found;
  const file = join(homeDir(e.env), '.erlang.cookie');
  const value = randomBytes(GENERATED_COOKIE_BYTES).toString('hex');
  let fd: number;
  try {
    // 'wx': never overwrite a cookie another process has just written.
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return findCookie(p, e, config)!;
    throw new CliError(`cannot write a new cookie to ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  try {
    fchmodSync(fd, 0o600); // the umask may have taken bits away; it never adds any
    writeSync(fd, value);
  } finally {
    closeSync(fd);
  }
  return { value, source: 'generated', file, handOver: false };
}

/** The cookie of a running server (no generation): for `status` and `stop`. */
export function requireCookie(p: Parsed, e: CliEnvironment, config: ConfigFile): Cookie {
  const found = findCookie(p, e, config);
  if (found === undefined) {
    throw new CliError(
      `no cookie: ${join(homeDir(e.env), '.erlang.cookie')} does not exist and none is configured; give the one the server was started with (--cookie-file, ERL_PEB_COOKIE or the config file's cookieFile)`,
    );
  }
  return found;
}

export function describeCookie(c: Cookie): string {
  switch (c.source) {
    case 'cookie-file':
    case 'config':
      return `the cookie in ${c.file}`;
    case 'env':
      return 'the cookie in ERL_PEB_COOKIE';
    case 'home':
      return `the cookie in ${c.file}`;
    case 'generated':
      return `a new cookie written to ${c.file} (mode 0600)`;
  }
}

// ---------------------------------------------------------------------------------------------
// The erl command line

/** An Erlang string literal: every character outside printable ASCII as a \x{...} escape. */
export function erlString(s: string): string {
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '"' || ch === '\\') out += `\\${ch}`;
    else if (c >= 0x20 && c < 0x7f) out += ch;
    else out += `\\x{${c.toString(16)}}`;
  }
  return `${out}"`;
}

/** An Erlang quoted atom (node names are checked by validateNodeName: no quotes in them). */
export function erlAtom(s: string): string {
  return `'${s.replace(/[\\']/g, (m) => `\\${m}`)}'`;
}

/** Long names (`-name`) when the host part has a dot, as Erlang itself decides. */
export function nameFlag(node: string): '-name' | '-sname' {
  return node.slice(node.indexOf('@') + 1).includes('.') ? '-name' : '-sname';
}

/**
 * How the session server's node runs (bench/session.ts starts its node with the same):
 * - `delay_send` on distribution sockets: replies the server makes in one go leave in one write
 *   rather than one write each (measured: about a third of the writes under 32 concurrent
 *   clients; the write per reply was the largest single cost of the node);
 * - schedulers that sleep when idle rather than spin (`+sbwt none` and the dirty ones): the server
 *   often shares its machine with the app, whose CPU a spinning scheduler would take.
 */
export const SERVER_VM_ARGS: readonly string[] = Object.freeze([
  '+sbwt', 'none', '+sbwtdcpu', 'none', '+sbwtdio', 'none',
  '-kernel', 'inet_dist_listen_options', '[{delay_send,true}]',
  '-kernel', 'inet_dist_connect_options', '[{delay_send,true}]',
]);

/** The arguments of `erl` for the node (the cookie is never among them: `ps` shows arguments). */
export function erlArgs(s: StartSettings, ebin: string): string[] {
  const args = [
    nameFlag(s.node), s.node,
    '-noinput',
    '-kernel', 'inet_dist_use_interface', '{127,0,0,1}',
    ...SERVER_VM_ARGS,
  ];
  if (s.port !== undefined) {
    args.push('-kernel', 'inet_dist_listen_min', String(s.port), '-kernel', 'inet_dist_listen_max', String(s.port));
  }
  args.push('-pa', ebin, '-erl_peb', 'backend', s.backend);
  if (s.backend === 'mnesia') {
    args.push('-erl_peb', 'copies', s.copies ?? 'ram_copies');
    if (s.dataDir !== undefined) args.push('-erl_peb', 'data_dir', erlString(s.dataDir));
    if (s.join.length > 0) args.push('-erl_peb', 'join', `[${s.join.map(erlAtom).join(',')}]`);
    if (s.majority !== undefined) args.push('-erl_peb', 'majority', String(s.majority));
  }
  if (s.defaultTtl !== undefined) args.push('-erl_peb', 'default_ttl', String(s.defaultTtl));
  if (s.sweepInterval !== undefined) args.push('-erl_peb', 'sweep_interval', String(s.sweepInterval));
  args.push('-s', 'erl_peb', 'boot');
  return args;
}
