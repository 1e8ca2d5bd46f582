/**
 * The pure-TypeScript ETF encoder. It writes exactly the bytes the native encoder writes (the
 * encoding is fixed value by value, see the term mapping), so either codec can stand in for the other.
 *
 * It walks the value with an explicit stack of open containers instead of recursing, as the
 * native encoder does, so any nesting up to maxDepth (which may be 1,000,000) encodes the same in
 * both, without overflowing the JS stack; the stack also gives the path of a value that cannot be
 * encoded. Speed comes from one reusable, growable scratch Buffer with a cursor, module-level state
 * (no closures or per-call objects), a switch on `typeof` and on the numeric TERM_KIND, and an
 * ASCII fast path for the short strings that make up most session data.
 */
import { deflateSync } from 'node:zlib';
import { EncodeError } from '../errors';
import { Atom, Kind, TERM_KIND, type Term } from '../terms';
import { resolveEncodeOptions, type EncodeOptions } from './options';
import * as T from './tags';

/** Node's Buffer has fast, undocumented-but-stable string writers; typed here once. */
interface FastBuffer extends Buffer {
  utf8Write(s: string, offset: number, length?: number): number;
}

const SCRATCH_SIZE = 64 * 1024;
/** A scratch buffer grown past this is handed to the caller (or dropped), not kept between calls. */
const SCRATCH_KEEP = 1024 * 1024;

const ObjectPrototype = Object.prototype;
const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

// Kinds of open containers on the stack.
const F_LIST = 1; // array elements; NIL_EXT when done
const F_TUPLE = 2;
const F_OBJECT = 3; // plain object: key (as a binary), then its value
const F_MAP = 4; // a Map's keys and values, flattened
const F_IMPROPER = 5; // improper list elements, then its tail
const F_TAIL = 6; // an improper list's tail

// ---- encoder state (module-level: the encoder is synchronous; re-entry is handled in run()) ----
let buf = Buffer.allocUnsafeSlow(SCRATCH_SIZE) as FastBuffer;
let pos = 0;
let maxDepth = 1024;
/** The stack of open containers, as parallel arrays; `sp` entries are in use. */
let fKind: number[] = [];
let fSrc: unknown[] = []; // the elements array, the object, or the flattened map
let fKeys: Array<string[] | null> = []; // F_OBJECT: Object.keys of it
let fNext: number[] = []; // index of the next element
let fCount: number[] = [];
let fTail: unknown[] = [];
let fCounted: boolean[] = []; // counts towards maxDepth (an improper list of no elements does not)
let fAux: number[] = []; // F_MAP: where its keys start in kStart/kEnd; F_OBJECT: 1 once its keys were compared
let fKeyAt: number[] = []; // F_MAP: where the key being written starts in buf
let fMixed: boolean[] = []; // F_MAP: some key is not a number or an ASCII string
/** The byte ranges of buf the keys of the open Maps were written to, innermost last; `kn` in use. */
let kStart: number[] = [];
let kEnd: number[] = [];
let kn = 0;
let sp = 0;
/** Containers open that count towards maxDepth. */
let depth = 0;
let busy = false;

const f64 = new Float64Array(1);
const f64bytes = new Uint8Array(f64.buffer);
const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function grow(n: number): void {
  const cap = Math.max(buf.length * 2, pos + n);
  const next = Buffer.allocUnsafeSlow(cap) as FastBuffer;
  buf.copy(next, 0, 0, pos);
  buf = next;
}

/** The path of the value being encoded, from the open containers. */
function pathOf(): string {
  let s = '$';
  for (let j = 0; j < sp; j++) {
    const at = fNext[j] === 0 ? 0 : fNext[j] - 1;
    switch (fKind[j]) {
      case F_OBJECT: {
        const key = (fKeys[j] as string[])[at];
        s += IDENT.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
        break;
      }
      case F_MAP:
        s += at % 2 === 0 ? `.keys[${at >>> 1}]` : `.values[${at >>> 1}]`;
        break;
      case F_TAIL:
        s += '.tail';
        break;
      default:
        s += `[${at}]`;
    }
  }
  return s;
}

