/**
 * `erl-peb/koa`: an external store for `koa-session` that keeps the sessions in an erl-peb
 * session server (an Erlang node), over a SessionClient.
 *
 * ```ts
 * import session from 'koa-session';
 * import { ErlangKoaStore } from 'erl-peb/koa';
 * const store = new ErlangKoaStore({ connect: { node: 'erl_peb@127.0.0.1' } });
 * app.keys = [secret];
 * app.use(session({ store, maxAge: 3_600_000 }, app));
 * ```
 *
 * - Options as ErlangStore's (erl-peb/express): `client` (a SessionClient, whose prefix and
 *   serializer then apply), or `connect`/`connection`/`nodes`/`server`/`serializer`/`callTimeout`
 *   for a client of the store's own; `prefix` (default `koa:sess:`); `ttl`.
 * - The TTL is the `maxAge` koa-session passes (its cookie's maxAge plus the 10 s it adds so the
 *   store outlives the cookie); for `maxAge: 'session'`, `ttl` seconds (default one day;
 *   Infinity: none). A TTL of zero or less destroys the session.
 * - Every save writes the whole session: koa-session keeps its own expiry (`_expire`) inside the
 *   data, so a rolling save must rewrite it, not only extend the TTL.
 * - The methods are bound to the store: they work when called detached from it.
 * - Errors of the session server (it is down, a call timed out) reject: koa answers the request
 *   with a 500 and emits the error on the app, rather than hanging.
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { ConfigError } from './errors';
import { SessionClient, type SessionClientOptions } from './session/client';
import { forwardClientEvents, storeClient } from './session/store-client';

export interface ErlangKoaStoreOptions extends SessionClientOptions {
  /** A client of the session server to use (its prefix and serializer apply; the store does not close it). */
  client?: SessionClient;
  /** Prepended to every session key in Erlang (default `'koa:sess:'`). */
  prefix?: string;
  /** The session server's nodes, tried in order and failed over (shorthand for `connect.nodes`). */
  nodes?: string[];
  /** Seconds a session of maxAge `'session'` lives (default 86,400; Infinity: no expiry). */
  ttl?: number;
}

const DEFAULT_PREFIX = 'koa:sess:';
const DEFAULT_TTL_S = 86_400;
const OPTION_KEYS = new Set(['client', 'connection', 'connect', 'server', 'prefix', 'serializer', 'callTimeout', 'nodes', 'ttl']);

export class ErlangKoaStore extends EventEmitter {
  readonly client: SessionClient;
  private readonly ttlS: number;
  private readonly ownsClient: boolean;

  constructor(options: ErlangKoaStoreOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('ErlangKoaStore options must be an object');
    for (const k of Object.keys(options)) if (!OPTION_KEYS.has(k)) throw new ConfigError(`unknown ErlangKoaStore option ${inspect(k)}`);
    const ttl = options.ttl ?? DEFAULT_TTL_S;
    if (!(typeof ttl === 'number' && ttl > 0)) throw new ConfigError(`ttl must be a number of seconds > 0 (or Infinity), got ${inspect(ttl)}`);
    this.ttlS = ttl;
    ({ client: this.client, owned: this.ownsClient } = storeClient(options, DEFAULT_PREFIX, options.serializer));
    forwardClientEvents(this.client, this);
  }

  /** The prefix of the session keys in the server. */
  get prefix(): string {
    return this.client.prefix;
  }

  /** The session data, or null (koa-session then starts a new session). */
  readonly get = async (key: string, _maxAge?: number | 'session', _options?: { rolling?: boolean }): Promise<Record<string, unknown> | null> => {
    const data = (await this.client.get(key))?.data;
    return typeof data === 'object' && data !== null ? (data as Record<string, unknown>) : null;
  };

  readonly set = async (
    key: string,
    session: Record<string, unknown>,
    maxAge?: number | 'session',
    _options?: { rolling?: boolean; changed?: boolean },
  ): Promise<void> => {
    const ttlMs = typeof maxAge === 'number' ? maxAge : this.ttlS * 1000;
    if (Number.isNaN(ttlMs)) throw new ConfigError(`maxAge must be a number of ms or 'session', got ${inspect(maxAge)}`);
    if (ttlMs <= 0) await this.client.destroy(key);
    else await this.client.set(key, session, ttlMs === Infinity ? null : ttlMs);
  };

  readonly destroy = async (key: string, _options?: unknown): Promise<void> => {
    await this.client.destroy(key);
  };

  /** Closes the client if the store made it. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}

