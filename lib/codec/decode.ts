/**
 * The pure-TypeScript ETF decoder. Input is untrusted: every length is checked against the bytes
 * remaining before it is read or anything is allocated for it, nesting is bounded by maxDepth, a
 * compressed term is capped by maxUncompressedSize, and every failure is a DecodeError naming the
 * byte offset (in the input; in the inflated bytes for errors inside a compressed term).
 *
 * The decoder keeps an explicit stack of open containers instead of recursing, so no nesting
 * depth (maxDepth may be set up to 1,000,000) can overflow the JS stack. Scalars are decoded in
 * one switch on the tag; a finished value is then attached to the open containers, which may
 * finish them in turn.
 *
 * Offsets, the same as the native decoder's: an error in a term (a length that runs past the end,
 * a bad field, invalid atom text, nesting too deep, an unknown tag) points at that term's tag; an
 * EXPORT_EXT arity that is not a small integer at the arity; trailing bytes where they start; a
 * compressed term's bad size at the size field (2), bad zlib data where zlib stopped reading it.
 */
import { constants as bufferConstants, isAscii, isUtf8 } from 'node:buffer';
import { constants as zlibConstants, inflateSync } from 'node:zlib';
import { DecodeError } from '../errors';
import { Atom, BitBinary, Export, Float, Fun, ImproperList, Pid, Port, Ref, Tuple, atom, type Term } from '../terms';
import { DecodeFlag, resolveDecodeOptions, type DecodeOptions, type ResolvedDecodeOptions } from './options';
import * as T from './tags';

/** Node's Buffer has fast, undocumented-but-stable string readers; typed here once. */
interface FastBuffer extends Buffer {
  latin1Slice(start: number, end: number): string;
  asciiSlice(start: number, end: number): string;
  utf8Slice(start: number, end: number): string;
}

// Kinds of open containers on the decoder's stack.
const F_LIST = 1; // LIST_EXT, reading elements
const F_TAIL = 2; // LIST_EXT, reading the tail of an improper list
const F_TUPLE = 3;
const F_MAP = 4; // reading keys and values alternately
const F_FUN = 5; // NEW_FUN_EXT, reading its free variables (checked, then dropped)

interface FunHeader {
  at: number;
  end: number;
  module: Atom;
  arity: number;
  index: number;
}

/** Where the last helper read stopped (helpers return one value and leave the position here). */
let rp = 0;
/** Appended to messages while decoding the inflated bytes of a compressed term. */
let ctx = '';

const NO_ELEMENTS: unknown[] = [];
/**
 * Containers up to this many elements get an array of their exact size up front (their count was
 * checked against the bytes left); larger ones grow, since V8 makes a huge `new Array(n)` a slow
 * dictionary-mode array.
 */
const PREALLOC_MAX = 16384;

function err(message: string, offset: number): DecodeError {
  return new DecodeError(message + ctx, offset);
}

/**
 * A term whose bytes run past the end: `need` bytes from `p` (with `end - p` left), reported at
 * the term's tag `at`, as the native decoder reports it.
 */
function truncated(what: string, need: number, p: number, end: number, at: number): DecodeError {
  return err(`truncated ${what}: needs ${need} bytes, ${Math.max(0, end - p)} left`, at);
}

function u32(b: Buffer, p: number): number {
  return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
}

function copyOut(b: Buffer, s: number, e: number): Buffer {
  const n = e - s;
  const out = Buffer.allocUnsafe(n);
  if (n <= 32) {
    // a JS loop beats the call into Buffer#copy for a few bytes
    for (let i = 0; i < n; i++) out[i] = b[s + i];
  } else {
    b.copy(out, 0, s, e);
  }
  return out;
}

const fromCharCode = String.fromCharCode;
/** V8's limit on a BigInt (2^30 bits); bigger integers would throw a RangeError in BigInt(). */
const MAX_BIGINT_BYTES = 2 ** 27;
/** The longest string V8 makes; a longer binary stays a Buffer even with binaries: 'string'. */
const MAX_STRING_LENGTH = bufferConstants.MAX_STRING_LENGTH;

/**
 * Bytes s..e (at most 16, all below 0x80) as a string. Building short strings in JS is several
 * times faster than a call into Buffer's C++ slicers, and most session strings are short.
 */