// Erlang refuses a map with a repeated key (binary_to_term says badarg; a node that gets one in a
// distribution message drops the connection), so the encoder refuses to write one.
const REPEATED_OBJECT_KEY =
  'this key is written as the same binary as an earlier key (a lone surrogate becomes U+FFFD); ' +
  'Erlang refuses a map with a repeated key';
const REPEATED_MAP_KEY = 'this key encodes to the same term as an earlier key; Erlang refuses a map with a repeated key';

/**
 * The encoded keys of one Map, as byte ranges of `buf` (offsets: `buf` is replaced as it grows),
 * in an open-addressing table: finds a key that encodes to the same bytes as an earlier one.
 */
class KeyRanges {
  /** Per slot: start + 1 (0: empty), length, hash. */
  private readonly slots: Uint32Array;
  private readonly mask: number;

  constructor(entries: number) {
    let cap = 8;
    while (cap < entries * 2) cap *= 2;
    this.slots = new Uint32Array(cap * 3);
    this.mask = cap - 1;
  }

  /** Adds buf[start..end); false when the same bytes are in already. */
  add(start: number, end: number): boolean {
    const len = end - start;
    // FNV-1a over the length and at most the first and last 32 bytes (a long key is compared in full on a match).
    let h = Math.imul(0x811c9dc5 ^ len, 0x01000193);
    const head = len <= 64 ? end : start + 32;
    for (let i = start; i < head; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    if (len > 64) for (let i = end - 32; i < end; i++) h = Math.imul(h ^ buf[i], 0x01000193);
    h >>>= 0;
    const slots = this.slots;
    for (let s = h & this.mask; ; s = (s + 1) & this.mask) {
      const at = slots[s * 3];
      if (at === 0) {
        slots[s * 3] = start + 1;
        slots[s * 3 + 1] = len;
        slots[s * 3 + 2] = h;
        return true;
      }
      if (slots[s * 3 + 2] === h && slots[s * 3 + 1] === len && sameBytes(at - 1, start, len)) return false;
    }
  }
}

function sameBytes(a: number, b: number, len: number): boolean {
  if (len > 32) return buf.compare(buf, a, a + len, b, b + len) === 0;
  for (let i = 0; i < len; i++) if (buf[a + i] !== buf[b + i]) return false;
  return true;
}

function hasLoneSurrogate(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0xd800 || c > 0xdfff) continue;
    if (c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
    }
    return true;
  }
  return false;
}

/**
 * Keys distinct in JS may still encode the same ('a' and Buffer.from('a'), 1 and 1n, two equal
 * Tuples): when a Map has a key that is not a number or an ASCII string (distinct ones of those
 * never encode alike), the encoded bytes of its keys are compared once it is written, and the
 * first key written as an earlier one is refused.
 */
function checkMapKeys(i: number): void {
  const base = fAux[i];
  const table = new KeyRanges(kn - base);
  for (let j = base; j < kn; j++) {
    if (!table.add(kStart[j], kEnd[j])) {
      fNext[i] = 2 * (j - base) + 1; // the path names this key
      fail(REPEATED_MAP_KEY);
    }
  }
}

/**
 * Compares the UTF-8 of all the keys of the object open at stack entry `i` (once, when the first
 * key with a lone surrogate is met) and fails at the first key written as the same bytes as an earlier one.
 */
function checkObjectKeys(i: number): void {
  fAux[i] = 1;
  const keys = fKeys[i] as string[];
  const written = new Set<string>();
  for (let j = 0; j < keys.length; j++) {
    const w = Buffer.from(keys[j], 'utf8').toString('latin1');
    if (written.has(w)) {
      fNext[i] = j + 1; // the path names this key
      fail(REPEATED_OBJECT_KEY);
    }
    written.add(w);
  }
}

