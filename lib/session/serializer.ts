/**
 * Session data <-> the Erlang term the session server stores.
 *
 * The typed serializer stores a session as an Erlang map with binary keys, so Erlang code reads a
 * field with `maps:get(<<"visits">>, Data)`, and keeps the JS types that JSON-based stores lose.
 * The stored shape, value by value:
 *
 * | JS                                   | Erlang                                              |
 * | ------------------------------------ | --------------------------------------------------- |
 * | string                               | binary (UTF-8)                                      |
 * | safe integer                         | integer                                             |
 * | other finite number (and -0)         | float                                               |
 * | NaN, Infinity, -Infinity             | `{'$number', <<"NaN">> \| <<"Infinity">> \| <<"-Infinity">>}` |
 * | boolean                              | `true` / `false`                                    |
 * | null                                 | `undefined`                                         |
 * | undefined (in an array, Map or Set)  | `{'$undefined'}` (an array's hole reads back as undefined) |
 * | an object property set to undefined  | left out, as JSON does (reads back as undefined; only `in` tells) |
 * | array                                | list                                                |
 * | plain object                         | map with binary keys                                |
 * | Date                                 | `{'$date', UnixMs}` (`{'$date', undefined}` for an invalid date) |
 * | Map                                  | `{'$map', [{Key, Value}]}` (in insertion order)     |
 * | Set                                  | `{'$set', [Value]}` (in insertion order)            |
 * | bigint                               | `{'$bigint', Integer}`                              |
 * | Buffer                               | `{'$buffer', Binary}`                               |
 * | other Uint8Array                     | `{'$uint8array', Binary}`                           |
 * | erl-peb terms (Atom, Tuple, Pid, ...) | themselves                                         |
 * | other object with `toJSON()`         | what `toJSON()` returns, stored as above (as JSON does; express-session's Cookie) |
 * | other class instance                 | its own enumerable properties, as a map (it comes back a plain object, as with JSON) |
 * | function, symbol                     | refused: EncodeError naming where it is             |
 * | object keys equal once in UTF-8 (lone surrogates, written as U+FFFD) | refused: EncodeError naming where |
 *
 * The tags are a fixed set of atoms: nothing in the data ever becomes an atom. Reading, a tuple whose
 * first element is one of these tags is the tagged value; any other Erlang term keeps its erl-peb
 * form (so a value Erlang code put in a session survives a read and a write from Node). A binary
 * that is not UTF-8 reads as a Buffer; an Erlang map whose keys are not all binaries reads as a JS
 * Map. Reading works with every decode option of the connection (binaries as Buffers or strings,
 * maps as Maps or objects).
 */
import { isUtf8 } from 'node:buffer';
import { inspect } from 'node:util';
import { EncodeError } from '../errors';
import { Atom, atom, Float, float, Kind, TERM_KIND, Tuple, type Term } from '../terms';

export interface SessionSerializer {
  /** JS session data -> the Erlang term stored (default: a map with binary keys Erlang code can read). */
  serialize(data: unknown): Term;
  deserialize(term: Term): unknown;
}

const T_UNDEFINED = atom('$undefined');
const T_NUMBER = atom('$number');
const T_DATE = atom('$date');
const T_MAP = atom('$map');
const T_SET = atom('$set');
const T_BIGINT = atom('$bigint');
const T_BUFFER = atom('$buffer');
const T_UINT8ARRAY = atom('$uint8array');

/** Same depth bound as the codec: deeper (or cyclic) data is an EncodeError, never a stack overflow. */
const MAX_DEPTH = 1024;

const UNDEFINED_TERM = new Tuple([T_UNDEFINED]);

/**
 * Where the walk is, kept as segments (an object key, an array index, or a ready-made piece) and
 * made into a path such as `$.cart[3].price` only for an error.
 */
