/**
 * Loads the native addon (build/Release/erl_peb.node) once per thread and hands it the JS classes
 * and helpers it uses. Everything else in lib/ reaches the addon through `nativeBinding()`.
 */
import * as path from 'node:path';
import {
  ClosedError,
  ConnectionError,
  DecodeError,
  EncodeError,
  ErlPebError,
  RemoteError,
  TimeoutError,
} from './errors';
import {
  atom,
  BitBinary,
  Export,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Ref,
  TERM_KIND,
  Tuple,
  type Term,
} from './terms';

/** The functions the addon exports (see native/addon.cc). */
export interface NativeBinding {
  termToBinary(value: unknown, compressLevel: number, maxDepth: number): Buffer;
  binaryToTerm(bytes: Uint8Array, flags: number, maxDepth: number, maxUncompressedSize: number): Term;
  tapeToBinary(
    tape: Float64Array,
    length: number,
    text: string,
    byteArrays: Uint8Array[],
    compressLevel: number,
    scratch: Uint8Array,
  ): number | Buffer;
  [name: string]: unknown;
}

/**
 * Where the addon is built, from the package root (this file sits one level down, in lib/ or dist/).
 * ERL_PEB_ADDON_PATH, when set, names another build to load instead: it is how the sanitizer build
 * (build-asan/, `npm run test:asan`) runs under the same tests. Not meant for production use.
 */
export const NATIVE_ADDON_PATH = process.env.ERL_PEB_ADDON_PATH
  ? path.resolve(process.env.ERL_PEB_ADDON_PATH)
  : path.join(__dirname, '..', 'build', 'Release', 'erl_peb.node');

// Captured now, so that code replacing globals or prototype methods later cannot change what the
// codec does.
const MapCtor = Map;
const mapForEach = Map.prototype.forEach;
const mapSet = Map.prototype.set;
const defineProperty = Object.defineProperty;
const allocUnsafe = Buffer.allocUnsafe;
const arrayFrom = Array.from;
const BigIntCtor = BigInt;

/** A Map's keys and values as one flat array `[k0, v0, k1, v1, ...]`, in iteration order. */
function mapEntries(map: Map<unknown, unknown>): unknown[] {
  const out: unknown[] = [];
  let i = 0;
  mapForEach.call(map, (value: unknown, key: unknown) => {
    out[i++] = key;
    out[i++] = value;
  });
  return out;
}

/** A Map from a flat array `[k0, v0, k1, v1, ...]`. */
function mapFromEntries(flat: unknown[]): Map<unknown, unknown> {
  const map = new MapCtor<unknown, unknown>();
  for (let i = 0; i < flat.length; i += 2) mapSet.call(map, flat[i], flat[i + 1]);
  return map;
}

/** A Buffer holding a copy of src[offset, offset + length) (pooled when small, as Buffer.from is). */
function copyBytes(src: Uint8Array, offset: number, length: number): Buffer {
  const b = allocUnsafe(length);
  if (length <= 32) {
    for (let i = 0; i < length; i++) b[i] = src[offset + i];
  } else {
    b.set(src.subarray(offset, offset + length));
  }
  return b;
}

/**
 * Object keys by slot, kept in step with the decoder's key cache (native/key_cache.h): a key
 * seen before comes as its slot. The strings are V8's internalized ones, which it stores properties
 * under without looking them up first.
 */
const keyCache: string[] = [];

/** V8's internalized copy of s (the one a property key holds). */
function internalize(s: string): string {
  if (s === '__proto__') return s;
  const o: Record<string, number> = {};
  o[s] = 0;
  for (const k in o) return k;
  return s;
}