function shortAscii(b: Buffer, s: number, n: number): string {
  switch (n) {
    case 0:
      return '';
    case 1:
      return fromCharCode(b[s]);
    case 2:
      return fromCharCode(b[s], b[s + 1]);
    case 3:
      return fromCharCode(b[s], b[s + 1], b[s + 2]);
    case 4:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3]);
    case 5:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4]);
    case 6:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5]);
    case 7:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6]);
    case 8:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]);
    default:
      return fromCharCode(b[s], b[s + 1], b[s + 2], b[s + 3], b[s + 4], b[s + 5], b[s + 6], b[s + 7]) + shortAscii(b, s + 8, n - 8);
  }
}

/** UTF-8 text when the bytes are valid UTF-8, else a copy of the bytes. */
function textOrBuffer(b: FastBuffer, s: number, e: number): string | Buffer {
  const n = e - s;
  if (n <= 64) {
    let i = s;
    while (i < e && b[i] < 0x80) i++;
    if (i === e) return n <= 16 ? shortAscii(b, s, n) : b.utf8Slice(s, e);
  } else if (n > MAX_STRING_LENGTH) {
    return copyOut(b, s, e);
  } else if (n >= 1024) {
    // asciiSlice is several times faster than utf8Slice on large text
    const view = b.subarray(s, e);
    if (isAscii(view)) return b.asciiSlice(s, e);
    if (isUtf8(view)) return b.utf8Slice(s, e);
    return copyOut(b, s, e);
  }
  if (isUtf8(b.subarray(s, e))) return b.utf8Slice(s, e);
  return copyOut(b, s, e);
}

const ATOM_TAG = new Uint8Array(256);
ATOM_TAG[T.ATOM_EXT] = 1;
ATOM_TAG[T.SMALL_ATOM_EXT] = 1;
ATOM_TAG[T.ATOM_UTF8_EXT] = 1;
ATOM_TAG[T.SMALL_ATOM_UTF8_EXT] = 1;

/** The name of the atom whose tag is at `at`; sets rp past it. */
function readAtomName(b: FastBuffer, at: number, end: number): string {
  if (at >= end) throw truncated('term (an atom)', 1, at, end, at);
  const tag = b[at];
  let p = at + 1;
  let n: number;
  if (tag === T.SMALL_ATOM_UTF8_EXT || tag === T.SMALL_ATOM_EXT) {
    if (end - p < 1) throw truncated('atom length', 1, p, end, at);
    n = b[p++];
  } else if (tag === T.ATOM_UTF8_EXT || tag === T.ATOM_EXT) {
    if (end - p < 2) throw truncated('atom length', 2, p, end, at);
    n = (b[p] << 8) | b[p + 1];
    p += 2;
  } else {
    throw err(`expected an atom, found tag ${tag}`, at);
  }
  if (n > end - p) throw truncated('atom', n, p, end, at);
  const e = p + n;
  let i = p;
  while (i < e && b[i] < 0x80) i++;
  let name: string;
  if (i === e || tag === T.ATOM_EXT || tag === T.SMALL_ATOM_EXT) {
    // ASCII, or Latin-1: one character per byte
    if (n > 255) throw err(`atom of ${n} characters; Erlang allows at most 255`, at);
    name = i === e && n <= 16 ? shortAscii(b, p, n) : b.latin1Slice(p, e);
  } else {
    if (!isUtf8(b.subarray(p, e))) throw err('atom is not valid UTF-8', at);
    let chars = 0;
    for (let j = p; j < e; j++) if ((b[j] & 0xc0) !== 0x80) chars++;
    if (chars > 255) throw err(`atom of ${chars} characters; Erlang allows at most 255`, at);
    name = b.utf8Slice(p, e);
  }
  rp = e;
  return name;
}

function atomValue(name: string): unknown {
  switch (name) {
    case 'true':
      return true;
    case 'false':
      return false;
    case 'undefined':
      return null;
    default:
      return atom(name);
  }
}