class Where {
  readonly segments: Array<string | number | { raw: string }> = [];
  path(): string {
    let p = '$';
    for (const s of this.segments) {
      if (typeof s === 'number') p += `[${s}]`;
      else if (typeof s === 'string') p += /^[A-Za-z_$][\w$]*$/.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`;
      else p += s.raw;
    }
    return p;
  }
}

function serializeNumber(n: number): Term {
  if (Number.isSafeInteger(n)) return Object.is(n, -0) ? float(-0) : n;
  if (Number.isFinite(n)) return Number.isInteger(n) ? float(n) : n;
  return new Tuple([T_NUMBER, Number.isNaN(n) ? 'NaN' : n > 0 ? 'Infinity' : '-Infinity']);
}

/** A UTF-16 surrogate, paired or not: the quick test before the exact one. */
const SURROGATE = /[\uD800-\uDFFF]/;

/** The key as its UTF-8 binary reads back: a lone surrogate becomes U+FFFD. */
function utf8Key(k: string): string {
  return SURROGATE.test(k) ? Buffer.from(k, 'utf8').toString('utf8') : k;
}

function serializeObject(o: object, at: Where, depth: number): Term {
  const out: Record<string, Term> = {};
  const segments = at.segments;
  let lone = false;
  for (const k of Object.keys(o)) {
    const value = (o as Record<string, unknown>)[k];
    // Left out, as JSON does: Erlang code then sees a key only when it has a value (an
    // express-session cookie has several undefined fields).
    if (value === undefined) continue;
    segments.push(k);
    const v = serializeValue(value, at, depth);
    segments.pop();
    // An own '__proto__' key must stay a key, not set the prototype.
    if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
    else out[k] = v;
    if (!lone && utf8Key(k) !== k) lone = true;
  }
  // Keys become UTF-8 binaries, where every lone surrogate is U+FFFD: two keys may then be the
  // same binary, a map Erlang refuses as corrupt, and a node drops the whole connection that
  // carried it (every call in flight on it fails). Such data (JSON from a client can hold any
  // surrogate) is refused here instead.
  if (lone) {
    const seen = new Set<string>();
    for (const k of Object.keys(out)) {
      const key = utf8Key(k);
      if (seen.has(key)) {
        segments.push(k);
        const path = at.path();
        segments.pop();
        throw new EncodeError('two keys of this object are the same once written as UTF-8 (a lone surrogate is written as U+FFFD), and an Erlang map cannot hold both', path);
      }
      seen.add(key);
    }
  }
  return out;
}

function serializeValue(v: unknown, at: Where, depth: number): Term {
  switch (typeof v) {
    case 'string':
    case 'boolean':
      return v;
    case 'number':
      return serializeNumber(v);
    case 'undefined':
      return UNDEFINED_TERM;
    case 'bigint':
      return new Tuple([T_BIGINT, v]);
    case 'function':
    case 'symbol':
      throw new EncodeError(`a ${typeof v} cannot be kept in a session (${inspect(v)})`, at.path());
  }
  if (v === null) return null;
  if (depth >= MAX_DEPTH) throw new EncodeError(`nesting deeper than ${MAX_DEPTH} (a cycle?)`, at.path());
  const d = depth + 1;
  const o = v as object;
  const segments = at.segments;
  if (Array.isArray(o)) {
    const out = new Array<Term>(o.length);
    // A for loop (not map) so that holes become undefined values.
    for (let i = 0; i < o.length; i++) {
      segments.push(i);
      out[i] = serializeValue(o[i], at, d);
      segments.pop();
    }
    return out;
  }
  const proto = Object.getPrototypeOf(o) as object | null;
  if (proto === Object.prototype || proto === null) return serializeObject(o, at, d);
  if (o instanceof Date) {
    const ms = o.getTime();
    return new Tuple([T_DATE, Number.isNaN(ms) ? null : ms]);
  }
  if (Buffer.isBuffer(o)) return new Tuple([T_BUFFER, o]);
  if (o instanceof Uint8Array) return new Tuple([T_UINT8ARRAY, o]);
  if (o instanceof Map) {
    const pairs: Term[] = [];
    let i = 0;
    for (const [k, val] of o) {
      segments.push({ raw: `.keys[${i}]` });
      const key = serializeValue(k, at, d);
      segments[segments.length - 1] = { raw: `.values[${i}]` };
      pairs.push(new Tuple([key, serializeValue(val, at, d)]));
      segments.pop();
      i++;
    }
    return new Tuple([T_MAP, pairs]);
  }
  if (o instanceof Set) {
    const items: Term[] = [];
    let i = 0;
    for (const item of o) {
      segments.push({ raw: `.values[${i++}]` });
      items.push(serializeValue(item, at, d));
      segments.pop();
    }
    return new Tuple([T_SET, items]);
  }
  if ((o as { [TERM_KIND]?: Kind })[TERM_KIND] !== undefined) return o as Term;
  const toJSON = (o as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === 'function') return serializeValue(toJSON.call(o, ''), at, d);
  return serializeObject(o, at, d);
}

function text(b: Buffer): string | Buffer {
  return isUtf8(b) ? b.toString('utf8') : b;
}

function bytes(v: unknown): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  // With the connection's binaries: 'string' option a binary that is UTF-8 arrives as a string.
  if (typeof v === 'string') return Buffer.from(v, 'utf8');
  return undefined;
}

function setKey(out: Record<string, unknown>, k: string, v: unknown): void {
  if (k === '__proto__') Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  else out[k] = v;
}

function tagged(t: Tuple): unknown {
  const e = t.elements;
  const tag = e[0];
  if (!(tag instanceof Atom) || !tag.name.startsWith('$')) return NOT_TAGGED;
  switch (tag) {
    case T_UNDEFINED:
      if (e.length === 1) return undefined;
      break;
    case T_DATE:
      if (e.length === 2 && (typeof e[1] === 'number' || e[1] instanceof Float || e[1] === null)) {
        return new Date(e[1] === null ? NaN : Number(e[1]));
      }
      break;
    case T_NUMBER: {
      const s = e.length === 2 ? bytes(e[1])?.toString('latin1') : undefined;
      if (s === 'NaN') return NaN;
      if (s === 'Infinity') return Infinity;
      if (s === '-Infinity') return -Infinity;
      break;
    }
    case T_BIGINT:
      if (e.length === 2 && (typeof e[1] === 'number' || typeof e[1] === 'bigint')) return BigInt(e[1]);
      break;
    case T_BUFFER: {
      const b = e.length === 2 ? bytes(e[1]) : undefined;
      if (b !== undefined) return b;
      break;
    }
    case T_UINT8ARRAY: {
      const b = e.length === 2 ? bytes(e[1]) : undefined;
      if (b !== undefined) return new Uint8Array(b.buffer, b.byteOffset, b.length);
      break;
    }
    case T_MAP:
      if (e.length === 2 && Array.isArray(e[1])) {
        const m = new Map<unknown, unknown>();
        for (const pair of e[1]) {
          if (!(pair instanceof Tuple) || pair.elements.length !== 2) return NOT_TAGGED;
          m.set(deserializeValue(pair.elements[0]), deserializeValue(pair.elements[1]));
        }
        return m;
      }
      break;
    case T_SET:
      if (e.length === 2 && Array.isArray(e[1])) return new Set(e[1].map(deserializeValue));
      break;
    default:
      return NOT_TAGGED;
  }
  return NOT_TAGGED;
}

const NOT_TAGGED: unique symbol = Symbol('not tagged');

function deserializeValue(t: unknown): unknown {
  switch (typeof t) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return t;
  }
  if (t === null) return null;
  if (Buffer.isBuffer(t)) return text(t);
  if (Array.isArray(t)) return t.map(deserializeValue);
  if (t instanceof Map) {
    let allBinary = true;
    for (const k of t.keys()) {
      if (typeof k !== 'string' && !(Buffer.isBuffer(k) && isUtf8(k))) {
        allBinary = false;
        break;
      }
    }
    if (allBinary) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of t) setKey(out, typeof k === 'string' ? k : (k as Buffer).toString('utf8'), deserializeValue(v));
      return out;
    }
    const m = new Map<unknown, unknown>();
    for (const [k, v] of t) m.set(deserializeValue(k), deserializeValue(v));
    return m;
  }
  const kind = (t as { [TERM_KIND]?: Kind })[TERM_KIND];
  if (kind === Kind.Float) return (t as Float).value;
  if (kind === Kind.Tuple) {
    const v = tagged(t as Tuple);
    if (v !== NOT_TAGGED) return v;
    return new Tuple((t as Tuple).elements.map(deserializeValue) as Term[]);
  }
  if (kind !== undefined) return t; // Atom, Pid, Ref, ...: as they are
  // A map decoded as a plain object (the connection's maps: 'object' option).
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(t as object)) setKey(out, k, deserializeValue((t as Record<string, unknown>)[k]));
  return out;
}

/** Keeps Date, Map, Set, bigint, Buffer, undefined and nested objects; see the file comment for the stored shape. */
export const typedSerializer: SessionSerializer = Object.freeze({
  serialize(data: unknown): Term {
    return serializeValue(data, new Where(), 0);
  },
  deserialize(term: Term): unknown {
    return deserializeValue(term);
  },
});