/** Decode tape ops: the same numbers as `dop` in native/tape.h. */
const enum Op {
  Int = 1,
  Float = 2,
  FloatObj = 3,
  BigInt = 4,
  True = 5,
  False = 6,
  Null = 7,
  Atom = 8,
  String = 9,
  Binary = 10,
  BitBinary = 11,
  ByteList = 12,
  Nil = 13,
  List = 14,
  Improper = 15,
  Tuple = 16,
  Map = 17,
  Object = 18,
  SetKey = 19,
  Pid = 20,
  Port = 21,
  Ref = 22,
  Export = 23,
  Fun = 24,
  KeyNew = 25,
  Key = 26,
}

/**
 * Makes the JS value of a decoded term from the op tape the native decoder wrote (postfix: a
 * container's op follows its elements): ops [start, n). The decoder has checked the bytes; this
 * only follows the ops. `text` holds every string and atom name; `src` the bytes binaries are
 * copied from. Terms sharing a tape (a connection's batch of replies) are made in tape order.
 */
export function buildTerm(t: Float64Array, n: number, text: string, src: Uint8Array | undefined, start = 0): Term {
  const stack: unknown[] = [];
  let sp = 0;
  let i = start;
  while (i < n) {
    switch (t[i]) {
      case Op.Int:
      case Op.Float:
        stack[sp++] = t[i + 1];
        i += 2;
        break;
      case Op.FloatObj:
        stack[sp++] = new Float(t[i + 1]);
        i += 2;
        break;
      case Op.BigInt: {
        const m = BigIntCtor('0x' + text.slice(t[i + 1], t[i + 1] + t[i + 2]));
        stack[sp++] = t[i + 3] ? -m : m;
        i += 4;
        break;
      }
      case Op.True:
        stack[sp++] = true;
        i += 1;
        break;
      case Op.False:
        stack[sp++] = false;
        i += 1;
        break;
      case Op.Null:
        stack[sp++] = null;
        i += 1;
        break;
      case Op.Atom:
        stack[sp++] = atom(text.slice(t[i + 1], t[i + 1] + t[i + 2]));
        i += 3;
        break;
      case Op.String:
        stack[sp++] = text.slice(t[i + 1], t[i + 1] + t[i + 2]);
        i += 3;
        break;
      case Op.KeyNew: {
        const key = internalize(text.slice(t[i + 2], t[i + 2] + t[i + 3]));
        keyCache[t[i + 1]] = key;
        stack[sp++] = key;
        i += 4;
        break;
      }
      case Op.Key:
        stack[sp++] = keyCache[t[i + 1]];
        i += 2;
        break;
      case Op.Binary:
        stack[sp++] = copyBytes(src!, t[i + 1], t[i + 2]);
        i += 3;
        break;
      case Op.BitBinary:
        stack[sp++] = new BitBinary(copyBytes(src!, t[i + 1], t[i + 2]), t[i + 3]);
        i += 4;
        break;
      case Op.ByteList:
        stack[sp++] = arrayFrom(src!.subarray(t[i + 1], t[i + 1] + t[i + 2]));
        i += 3;
        break;
      case Op.Nil:
        stack[sp++] = [];
        i += 1;
        break;
      case Op.List: {
        const k = t[i + 1];
        const list = stack.slice(sp - k, sp);
        sp -= k;
        stack[sp++] = list;
        i += 2;
        break;
      }
      case Op.Improper: {
        const k = t[i + 1];
        const tail = stack[--sp];
        const elements = stack.slice(sp - k, sp);
        sp -= k;
        stack[sp++] = new ImproperList(elements as Term[], tail as Term);
        i += 2;
        break;
      }
      case Op.Tuple: {
        const k = t[i + 1];
        const elements = stack.slice(sp - k, sp);
        sp -= k;
        stack[sp++] = new Tuple(elements as Term[]);
        i += 2;
        break;
      }
      case Op.Map: {
        const base = sp - 2 * t[i + 1];
        const map = new MapCtor<unknown, unknown>();
        for (let j = base; j < sp; j += 2) mapSet.call(map, stack[j], stack[j + 1]);
        sp = base;
        stack[sp++] = map;
        i += 2;
        break;
      }
      case Op.Object: {
        const base = sp - 2 * t[i + 1];
        const obj: Record<string, unknown> = {};
        for (let j = base; j < sp; j += 2) {
          const key = stack[j] as string;
          if (key === '__proto__') {
            // An own property, as JSON.parse makes it; assigning would set the prototype.
            defineProperty(obj, key, { value: stack[j + 1], writable: true, enumerable: true, configurable: true });
          } else {
            obj[key] = stack[j + 1];
          }
        }
        sp = base;
        stack[sp++] = obj;
        i += 2;
        break;
      }
      case Op.SetKey: {
        const value = stack[--sp];
        stack[sp - 2 * t[i + 1] + 2 * t[i + 2]] = value;
        i += 3;
        break;
      }
      case Op.Pid:
        stack[sp++] = new Pid(atom(text.slice(t[i + 1], t[i + 1] + t[i + 2])), t[i + 3], t[i + 4], t[i + 5]);
        i += 6;
        break;
      case Op.Port: {
        const high = t[i + 3];
        const low = t[i + 4];
        // A number up to 2^53 - 1 (high word below 2^21), else a bigint.
        const id = high < 0x200000 ? high * 4294967296 + low : (BigIntCtor(high) << 32n) | BigIntCtor(low);
        stack[sp++] = new Port(atom(text.slice(t[i + 1], t[i + 1] + t[i + 2])), id, t[i + 5]);
        i += 6;
        break;
      }
      case Op.Ref: {
        const count = t[i + 4];
        const ids = arrayFrom(t.subarray(i + 5, i + 5 + count));
        stack[sp++] = new Ref(atom(text.slice(t[i + 1], t[i + 1] + t[i + 2])), t[i + 3], ids);
        i += 5 + count;
        break;
      }
      case Op.Export:
        stack[sp++] = new Export(
          atom(text.slice(t[i + 1], t[i + 1] + t[i + 2])),
          atom(text.slice(t[i + 3], t[i + 3] + t[i + 4])),
          t[i + 5],
        );
        i += 6;
        break;
      case Op.Fun:
        stack[sp++] = new Fun(copyBytes(src!, t[i + 1], t[i + 2]), atom(text.slice(t[i + 3], t[i + 3] + t[i + 4])), t[i + 5], t[i + 6]);
        i += 7;
        break;
      default:
        throw new ErlPebError(`internal error: unknown decode op ${t[i]} at ${i}`, 'ERL_PEB_INTERNAL');
    }
  }
  return stack[0] as Term;
}

