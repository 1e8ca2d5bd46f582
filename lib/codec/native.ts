/**
 * The native ETF codec: `termToBinary` / `binaryToTerm` over the C++ addon. Options are validated
 * and resolved here (lib/codec/options.ts); the addon takes plain numbers and decides nothing.
 *
 * Encoding has a fast path. Reading a JS value through Node-API costs 100-200 ns per property,
 * while JS reads one in a few ns, so for JSON-like values (plain objects, arrays, strings, numbers,
 * booleans, null/undefined, Buffers and Uint8Arrays, and Atom, Tuple and Float) a JS walk puts the value's shape on a tape of
 * numbers, its strings in one joined string and its Buffers in an array, and the addon writes all the bytes from those in a
 * single call. Any other value (or nesting past FAST_DEPTH) goes to the addon's full encoder, which
 * handles every term and reports every EncodeError with its path. A getter met by the walk before
 * it gives up is therefore read twice.
 */
import { DecodeError } from '../errors';
import { nativeBinding, type NativeBinding } from '../native';
import { Kind, TERM_KIND, type Atom, type Float, type Term, type Tuple } from '../terms';
import { resolveDecodeOptions, resolveEncodeOptions, type DecodeOptions, type EncodeOptions } from './options';

let addon: NativeBinding | undefined;

/** Encode tape ops: the same numbers as `eop` in native/tape.h. */
const enum Op {
  String = 1,
  Number = 2,
  True = 3,
  False = 4,
  Undefined = 5,
  Nil = 6,
  List = 7,
  Map = 8,
  Atom = 9,
  Tuple = 10,
  Float = 11,
  Bytes = 12,
}

/** Deepest nesting the JS walk follows (it recurses); deeper values go to the addon, which does not. */
const FAST_DEPTH = 200;
/** A tape larger than this (in numbers; 16 MiB) is not kept for the next call. */
const MAX_KEPT_TAPE = 2 * 1024 * 1024;
/** Outputs up to this size are copied out of `scratch` into a pooled Buffer. */
const SCRATCH_SIZE = 64 * 1024;

const isArray = Array.isArray;
const keys = Object.keys;
const getPrototypeOf = Object.getPrototypeOf;
const objectPrototype = Object.prototype;
const allocUnsafe = Buffer.allocUnsafe;

let tape = new Float64Array(4096);
let tn = 0;
/** The strings on the tape, joined as the walk goes (an array's length, set and reset per call, costs more). */
let text = '';
const byteArrays: Uint8Array[] = [];
let bn = 0;
let scratch: Uint8Array | undefined;
let walking = false;

function grow(): void {
  const bigger = new Float64Array(tape.length * 2);
  bigger.set(tape);
  tape = bigger;
}

/** Puts v on the tape; false when v is not something the fast path takes. */
function walk(v: unknown, depth: number): boolean {
  if (tn + 3 > tape.length) grow();
  switch (typeof v) {
    case 'string':
      tape[tn++] = Op.String;
      tape[tn++] = v.length;
      text += v;
      return true;
    case 'number':
      tape[tn++] = Op.Number;
      tape[tn++] = v;
      return true;
    case 'boolean':
      tape[tn++] = v ? Op.True : Op.False;
      return true;
    case 'undefined':
      tape[tn++] = Op.Undefined;
      return true;
    case 'object': {
      if (v === null) {
        tape[tn++] = Op.Undefined;
        return true;
      }
      if (isArray(v)) {
        const n = v.length;
        if (n === 0) {
          tape[tn++] = Op.Nil;
          return true;
        }
        if (depth === 0) return false;
        tape[tn++] = Op.List;
        tape[tn++] = n;
        for (let i = 0; i < n; i++) if (!walk(v[i], depth - 1)) return false;
        if (tn + 1 > tape.length) grow();
        tape[tn++] = Op.Nil;
        return true;
      }
      const proto: unknown = getPrototypeOf(v);
      if (proto === objectPrototype || proto === null) {
        if (depth === 0) return false;
        const ks = keys(v);
        const n = ks.length;
        tape[tn++] = Op.Map;
        tape[tn++] = n;
        for (let i = 0; i < n; i++) {
          const k = ks[i];
          if (tn + 2 > tape.length) grow();
          tape[tn++] = Op.String;
          tape[tn++] = k.length;
          text += k;
          if (!walk((v as Record<string, unknown>)[k], depth - 1)) return false;
        }
        return true;
      }
      if (v instanceof Uint8Array) {
        // The addon checks that it really is one (a Buffer or Uint8Array), else declines.
        tape[tn++] = Op.Bytes;
        tape[tn++] = bn;
        byteArrays[bn++] = v;
        return true;
      }
      switch ((v as { [TERM_KIND]?: Kind })[TERM_KIND]) {
        case Kind.Atom: {
          const name: unknown = (v as Atom).name;
          if (typeof name !== 'string') return false;
          tape[tn++] = Op.Atom;
          tape[tn++] = name.length;
          text += name;
          return true;
        }
        case Kind.Tuple: {
          const elements: unknown = (v as Tuple).elements;
          if (!isArray(elements) || depth === 0) return false;
          const n = elements.length;
          tape[tn++] = Op.Tuple;
          tape[tn++] = n;
          for (let i = 0; i < n; i++) if (!walk(elements[i], depth - 1)) return false;
          return true;
        }
        case Kind.Float: {
          const value: unknown = (v as Float).value;
          if (typeof value !== 'number') return false;
          tape[tn++] = Op.Float;
          tape[tn++] = value;
          return true;
        }
      }
      return false;
    }
  }
  return false;
}