function fail(message: string): never {
  throw new EncodeError(message, pathOf());
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  const t = typeof v;
  if (t === 'function') return 'a function';
  if (t === 'symbol') return `a symbol (${String(v)}) not made by Symbol.for`;
  if (t !== 'object') return `a ${t}`;
  if (v instanceof ArrayBuffer) return 'an ArrayBuffer (wrap it in a Buffer)';
  if (ArrayBuffer.isView(v)) return `a ${(v as object).constructor?.name ?? 'typed array'} (only Buffer and Uint8Array encode, as binaries)`;
  const name = (v as object).constructor?.name;
  return name ? `an instance of ${name}` : 'an object with a foreign prototype';
}

// ---- primitives ----

function writeU32(v: number): void {
  buf[pos] = v >>> 24;
  buf[pos + 1] = v >>> 16;
  buf[pos + 2] = v >>> 8;
  buf[pos + 3] = v;
  pos += 4;
}

function writeFloat(x: number): void {
  if (pos + 9 > buf.length) grow(9);
  buf[pos++] = T.NEW_FLOAT_EXT;
  f64[0] = x;
  if (littleEndian) {
    for (let i = 7; i >= 0; i--) buf[pos++] = f64bytes[i];
  } else {
    for (let i = 0; i < 8; i++) buf[pos++] = f64bytes[i];
  }
}

/** A safe integer (or -0) by value: SMALL_INTEGER, INTEGER or SMALL_BIG. */
function writeInt(v: number): void {
  if (pos + 12 > buf.length) grow(12);
  if (v >= 0 && v <= 255) {
    buf[pos] = T.SMALL_INTEGER_EXT;
    buf[pos + 1] = v;
    pos += 2;
  } else if (v >= -2147483648 && v <= 2147483647) {
    buf[pos++] = T.INTEGER_EXT;
    writeU32(v >>> 0);
  } else {
    buf[pos++] = T.SMALL_BIG_EXT;
    const at = pos++;
    buf[pos++] = v < 0 ? 1 : 0;
    let m = v < 0 ? -v : v;
    let n = 0;
    while (m > 0) {
      const b = m % 256;
      buf[pos++] = b;
      m = (m - b) / 256;
      n++;
    }
    buf[at] = n;
  }
}

function writeBigInt(v: bigint): void {
  if (v >= -2147483648n && v <= 2147483647n) {
    writeInt(Number(v));
    return;
  }
  const neg = v < 0n;
  let hex = (neg ? -v : v).toString(16);
  if (hex.length & 1) hex = '0' + hex;
  const n = hex.length >>> 1;
  if (pos + n + 6 > buf.length) grow(n + 6);
  if (n <= 255) {
    buf[pos++] = T.SMALL_BIG_EXT;
    buf[pos++] = n;
  } else {
    buf[pos++] = T.LARGE_BIG_EXT;
    writeU32(n);
  }
  buf[pos++] = neg ? 1 : 0;
  // little-endian magnitude: the last hex pair is the least significant byte
  for (let i = hex.length - 2; i >= 0; i -= 2) buf[pos++] = parseInt(hex.substr(i, 2), 16);
}

/** BINARY_EXT holding the UTF-8 of `s`. */
function writeString(s: string): void {
  const len = s.length;
  if (len < 128) {
    if (pos + 5 + len * 3 > buf.length) grow(5 + len * 3);
    const start = pos + 5;
    let p = start;
    for (let i = 0; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) {
        p = -1;
        break;
      }
      buf[p++] = c;
    }
    const n = p < 0 ? buf.utf8Write(s, start) : len;
    buf[pos] = T.BINARY_EXT;
    pos++;
    writeU32(n);
    pos += n;
    return;
  }
  let n: number;
  if (len <= 16384) {
    if (pos + 5 + len * 3 > buf.length) grow(5 + len * 3);
    n = buf.utf8Write(s, pos + 5);
  } else {
    // Large: try with room for one byte per unit (right for ASCII) rather than pay for
    // Buffer.byteLength, which costs more than the write itself. utf8Write stops at a character
    // boundary when it runs out of room, so a write that ends 4 or more bytes short of the room
    // was complete.
    if (pos + 5 + len + 8 > buf.length) grow(5 + len + 8);
    const room = buf.length - pos - 5;
    n = buf.utf8Write(s, pos + 5, room);
    if (n > room - 4) {
      const exact = Buffer.byteLength(s, 'utf8');
      if (pos + 5 + exact > buf.length) grow(5 + exact);
      n = buf.utf8Write(s, pos + 5);
    }
  }
  buf[pos++] = T.BINARY_EXT;
  writeU32(n);
  pos += n;
}

