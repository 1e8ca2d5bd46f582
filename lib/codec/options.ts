/**
 * Codec options, shared by the native and the pure-TS codec. They are validated and resolved here,
 * once, so both codecs receive the same complete settings (native code takes them as plain numbers).
 */
import { ConfigError } from '../errors';

export interface DecodeOptions {
  /** How binaries decode: `'buffer'` (default) or `'string'` (UTF-8 text; a binary that is not valid UTF-8 stays a Buffer). */
  binaries?: 'buffer' | 'string';
  /** How STRING_EXT (an Erlang list of bytes, `"abc"`) decodes: `'list'` (default, `number[]`) or `'string'` (one character per byte). */
  strings?: 'list' | 'string';
  /** How maps decode: `'map'` (default, `Map`) or `'object'` (a plain object when every key is an atom or binary, else still a `Map`). */
  maps?: 'map' | 'object';
  /** Deepest nesting accepted (default 1024). */
  maxDepth?: number;
  /** Largest size a compressed term may inflate to, in bytes (default 64 MiB). */
  maxUncompressedSize?: number;
}

export interface EncodeOptions {
  /** Compress the term (zlib, tag 80): `true` for level 6, or a level 0..9. Default: not compressed. */
  compressed?: boolean | number;
  /** Deepest nesting accepted; deeper (or cyclic) values are an EncodeError (default 1024). */
  maxDepth?: number;
}

export const DEFAULT_MAX_DEPTH = 1024;
export const DEFAULT_MAX_UNCOMPRESSED = 64 * 1024 * 1024;

/** Decode flags as bits, in the form the native decoder takes them. */
export enum DecodeFlag {
  BinariesAsStrings = 1,
  StringsAsStrings = 2,
  MapsAsObjects = 4,
}

export interface ResolvedDecodeOptions {
  readonly flags: number;
  readonly maxDepth: number;
  readonly maxUncompressedSize: number;
}

export interface ResolvedEncodeOptions {
  /** -1 when not compressed, else the zlib level. */
  readonly compressLevel: number;
  readonly maxDepth: number;
}

const DEFAULT_DECODE: ResolvedDecodeOptions = Object.freeze({
  flags: 0,
  maxDepth: DEFAULT_MAX_DEPTH,
  maxUncompressedSize: DEFAULT_MAX_UNCOMPRESSED,
});
const DEFAULT_ENCODE: ResolvedEncodeOptions = Object.freeze({ compressLevel: -1, maxDepth: DEFAULT_MAX_DEPTH });

function positiveInt(name: string, v: unknown, max: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
    throw new ConfigError(`${name} must be an integer from 1 to ${max}, got ${String(v)}`);
  }
  return v;
}

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[]): T | undefined {
  if (v === undefined) return undefined;
  if (!allowed.includes(v as T)) {
    throw new ConfigError(`${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${String(v)}`);
  }
  return v as T;
}

export function resolveDecodeOptions(o: DecodeOptions | undefined): ResolvedDecodeOptions {
  if (o === undefined) return DEFAULT_DECODE;
  if (typeof o !== 'object' || o === null) throw new ConfigError('decode options must be an object');
  let flags = 0;
  if (oneOf('binaries', o.binaries, ['buffer', 'string'] as const) === 'string') flags |= DecodeFlag.BinariesAsStrings;
  if (oneOf('strings', o.strings, ['list', 'string'] as const) === 'string') flags |= DecodeFlag.StringsAsStrings;
  if (oneOf('maps', o.maps, ['map', 'object'] as const) === 'object') flags |= DecodeFlag.MapsAsObjects;
  return {
    flags,
    maxDepth: o.maxDepth === undefined ? DEFAULT_MAX_DEPTH : positiveInt('maxDepth', o.maxDepth, 1_000_000),
    maxUncompressedSize:
      o.maxUncompressedSize === undefined
        ? DEFAULT_MAX_UNCOMPRESSED
        : positiveInt('maxUncompressedSize', o.maxUncompressedSize, 0xffffffff),
  };
}

export function resolveEncodeOptions(o: EncodeOptions | undefined): ResolvedEncodeOptions {
  if (o === undefined) return DEFAULT_ENCODE;
  if (typeof o !== 'object' || o === null) throw new ConfigError('encode options must be an object');
  let compressLevel = -1;
  if (o.compressed === true) compressLevel = 6;
  else if (typeof o.compressed === 'number') {
    if (!Number.isInteger(o.compressed) || o.compressed < 0 || o.compressed > 9) {
      throw new ConfigError(`compressed must be true, false or a level from 0 to 9, got ${o.compressed}`);
    }
    compressLevel = o.compressed;
  } else if (o.compressed !== undefined && o.compressed !== false) {
    throw new ConfigError(`compressed must be true, false or a level from 0 to 9, got ${String(o.compressed)}`);
  }
  return {
    compressLevel,
    maxDepth: o.maxDepth === undefined ? DEFAULT_MAX_DEPTH : positiveInt('maxDepth', o.maxDepth, 1_000_000),
  };
}
