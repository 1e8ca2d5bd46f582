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
 * - Options as ErlangStore's (erl-peb/express): `client` (a SessionClient, whose prefix and
 *   serializer then apply), or `connect`/`connection`/`nodes`/`server`/`serializer`/`callTimeout`
 *   for a client of the store's own; `prefix` (default `sess:`: a Fastify session has the same
 *   shape as an express-session one); `ttl`.
 * - Expiry: `ttl` as a function of the session if given, else the cookie's expiry when it has
 *   one, else `ttl` seconds (default one day; Infinity: none). A TTL of zero or less destroys.
 * - The session is stored as plain data (its own fields and its cookie's settings), through the
 *   client's serializer: by default a map with binary keys that Erlang code can read, keeping
 *   `Date`, `Map`, `Set`, `bigint` and `Buffer` values.
 * - Errors of the session server (it is down, a call timed out) reach @fastify/session through
 *   the callback: the request fails with that error rather than hanging.
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { ConfigError } from './errors';
import { SessionClient, type SessionClientOptions } from './session/client';
import { forwardClientEvents, storeClient } from './session/store-client';

export type Callback = (err?: unknown) => void;

/** What @fastify/session hands to `set`: its Session object (own fields plus a `cookie`). */
export interface FastifySessionLike {
  cookie?: { expires?: Date | string | null; toJSON?: () => Record<string, unknown> } | Record<string, unknown> | null;
  [key: string]: unknown;
}

export interface ErlangFastifyStoreOptions extends SessionClientOptions {
  /** A client of the session server to use (its prefix and serializer apply; the store does not close it). */
  client?: SessionClient;
  /** Prepended to every session id in Erlang (default `'sess:'`). */
  prefix?: string;
  /** The session server's nodes, tried in order and failed over (shorthand for `connect.nodes`). */
  nodes?: string[];
  /**
   * Seconds a session lives, or a function of the session giving them (default 86,400; Infinity:
   * no expiry). A number applies to sessions whose cookie has no expiry; a function always.
   */
  ttl?: number | ((session: FastifySessionLike) => number);
}

const DEFAULT_PREFIX = 'sess:';
const DEFAULT_TTL_S = 86_400;
const OPTION_KEYS = new Set(['client', 'connection', 'connect', 'server', 'prefix', 'serializer', 'callTimeout', 'nodes', 'ttl']);

export class ErlangFastifyStore extends EventEmitter {
  readonly client: SessionClient;
  private readonly ttl: number | ((session: FastifySessionLike) => number);
  private readonly ownsClient: boolean;

  constructor(options: ErlangFastifyStoreOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('ErlangFastifyStore options must be an object');
    for (const k of Object.keys(options)) if (!OPTION_KEYS.has(k)) throw new ConfigError(`unknown ErlangFastifyStore option ${inspect(k)}`);
    const ttl = options.ttl ?? DEFAULT_TTL_S;
    if (typeof ttl !== 'function' && !(typeof ttl === 'number' && ttl > 0)) {
      throw new ConfigError(`ttl must be a number of seconds > 0 (or Infinity), or a function of the session, got ${inspect(ttl)}`);
    }
    this.ttl = ttl;
    ({ client: this.client, owned: this.ownsClient } = storeClient(options, DEFAULT_PREFIX, options.serializer));
    forwardClientEvents(this.client, this);
  }

  /** The prefix of the session ids in the server. */
  get prefix(): string {
    return this.client.prefix;
  }

  /** `session` is @fastify/session's Session (typed loosely: its declared type varies with the app's). */
  set(sessionId: string, session: object, callback: Callback): void {
    let data: Record<string, unknown>;
    let ttlMs: number;
    try {
      if (typeof session !== 'object' || session === null) throw new ConfigError(`a session must be an object, got ${inspect(session)}`);
      data = plainSession(session as FastifySessionLike);
      ttlMs = this.ttlMs(session as FastifySessionLike);
    } catch (err) {
      callback(err);
      return;
    }
    const done = ttlMs > 0 ? this.client.set(sessionId, data, ttlMs === Infinity ? null : ttlMs) : this.client.destroy(sessionId);
    done.then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  /** `S`: the app's session type (@fastify/session's Session); the data is what `set` stored. */
  get<S = Record<string, unknown>>(sessionId: string, callback: (err: unknown, session?: S | null) => void): void {
    this.client.get(sessionId).then(
      (record) => {
        const data = record?.data;
        callback(null, typeof data === 'object' && data !== null ? (data as S) : null);
      },
      (err: unknown) => callback(err),
    );
  }

  destroy(sessionId: string, callback: Callback): void {
    this.client.destroy(sessionId).then(
      () => callback(),
      (err: unknown) => callback(err),
    );
  }

  /** Closes the client if the store made it. */
  async close(): Promise<void> {
    if (this.ownsClient) await this.client.close();
  }

  /** ms the session lives from now (Infinity: no expiry; <= 0: it is over). */
  private ttlMs(session: FastifySessionLike): number {
    if (typeof this.ttl === 'function') {
      const s = this.ttl(session);
      if (typeof s !== 'number' || Number.isNaN(s)) throw new ConfigError(`the ttl function must return a number of seconds, got ${inspect(s)}`);
      return s * 1000;
    }
    const expires = cookieExpires(session);
    if (expires !== undefined) return expires - Date.now();
    return this.ttl * 1000;
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