function writeBytes(b: Uint8Array, tag: number): void {
  const n = b.length;
  if (pos + 5 + n > buf.length) grow(5 + n);
  buf[pos++] = tag;
  writeU32(n);
  buf.set(b, pos);
  pos += n;
}

function writeAtomName(name: unknown): void {
  if (typeof name !== 'string') fail('atom name must be a string');
  const len = name.length;
  if (len <= 255) {
    if (pos + 2 + len * 3 > buf.length) grow(2 + len * 3);
    const start = pos + 2;
    let p = start;
    for (let i = 0; i < len; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0x80) {
        p = -1;
        break;
      }
      buf[p++] = c;
    }
    if (p >= 0) {
      buf[pos] = T.SMALL_ATOM_UTF8_EXT;
      buf[pos + 1] = len;
      pos = p;
      return;
    }
  } else {
    // More than 255 UTF-16 units can still be at most 255 code points (surrogate pairs).
    let cps = 0;
    for (let i = 0; i < len; i++) {
      const c = name.charCodeAt(i);
      if (c >= 0xd800 && c <= 0xdbff && i + 1 < len) {
        const d = name.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) i++;
      }
      cps++;
    }
    if (cps > 255) fail(`atom name has ${cps} characters; Erlang allows at most 255`);
  }
  const n = Buffer.byteLength(name, 'utf8');
  if (pos + 3 + n > buf.length) grow(3 + n);
  if (n <= 255) {
    buf[pos++] = T.SMALL_ATOM_UTF8_EXT;
    buf[pos++] = n;
  } else {
    buf[pos++] = T.ATOM_UTF8_EXT;
    buf[pos++] = n >>> 8;
    buf[pos++] = n & 0xff;
  }
  pos += buf.utf8Write(name, pos);
}

function writeNodeAtom(node: unknown, what: string): void {
  if (!(node instanceof Atom)) fail(`${what}.node must be an Atom`);
  writeAtomName(node.name);
}

function isU32(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;
}

function checkU32(v: unknown, what: string): number {
  if (!isU32(v)) fail(`${what} must be an integer from 0 to 4294967295, got ${String(v)}`);
  return v;
}

// ---- terms ----

/** Opens a container; `counted` ones count towards maxDepth (checked before anything is written). */
function push(kind: number, src: unknown, count: number, counted: boolean): void {
  fKind[sp] = kind;
  fSrc[sp] = src;
  fNext[sp] = 0;
  fCount[sp] = count;
  fCounted[sp] = counted;
  sp++;
  if (counted) depth++;
}

function checkDepth(): void {
  if (depth >= maxDepth) fail(`nesting deeper than ${maxDepth} (a cycle?)`);
}

