/** How every store (express, Fastify, Koa) gets its SessionClient from its options and watches it. */
import type { EventEmitter } from 'node:events';
import { ConfigError } from '../errors';
import type { ConnectOptions } from '../config';
import { SessionClient, type SessionClientOptions } from './client';
import type { SessionSerializer } from './serializer';

export interface StoreClientOptions extends SessionClientOptions {
  /** A client of the session server to use (its prefix and serializer apply; the store does not close it). */
  client?: SessionClient;
  /** The session server's nodes, tried in order and failed over (shorthand for `connect.nodes`). */
  nodes?: string[];
}

/** Options that configure a client, refused next to `client`. */
export const CLIENT_KEYS = ['connection', 'connect', 'server', 'prefix', 'serializer', 'callTimeout', 'nodes'] as const;

/**
 * The client given in `options.client`, or a new one made from the other options (then `owned`:
 * the store closes it). A new client starts connecting at once; a failure there is tried again by
 * the first request.
 */
export function storeClient(
  o: Omit<StoreClientOptions, 'serializer'> & { serializer?: unknown },
  defaultPrefix: string,
  serializer: SessionSerializer | undefined,
): { client: SessionClient; owned: boolean } {
  if (o.client !== undefined) {
    if (!(o.client instanceof SessionClient)) throw new ConfigError('client must be a SessionClient');
    const both = CLIENT_KEYS.filter((k) => o[k] !== undefined);
    if (both.length > 0) throw new ConfigError(`give either client or ${both.join(', ')} (set them on the client), not both`);
    return { client: o.client, owned: false };
  }
  let connect: ConnectOptions | undefined = o.connect;
  if (o.nodes !== undefined) {
    if (o.connection !== undefined) throw new ConfigError('give either connection or nodes, not both');
    if (connect?.nodes !== undefined || connect?.node !== undefined) throw new ConfigError('give nodes either as an option or in connect, not both');
    connect = { ...connect, nodes: o.nodes };
  }
  const client = new SessionClient({
    connection: o.connection,
    connect,
    server: o.server,
    prefix: o.prefix ?? defaultPrefix,
    serializer,
    callTimeout: o.callTimeout,
  });
  client.connected().catch(() => undefined);
  return { client, owned: true };
}

/**
 * Re-emits the client's 'connect' and 'disconnect' on the store, as express-session (and apps that
 * watch a store) expect; 'error' only when the store has a listener, since an unhandled 'error'
 * event would end the process.
 */
export function forwardClientEvents(client: SessionClient, store: EventEmitter): void {
  client.on('connect', (...args: unknown[]) => store.emit('connect', ...args));
  client.on('disconnect', (...args: unknown[]) => store.emit('disconnect', ...args));
  client.on('error', (err: unknown) => {
    if (store.listenerCount('error') > 0) store.emit('error', err);
  });
}