/** SMALL_BIG_EXT / LARGE_BIG_EXT at `at`: a number when safe, else a bigint; sets rp. */
function readBig(b: Buffer, at: number, end: number): number | bigint {
  let p = at + 1;
  let n: number;
  if (b[at] === T.SMALL_BIG_EXT) {
    if (end - p < 2) throw truncated('SMALL_BIG_EXT header', 2, p, end, at);
    n = b[p++];
  } else {
    if (end - p < 5) throw truncated('LARGE_BIG_EXT header', 5, p, end, at);
    n = u32(b, p);
    p += 4;
  }
  const sign = b[p];
  if (sign > 1) throw err(`bad sign byte ${sign} in a big integer`, at);
  p++;
  if (n > end - p) throw truncated('big integer', n, p, end, at);
  rp = p + n;
  let top = n;
  while (top > 0 && b[p + top - 1] === 0) top--;
  if (top <= 6 || (top === 7 && b[p + 6] < 0x20)) {
    // at most 2^53 - 1: exact as a double
    let m = 0;
    for (let i = top - 1; i >= 0; i--) m = m * 256 + b[p + i];
    return sign === 1 && m !== 0 ? -m : m;
  }
  if (top > MAX_BIGINT_BYTES) throw err(`integer of ${top} bytes is too large for a JS bigint`, at);
  const hex = Buffer.from(b.subarray(p, p + top)).reverse().toString('hex');
  const m = BigInt('0x' + hex);
  return sign === 1 ? -m : m;
}

/** An integer term (as in a fun's old index and old uniq); sets rp. */
function readInteger(b: Buffer, at: number, end: number): number | bigint {
  if (at >= end) throw truncated('term (an integer)', 1, at, end, at);
  const tag = b[at];
  if (tag === T.SMALL_INTEGER_EXT) {
    if (end - at < 2) throw truncated('SMALL_INTEGER_EXT', 1, at + 1, end, at);
    rp = at + 2;
    return b[at + 1];
  }
  if (tag === T.INTEGER_EXT) {
    if (end - at < 5) throw truncated('INTEGER_EXT', 4, at + 1, end, at);
    rp = at + 5;
    return (b[at + 1] << 24) | (b[at + 2] << 16) | (b[at + 3] << 8) | b[at + 4];
  }
  if (tag === T.SMALL_BIG_EXT || tag === T.LARGE_BIG_EXT) return readBig(b, at, end);
  throw err(`expected an integer, found tag ${tag}`, at);
}

/** PID_EXT / NEW_PID_EXT at `at`; sets rp. */
function readPid(b: FastBuffer, at: number, end: number): Pid {
  if (at >= end) throw truncated('term (a pid)', 1, at, end, at);
  const tag = b[at];
  if (tag !== T.PID_EXT && tag !== T.NEW_PID_EXT) throw err(`expected a pid, found tag ${tag}`, at);
  const node = atom(readAtomName(b, at + 1, end));
  const p = rp;
  const size = tag === T.PID_EXT ? 9 : 12;
  if (end - p < size) throw truncated('pid', size, p, end, at);
  rp = p + size;
  return new Pid(node, u32(b, p), u32(b, p + 4), tag === T.PID_EXT ? b[p + 8] : u32(b, p + 8));
}

function readPort(b: FastBuffer, at: number, end: number): Port {
  const tag = b[at];
  const node = atom(readAtomName(b, at + 1, end));
  const p = rp;
  if (tag === T.PORT_EXT) {
    if (end - p < 5) throw truncated('PORT_EXT', 5, p, end, at);
    rp = p + 5;
    return new Port(node, u32(b, p), b[p + 4]);
  }
  if (tag === T.NEW_PORT_EXT) {
    if (end - p < 8) throw truncated('NEW_PORT_EXT', 8, p, end, at);
    rp = p + 8;
    return new Port(node, u32(b, p), u32(b, p + 4));
  }
  if (end - p < 12) throw truncated('V4_PORT_EXT', 12, p, end, at);
  rp = p + 12;
  const hi = u32(b, p);
  const lo = u32(b, p + 4);
  const id = hi < 0x200000 ? hi * 0x100000000 + lo : (BigInt(hi) << 32n) | BigInt(lo);
  return new Port(node, id, u32(b, p + 8));
}