/** Walks `root`, writing every value; containers are opened on the stack and filled in order. */
function encodeRoot(root: unknown): void {
  let v = root;
  for (;;) {
    encodeValue(v);
    // The next value to write: the next element of the innermost open container.
    for (;;) {
      if (sp === 0) return;
      const i = sp - 1;
      const k = fNext[i];
      if (k < fCount[i]) {
        const kind = fKind[i];
        if (kind === F_MAP) {
          if ((k & 1) === 0) {
            fKeyAt[i] = pos;
          } else {
            const at = fKeyAt[i];
            kStart[kn] = at;
            kEnd[kn++] = pos;
            if (!fMixed[i]) {
              const key = (fSrc[i] as unknown[])[k - 1];
              if (typeof key !== 'number' && (typeof key !== 'string' || pos - at !== key.length + 5)) fMixed[i] = true;
            }
          }
        }
        fNext[i] = k + 1;
        if (kind === F_OBJECT) {
          const key = (fKeys[i] as string[])[k];
          const at = pos;
          writeString(key);
          // Only a key with a lone surrogate can be written as the bytes of another key: its UTF-8
          // is longer than its UTF-16 length, so ASCII keys (the common case) cost no more.
          if (pos - at !== key.length + 5 && fAux[i] === 0 && hasLoneSurrogate(key)) checkObjectKeys(i);
          v = (fSrc[i] as Record<string, unknown>)[key];
        } else {
          v = (fSrc[i] as unknown[])[k];
        }
        break;
      }
      const kind = fKind[i];
      if (kind === F_IMPROPER) {
        fKind[i] = F_TAIL;
        v = fTail[i];
        break;
      }
      if (kind === F_LIST) {
        if (pos + 1 > buf.length) grow(1);
        buf[pos++] = T.NIL_EXT;
      } else if (kind === F_MAP) {
        if (fMixed[i] && fCount[i] >= 4) checkMapKeys(i);
        kn = fAux[i];
      }
      if (fCounted[i]) depth--;
      fSrc[i] = fKeys[i] = fTail[i] = null;
      sp--;
    }
  }
}

function encodeValue(v: unknown): void {
  switch (typeof v) {
    case 'string':
      writeString(v);
      return;
    case 'number':
      if (Number.isInteger(v)) {
        if (v <= Number.MAX_SAFE_INTEGER && v >= -Number.MAX_SAFE_INTEGER) writeInt(v);
        else fail(`unsafe integer ${v}; use a bigint`);
      } else if (v === v && v !== Infinity && v !== -Infinity) {
        writeFloat(v);
      } else {
        fail(`${v} has no Erlang counterpart`);
      }
      return;
    case 'object':
      if (v === null) writeAtomName('undefined');
      else encodeObject(v);
      return;
    case 'boolean':
      writeAtomName(v ? 'true' : 'false');
      return;
    case 'undefined':
      writeAtomName('undefined');
      return;
    case 'bigint':
      writeBigInt(v);
      return;
    case 'symbol': {
      const name = Symbol.keyFor(v);
      if (name === undefined) fail(`cannot encode ${describe(v)}`);
      writeAtomName(name);
      return;
    }
    default:
      fail(`cannot encode ${describe(v)}`);
  }
}

function encodeObject(v: object): void {
  if (Array.isArray(v)) {
    const n = v.length;
    if (n === 0) {
      // [] is NIL_EXT: no container, so not counted
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T.NIL_EXT;
      return;
    }
    checkDepth();
    writeHeader32(T.LIST_EXT, n);
    push(F_LIST, v, n, true);
    return;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto === ObjectPrototype || proto === null) {
    checkDepth();
    const keys = Object.keys(v);
    writeHeader32(T.MAP_EXT, keys.length);
    if (keys.length !== 0) {
      push(F_OBJECT, v, keys.length, true);
      fKeys[sp - 1] = keys;
      fAux[sp - 1] = 0;
    }
    return;
  }
  const kind = (proto as { [TERM_KIND]?: Kind })[TERM_KIND];
  if (kind !== undefined) {
    encodeKind(v, kind);
  } else if (v instanceof Uint8Array) {
    writeBytes(v, T.BINARY_EXT);
  } else if (v instanceof Map) {
    checkDepth();
    const flat: unknown[] = [];
    for (const [key, value] of v) flat.push(key, value);
    writeHeader32(T.MAP_EXT, flat.length >>> 1);
    if (flat.length !== 0) {
      push(F_MAP, flat, flat.length, true);
      fAux[sp - 1] = kn;
      fMixed[sp - 1] = false;
    }
  } else {
    fail(`cannot encode ${describe(v)}`);
  }
}

function writeHeader32(tag: number, n: number): void {
  if (pos + 5 > buf.length) grow(5);
  buf[pos++] = tag;
  writeU32(n);
}

