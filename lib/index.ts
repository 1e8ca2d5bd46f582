/**
 * erl-peb: talk to Erlang from Node.js through Erlang's own ei library.
 * This entry point uses the native addon; `erl-peb/pure` has the codec without it.
 */
export * from './terms';
export * from './errors';
export type { DecodeOptions, EncodeOptions } from './codec/options';
export { termToBinary, binaryToTerm } from './codec/native';
export { connect, Connection } from './connection';
export type { CallOptions, ReceiveOptions, Destination, ConnectionState } from './connection';
export { resolveConnectOptions, loadConfigFile } from './config';
export type { ConnectOptions, ReconnectOptions, ResolvedConnectOptions, ConfigFile } from './config';
export { peb } from './peb';
export type { PebLink } from './peb';
export { printTerm, compareTerms } from './peb/print';
export * from './session';