function readRef(b: FastBuffer, at: number, end: number): Ref {
  const tag = b[at];
  if (tag === T.REFERENCE_EXT) {
    const node = atom(readAtomName(b, at + 1, end));
    const p = rp;
    if (end - p < 5) throw truncated('REFERENCE_EXT', 5, p, end, at);
    rp = p + 5;
    return new Ref(node, b[p + 4], [u32(b, p)]);
  }
  let p = at + 1;
  if (end - p < 2) throw truncated('reference length', 2, p, end, at);
  const len = (b[p] << 8) | b[p + 1];
  if (len < 1 || len > 5) throw err(`reference of ${len} words; 1 to 5 expected`, at);
  const node = atom(readAtomName(b, p + 2, end));
  p = rp;
  const cr = tag === T.NEWER_REFERENCE_EXT ? 4 : 1;
  const size = cr + 4 * len;
  if (end - p < size) throw truncated('reference', size, p, end, at);
  const creation = cr === 4 ? u32(b, p) : b[p];
  p += cr;
  const ids: number[] = [];
  for (let i = 0; i < len; i++, p += 4) ids.push(u32(b, p));
  rp = p;
  return new Ref(node, creation, ids);
}

function readExport(b: FastBuffer, at: number, end: number): Export {
  const module = atom(readAtomName(b, at + 1, end));
  const fn = atom(readAtomName(b, rp, end));
  const p = rp;
  if (end - p < 2) throw truncated('EXPORT_EXT arity', 2, p, end, at);
  if (b[p] !== T.SMALL_INTEGER_EXT) throw err(`EXPORT_EXT arity must be a SMALL_INTEGER_EXT, found tag ${b[p]}`, p);
  rp = p + 2;
  return new Export(module, fn, b[p + 1]);
}

/** The fixed part of NEW_FUN_EXT up to the free variables; sets rp to where they start. */
function readFunHeader(b: FastBuffer, at: number, end: number): FunHeader & { numFree: number } {
  let p = at + 1;
  if (end - p < 4) throw truncated('NEW_FUN_EXT size', 4, p, end, at);
  const size = u32(b, p);
  // the size counts itself (4 bytes) but not the tag
  if (size < 4) throw err(`NEW_FUN_EXT size ${size} is less than the 4 bytes of the size itself`, at);
  if (size > end - p) throw truncated('NEW_FUN_EXT', size, p, end, at);
  const funEnd = p + size;
  p += 4;
  if (end - p < 25) throw truncated('NEW_FUN_EXT header', 25, p, end, at);
  const arity = b[p];
  const index = u32(b, p + 17);
  const numFree = u32(b, p + 21);
  const module = atom(readAtomName(b, p + 25, end));
  readInteger(b, rp, end); // old index
  readInteger(b, rp, end); // old uniq
  readPid(b, rp, end);
  if (rp > funEnd) throw err(`NEW_FUN_EXT fields run past the end its size gives (byte ${funEnd})`, at);
  // each free variable takes at least a byte, inside the fun
  if (numFree > funEnd - rp) throw truncated(`NEW_FUN_EXT of ${numFree} free variables`, numFree, rp, funEnd, at);
  return { at, end: funEnd, module, arity, index, numFree };
}

function isMapKeyTag(tag: number): boolean {
  return tag === T.BINARY_EXT || ATOM_TAG[tag] === 1;
}

/** Builds a decoded map from [k0, v0, k1, v1, ...]: a plain object when asked and possible. */
function finishMap(kv: unknown[], asObject: boolean): unknown {
  if (asObject) {
    const n = kv.length;
    const keys: string[] = new Array(n >>> 1);
    let ok = true;
    let atoms = false;
    let binaries = false;
    for (let i = 0; i < n; i += 2) {
      const k = kv[i];
      let s: string;
      if (typeof k === 'string') {
        s = k;
        binaries = true;
      } else if (k instanceof Atom) {
        s = k.name;
        atoms = true;
      } else if (k === true || k === false || k === null) {
        s = k === null ? 'undefined' : String(k);
        atoms = true;
      } else if (k instanceof Uint8Array && isUtf8(k)) {
        s = Buffer.from(k.buffer, k.byteOffset, k.length).toString('utf8');
        binaries = true;
      } else {
        ok = false;
        break;
      }
      keys[i >>> 1] = s;
    }
    // An atom and a binary may be the same text (`a` and <<"a">>), which one object cannot hold
    // twice: such a map is a Map (distinct atoms, or distinct binaries, are distinct texts).
    if (ok && atoms && binaries && new Set(keys).size !== keys.length) ok = false;
    if (ok) {
      const o: Record<string, unknown> = {};
      for (let i = 0; i < n; i += 2) {
        const key = keys[i >>> 1];
        // '__proto__' as a plain assignment would set the prototype instead of a key.
        if (key === '__proto__') {
          Object.defineProperty(o, key, { value: kv[i + 1], writable: true, enumerable: true, configurable: true });
        } else {
          o[key] = kv[i + 1];
        }
      }
      return o;
    }
  }
  const m = new Map<unknown, unknown>();
  for (let i = 0; i < kv.length; i += 2) m.set(kv[i], kv[i + 1]);
  return m;
}