function encodeCharlist(value: unknown): void {
  if (typeof value !== 'string') fail('Charlist.value must be a string');
  const len = value.length;
  if (len === 0) {
    if (pos + 1 > buf.length) grow(1);
    buf[pos++] = T.NIL_EXT;
    return;
  }
  let bytes = len <= 65535;
  for (let i = 0; bytes && i < len; i++) if (value.charCodeAt(i) > 255) bytes = false;
  if (bytes) {
    if (pos + 3 + len > buf.length) grow(3 + len);
    buf[pos++] = T.STRING_EXT;
    buf[pos++] = len >>> 8;
    buf[pos++] = len & 0xff;
    for (let i = 0; i < len; i++) buf[pos++] = value.charCodeAt(i);
    return;
  }
  // LIST_EXT of the code points, each as an integer, counted first (surrogate pairs are one).
  let n = 0;
  for (let i = 0; i < len; i++) {
    const c = value.codePointAt(i)!;
    if (c > 0xffff) i++;
    n++;
  }
  writeHeader32(T.LIST_EXT, n);
  for (let i = 0; i < len; i++) {
    const c = value.codePointAt(i)!;
    if (c > 0xffff) i++;
    writeInt(c);
  }
  if (pos + 1 > buf.length) grow(1);
  buf[pos++] = T.NIL_EXT;
}

