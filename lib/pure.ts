/**
 * `erl-peb/pure`: the term classes, the errors and the pure-TypeScript codec. It never loads the
 * native addon, so it runs wherever Node runs (no compiler, no Erlang installation needed); the
 * results are the same as the native codec's.
 */
export * from './terms';
export * from './errors';
export type { DecodeOptions, EncodeOptions } from './codec/options';
export { termToBinary } from './codec/encode';
export { binaryToTerm } from './codec/decode';