/** Decodes one term starting at `p`; sets rp to where it ends. */
function decodeBody(b: FastBuffer, p: number, end: number, o: ResolvedDecodeOptions): unknown {
  const binStr = (o.flags & DecodeFlag.BinariesAsStrings) !== 0;
  const strStr = (o.flags & DecodeFlag.StringsAsStrings) !== 0;
  const mapObj = (o.flags & DecodeFlag.MapsAsObjects) !== 0;
  const maxDepth = o.maxDepth;
  // The stack of open containers, as parallel arrays.
  const kinds: number[] = [];
  const elems: unknown[][] = [];
  const fill: number[] = []; // elements filled so far (F_FUN: free variables still to read)
  const total: number[] = []; // elements in all
  const extra: Array<FunHeader | boolean> = [];
  let sp = 0;
  let v: unknown;
  let vtag: number;

  outer: for (;;) {
    if (p >= end) throw truncated('term', 1, p, end, p);
    const at = p;
    const tag = b[p++];
    vtag = tag;
    switch (tag) {
      case T.SMALL_INTEGER_EXT:
        if (p >= end) throw truncated('SMALL_INTEGER_EXT', 1, p, end, at);
        v = b[p++];
        break;
      case T.INTEGER_EXT:
        if (end - p < 4) throw truncated('INTEGER_EXT', 4, p, end, at);
        v = (b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
        p += 4;
        break;
      case T.BINARY_EXT: {
        if (end - p < 4) throw truncated('binary length', 4, p, end, at);
        const n = u32(b, p);
        p += 4;
        if (n > end - p) throw truncated('binary', n, p, end, at);
        v = binStr ? textOrBuffer(b, p, p + n) : copyOut(b, p, p + n);
        p += n;
        break;
      }
      case T.SMALL_ATOM_UTF8_EXT:
      case T.ATOM_UTF8_EXT:
      case T.SMALL_ATOM_EXT:
      case T.ATOM_EXT:
        v = atomValue(readAtomName(b, at, end));
        p = rp;
        break;
      case T.NIL_EXT:
        v = [];
        break;
      case T.LIST_EXT: {
        if (end - p < 4) throw truncated('list length', 4, p, end, at);
        const n = u32(b, p);
        p += 4;
        // n elements and a tail, at least one byte each
        if (n >= end - p) throw truncated(`list of ${n} elements`, n + 1, p, end, at);
        if (sp >= maxDepth) throw err(`nesting deeper than ${maxDepth}`, at);
        if (n === 0 && b[p] === T.NIL_EXT) {
          // a (non-canonical) empty LIST_EXT ending in NIL is []
          p++;
          v = [];
          vtag = 0;
          break;
        }
        kinds[sp] = n === 0 ? F_TAIL : F_LIST;
        elems[sp] = n <= PREALLOC_MAX ? new Array(n) : [];
        fill[sp] = 0;
        total[sp] = n;
        sp++;
        continue outer;
      }
      case T.SMALL_TUPLE_EXT:
      case T.LARGE_TUPLE_EXT: {
        let n: number;
        if (tag === T.SMALL_TUPLE_EXT) {
          if (p >= end) throw truncated('tuple arity', 1, p, end, at);
          n = b[p++];
        } else {
          if (end - p < 4) throw truncated('tuple arity', 4, p, end, at);
          n = u32(b, p);
          p += 4;
        }
        if (n > end - p) throw truncated(`tuple of ${n} elements`, n, p, end, at);
        if (sp >= maxDepth) throw err(`nesting deeper than ${maxDepth}`, at);
        if (n === 0) {
          v = new Tuple([]);
          vtag = 0;
          break;
        }
        kinds[sp] = F_TUPLE;
        elems[sp] = n <= PREALLOC_MAX ? new Array(n) : [];
        fill[sp] = 0;
        total[sp] = n;
        sp++;
        continue outer;
      }
      case T.MAP_EXT: {
        if (end - p < 4) throw truncated('map size', 4, p, end, at);
        const n = u32(b, p);
        p += 4;
        if (2 * n > end - p) throw truncated(`map of ${n} pairs`, 2 * n, p, end, at);
        if (sp >= maxDepth) throw err(`nesting deeper than ${maxDepth}`, at);
        if (n === 0) {
          v = mapObj ? {} : new Map();
          vtag = 0;
          break;
        }
        kinds[sp] = F_MAP;
        elems[sp] = 2 * n <= PREALLOC_MAX ? new Array(2 * n) : [];
        fill[sp] = 0;
        total[sp] = 2 * n;
        extra[sp] = mapObj;
        sp++;
        continue outer;
      }
      case T.STRING_EXT: {
        if (end - p < 2) throw truncated('string length', 2, p, end, at);
        const n = (b[p] << 8) | b[p + 1];
        p += 2;
        if (n > end - p) throw truncated('string', n, p, end, at);
        if (strStr) {
          v = b.latin1Slice(p, p + n);
        } else {
          const a: number[] = [];
          for (let i = 0; i < n; i++) a.push(b[p + i]);
          v = a;
        }
        p += n;
        break;
      }
      case T.NEW_FLOAT_EXT: {
        if (end - p < 8) throw truncated('NEW_FLOAT_EXT', 8, p, end, at);
        const x = b.readDoubleBE(p);
        if (x !== x || x === Infinity || x === -Infinity) throw err(`float ${x} is not a finite number`, at);
        p += 8;
        v = Number.isInteger(x) ? new Float(x) : x;
        break;
      }
      case T.FLOAT_EXT: {
        if (end - p < 31) throw truncated('FLOAT_EXT', 31, p, end, at);
        let e = p;
        while (e < p + 31 && b[e] !== 0) e++;
        const text = b.latin1Slice(p, e);
        const x = FLOAT_TEXT.test(text) ? Number(text) : NaN;
        if (x !== x || x === Infinity || x === -Infinity) throw err(`FLOAT_EXT text ${JSON.stringify(text)} is not a finite float`, at);
        p += 31;
        v = Number.isInteger(x) ? new Float(x) : x;
        break;
      }
      case T.SMALL_BIG_EXT:
      case T.LARGE_BIG_EXT:
        v = readBig(b, at, end);
        p = rp;
        break;
      case T.BIT_BINARY_EXT: {
        if (end - p < 5) throw truncated('BIT_BINARY_EXT header', 5, p, end, at);
        const n = u32(b, p);
        const bits = b[p + 4];
        if (bits < 1 || bits > 8) throw err(`BIT_BINARY_EXT with ${bits} bits in the last byte; 1 to 8 expected`, at);
        if (n === 0 && bits !== 8) throw err('empty BIT_BINARY_EXT must have 8 bits in its last byte', at);
        p += 5;
        if (n > end - p) throw truncated('bitstring', n, p, end, at);
        if (bits === 8) {
          v = binStr ? textOrBuffer(b, p, p + n) : copyOut(b, p, p + n);
          vtag = T.BINARY_EXT;
        } else {
          v = new BitBinary(copyOut(b, p, p + n), bits);
        }
        p += n;
        break;
      }
      case T.PID_EXT:
      case T.NEW_PID_EXT:
        v = readPid(b, at, end);
        p = rp;
        break;
      case T.PORT_EXT:
      case T.NEW_PORT_EXT:
      case T.V4_PORT_EXT:
        v = readPort(b, at, end);
        p = rp;
        break;
      case T.REFERENCE_EXT:
      case T.NEW_REFERENCE_EXT:
      case T.NEWER_REFERENCE_EXT:
        v = readRef(b, at, end);
        p = rp;
        break;
      case T.EXPORT_EXT:
        v = readExport(b, at, end);
        p = rp;
        break;
      case T.NEW_FUN_EXT: {
        const h = readFunHeader(b, at, end);
        p = rp;
        if (sp >= maxDepth) throw err(`nesting deeper than ${maxDepth}`, at);
        if (h.numFree === 0) {
          if (p !== h.end) throw err(`NEW_FUN_EXT size says it ends at byte ${h.end}, its fields end at ${p}`, at);
          v = new Fun(copyOut(b, at, p), h.module, h.arity, h.index);
          vtag = 0;
          break;
        }
        kinds[sp] = F_FUN;
        elems[sp] = NO_ELEMENTS;
        fill[sp] = h.numFree;
        extra[sp] = h;
        sp++;
        continue outer;
      }
      default:
        throw err(`unknown tag ${tag}`, at);
    }

    // v is complete: attach it to the innermost open container, finishing containers as they fill.
    for (;;) {
      if (sp === 0) {
        rp = p;
        return v;
      }
      const i = sp - 1;
      switch (kinds[i]) {
        case F_LIST: {
          const a = elems[i];
          const k = fill[i];
          a[k] = v;
          if ((fill[i] = k + 1) !== total[i]) continue outer;
          if (p < end && b[p] === T.NIL_EXT) {
            p++;
            v = a;
            break;
          }
          kinds[i] = F_TAIL;
          continue outer;
        }
        case F_TAIL:
          v = new ImproperList(elems[i] as Term[], v as Term);
          break;
        case F_TUPLE: {
          const a = elems[i];
          const k = fill[i];
          a[k] = v;
          if ((fill[i] = k + 1) !== total[i]) continue outer;
          v = new Tuple(a as Term[]);
          break;
        }
        case F_MAP: {
          const a = elems[i];
          const k = fill[i];
          // keys at even positions
          if ((k & 1) === 0 && extra[i] === true && !isMapKeyTag(vtag)) extra[i] = false;
          a[k] = v;
          if ((fill[i] = k + 1) !== total[i]) continue outer;
          v = finishMap(a, extra[i] === true);
          break;
        }
        default: {
          // F_FUN: the free variables are only validated; the Fun keeps its bytes.
          if (--fill[i] !== 0) continue outer;
          const h = extra[i] as FunHeader;
          if (p !== h.end) throw err(`NEW_FUN_EXT size says it ends at byte ${h.end}, its fields end at ${p}`, h.at);
          v = new Fun(copyOut(b, h.at, p), h.module, h.arity, h.index);
        }
      }
      vtag = 0;
      elems[i] = NO_ELEMENTS;
      sp--;
    }
  }
}

/** "%.20e"-style text as Erlang's FLOAT_EXT holds it: digits, an optional fraction and exponent. */
const FLOAT_TEXT = /^[+-]?\d+(?:\.\d*)?(?:[eE][+-]?\d+)?$/;

function asBuffer(input: unknown): FastBuffer {
  if (Buffer.isBuffer(input)) return input as FastBuffer;
  if (input instanceof Uint8Array) return Buffer.from(input.buffer, input.byteOffset, input.byteLength) as FastBuffer;
  throw new DecodeError(`expected a Buffer or Uint8Array, got ${input === null ? 'null' : typeof input}`, 0);
}

/** True when inflating `z` fails on bad data (not on running out of input or output). */
function corrupt(z: Buffer, limit: number): boolean {
  try {
    inflateSync(z, { maxOutputLength: limit });
    return false;
  } catch (e) {
    const code = (e as { code?: string }).code;
    return code !== 'Z_BUF_ERROR' && code !== 'ERR_BUFFER_TOO_LARGE';
  }
}

/** True when the start of a zlib stream `z` (complete or not) inflates to more than `size` bytes. */
function inflatesPast(z: Buffer, size: number, limit: number): boolean {
  try {
    return inflateSync(z, { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: limit }).length > size;
  } catch (e) {
    return (e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
  }
}

/**
 * How many bytes of the zlib data zlib had read when it found them corrupt: the shortest prefix
 * that already fails (Node's zlib does not report its count on error; zlib itself reads no
 * further than it needs). Only run on the error path.
 */
function corruptAt(z: Buffer, limit: number): number {
  let lo = 1;
  let hi = z.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (corrupt(z.subarray(0, mid), limit)) hi = mid;
    else lo = mid + 1;
  }
  return hi;
}

function decodeCompressed(b: FastBuffer, o: ResolvedDecodeOptions): unknown {
  if (b.length - 2 < 4) throw truncated('compressed term size', 4, 2, b.length, 2);
  const size = u32(b, 2);
  if (size > o.maxUncompressedSize) {
    throw err(`compressed term claims ${size} bytes, more than maxUncompressedSize (${o.maxUncompressedSize})`, 2);
  }
  let inflated: Buffer;
  let consumed: number;
  // One byte more than claimed may come out, to notice data that inflates to more.
  const limit = Math.min(size + 1, bufferConstants.MAX_LENGTH);
  const z = b.subarray(6);
  try {
    const r = inflateSync(z, { maxOutputLength: limit, info: true }) as unknown as {
      buffer: Buffer;
      engine: { bytesWritten: number };
    };
    inflated = r.buffer;
    consumed = r.engine.bytesWritten;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') {
      throw new DecodeError(`compressed term inflates to more than the ${size} bytes it claims`, 2, { cause: e });
    }
    // Node reports the end of the input or bad data even when more than `size` bytes came out
    // before it; zlib itself (and the native decoder) would have stopped at size + 1 bytes.
    const tooLarge = (): DecodeError =>
      new DecodeError(`compressed term inflates to more than the ${size} bytes it claims`, 2, { cause: e });
    if (code === 'Z_BUF_ERROR') {
      if (inflatesPast(z, size, limit)) throw tooLarge();
      throw new DecodeError('truncated compressed data', b.length, { cause: e });
    }
    // Bad data found with at most size + 1 bytes out is reported as bad data, as zlib finds it in
    // the same step; more output than that would have stopped zlib first.
    const at = corruptAt(z, limit);
    if (inflatesPast(z.subarray(0, at - 1), size + 1, limit)) throw tooLarge();
    throw new DecodeError(`corrupt compressed data (${(e as Error).message})`, 6 + at, { cause: e });
  }
  if (inflated.length !== size) throw err(`compressed term inflates to ${inflated.length} bytes, not the ${size} it claims`, 2);
  if (6 + consumed !== b.length) throw err('trailing bytes after the compressed data', 6 + consumed);
  ctx = ' in compressed term';
  try {
    const v = decodeBody(inflated as FastBuffer, 0, size, o);
    if (rp !== size) throw err('trailing bytes after the term', rp);
    return v;
  } finally {
    ctx = '';
  }
}