/** The fast path: the encoded bytes, or undefined when the full encoder must take the value. */
function encodeFast(b: NativeBinding, term: unknown, compressLevel: number, maxDepth: number): Buffer | undefined {
  tn = 0;
  text = '';
  bn = 0;
  try {
    if (!walk(term, maxDepth < FAST_DEPTH ? maxDepth : FAST_DEPTH)) return undefined;
    scratch ??= new Uint8Array(SCRATCH_SIZE);
    // byteArrays grows one element at a time from empty, so its length is bn.
    const r = b.tapeToBinary(tape, tn, text, byteArrays, compressLevel, scratch);
    if (typeof r !== 'number') return r;
    if (r < 0) return undefined;
    const out = allocUnsafe(r);
    out.set(scratch.subarray(0, r));
    return out;
  } finally {
    text = ''; // let go of the strings and byte arrays
    if (byteArrays.length !== 0) byteArrays.length = 0;
    if (tape.length > MAX_KEPT_TAPE) tape = new Float64Array(4096); // nor keep a huge tape
  }
}

/** The fast path's tape of one term, for native code that writes the term into its own output. */
export interface EncodeTape {
  tape: Float64Array;
  length: number;
  text: string;
  byteArrays: Uint8Array[];
}
const sharedTape: EncodeTape = { tape, length: 0, text: '', byteArrays };

/**
 * Puts `term` on the fast path's tape for native code that writes it straight into its own output
 * (a connection's packet: no Buffer in between). Undefined when the value needs the full encoder
 * (termToBinary). The tape is shared: hand it over at once, then call releaseTape().
 */
export function encodeTape(term: unknown): EncodeTape | undefined {
  if (walking) return undefined;
  walking = true;
  tn = 0;
  text = '';
  bn = 0;
  try {
    if (!walk(term, FAST_DEPTH)) {
      releaseTape();
      return undefined;
    }
  } finally {
    walking = false;
  }
  sharedTape.tape = tape;
  sharedTape.length = tn;
  sharedTape.text = text;
  return sharedTape;
}

/** Lets go of the strings and byte arrays encodeTape put on the tape. */
export function releaseTape(): void {
  text = '';
  sharedTape.text = '';
  if (byteArrays.length !== 0) byteArrays.length = 0;
  if (tape.length > MAX_KEPT_TAPE) tape = new Float64Array(4096);
}

/** Encodes `term` in Erlang's external term format (with the version byte 131), as term_to_binary does. */
export function termToBinary(term: Term, options?: EncodeOptions): Buffer {
  const o = resolveEncodeOptions(options);
  const b = (addon ??= nativeBinding());
  // A getter reached by the walk may encode too: it then takes the full encoder, leaving the tape alone.
  if (!walking) {
    walking = true;
    try {
      const out = encodeFast(b, term, o.compressLevel, o.maxDepth);
      if (out !== undefined) return out;
    } finally {
      walking = false;
    }
  }
  return b.termToBinary(term, o.compressLevel, o.maxDepth);
}

/** Decodes one Erlang term (with the version byte 131; compressed or not), as binary_to_term does. */
export function binaryToTerm(buf: Buffer | Uint8Array, options?: DecodeOptions): Term {
  if (!(buf instanceof Uint8Array)) throw new DecodeError('input must be a Buffer or Uint8Array', 0);
  const o = resolveDecodeOptions(options);
  return (addon ??= nativeBinding()).binaryToTerm(buf, o.flags, o.maxDepth, o.maxUncompressedSize);
}
