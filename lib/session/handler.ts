/**
 * The original article's session save handler, for Node: PHP's six callbacks (`open`, `close`,
 * `read`, `write`, `destroy`, `gc`) over the session server, with the session data a string, for
 * apps that manage their own session cookies and serialize their sessions themselves.
 *
 * The data is stored as a plain binary, as the article's `session_handler` module stores it, so
 * this handler, PHP (through `session_handler` and mypeb) and Erlang code share the same sessions:
 * `session_handler:read(Id)` in Erlang reads what `write(id, data)` wrote here, and the other way
 * round. A session another store wrote in its own shape (a map) reads as ''.
 *
 * The connection is kept from one `open` to the next (as mypeb's persistent links are): `close`
 * ends a request's use of the handler, `shutdown` closes the connection the handler made.
 */
import { inspect } from 'node:util';
import { ConfigError } from '../errors';
import type { Term } from '../terms';
import { SessionClient, type SessionClientOptions } from './client';
import type { SessionSerializer } from './serializer';

export interface ErlangSessionHandlerOptions extends Omit<SessionClientOptions, 'serializer'> {
  /** Use this client (its prefix and serializer apply; the handler does not close it). */
  client?: SessionClient;
  /**
   * Seconds a written session lives when nothing writes it again, or null to keep it until
   * destroyed or collected by gc (default 1440, PHP's session.gc_maxlifetime).
   */
  lifetime?: number | null;
}

export const DEFAULT_LIFETIME = 1440;

/** Strings stored as binaries, as session_handler:write/2 stores them; anything else reads as ''. */
const stringSerializer: SessionSerializer = Object.freeze({
  serialize(data: unknown): Term {
    return typeof data === 'string' ? data : String(data);
  },
  deserialize(term: Term): unknown {
    if (typeof term === 'string') return term;
    if (Buffer.isBuffer(term)) return term.toString('utf8');
    return '';
  },
});

function text(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return '';
}

export class ErlangSessionHandler {
  readonly client: SessionClient;
  /** Seconds; null: no expiry. */
  readonly lifetime: number | null;
  private readonly owned: boolean;

  constructor(options: ErlangSessionHandlerOptions = {}) {
    if (typeof options !== 'object' || options === null) throw new ConfigError('session handler options must be an object');
    const { client, lifetime, ...clientOptions } = options;
    const l = lifetime === undefined ? DEFAULT_LIFETIME : lifetime;
    if (l !== null && (typeof l !== 'number' || !Number.isFinite(l) || l <= 0)) {
      throw new ConfigError(`lifetime must be a positive number of seconds, or null for no expiry, got ${inspect(l)}`);
    }
    this.lifetime = l;
    if (client !== undefined) {
      if (!(client instanceof SessionClient)) throw new ConfigError('client must be a SessionClient');
      if (Object.keys(clientOptions).some((k) => (clientOptions as Record<string, unknown>)[k] !== undefined)) {
        throw new ConfigError(`give either client or the client's options (${Object.keys(clientOptions).join(', ')}), not both`);
      }
      this.client = client;
      this.owned = false;
    } else {
      this.client = new SessionClient({ ...clientOptions, serializer: stringSerializer });
      this.owned = true;
    }
  }

  /** Connects (once; later opens reuse the connection). Resolves true, or rejects with a ConnectionError. */
  async open(_savePath: string, _name: string): Promise<boolean> {
    await this.client.connected();
    return true;
  }

  /** Ends a request's use of the handler; the connection stays open for the next `open`. */
  async close(): Promise<boolean> {
    return true;
  }

  /** The session's data, or '' when there is none (as PHP requires of a save handler). */
  async read(id: string): Promise<string> {
    const record = await this.client.get(id);
    return record === null ? '' : text(record.data);
  }

  /** Stores `data` for `lifetime` seconds from now. */
  async write(id: string, data: string): Promise<boolean> {
    if (typeof data !== 'string') throw new ConfigError(`write: data must be a string, got ${inspect(data)}`);
    await this.client.set(id, data, this.lifetime === null ? null : this.lifetime * 1000);
    return true;
  }

  async destroy(id: string): Promise<boolean> {
    await this.client.destroy(id);
    return true;
  }

  /**
   * Removes the sessions not written (or touched) for `maxLifetime` seconds and resolves with how
   * many it removed. As in PHP the collection covers the whole store, whatever the prefix.
   */
  async gc(maxLifetime: number): Promise<number> {
    if (typeof maxLifetime !== 'number' || !Number.isFinite(maxLifetime) || maxLifetime < 0) {
      throw new ConfigError(`gc: maxLifetime must be a number of seconds >= 0, got ${inspect(maxLifetime)}`);
    }
    return this.client.gc(Math.floor(maxLifetime * 1000));
  }

  /** Closes the connection, if the handler made it. */
  async shutdown(): Promise<void> {
    if (this.owned) await this.client.close();
  }
}
