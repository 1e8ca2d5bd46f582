/**
 * A client of the session server (erlang/README.md, "The protocol"): gen_server calls to its
 * registered name over one connection, any number in flight. Every store (express-session,
 * Fastify, Koa) and the session handler are built on it.
 *
 * - Ids are strings, sent as UTF-8 binaries with `prefix` in front; ids read back have it removed.
 * - Data goes through the serializer (default: typedSerializer, a map with binary keys).
 * - TTLs are milliseconds, or null for a session that never expires.
 * - Errors are erl-peb's: ConnectionError (not connected, or the connection was lost during the
 *   call), TimeoutError, ClosedError (after close()), RemoteError (the server answered
 *   `{error, Reason}`, or is not running: reason `noproc`), ConfigError (bad options or arguments).
 * - When the client connects by itself it does so lazily, at the first call, and with `reconnect`
 *   on unless the settings say otherwise: a session store must come back when its node does. A
 *   failed first connect is tried again by the next call. Its replies decode binaries as strings
 *   and maps as objects unless the settings give `decode` (the serializer reads either form).
 */
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { loadConfigFile, resolveConnectOptions, type ConnectOptions, type ResolvedConnectOptions } from '../config';
import type { DecodeOptions } from '../codec/options';
import { Connection, type CallOptions } from '../connection';
import { ClosedError, ConfigError, RemoteError } from '../errors';
import { Atom, atom, Pid, Tuple, type Term } from '../terms';
import { typedSerializer, type SessionSerializer } from './serializer';

export interface SessionClientOptions {
  /** Use this connection (the client does not close it). */
  connection?: Connection;
  /** Else: connect (lazily, once) with these — nodes, cookie, reconnect... */
  connect?: ConnectOptions;
  /** Registered name of the session server, default 'erl_peb_sessions'. */
  server?: string;
  /** Prepended to every id, default ''. */
  prefix?: string;
  /** Default typedSerializer. */
  serializer?: SessionSerializer;
  /** ms per call, default the connection's. */
  callTimeout?: number;
}

export interface SessionRecord {
  data: unknown;
  /** ms since epoch; null = never. */
  expiresAt: number | null;
  version: number;
}

export const DEFAULT_SERVER = 'erl_peb_sessions';
/** Ids or sessions asked for per page when walking the table. */
const PAGE = 1000;
/** Destroys in flight at once when clearing one prefix. */
const CLEAR_BATCH = 256;
const MAX_TIMER = 2 ** 31 - 1;
const SESSION_DECODE: DecodeOptions = Object.freeze({ binaries: 'string', maps: 'object' });

const A_GET = atom('get');
const A_SET = atom('set');
const A_TOUCH = atom('touch');
const A_DESTROY = atom('destroy');
const A_IDS = atom('ids');
const A_ALL = atom('all');
const A_COUNT = atom('count');
const A_CLEAR = atom('clear');
const A_LOCK = atom('lock');
const A_UNLOCK = atom('unlock');
const A_STATUS = atom('status');
const A_GC = atom('gc');
const A_SWEEP = atom('sweep');
const A_OK = atom('ok');
const A_ERROR = atom('error');
const A_NOT_FOUND = atom('not_found');
const A_CONFLICT = atom('conflict');
const A_INFINITY = atom('infinity');
const A_FIRST = atom('first');
const A_DONE = atom('done');
const A_TIMEOUT = atom('timeout');
const A_NOT_HELD = atom('not_held');

const COUNT = A_COUNT as Term;
const CLEAR = A_CLEAR as Term;
const STATUS = A_STATUS as Term;
const SWEEP = A_SWEEP as Term;

/** A binary from a reply: a Buffer, or a string with the connection's `binaries: 'string'` option. */
function binaryText(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

function binaryBytes(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return undefined;
}

function isTuple(v: unknown, tag: Atom, size: number): v is Tuple {
  return v instanceof Tuple && v.elements.length === size && v.elements[0] === tag;
}


/** A Record of an Erlang reply made of atoms, maps and binaries (the status map), for display. */
function plain(v: unknown): unknown {
  if (v instanceof Atom) return v.name;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(plain);
  if (v instanceof Map) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of v) out[String(plain(k))] = plain(val);
    return out;
  }
  if (v instanceof Tuple) return new Tuple(v.elements.map(plain) as Term[]);
  if (typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, val] of Object.entries(v)) out[k] = plain(val);
    return out;
  }
  return v;
}

