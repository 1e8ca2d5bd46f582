/**
 * `erl-peb/express`: ErlangStore, a store for express-session that keeps the sessions in the
 * session server (erlang/README.md), a drop-in for connect-redis:
 *
 *   app.use(session({ store: new ErlangStore({ nodes: ['sessions@127.0.0.1'] }), secret, ... }))
 *
 * - Sessions keep their types (Date, Map, Set, bigint, Buffer; see lib/session/serializer.ts) and
 *   are, on the Erlang side, maps with binary keys. Note that express-session notices changes by
 *   hashing `JSON.stringify(req.session)`: a change inside a Map or Set alone is not seen as a
 *   change (assign the field again, or call `req.session.save()`), and a bigint in a session
 *   needs `BigInt.prototype.toJSON` for express-session's hash.
 * - Expiry: `ttl` as a function of the session if given, else the cookie's expiry when it has one,
 *   else `ttl` seconds (default 86400). A TTL of zero or less destroys the session.
 * - Availability: the store emits 'disconnect' when the connection to the node is lost and
 *   'connect' when it is back; meanwhile express-session hands requests on without a session
 *   (`req.session` undefined) instead of waiting, and calls in flight fail at once with a
 *   ConnectionError. With `nodes`, the connection reconnects to the next node that answers (the
 *   nodes of one Mnesia cluster share the sessions).
 * - Concurrency: without `lock`, concurrent requests for one session each save what they read
 *   plus their own change, and the last write wins, as with every other store. With `lock`, a
 *   request takes the session's lock lease on the server before it reads the session (waiting for
 *   it up to `wait` ms, then failing with a TimeoutError) and gives it back when it saves,
 *   touches or destroys the session, or when its response closes, whichever is first; at the
 *   latest the lease ends after `lease` ms, or when the store's connection drops. So concurrent
 *   requests for one session run one after the other and none loses another's update. The lock
 *   is released at the first save: changes made after an explicit `req.session.save()` are not
 *   protected (as PHP's session_write_close), and `req.session.reload()` within the request waits
 *   for the lock the request itself holds (up to `wait`): do not reload with `lock`.
 */
import { inspect } from 'node:util';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Store, type SessionData } from 'express-session';
import { ConfigError, TimeoutError } from './errors';
import { SessionClient, type SessionClientOptions } from './session/client';
import { forwardClientEvents, storeClient } from './session/store-client';
import type { SessionSerializer } from './session/serializer';
import type { Term } from './terms';

export { SessionClient } from './session/client';
export type { SessionClientOptions, SessionRecord } from './session/client';
export { typedSerializer } from './session/serializer';
export type { SessionSerializer } from './session/serializer';

/** A serializer in connect-redis's form: the session as a string (stored as a binary). */
export interface StringSerializer {
  parse(text: string): unknown;
  stringify(session: unknown): string;
}

export interface ErlangStoreLockOptions {
  /** ms a request may hold a session's lock at most (default 10,000). */
  lease?: number;
  /** ms a request waits for the lock before failing with a TimeoutError (default 15,000). */
  wait?: number;
}

export interface ErlangStoreOptions extends Omit<SessionClientOptions, 'serializer'> {
  /** A client of the session server to use (its prefix and serializer apply); else one is made from the options below. */
  client?: SessionClient;
  /** Prepended to every session id (default 'sess:'). */
  prefix?: string;
  /** The session server's nodes, tried in order and failed over (shorthand for `connect.nodes`). */
  nodes?: string[];
  /** Seconds a session lives, or a function of the session giving them (default 86400); Infinity: no expiry. */
  ttl?: number | ((session: SessionData) => number);
  /** Do not renew the expiry of sessions that are read but not changed. */
  disableTouch?: boolean;
  /** Seconds: skip a renewal that would move the expiry by less than this (default 0: renew on every request). */
  touchAfter?: number;
  /** How sessions are stored (default typedSerializer); connect-redis's `{ parse, stringify }` (e.g. JSON) also works. */
  serializer?: SessionSerializer | StringSerializer;
  /** One request at a time per session (see the file comment): true, or the lease's settings. */
  lock?: boolean | ErlangStoreLockOptions;
}