function encodeKind(v: object, kind: Kind): void {
  switch (kind) {
    case Kind.Atom:
      writeAtomName((v as Atom).name);
      return;
    case Kind.Tuple: {
      const elements = (v as { elements: unknown }).elements;
      if (!Array.isArray(elements)) fail('Tuple.elements must be an array');
      checkDepth();
      const n = elements.length;
      if (n <= 255) {
        if (pos + 2 > buf.length) grow(2);
        buf[pos++] = T.SMALL_TUPLE_EXT;
        buf[pos++] = n;
      } else {
        writeHeader32(T.LARGE_TUPLE_EXT, n);
      }
      if (n !== 0) push(F_TUPLE, elements, n, true);
      return;
    }
    case Kind.Float: {
      const x = (v as { value: unknown }).value;
      if (typeof x !== 'number' || x !== x || x === Infinity || x === -Infinity) {
        fail(`float(${String(x)}) has no Erlang counterpart`);
      }
      writeFloat(x);
      return;
    }
    case Kind.Charlist:
      encodeCharlist((v as { value: unknown }).value);
      return;
    case Kind.ImproperList: {
      const { elements, tail } = v as { elements: unknown; tail: unknown };
      if (!Array.isArray(elements)) fail('ImproperList.elements must be an array');
      const n = elements.length;
      if (n === 0) {
        // [ | Tail] is just Tail: no container of its own (the frame only names the path).
        push(F_IMPROPER, elements, 0, false);
        fTail[sp - 1] = tail;
        return;
      }
      checkDepth();
      writeHeader32(T.LIST_EXT, n);
      if (Array.isArray(tail) && tail.length === 0) {
        push(F_LIST, elements, n, true);
      } else {
        push(F_IMPROPER, elements, n, true);
        fTail[sp - 1] = tail;
      }
      return;
    }
    case Kind.BitBinary: {
      const { buffer, bits } = v as { buffer: unknown; bits: unknown };
      if (!(buffer instanceof Uint8Array) || buffer.length === 0) fail('BitBinary.buffer must be a non-empty Buffer');
      if (typeof bits !== 'number' || !Number.isInteger(bits) || bits < 1 || bits > 8) {
        fail(`BitBinary.bits must be an integer from 1 to 8, got ${String(bits)}`);
      }
      if (bits === 8) {
        writeBytes(buffer, T.BINARY_EXT);
        return;
      }
      const n = buffer.length;
      if (pos + 6 + n > buf.length) grow(6 + n);
      buf[pos++] = T.BIT_BINARY_EXT;
      writeU32(n);
      buf[pos++] = bits;
      buf.set(buffer, pos);
      pos += n;
      return;
    }
    case Kind.Pid: {
      const p = v as { node: unknown; id: unknown; serial: unknown; creation: unknown };
      const id = checkU32(p.id, 'Pid.id');
      const serial = checkU32(p.serial, 'Pid.serial');
      const creation = checkU32(p.creation, 'Pid.creation');
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T.NEW_PID_EXT;
      writeNodeAtom(p.node, 'Pid');
      if (pos + 12 > buf.length) grow(12);
      writeU32(id);
      writeU32(serial);
      writeU32(creation);
      return;
    }
    case Kind.Ref: {
      const r = v as { node: unknown; creation: unknown; ids: unknown };
      const creation = checkU32(r.creation, 'Ref.creation');
      const ids = r.ids;
      if (!Array.isArray(ids) || ids.length < 1 || ids.length > 5) fail('Ref.ids must be an array of 1 to 5 integers');
      for (let i = 0; i < ids.length; i++) checkU32(ids[i], `Ref.ids[${i}]`);
      if (pos + 3 > buf.length) grow(3);
      buf[pos++] = T.NEWER_REFERENCE_EXT;
      buf[pos++] = 0;
      buf[pos++] = ids.length;
      writeNodeAtom(r.node, 'Ref');
      if (pos + 4 + 4 * ids.length > buf.length) grow(4 + 4 * ids.length);
      writeU32(creation);
      for (let i = 0; i < ids.length; i++) writeU32(ids[i] as number);
      return;
    }
    case Kind.Port: {
      const p = v as { node: unknown; id: unknown; creation: unknown };
      const creation = checkU32(p.creation, 'Port.creation');
      let id = p.id;
      if (typeof id === 'number') {
        if (!Number.isSafeInteger(id) || id < 0) fail(`Port.id must be a non-negative integer, got ${id}`);
      } else if (typeof id === 'bigint') {
        if (id < 0n || id > 0xffffffffffffffffn) fail(`Port.id must be from 0 to 2^64-1, got ${id}`);
        if (id <= 0xffffffffn) id = Number(id);
      } else {
        fail('Port.id must be a number or a bigint');
      }
      if (pos + 1 > buf.length) grow(1);
      const small = typeof id === 'number' && id <= 0xffffffff;
      buf[pos++] = small ? T.NEW_PORT_EXT : T.V4_PORT_EXT;
      writeNodeAtom(p.node, 'Port');
      if (pos + 12 > buf.length) grow(12);
      if (small) {
        writeU32(id as number);
      } else {
        const big = BigInt(id as number | bigint);
        writeU32(Number(big >> 32n));
        writeU32(Number(big & 0xffffffffn));
      }
      writeU32(creation);
      return;
    }
    case Kind.Fun: {
      const bytes = (v as { bytes: unknown }).bytes;
      if (!(bytes instanceof Uint8Array) || bytes.length < 2 || bytes[0] !== T.NEW_FUN_EXT) {
        fail('Fun.bytes must hold a NEW_FUN_EXT encoding (as decoded)');
      }
      if (pos + bytes.length > buf.length) grow(bytes.length);
      buf.set(bytes, pos);
      pos += bytes.length;
      return;
    }
    case Kind.Export: {
      const e = v as { module: unknown; function: unknown; arity: unknown };
      if (!(e.module instanceof Atom)) fail('Export.module must be an Atom');
      if (!(e.function instanceof Atom)) fail('Export.function must be an Atom');
      const arity = e.arity;
      if (typeof arity !== 'number' || !Number.isInteger(arity) || arity < 0 || arity > 255) {
        fail(`Export.arity must be an integer from 0 to 255, got ${String(arity)}`);
      }
      if (pos + 1 > buf.length) grow(1);
      buf[pos++] = T.EXPORT_EXT;
      writeAtomName(e.module.name);
      writeAtomName(e.function.name);
      if (pos + 2 > buf.length) grow(2);
      buf[pos++] = T.SMALL_INTEGER_EXT;
      buf[pos++] = arity;
      return;
    }
    default:
      fail(`cannot encode ${describe(v)}`);
  }
}

// ---- entry points ----

function freshScratch(): FastBuffer {
  return Buffer.allocUnsafeSlow(SCRATCH_SIZE) as FastBuffer;
}

