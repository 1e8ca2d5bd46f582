/**
 * Settings for connections (and the session server CLI), resolved once:
 * explicit options > environment (ERL_PEB_*) > a config file > defaults.
 * The cookie, when none is given, is read from ~/.erlang.cookie as Erlang itself does. It is kept
 * out of every printable form of the settings (inspect, JSON, error messages).
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { lilconfigSync } from 'lilconfig';
import { ConfigError } from './errors';
import type { DecodeOptions } from './codec/options';

export const DEFAULT_NODE = 'erl_peb@127.0.0.1';
export const DEFAULT_CONNECT_TIMEOUT = 5_000;
export const DEFAULT_CALL_TIMEOUT = 5_000;
export const DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024;

export interface ReconnectOptions {
  /** First delay before a reconnection attempt, ms (default 100). */
  initialDelay?: number;
  /** Longest delay between attempts, ms (default 5,000). */
  maxDelay?: number;
  /** Give up after this many failed attempts in a row (default: never). */
  maxAttempts?: number;
}

export interface ConnectOptions {
  /** The Erlang node, `'name@host'` (default `erl_peb@127.0.0.1`, the session server's default name). */
  node?: string;
  /** Nodes to try in order, failing over to the next when one is down (overrides `node`). */
  nodes?: string[];
  /** The distribution cookie (default: ERL_PEB_COOKIE, the config file's `cookieFile`, ~/.erlang.cookie). */
  cookie?: string;
  /** Connect timeout, ms (default 5,000). */
  timeout?: number;
  /** Default timeout of rpc/call, ms (default 5,000). */
  callTimeout?: number;
  /** Reconnect after the connection is lost: `true` for the default backoff, or its settings. */
  reconnect?: boolean | ReconnectOptions;
  /** Largest message accepted from Erlang, bytes; a larger one is refused before it is read (default 64 MiB). */
  maxMessageSize?: number;
  /** How replies and messages decode (see DecodeOptions). */
  decode?: DecodeOptions;
  /** A config file to read instead of searching for one, or `false` to read none. */
  config?: string | false;
}

export interface ResolvedReconnect {
  readonly initialDelay: number;
  readonly maxDelay: number;
  readonly maxAttempts: number;
}

export interface ResolvedConnectOptions {
  readonly nodes: readonly string[];
  readonly cookie: string;
  readonly timeout: number;
  readonly callTimeout: number;
  readonly reconnect: ResolvedReconnect | null;
  readonly maxMessageSize: number;
  readonly decode: DecodeOptions | undefined;
}

/** What a config file may hold (`erl-peb` key of package.json, .erl-pebrc(.json), erl-peb.config.(c)js). */
export interface ConfigFile extends Omit<ConnectOptions, 'cookie' | 'config'> {
  /** A file holding the cookie (a cookie itself does not belong in a config file). */
  cookieFile?: string;
  /** Settings of `erl-peb server`. */
  server?: Record<string, unknown>;
}

export interface Environment {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  home?: string;
}

const NODE_NAME = /^[A-Za-z0-9_-]+@[A-Za-z0-9_.-]+$/;

export function validateNodeName(name: unknown, where: string): string {
  if (typeof name !== 'string' || !NODE_NAME.test(name)) {
    throw new ConfigError(`${where} must be a node name like 'name@host', got ${inspect(name)}`);
  }
  return name;
}