let binding: NativeBinding | undefined;

function load(): NativeBinding {
  let addon: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    addon = require(NATIVE_ADDON_PATH) as NativeBinding;
  } catch (cause) {
    throw new ErlPebError(
      `the erl-peb native addon could not be loaded from ${NATIVE_ADDON_PATH} (${(cause as Error).message}). ` +
        "Build it with `npm run build:native`; it needs Erlang's erl_interface (Debian: " +
        '`apt-get install erlang-nox erlang-dev`). The pure-TypeScript codec in `erl-peb/pure` needs no addon.',
      'ERL_PEB_NATIVE_MISSING',
      { cause },
    );
  }
  (addon.setup as (classes: object) => void)({
    DecodeError,
    EncodeError,
    ConnectionError,
    TimeoutError,
    ClosedError,
    RemoteError,
    Tuple,
    Pid,
    Ref,
    Port,
    Fun,
    Export,
    BitBinary,
    ImproperList,
    Float,
    atom,
    Map: MapCtor,
    objectPrototype: Object.prototype,
    termKind: TERM_KIND,
    mapEntries,
    mapFromEntries,
    buildTerm,
  });
  return addon;
}

/** The addon, loaded and set up on first use (per thread: a Worker loads its own). */
export function nativeBinding(): NativeBinding {
  return (binding ??= load());
}