/** Encodes `term` (after the version byte when asked) and gives back the finished bytes. */
function run(term: unknown, options: EncodeOptions | undefined, version: boolean): Buffer {
  const o = resolveEncodeOptions(options);
  if (busy) return runNested(term, o.maxDepth, o.compressLevel, version);
  busy = true;
  try {
    return runFresh(term, o.maxDepth, o.compressLevel, version);
  } finally {
    busy = false;
    // nor keep the key ranges of a huge Map
    if (kStart.length > 65536) {
      kStart = [];
      kEnd = [];
    }
  }
}

/**
 * Re-entry: a getter on the value being encoded that itself encodes. The inner call runs on
 * fresh state and the outer state is put back afterwards.
 */
function runNested(term: unknown, depthLimit: number, level: number, version: boolean): Buffer {
  const saved = { buf, pos, maxDepth, fKind, fSrc, fKeys, fNext, fCount, fTail, fCounted, fAux, fKeyAt, fMixed, kStart, kEnd, kn, sp, depth };
  buf = Buffer.allocUnsafeSlow(1024) as FastBuffer;
  fKind = [];
  fSrc = [];
  fKeys = [];
  fNext = [];
  fCount = [];
  fTail = [];
  fCounted = [];
  fAux = [];
  fKeyAt = [];
  fMixed = [];
  kStart = [];
  kEnd = [];
  try {
    return runFresh(term, depthLimit, level, version);
  } finally {
    ({ buf, pos, maxDepth, fKind, fSrc, fKeys, fNext, fCount, fTail, fCounted, fAux, fKeyAt, fMixed, kStart, kEnd, kn, sp, depth } = saved);
  }
}

function runFresh(term: unknown, depthLimit: number, level: number, version: boolean): Buffer {
  maxDepth = depthLimit;
  pos = 0;
  sp = 0;
  kn = 0;
  depth = 0;
  if (version) buf[pos++] = T.VERSION;
  const start = pos;
  try {
    encodeRoot(term);
  } catch (e) {
    // drop references to the value, and a scratch buffer grown too big to keep
    for (let j = 0; j < sp; j++) fSrc[j] = fKeys[j] = fTail[j] = null;
    sp = 0;
    kn = 0;
    if (buf.length > SCRATCH_KEEP) buf = freshScratch();
    throw e;
  }
  if (level >= 0) {
    const plainLength = pos - start;
    const z = deflateSync(buf.subarray(start, pos), { level });
    // As term_to_binary does: compressed only when that is actually shorter.
    if (z.length + 5 < plainLength) {
      const out = Buffer.allocUnsafe(start + 5 + z.length);
      if (version) out[0] = T.VERSION;
      out[start] = T.COMPRESSED;
      out.writeUInt32BE(plainLength, start + 1);
      z.copy(out, start + 5);
      if (buf.length > SCRATCH_KEEP) buf = freshScratch();
      return out;
    }
  }
  return finish();
}

/** The written bytes as a Buffer of their own; a big scratch buffer is handed over instead of copied. */
function finish(): Buffer {
  if (buf.length > SCRATCH_KEEP) {
    let out: Buffer;
    if (pos >= buf.length >>> 1) {
      out = pos === buf.length ? buf : buf.subarray(0, pos);
    } else {
      out = Buffer.allocUnsafe(pos);
      buf.copy(out, 0, 0, pos);
    }
    buf = freshScratch();
    return out;
  }
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return out;
}

/**
 * Erlang's `term_to_binary`: the external term format of `term`, starting with the version byte
 * 131. Throws EncodeError (with the path of the offending value) for values with no Erlang
 * counterpart, and ConfigError for bad options.
 */
export function termToBinary(term: Term, options?: EncodeOptions): Buffer {
  return run(term, options, true);
}

/**
 * The encoding of `term` without the version byte: what mypeb's `peb_encode` gives and what goes
 * inside a distribution message. With `compressed`, the result starts with tag 80 (when shorter).
 */
export function encodeTerm(term: Term, options?: EncodeOptions): Buffer {
  return run(term, options, false);
}