function checkTtl(ttlMs: unknown, what: string): Term {
  if (ttlMs === null) return A_INFINITY;
  if (typeof ttlMs !== 'number' || !(ttlMs > 0) || ttlMs > Number.MAX_SAFE_INTEGER) {
    throw new ConfigError(`${what}: ttlMs must be a positive number of milliseconds or null (no expiry), got ${inspect(ttlMs)}`);
  }
  return Math.ceil(ttlMs);
}

function checkMs(name: string, v: unknown, min: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_TIMER) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${MAX_TIMER} ms, got ${inspect(v)}`);
  }
  return v;
}

function checkId(id: unknown, what: string): string {
  if (typeof id !== 'string') throw new ConfigError(`${what}: a session id must be a string, got ${inspect(id)}`);
  return id;
}

export class SessionClient extends EventEmitter {
  readonly server: string;
  readonly prefix: string;
  readonly serializer: SessionSerializer;
  private readonly callOptions: CallOptions | undefined;
  private readonly callTimeout: number | undefined;
  private readonly connectOptions: ResolvedConnectOptions | undefined;
  private readonly owned: boolean;
  private connection: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private closed = false;
  private readonly prefixBytes: number;

  /** Bumped by every connect and disconnect: a wait for the server that is no longer current stops. */
  private epoch = 0;
  private readonly onConnect = (node: string): void => {
    void this.announceWhenServing(node, ++this.epoch);
  };
  private readonly onDisconnect = (error: Error): void => {
    this.epoch++;
    this.emit('disconnect', error);
  };
  private readonly onError = (error: Error): void => {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  };

  constructor(options: SessionClientOptions = {}) {
    super();
    if (typeof options !== 'object' || options === null) throw new ConfigError('session client options must be an object');
    const server = options.server ?? DEFAULT_SERVER;
    if (typeof server !== 'string' || server === '' || [...server].length > 255) {
      throw new ConfigError(`server must be the registered name of the session server (at most 255 characters), got ${inspect(server)}`);
    }
    const prefix = options.prefix ?? '';
    if (typeof prefix !== 'string') throw new ConfigError(`prefix must be a string, got ${inspect(prefix)}`);
    const serializer = options.serializer ?? typedSerializer;
    if (typeof serializer?.serialize !== 'function' || typeof serializer?.deserialize !== 'function') {
      throw new ConfigError('serializer must have serialize(data) and deserialize(term) methods');
    }
    if (options.callTimeout !== undefined) checkMs('callTimeout', options.callTimeout, 1);
    if (options.connection !== undefined && options.connect !== undefined) {
      throw new ConfigError('give either connection or connect, not both');
    }
    if (options.connect !== undefined && (typeof options.connect !== 'object' || options.connect === null)) {
      throw new ConfigError('connect must be an object of connect options');
    }
    this.server = server;
    this.prefix = prefix;
    this.prefixBytes = Buffer.byteLength(prefix);
    this.serializer = serializer;
    this.callTimeout = options.callTimeout;
    this.callOptions = options.callTimeout === undefined ? undefined : { timeout: options.callTimeout };
    if (options.connection !== undefined) {
      const c = options.connection;
      if (typeof c !== 'object' || c === null || typeof c.call !== 'function') {
        throw new ConfigError('connection must be a Connection (from connect())');
      }
      this.owned = false;
      this.adopt(c);
    } else {
      this.owned = true;
      this.connectOptions = SessionClient.resolveConnect(options.connect ?? {});
    }
  }

  /** The connection, once there is one. */
  get conn(): Connection | undefined {
    return this.connection;
  }

  /** The connection, connecting first if this client makes its own. */
  connected(): Promise<Connection> {
    if (this.connection !== undefined) return Promise.resolve(this.connection);
    if (this.closed) return Promise.reject(new ClosedError('the session client is closed'));
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  /**
   * Settled once, here, so that a bad option is a ConfigError now rather than at the first request.
   * Unless the settings say otherwise: reconnect, and decode binaries as strings and maps as
   * objects (what sessions are made of; cheaper than Buffers and Maps turned into them after).
   */
  private static resolveConnect(o: ConnectOptions): ResolvedConnectOptions {
    const env = process.env;
    const wantReconnect = o.reconnect === undefined && env.ERL_PEB_RECONNECT === undefined;
    const file = wantReconnect || o.decode === undefined ? loadConfigFile(o.config) : {};
    return resolveConnectOptions({
      ...o,
      reconnect: o.reconnect ?? (wantReconnect ? (file.reconnect ?? true) : undefined),
      decode: o.decode ?? file.decode ?? SESSION_DECODE,
    });
  }

  private async open(): Promise<Connection> {
    // What connect() does, from the settings resolved in the constructor.
    const c = new Connection(this.connectOptions!);
    await c.start();
    if (this.closed) {
      c.close();
      throw new ClosedError('the session client is closed');
    }
    this.adopt(c);
    return c;
  }

  /**
   * 'connect' means the store can serve again: a node that comes back may take a moment to start
   * its session server, and requests in that moment would fail (noproc) where, before the event,
   * they are served without a session. So the event waits until the server's name is registered on
   * the node, asking again with backoff; a disconnect or close in the meantime ends the wait.
   */
  private async announceWhenServing(node: string, epoch: number): Promise<void> {
    const c = this.connection;
    let delay = 10;
    while (!this.closed && c !== undefined && epoch === this.epoch) {
      try {
        const pid = await c.rpc('erlang', 'whereis', [atom(this.server)], this.callOptions);
        if (epoch !== this.epoch || this.closed) return;
        if (pid instanceof Pid) {
          this.emit('connect', node);
          return;
        }
      } catch {
        // Lost again (a disconnect follows, and a connect after it) or slow: asked again below.
      }
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      delay = Math.min(delay * 2, 1000);
    }
  }

  private adopt(c: Connection): void {
    this.connection = c;
    c.on('connect', this.onConnect);
    c.on('disconnect', this.onDisconnect);
    c.on('error', this.onError);
  }

  /** One call to the server; the reply as it came. */
  call(request: Term, options?: CallOptions): Promise<Term> {
    // Not async: an async function's promise would add turns of the microtask queue to every call.
    const c = this.connection;
    if (c !== undefined) return c.call(this.server, request, options ?? this.callOptions);
    return this.connected().then((conn) => conn.call(this.server, request, options ?? this.callOptions));
  }

  private fail(what: string, reply: unknown): never {
    if (reply instanceof Tuple && reply.elements.length === 2 && reply.elements[0] === A_ERROR) {
      const reason = reply.elements[1];
      const text = reason instanceof Atom ? reason.name : inspect(plain(reason), { depth: 4, breakLength: Infinity });
      throw new RemoteError(`${what} failed: the session server answered {error, ${text}}`, reason);
    }
    throw new RemoteError(`${what}: unexpected reply from the session server: ${inspect(plain(reply), { depth: 4, breakLength: Infinity })}`, reply);
  }

  private key(id: string): string {
    return this.prefix === '' ? id : this.prefix + id;
  }

  /** An id from the server without the prefix, or undefined if it is not one of this prefix. */
  private strip(v: unknown): string | undefined {
    const s = binaryText(v);
    if (s === undefined || this.prefix === '') return s;
    return s.startsWith(this.prefix) ? s.slice(this.prefix.length) : undefined;
  }

  async get(id: string): Promise<SessionRecord | null> {
    const reply = await this.call(new Tuple([A_GET, this.key(checkId(id, 'get'))]));
    if (reply === A_NOT_FOUND) return null;
    if (isTuple(reply, A_OK, 4)) {
      const e = reply.elements;
      const at = e[2];
      if (typeof e[3] === 'number' && (typeof at === 'number' || at === A_INFINITY)) {
        return { data: this.serializer.deserialize(e[1]!), expiresAt: typeof at === 'number' ? at : null, version: e[3] };
      }
    }
    this.fail('get', reply);
  }

  async set(id: string, data: unknown, ttlMs: number | null): Promise<number> {
    const request = new Tuple([A_SET, this.key(checkId(id, 'set')), this.serializer.serialize(data), checkTtl(ttlMs, 'set')]);
    const reply = await this.call(request);
    if (isTuple(reply, A_OK, 2) && typeof reply.elements[1] === 'number') return reply.elements[1];
    this.fail('set', reply);
  }

  /** Writes only if the stored version is `expected` (0: only if there is no session). */
  async setIfVersion(
    id: string,
    data: unknown,
    ttlMs: number | null,
    expected: number,
  ): Promise<{ ok: true; version: number } | { ok: false; current: number }> {
    if (!Number.isSafeInteger(expected) || expected < 0) {
      throw new ConfigError(`setIfVersion: expected must be a version (an integer >= 0), got ${inspect(expected)}`);
    }
    const request = new Tuple([A_SET, this.key(checkId(id, 'setIfVersion')), this.serializer.serialize(data), checkTtl(ttlMs, 'setIfVersion'), expected]);
    const reply = await this.call(request);
    if (reply instanceof Tuple && reply.elements.length === 2 && typeof reply.elements[1] === 'number') {
      if (reply.elements[0] === A_OK) return { ok: true, version: reply.elements[1] };
      if (reply.elements[0] === A_CONFLICT) return { ok: false, current: reply.elements[1] };
    }
    this.fail('setIfVersion', reply);
  }

  /** Renews the expiry: the new expiresAt (ms; Infinity with a null ttl), or null if there is no session. */
  async touch(id: string, ttlMs: number | null): Promise<number | null> {
    const reply = await this.call(new Tuple([A_TOUCH, this.key(checkId(id, 'touch')), checkTtl(ttlMs, 'touch')]));
    if (reply === A_NOT_FOUND) return null;
    if (isTuple(reply, A_OK, 2)) {
      const at = reply.elements[1];
      if (at === A_INFINITY) return Infinity;
      if (typeof at === 'number') return at;
    }
    this.fail('touch', reply);
  }

  async destroy(id: string): Promise<void> {
    const reply = await this.call(new Tuple([A_DESTROY, this.key(checkId(id, 'destroy'))]));
    if (reply !== A_OK) this.fail('destroy', reply);
  }

  /**
   * Pages of `kind` over this client's ids, in id order. With a prefix the walk starts right
   * after the prefix itself (every id carrying it sorts after it) and stops at the first id
   * that does not carry it.
   */
  private async *pages(kind: Atom): AsyncGenerator<Term[]> {
    let cursor: Term = this.prefix === '' ? A_FIRST : this.prefix;
    for (;;) {
      const reply = await this.call(new Tuple([kind, cursor, PAGE]));
      if (!isTuple(reply, A_OK, 3) || !Array.isArray(reply.elements[1])) this.fail(kind.name, reply);
      const items = reply.elements[1] as Term[];
      const next = reply.elements[2];
      if (this.prefix !== '') {
        let i = 0;
        for (; i < items.length; i++) {
          const item = items[i];
          const id = kind === A_IDS ? item : (item as Tuple).elements?.[0];
          if (!this.hasPrefix(id)) break;
        }
        if (i < items.length) {
          if (i > 0) yield items.slice(0, i);
          return;
        }
      }
      if (items.length > 0) yield items;
      if (next === A_DONE) return;
      if (binaryBytes(next) === undefined) this.fail(kind.name, reply);
      cursor = next!;
    }
  }

  private hasPrefix(id: unknown): boolean {
    if (typeof id === 'string') return id.startsWith(this.prefix);
    if (Buffer.isBuffer(id)) return id.length >= this.prefixBytes && id.toString('utf8', 0, this.prefixBytes) === this.prefix;
    return false;
  }

  /** Every live session id (prefix removed), in id order; pages are fetched as the loop goes. */
  async *ids(): AsyncGenerator<string> {
    for await (const page of this.pages(A_IDS)) {
      for (const item of page) {
        const id = this.strip(item);
        if (id !== undefined) yield id;
      }
    }
  }

  /** Every live session, [id, data], in id order. */
  async *all(): AsyncGenerator<[id: string, data: unknown]> {
    for await (const page of this.pages(A_ALL)) {
      for (const item of page) {
        if (!(item instanceof Tuple) || item.elements.length !== 4) this.fail('all', item);
        const id = this.strip(item.elements[0]);
        if (id !== undefined) yield [id, this.serializer.deserialize(item.elements[1]!)];
      }
    }
  }

  /** How many live sessions (with a prefix: how many of its ids, by walking them). */
  async count(): Promise<number> {
    if (this.prefix !== '') {
      let n = 0;
      for await (const page of this.pages(A_IDS)) n += page.length;
      return n;
    }
    const reply = await this.call(COUNT);
    if (isTuple(reply, A_OK, 2) && typeof reply.elements[1] === 'number') return reply.elements[1];
    this.fail('count', reply);
  }

  /** Removes every session (with a prefix: only the ids that carry it). */
  async clear(): Promise<void> {
    if (this.prefix === '') {
      const reply = await this.call(CLEAR);
      if (reply !== A_OK) this.fail('clear', reply);
      return;
    }
    for await (const page of this.pages(A_IDS)) {
      for (let i = 0; i < page.length; i += CLEAR_BATCH) {
        const replies = await Promise.all(page.slice(i, i + CLEAR_BATCH).map((id) => this.call(new Tuple([A_DESTROY, id]))));
        for (const r of replies) if (r !== A_OK) this.fail('clear', r);
      }
    }
  }

  /**
   * Takes the server's lock lease on `id` for `leaseMs`, waiting up to `waitMs` for it: a token
   * for unlock(), or null if the wait ran out. The lease also ends when this client's connection
   * drops. The call's timeout is `waitMs` more than the usual one.
   */
  async lock(id: string, leaseMs: number, waitMs: number): Promise<string | null> {
    checkMs('leaseMs', leaseMs, 1);
    checkMs('waitMs', waitMs, 0);
    const c = this.connection ?? (await this.connected());
    const timeout = Math.min(MAX_TIMER, waitMs + (this.callTimeout ?? c.options.callTimeout));
    const reply = await this.call(new Tuple([A_LOCK, this.key(checkId(id, 'lock')), leaseMs, waitMs]), { timeout });
    if (reply === A_TIMEOUT) return null;
    if (isTuple(reply, A_OK, 2)) {
      const token = binaryBytes(reply.elements[1]);
      if (token !== undefined) return token.toString('hex');
    }
    this.fail('lock', reply);
  }

  /** Ends the lease `token`: true, or false if it was not held (it ran out, and someone else may have the lock). */
  async unlock(id: string, token: string): Promise<boolean> {
    if (typeof token !== 'string' || !/^(?:[0-9a-f]{2})+$/.test(token)) {
      throw new ConfigError(`unlock: token must be a token returned by lock(), got ${inspect(token)}`);
    }
    const reply = await this.call(new Tuple([A_UNLOCK, this.key(checkId(id, 'unlock')), Buffer.from(token, 'hex')]));
    if (reply === A_OK) return true;
    if (reply === A_NOT_HELD) return false;
    this.fail('unlock', reply);
  }

  /**
   * Removes the sessions not written or touched for `maxAgeMs` (all of them, whatever the
   * prefix: the server does not filter by id); resolves with how many it removed.
   */
  async gc(maxAgeMs: number): Promise<number> {
    if (typeof maxAgeMs !== 'number' || !Number.isSafeInteger(maxAgeMs) || maxAgeMs < 0) {
      throw new ConfigError(`gc: maxAgeMs must be an integer >= 0, got ${inspect(maxAgeMs)}`);
    }
    const reply = await this.call(new Tuple([A_GC, maxAgeMs]));
    if (isTuple(reply, A_OK, 2) && typeof reply.elements[1] === 'number') return reply.elements[1];
    this.fail('gc', reply);
  }

  /** An expiry pass now; resolves with how many expired sessions it removed. */
  async sweep(): Promise<number> {
    const reply = await this.call(SWEEP);
    if (isTuple(reply, A_OK, 2) && typeof reply.elements[1] === 'number') return reply.elements[1];
    this.fail('sweep', reply);
  }

  /** The server's status map (erlang/README.md, "Status"), atoms and binaries as strings. */
  async status(): Promise<Record<string, unknown>> {
    const reply = await this.call(STATUS);
    if (isTuple(reply, A_OK, 2)) {
      const m = plain(reply.elements[1]);
      if (typeof m === 'object' && m !== null && !(m instanceof Tuple)) return m as Record<string, unknown>;
    }
    this.fail('status', reply);
  }

  /** Closes the connection if this client made it; later calls reject. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const c = this.connection ?? (await this.connecting?.catch(() => undefined));
    this.connection = undefined;
    if (c === undefined) return;
    c.off('connect', this.onConnect);
    c.off('disconnect', this.onDisconnect);
    c.off('error', this.onError);
    if (this.owned) c.close();
  }
}