type Callback<T = unknown> = (err?: unknown, value?: T) => void;

export const DEFAULT_PREFIX = 'sess:';
export const DEFAULT_TTL = 86_400;
export const DEFAULT_LOCK_LEASE = 10_000;
export const DEFAULT_LOCK_WAIT = 15_000;
const MAX_TIMER = 2 ** 31 - 1;

const OPTION_KEYS = new Set([
  'client', 'connection', 'connect', 'server', 'prefix', 'serializer', 'callTimeout',
  'nodes', 'ttl', 'disableTouch', 'touchAfter', 'lock',
]);

/** What a session read by this store carries to its save or touch. */
interface Meta {
  /** The expiry the server had when the session was read (ms; Infinity: none). */
  expiresAt: number;
  held: Held | undefined;
}

interface Held {
  readonly sid: string;
  readonly token: string;
  released: boolean;
}

// On the data object get() hands to express-session, which passes it to createSession(). A
// symbol: express-session copies the session's enumerable string keys only, and hashes it with
// JSON.stringify, which skips symbols.
const META = Symbol('erl-peb.session');

function fromStringSerializer(s: StringSerializer): SessionSerializer {
  return {
    serialize: (data: unknown): Term => s.stringify(data),
    deserialize: (term: Term): unknown => {
      if (typeof term === 'string') return s.parse(term);
      if (Buffer.isBuffer(term)) return s.parse(term.toString('utf8'));
      return null; // not a session this serializer wrote
    },
  };
}

function resolveSerializer(s: unknown): SessionSerializer | undefined {
  if (s === undefined) return undefined;
  if (typeof s === 'object' && s !== null) {
    const o = s as Partial<SessionSerializer & StringSerializer>;
    if (typeof o.serialize === 'function' && typeof o.deserialize === 'function') return o as SessionSerializer;
    if (typeof o.parse === 'function' && typeof o.stringify === 'function') return fromStringSerializer(o as StringSerializer);
  }
  throw new ConfigError('serializer must have serialize(data) and deserialize(term), or parse(text) and stringify(session) (as JSON has)');
}

function seconds(name: string, v: unknown, zero: boolean, infinity: boolean): number {
  const ok = typeof v === 'number' && (zero ? v >= 0 : v > 0) && (infinity || Number.isFinite(v));
  if (!ok) {
    throw new ConfigError(`${name} must be a number of seconds ${zero ? '>= 0' : '> 0'}${infinity ? ' (or Infinity)' : ''}, got ${inspect(v)}`);
  }
  return v as number;
}