/**
 * Erlang's `binary_to_term`: the term in `buf`, which must start with the version byte 131 and
 * hold exactly one term (possibly compressed). Bad bytes give a DecodeError naming the offset.
 */
export function binaryToTerm(buf: Buffer | Uint8Array, options?: DecodeOptions): Term {
  const o = resolveDecodeOptions(options);
  const b = asBuffer(buf);
  ctx = '';
  if (b.length === 0) throw err('empty input; expected the version byte 131', 0);
  if (b[0] !== T.VERSION) throw err(`expected the version byte 131, found ${b[0]}`, 0);
  if (b.length > 1 && b[1] === T.COMPRESSED) return decodeCompressed(b, o) as Term;
  const v = decodeBody(b, 1, b.length, o);
  if (rp !== b.length) throw err('trailing bytes after the term', rp);
  return v as Term;
}

/**
 * One term with no version byte in front (what mypeb's `peb_decode` reads, and what
 * `encodeTerm` writes); the whole of `buf` must be that term.
 */
export function decodeTerm(buf: Buffer | Uint8Array, options?: DecodeOptions): Term {
  const o = resolveDecodeOptions(options);
  const b = asBuffer(buf);
  ctx = '';
  if (b.length === 0) throw err('empty input; expected a term', 0);
  const v = decodeBody(b, 0, b.length, o);
  if (rp !== b.length) throw err('trailing bytes after the term', rp);
  return v as Term;
}
