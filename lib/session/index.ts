/** The session core shared by every store: the client of the session server, the serializer, the article's handler. */
export { SessionClient, DEFAULT_SERVER } from './client';
export type { SessionClientOptions, SessionRecord } from './client';
export { typedSerializer } from './serializer';
export type { SessionSerializer } from './serializer';
export { ErlangSessionHandler, DEFAULT_LIFETIME } from './handler';
export type { ErlangSessionHandlerOptions } from './handler';