function ms(name: string, v: unknown, min: number, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_TIMER) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${MAX_TIMER} ms, got ${inspect(v)}`);
  }
  return v;
}

function done<T>(cb: Callback<T> | undefined, err: unknown, value?: T): T | undefined {
  if (cb !== undefined) {
    cb(err ?? null, value);
    return undefined;
  }
  if (err !== undefined && err !== null) throw err;
  return value;
}

export class ErlangStore extends Store {
  readonly client: SessionClient;
  readonly ttl: number | ((session: SessionData) => number);
  readonly disableTouch: boolean;
  /** ms */
  readonly touchAfter: number;
  /** The lock's settings in ms, or null without `lock`. */
  readonly lock: { readonly lease: number; readonly wait: number } | null;
  private readonly owned: boolean;
  /** What each session read for a request carries (keyed by the Session express-session made of it). */
  private readonly metas = new WeakMap<object, Meta>();
  /** The lock this store holds for each session id, for destroy(sid), which is given no session. */
  private readonly heldBySid = new Map<string, Held>();

  constructor(options: ErlangStoreOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('ErlangStore options must be an object');
    for (const k of Object.keys(options)) {
      if (!OPTION_KEYS.has(k)) throw new ConfigError(`unknown ErlangStore option ${inspect(k)}`);
    }
    const o = options;

    const ttl = o.ttl ?? DEFAULT_TTL;
    this.ttl = typeof ttl === 'function' ? ttl : seconds('ttl', ttl, false, true);
    const disableTouch = o.disableTouch ?? false;
    if (typeof disableTouch !== 'boolean') throw new ConfigError(`disableTouch must be a boolean, got ${inspect(disableTouch)}`);
    this.disableTouch = disableTouch;
    this.touchAfter = seconds('touchAfter', o.touchAfter ?? 0, true, false) * 1000;
    const lock = o.lock ?? false;
    if (lock === false) this.lock = null;
    else if (lock === true) this.lock = { lease: DEFAULT_LOCK_LEASE, wait: DEFAULT_LOCK_WAIT };
    else if (typeof lock === 'object' && lock !== null) {
      for (const k of Object.keys(lock)) if (k !== 'lease' && k !== 'wait') throw new ConfigError(`unknown lock option ${inspect(k)}`);
      this.lock = { lease: ms('lock.lease', lock.lease, 1, DEFAULT_LOCK_LEASE), wait: ms('lock.wait', lock.wait, 0, DEFAULT_LOCK_WAIT) };
    } else throw new ConfigError(`lock must be true, false or { lease, wait }, got ${inspect(lock)}`);

    ({ client: this.client, owned: this.owned } = storeClient(o, DEFAULT_PREFIX, resolveSerializer(o.serializer)));
    // express-session listens for these to hand requests on without a session while the node is away.
    forwardClientEvents(this.client, this);
  }

  /** The prefix of the session ids in the server. */
  get prefix(): string {
    return this.client.prefix;
  }

  /** ms the session lives from now (Infinity: no expiry; <= 0: it is over). */
  private ttlMs(sess: SessionData | undefined): number {
    if (typeof this.ttl === 'function') {
      const s = this.ttl(sess as SessionData);
      if (typeof s !== 'number' || Number.isNaN(s)) throw new ConfigError(`the ttl function must return a number of seconds, got ${inspect(s)}`);
      return s * 1000;
    }
    const expires = sess?.cookie?.expires as Date | string | null | undefined;
    if (expires) {
      const at = new Date(expires).getTime();
      if (!Number.isNaN(at)) return at - Date.now();
    }
    return this.ttl * 1000;
  }

  private metaOf(sess: unknown): Meta | undefined {
    if (typeof sess !== 'object' || sess === null) return undefined;
    return this.metas.get(sess) ?? (sess as { [META]?: Meta })[META];
  }

  private release(held: Held | undefined): void {
    if (held === undefined || held.released) return;
    held.released = true;
    if (this.heldBySid.get(held.sid) === held) this.heldBySid.delete(held.sid);
    // Not awaited: the write it follows has been answered, so it is applied before the lock
    // passes on. If the connection is gone, so is the lease.
    this.client.unlock(held.sid, held.token).catch(() => undefined);
  }

  async get(sid: string, callback?: Callback<SessionData | null>): Promise<SessionData | null | undefined> {
    let held: Held | undefined;
    let result: SessionData | null = null;
    let error: unknown;
    try {
      if (this.lock !== null) {
        const token = await this.client.lock(sid, this.lock.lease, this.lock.wait);
        if (token === null) throw new TimeoutError(`the session's lock was not granted within ${this.lock.wait} ms (lock.wait)`, this.lock.wait);
        held = { sid, token, released: false };
        this.heldBySid.set(sid, held);
      }
      const record = await this.client.get(sid);
      const data = record?.data;
      if (typeof data === 'object' && data !== null) {
        result = data as SessionData;
        if (held !== undefined || this.touchAfter > 0) {
          const meta: Meta = { expiresAt: record!.expiresAt ?? Infinity, held };
          Object.defineProperty(data, META, { value: meta, configurable: true, enumerable: false, writable: true });
        }
      }
    } catch (e) {
      error = e;
    }
    // No session (or no read): nothing to protect; express-session starts a session of a new id.
    if (result === null) this.release(held);
    return done(callback, error, error === undefined ? result : undefined);
  }

  /** express-session builds the request's Session from what get() gave: the lease and expiry go with it. */
  override createSession(req: Parameters<Store['createSession']>[0], sess: SessionData): ReturnType<Store['createSession']> {
    const meta = (sess as { [META]?: Meta })[META];
    if (meta !== undefined) delete (sess as { [META]?: Meta })[META];
    let session: ReturnType<Store['createSession']>;
    try {
      session = super.createSession(req, sess);
    } catch (e) {
      // Not a session express-session can use (no cookie?): the request fails, and lets go of the lock.
      this.release(meta?.held);
      throw e;
    }
    if (meta !== undefined) {
      this.metas.set(session, meta);
      // A request that ends without saving, touching or destroying its session (an aborted
      // request, `unset: 'keep'`) gives the lock back when its response closes.
      const res = (req as unknown as IncomingMessage & { res?: ServerResponse }).res;
      if (meta.held !== undefined && res !== undefined && typeof res.once === 'function') {
        const held = meta.held;
        res.once('close', () => this.release(held));
      }
    }
    return session;
  }

  async set(sid: string, sess: SessionData, callback?: Callback<void>): Promise<void> {
    const meta = this.metaOf(sess);
    let error: unknown;
    try {
      const ttl = this.ttlMs(sess);
      if (ttl <= 0) await this.client.destroy(sid);
      else {
        await this.client.set(sid, sess, ttl === Infinity ? null : ttl);
        if (meta !== undefined) meta.expiresAt = Date.now() + ttl;
      }
    } catch (e) {
      error = e;
    }
    this.release(meta?.held);
    done(callback, error);
  }

  override async touch(sid: string, sess: SessionData, callback?: Callback<void>): Promise<void> {
    const meta = this.metaOf(sess);
    let error: unknown;
    try {
      if (!this.disableTouch) {
        const ttl = this.ttlMs(sess);
        if (ttl <= 0) await this.client.destroy(sid);
        else if (!this.recentlyRenewed(meta, ttl)) {
          const at = await this.client.touch(sid, ttl === Infinity ? null : ttl);
          if (meta !== undefined && at !== null) meta.expiresAt = at;
        }
      }
    } catch (e) {
      error = e;
    }
    this.release(meta?.held);
    done(callback, error);
  }

  /** With touchAfter: whether renewing now would move the expiry by less than touchAfter. */
  private recentlyRenewed(meta: Meta | undefined, ttl: number): boolean {
    if (this.touchAfter === 0 || meta === undefined) return false;
    const next = Date.now() + ttl;
    if (meta.expiresAt === Infinity) return next === Infinity;
    return next - meta.expiresAt < this.touchAfter;
  }

  async destroy(sid: string, callback?: Callback<void>): Promise<void> {
    let error: unknown;
    try {
      await this.client.destroy(sid);
    } catch (e) {
      error = e;
    }
    this.release(this.heldBySid.get(sid));
    done(callback, error);
  }

  /** Every live session, each with its `id` (as connect-redis gives them). */
  override async all(callback?: Callback<SessionData[]>): Promise<SessionData[] | undefined> {
    let error: unknown;
    const sessions: SessionData[] = [];
    try {
      for await (const [id, data] of this.client.all()) {
        if (typeof data === 'object' && data !== null) sessions.push(Object.assign(data as SessionData, { id }));
      }
    } catch (e) {
      error = e;
    }
    return done(callback, error, error === undefined ? sessions : undefined);
  }

  /** Every live session id (without the prefix). */
  async ids(callback?: Callback<string[]>): Promise<string[] | undefined> {
    let error: unknown;
    const ids: string[] = [];
    try {
      for await (const id of this.client.ids()) ids.push(id);
    } catch (e) {
      error = e;
    }
    return done(callback, error, error === undefined ? ids : undefined);
  }

  /** How many live sessions there are (of this store's prefix). */
  override async length(callback?: Callback<number>): Promise<number | undefined> {
    let error: unknown;
    let n: number | undefined;
    try {
      n = await this.client.count();
    } catch (e) {
      error = e;
    }
    return done(callback, error, n);
  }

  /** Removes every session of this store's prefix. */
  override async clear(callback?: Callback<void>): Promise<void> {
    let error: unknown;
    try {
      await this.client.clear();
    } catch (e) {
      error = e;
    }
    done(callback, error);
  }

  /** Closes the connection, if the store made it. */
  async close(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}

