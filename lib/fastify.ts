/**
 * `erl-peb/fastify`: a session store for `@fastify/session` that keeps the sessions in an erl-peb
 * session server (an Erlang node), over a SessionClient.
 *
 * ```ts
 * import { ErlangFastifyStore } from 'erl-peb/fastify';
 * const store = new ErlangFastifyStore({ connect: { node: 'erl_peb@127.0.0.1' } });
 * app.register(fastifyCookie);
 * app.register(fastifySession, { secret, store, cookie: { maxAge: 3_600_000 } });
 * app.addHook('onClose', () => store.close());
 * ```
 *
 * - The id in Erlang is `prefix + sessionId` (prefix default `sess:`, as express stores use: a
 *   Fastify session has the same shape as an express-session one).
 * - The TTL is the session cookie's: from its `expires` when it has one, else `ttl` (seconds,
 *   default one day, or a function of the session). A TTL of zero or less destroys the session.
 * - The session is stored as plain data (its own fields and its cookie's settings), through the
 *   client's serializer: by default a map with binary keys that Erlang code can read, keeping
 *   `Date`, `Map`, `Set`, `bigint` and `Buffer` values.
 * - Errors of the session server (it is down, a call timed out) reach @fastify/session through
 *   the callback: the request fails with that error rather than hanging.
 */
import { EventEmitter } from 'node:events';
import { ConfigError } from './errors';
import { SessionClient, type SessionClientOptions } from './session/client';

export type Callback = (err?: unknown) => void;

/** What @fastify/session hands to `set`: its Session object (own fields plus a `cookie`). */
export interface FastifySessionLike {
  cookie?: { expires?: Date | string | null; toJSON?: () => Record<string, unknown> } | Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface ErlangFastifyStoreOptions extends Omit<SessionClientOptions, 'prefix'> {
  /** A SessionClient to use (the store does not close it); else one is made from the other options. */
  client?: SessionClient;
  /** Prepended to every session id in Erlang (default `'sess:'`). */
  prefix?: string;
  /** TTL in seconds when the cookie has no expiry (default 86,400), or a function of the session. */
  ttl?: number | ((session: FastifySessionLike) => number);
}

const DEFAULT_TTL_S = 86_400;

export class ErlangFastifyStore extends EventEmitter {
  readonly client: SessionClient;
  readonly prefix: string;
  private readonly ttl: number | ((session: FastifySessionLike) => number);
  private readonly ownsClient: boolean;

  constructor(options: ErlangFastifyStoreOptions = {}) {
    super();
    const { client, prefix, ttl, ...clientOptions } = options;
    if (prefix !== undefined && typeof prefix !== 'string') throw new ConfigError('prefix must be a string');
    if (ttl !== undefined && typeof ttl !== 'function' && !(typeof ttl === 'number' && Number.isFinite(ttl))) {
      throw new ConfigError(`ttl must be a number of seconds or a function of the session, got ${String(ttl)}`);
    }
    this.prefix = prefix ?? 'sess:';
    this.ttl = ttl ?? DEFAULT_TTL_S;
    this.ownsClient = client === undefined;
    this.client = client ?? new SessionClient(clientOptions);
    // The client's connection events, for apps that watch the store (as express-session does).
    for (const event of ['connect', 'disconnect'] as const) this.client.on(event, (...args: unknown[]) => this.emit(event, ...args));
    // 'error' only when someone listens: an unhandled 'error' event would end the process.
    this.client.on('error', (err: unknown) => {
      if (this.listenerCount('error') > 0) this.emit('error', err);
    });
  }

  set(sessionId: string, session: FastifySessionLike, callback: Callback): void {
    let data: Record<string, unknown>;
    let ttlMs: number;
    try {
      data = plainSession(session);
      ttlMs = this.ttlMs(session);
    } catch (err) {
      callback(err);
      return;
    }
    const id = this.prefix + sessionId;
    const done = ttlMs > 0 ? this.client.set(id, data, ttlMs) : this.client.destroy(id);
    done.then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  get(sessionId: string, callback: (err: unknown, session?: Record<string, unknown> | null) => void): void {
    this.client.get(this.prefix + sessionId).then(
      (record) => callback(null, record === null ? null : (record.data as Record<string, unknown>)),
      (err: unknown) => callback(err),
    );
  }

  destroy(sessionId: string, callback: Callback): void {
    this.client.destroy(this.prefix + sessionId).then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  /** Closes the client if the store made it. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  /** The TTL in ms: up to the cookie's expiry when it has one, else the `ttl` option. */
  private ttlMs(session: FastifySessionLike): number {
    const expires = cookieExpires(session);
    if (expires !== undefined) return expires - Date.now();
    const s = typeof this.ttl === 'function' ? this.ttl(session) : this.ttl;
    if (typeof s !== 'number' || Number.isNaN(s)) throw new ConfigError(`the ttl function returned ${String(s)}, not a number of seconds`);
    return Math.round(s * 1000);
  }
}

function cookieExpires(session: FastifySessionLike): number | undefined {
  const cookie = session.cookie as { expires?: unknown } | null | undefined;
  const e = cookie?.expires;
  if (e === undefined || e === null) return undefined;
  const t = e instanceof Date ? e.getTime() : typeof e === 'string' || typeof e === 'number' ? new Date(e).getTime() : NaN;
  return Number.isNaN(t) ? undefined : t;
}

/**
 * The session as plain data: its own enumerable fields (@fastify/session keeps its id and store
 * under symbols) and the cookie's settings, without `undefined` values.
 */
function plainSession(session: FastifySessionLike): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(session)) {
    const v = session[key];
    if (key === 'cookie' || v === undefined || typeof v === 'function') continue;
    out[key] = v;
  }
  const cookie = session.cookie as { toJSON?: () => Record<string, unknown> } | null | undefined;
  if (cookie !== undefined && cookie !== null) {
    const fields = typeof cookie.toJSON === 'function' ? cookie.toJSON() : (cookie as Record<string, unknown>);
    const c: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) c[k] = v;
    out.cookie = c;
  }
  return out;
}
