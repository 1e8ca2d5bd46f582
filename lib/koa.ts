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
 * - The id in Erlang is `prefix + key` (prefix default `koa:sess:`).
 * - The TTL is the `maxAge` koa-session passes (its cookie's maxAge plus the 10 s it adds so the
 *   store outlives the cookie); for `maxAge: 'session'` the `ttl` option (seconds, default one day).
 * - Every save writes the whole session: koa-session keeps its own expiry (`_expire`) inside the
 *   data, so a rolling save must rewrite it, not only extend the TTL.
 * - The methods are bound to the store: they work when koa-session (or anyone) calls them detached.
 */
import { EventEmitter } from 'node:events';
import { ConfigError } from './errors';
import { SessionClient, type SessionClientOptions } from './session/client';

export interface ErlangKoaStoreOptions extends Omit<SessionClientOptions, 'prefix'> {
  /** A SessionClient to use (the store does not close it); else one is made from the other options. */
  client?: SessionClient;
  /** Prepended to every session key in Erlang (default `'koa:sess:'`). */
  prefix?: string;
  /** TTL in seconds of sessions whose maxAge is `'session'` (default 86,400). */
  ttl?: number;
}

const DEFAULT_TTL_S = 86_400;

export class ErlangKoaStore extends EventEmitter {
  readonly client: SessionClient;
  readonly prefix: string;
  private readonly ttlS: number;
  private readonly ownsClient: boolean;

  constructor(options: ErlangKoaStoreOptions = {}) {
    super();
    const { client, prefix, ttl, ...clientOptions } = options;
    if (prefix !== undefined && typeof prefix !== 'string') throw new ConfigError('prefix must be a string');
    if (ttl !== undefined && !(typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl))) {
      throw new ConfigError(`ttl must be a positive number of seconds, got ${String(ttl)}`);
    }
    this.prefix = prefix ?? 'koa:sess:';
    this.ttlS = ttl ?? DEFAULT_TTL_S;
    this.ownsClient = client === undefined;
    this.client = client ?? new SessionClient(clientOptions);
    for (const event of ['connect', 'disconnect'] as const) this.client.on(event, (...args: unknown[]) => this.emit(event, ...args));
    // 'error' only when someone listens: an unhandled 'error' event would end the process.
    this.client.on('error', (err: unknown) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  /** The session data, or null (koa-session then starts a new session). */
  readonly get = async (key: string, _maxAge?: number | 'session', _options?: { rolling?: boolean }): Promise<Record<string, unknown> | null> => {
    const record = await this.client.get(this.prefix + key);
    return record === null ? null : (record.data as Record<string, unknown>);
  };

  readonly set = async (
    key: string,
    session: Record<string, unknown>,
    maxAge?: number | 'session',
    _options?: { rolling?: boolean; changed?: boolean },
  ): Promise<void> => {
    const ttlMs = typeof maxAge === 'number' ? maxAge : this.ttlS * 1000;
    if (!Number.isFinite(ttlMs)) throw new ConfigError(`maxAge must be a number of ms or 'session', got ${String(maxAge)}`);
    if (ttlMs <= 0) {
      await this.client.destroy(this.prefix + key);
      return;
    }
    await this.client.set(this.prefix + key, session, Math.round(ttlMs));
  };

  readonly destroy = async (key: string, _options?: unknown): Promise<void> => {
    await this.client.destroy(this.prefix + key);
  };

  /** Closes the client if the store made it. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }
}