function intIn(name: string, v: unknown, min: number, max: number): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got ${inspect(v)}`);
  }
  return n;
}

/** Loads the config file: `explicit` path, else ERL_PEB_CONFIG, else the usual search from `cwd`. */
export function loadConfigFile(explicit: string | false | undefined, e: Environment = {}): ConfigFile {
  if (explicit === false) return {};
  const env = e.env ?? process.env;
  const path = explicit ?? env.ERL_PEB_CONFIG;
  const explorer = lilconfigSync('erl-peb', {
    searchPlaces: ['package.json', '.erl-pebrc', '.erl-pebrc.json', 'erl-peb.config.js', 'erl-peb.config.cjs'],
    // JSON parsed on every load (lilconfig's default `require` caches a file for the process's life).
    loaders: { noExt: (_p: string, content: string) => JSON.parse(content), '.json': (_p: string, content: string) => JSON.parse(content) },
  });
  try {
    const found = path ? explorer.load(path) : explorer.search(e.cwd ?? process.cwd());
    const config = (found?.config ?? {}) as unknown;
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new ConfigError(`config file ${found?.filepath} must hold an object`);
    }
    if ('cookie' in config) {
      throw new ConfigError(`config file ${found?.filepath} holds a cookie; put it in a file of mode 0600 and name it with cookieFile`);
    }
    return config as ConfigFile;
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError(`cannot read config file${path ? ` ${path}` : ''}: ${(err as Error).message}`, { cause: err });
  }
}

function readCookie(file: string, why: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`no cookie given and ${why} ${file} cannot be read (${(err as NodeJS.ErrnoException).code})`, { cause: err });
  }
  const cookie = text.trim();
  if (cookie === '') throw new ConfigError(`the cookie file ${file} is empty`);
  return cookie;
}

function resolveReconnect(r: ConnectOptions['reconnect'] | string | undefined): ResolvedReconnect | null {
  if (r === undefined || r === false || r === 'false' || r === '0') return null;
  const o: ReconnectOptions = typeof r === 'object' ? r : {};
  const initialDelay = intIn('reconnect.initialDelay', o.initialDelay ?? 100, 1, 3_600_000);
  return {
    initialDelay,
    maxDelay: intIn('reconnect.maxDelay', o.maxDelay ?? 5_000, initialDelay, 3_600_000),
    maxAttempts: o.maxAttempts === undefined ? Infinity : intIn('reconnect.maxAttempts', o.maxAttempts, 1, 1e9),
  };
}

/** Resolves connection settings: explicit > environment > config file > defaults. */
export function resolveConnectOptions(options: ConnectOptions = {}, e: Environment = {}): ResolvedConnectOptions {
  if (typeof options !== 'object' || options === null) throw new ConfigError('connect options must be an object');
  const env = e.env ?? process.env;
  const file = loadConfigFile(options.config, e);

  const envNodes = env.ERL_PEB_NODES?.split(',').map((s) => s.trim()).filter(Boolean);
  let nodes: unknown[];
  if (options.nodes !== undefined) nodes = options.nodes;
  else if (options.node !== undefined) nodes = [options.node];
  else if (envNodes?.length) nodes = envNodes;
  else if (env.ERL_PEB_NODE) nodes = [env.ERL_PEB_NODE];
  else if (file.nodes !== undefined) nodes = file.nodes;
  else if (file.node !== undefined) nodes = [file.node];
  else nodes = [DEFAULT_NODE];
  if (!Array.isArray(nodes) || nodes.length === 0) throw new ConfigError('nodes must be a non-empty array of node names');
  const resolvedNodes = nodes.map((n, i) => validateNodeName(n, nodes.length > 1 ? `nodes[${i}]` : 'node'));

  let cookie: string;
  if (options.cookie !== undefined) cookie = options.cookie;
  else if (env.ERL_PEB_COOKIE) cookie = env.ERL_PEB_COOKIE;
  else if (file.cookieFile) cookie = readCookie(file.cookieFile, 'the config file\'s cookieFile');
  else cookie = readCookie(join(e.home ?? homedir(), '.erlang.cookie'), 'the default cookie file');
  if (typeof cookie !== 'string' || cookie === '' || cookie.length > 255 || /[\s\0]/.test(cookie)) {
    // Never echo the cookie: the message only describes what is wrong with it.
    throw new ConfigError('cookie must be a non-empty string of at most 255 characters without spaces');
  }

  const resolved: ResolvedConnectOptions = {
    nodes: Object.freeze(resolvedNodes),
    cookie,
    timeout: intIn('timeout', options.timeout ?? env.ERL_PEB_TIMEOUT ?? file.timeout ?? DEFAULT_CONNECT_TIMEOUT, 1, 2 ** 31 - 1),
    callTimeout: intIn('callTimeout', options.callTimeout ?? env.ERL_PEB_CALL_TIMEOUT ?? file.callTimeout ?? DEFAULT_CALL_TIMEOUT, 1, 2 ** 31 - 1),
    reconnect: resolveReconnect(options.reconnect ?? env.ERL_PEB_RECONNECT ?? file.reconnect),
    maxMessageSize: intIn('maxMessageSize', options.maxMessageSize ?? env.ERL_PEB_MAX_MESSAGE_SIZE ?? file.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE, 1024, 2 ** 32 - 1),
    decode: options.decode ?? file.decode,
  };
  return hideCookie(resolved);
}

/** Makes the cookie non-enumerable and masked in util.inspect, so logging the settings never shows it. */
function hideCookie<T extends { cookie: string }>(o: T): T {
  const cookie = o.cookie;
  Object.defineProperty(o, 'cookie', { value: cookie, enumerable: false });
  Object.defineProperty(o, inspect.custom, {
    value: function (this: T, _depth: number, opts: object) {
      return inspect({ ...this, cookie: '<hidden>' }, opts);
    },
    enumerable: false,
  });
  return Object.freeze(o);
}
