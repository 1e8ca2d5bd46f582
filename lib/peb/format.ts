/**
 * mypeb's format-string encoder (`peb_encode` / `peb_vencode`) and the shape `peb_decode` gave,
 * so code written for the PHP extension ports line by line:
 *
 *   PHP:  peb_rpc('session_handler', 'read', peb_encode('[~s]', array(array($sid))), $link)
 *   JS:   peb.encode('[~s]', [[sid]])
 *
 * `formatToTerm` builds the term and knows nothing of bytes, so the native and the pure codec
 * share it; `encode`/`vencode` here write with the pure codec.
 *
 * The format language (mypeb's):
 * - `~a` atom (from a string, or an Atom), `~s` Erlang string (a list of bytes: the UTF-8 of a JS
 *   string, or the bytes of a Buffer), `~b` binary (from a string, as UTF-8, or a Buffer),
 *   `~i` integer (-2^31..2^31-1), `~l` long (-2^63..2^63-1, number or bigint), `~u` unsigned
 *   long (0..2^64-1), `~f` and `~d` float (always an Erlang float, also for integral values),
 *   `~p` a Pid, `~P` any term, written by erl-peb's term mapping.
 * - `[...]` a list, `{...}` a tuple, `[]` the empty list and `{}` the empty tuple; items are
 *   separated by a comma or white space.
 * - mypeb's nesting rule: each top-level item takes one element of `data`; a list or tuple item
 *   takes one element that is itself an array, whose elements its items take in order. So the
 *   format `[~s, ~i]` takes `data = [[string, integer]]`. An empty `[]` or `{}` needs no value:
 *   its element may be left out when `data` has run out there (mypeb accepted both
 *   `peb_encode("[]", array())` and `peb_encode("[]", array(array()))`), else it must be `[]`.
 * - A format holds exactly one top-level item. mypeb wrote several top-level items one after
 *   another into one buffer, which is not one term (Erlang cannot read it, and as rpc arguments
 *   it is garbage), so here that is an EncodeError: wrap the items in `[...]` for rpc arguments.
 *
 * Unlike mypeb, a value of the wrong type, a missing or extra value, an unknown directive or
 * unbalanced brackets is an EncodeError naming the format position; its `path` names the value in
 * `data` (`$[0][1]` is `data[0][1]`).
 */
import { isUtf8 } from 'node:buffer';
import { EncodeError } from '../errors';
import { encodeTerm, termToBinary } from '../codec/encode';
import { binaryToTerm, decodeTerm } from '../codec/decode';
import type { DecodeOptions } from '../codec/options';
import { Atom, Charlist, Float, ImproperList, Pid, Tuple, atom, type Term } from '../terms';

// ---- parsing ----

type Item =
  | { kind: 'directive'; ch: string; pos: number }
  | { kind: 'list' | 'tuple'; items: Item[]; pos: number };

const DIRECTIVES = 'asbiludfpP';
const CLOSE: Record<string, string> = { '[': ']', '{': '}' };

function isSpace(c: string): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

function where(format: string, pos: number): string {
  return `at position ${pos} of format ${JSON.stringify(format)}`;
}

function syntaxError(message: string, format: string, pos: number): EncodeError {
  return new EncodeError(`${message} ${where(format, pos)}`, '$');
}

/** Parsed formats, kept because formats are nearly always string literals used again and again. */
const parsed = new Map<string, Item>();
const PARSED_MAX = 256;
/** Brackets nested deeper than this are refused (the parser and the builder recurse). */
const FORMAT_MAX_DEPTH = 1024;

function parse(format: string): Item {
  const hit = parsed.get(format);
  if (hit !== undefined) return hit;
  let i = 0;
  let depth = 0;
  const n = format.length;
  const skip = (): void => {
    while (i < n && isSpace(format[i])) i++;
  };

  // Items up to `close` (or the end of the format when close is ''), separated by commas or white space.
  const items = (close: string, openPos: number): Item[] => {
    const out: Item[] = [];
    let comma = -1; // position of a comma not yet followed by an item
    for (;;) {
      skip();
      if (i >= n) {
        if (close !== '') {
          throw syntaxError(`unbalanced brackets: '${format[openPos]}' is never closed; it opens`, format, openPos);
        }
        if (comma >= 0) throw syntaxError("a ',' must be followed by an item", format, comma);
        return out;
      }
      const c = format[i];
      if (c === ']' || c === '}') {
        if (c !== close) {
          throw syntaxError(
            close === '' ? `unbalanced brackets: '${c}' closes nothing` : `unbalanced brackets: '${c}' does not close '${format[openPos]}' (position ${openPos})`,
            format,
            i,
          );
        }
        if (comma >= 0) throw syntaxError("a ',' must be followed by an item", format, comma);
        i++;
        return out;
      }
      if (c === ',') {
        if (out.length === 0 || comma >= 0) throw syntaxError("unexpected ','", format, i);
        comma = i++;
        continue;
      }
      comma = -1;
      out.push(item());
    }
  };

  const item = (): Item => {
    const pos = i;
    const c = format[i];
    if (c === '~') {
      const d = format[i + 1];
      if (d === undefined) throw syntaxError("'~' at the end of the format; a directive letter must follow", format, pos);
      if (!DIRECTIVES.includes(d)) {
        throw syntaxError(`unknown directive ~${d} (known: ${[...DIRECTIVES].map((x) => '~' + x).join(' ')})`, format, pos);
      }
      i += 2;
      return { kind: 'directive', ch: d, pos };
    }
    if (c === '[' || c === '{') {
      if (++depth > FORMAT_MAX_DEPTH) throw syntaxError(`brackets nested deeper than ${FORMAT_MAX_DEPTH}`, format, pos);
      i++;
      const inner = items(CLOSE[c], pos);
      depth--;
      return { kind: c === '[' ? 'list' : 'tuple', items: inner, pos };
    }
    throw syntaxError(`unexpected ${JSON.stringify(c)}; expected a directive (~a, ~s, ...), '[' or '{'`, format, pos);
  };

  const top = items('', 0);
  if (top.length === 0) throw syntaxError('empty format; it must describe one term', format, 0);
  if (top.length > 1) {
    throw syntaxError(
      `the format has ${top.length} top-level items; it must describe one term (wrap them in [...] for rpc arguments)`,
      format,
      top[1].pos,
    );
  }
  if (parsed.size >= PARSED_MAX) parsed.clear();
  parsed.set(format, top[0]);
  return top[0];
}

// ---- building the term ----

function show(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'undefined';
  switch (typeof v) {
    case 'string':
      return `a string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)})`;
    case 'number':
    case 'bigint':
    case 'boolean':
      return `a ${typeof v} (${String(v)}${typeof v === 'bigint' ? 'n' : ''})`;
    case 'object': {
      if (Array.isArray(v)) return `an array of ${v.length}`;
      if (Buffer.isBuffer(v)) return 'a Buffer';
      const name = (v as object).constructor?.name;
      if (!name) return 'an object';
      return `${/^[AEIOU]/.test(name) ? 'an' : 'a'} ${name}`;
    }
    default:
      return `a ${typeof v}`;
  }
}

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const UINT64_MAX = 2n ** 64n - 1n;

function integerIn(v: unknown, min: bigint, max: bigint): number | bigint | undefined {
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v)) return undefined;
    const b = BigInt(v);
    return b >= min && b <= max ? (v === 0 ? 0 : v) : undefined;
  }
  if (typeof v === 'bigint') {
    if (v < min || v > max) return undefined;
    return v >= -9007199254740991n && v <= 9007199254740991n ? Number(v) : v;
  }
  return undefined;
}

function codePoints(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

function directive(ch: string, v: unknown, format: string, pos: number, path: string): Term {
  const bad = (wants: string): never => {
    throw new EncodeError(`~${ch} ${where(format, pos)} wants ${wants}, got ${show(v)}`, path);
  };
  switch (ch) {
    case 'a':
      if (v instanceof Atom) return v;
      if (typeof v !== 'string') return bad('a string (the atom name)');
      if (codePoints(v) > 255) return bad('an atom name of at most 255 characters');
      return atom(v);
    case 's':
      // mypeb wrote the bytes of the PHP string as a list of bytes; for JS text those are its UTF-8.
      if (typeof v === 'string') return new Charlist(Buffer.from(v, 'utf8').toString('latin1'));
      if (v instanceof Uint8Array) return new Charlist(Buffer.from(v.buffer, v.byteOffset, v.length).toString('latin1'));
      return bad('a string or a Buffer');
    case 'b':
      if (typeof v === 'string' || v instanceof Uint8Array) return v;
      return bad('a string or a Buffer');
    case 'i': {
      const x = integerIn(v, BigInt(INT32_MIN), BigInt(INT32_MAX));
      return x === undefined ? bad(`an integer from ${INT32_MIN} to ${INT32_MAX}`) : x;
    }
    case 'l': {
      const x = integerIn(v, INT64_MIN, INT64_MAX);
      return x === undefined ? bad('an integer from -2^63 to 2^63-1 (a number or a bigint)') : x;
    }
    case 'u': {
      const x = integerIn(v, 0n, UINT64_MAX);
      return x === undefined ? bad('an integer from 0 to 2^64-1 (a number or a bigint)') : x;
    }
    case 'f':
    case 'd': {
      const x = v instanceof Float ? v.value : v;
      if (typeof x !== 'number' || !Number.isFinite(x)) return bad('a finite number');
      return new Float(x);
    }
    case 'p':
      if (v instanceof Pid) return v;
      return bad('a Pid');
    default:
      // ~P
      return v as Term;
  }
}

function build(item: Item, v: unknown, present: boolean, format: string, path: string): Term {
  if (item.kind === 'directive') {
    if (!present) {
      throw new EncodeError(`missing value for ~${item.ch} ${where(format, item.pos)}`, path);
    }
    return directive(item.ch, v, format, item.pos, path);
  }
  const what = item.kind === 'list' ? 'list' : 'tuple';
  if (!present && item.items.length === 0) return item.kind === 'list' ? [] : new Tuple([]);
  if (!present) {
    throw new EncodeError(`missing value for the ${what} ${where(format, item.pos)}: it takes an array of ${item.items.length}`, path);
  }
  if (!Array.isArray(v)) {
    const hint =
      path === '$[0]'
        ? ' (by mypeb\'s nesting rule the data for a format like "[~s, ~i]" is [[s, i]], as in PHP\'s peb_encode("[~s, ~i]", array(array($s, $i))))'
        : '';
    throw new EncodeError(`the ${what} ${where(format, item.pos)} takes an array of its ${item.items.length} values, got ${show(v)}${hint}`, path);
  }
  checkCount(item.items, v, format, item.pos, `the ${what}`, path);
  const out: Term[] = [];
  for (let i = 0; i < item.items.length; i++) {
    out.push(build(item.items[i], v[i], i < v.length, format, `${path}[${i}]`));
  }
  return item.kind === 'list' ? out : new Tuple(out);
}

/** Values beyond what the items take are an error (mypeb silently dropped them). */
function checkCount(items: Item[], v: unknown[], format: string, pos: number, what: string, path: string): void {
  if (v.length > items.length) {
    throw new EncodeError(
      `extra value: ${what} ${where(format, pos)} takes ${items.length} value${items.length === 1 ? '' : 's'}, data has ${v.length}`,
      `${path}[${items.length}]`,
    );
  }
}

/**
 * The term described by a mypeb format string and its data (see the module comment for the
 * language and the nesting rule). `~P` is erl-peb's reading of mypeb's "any term" directive: the
 * value is taken as is and written by erl-peb's term mapping, so it may be any Term.
 */
export function formatToTerm(format: string, data: unknown[]): Term {
  if (typeof format !== 'string') throw new EncodeError(`the format must be a string, got ${show(format)}`, '$');
  const item = parse(format);
  if (!Array.isArray(data)) {
    throw new EncodeError(`data must be an array (each top-level item takes one element), got ${show(data)}`, '$');
  }
  if (data.length > 1) {
    throw new EncodeError(
      `extra value: the format ${JSON.stringify(format)} takes one value (its one top-level item), data has ${data.length}`,
      '$[1]',
    );
  }
  return build(item, data[0], data.length > 0, format, '$[0]');
}

/**
 * Builds the term of a format and writes it with `write` (either codec's encoder). The term's
 * containers stand element for element for the arrays in `data`, so an EncodeError from the codec
 * (a `~P` value with no Erlang counterpart) is given the path of that value in `data`, like the
 * format's own errors: the term's `$.d` is `$[0].d`.
 */
export function encodeWith(write: (term: Term) => Buffer, format: string, data: unknown[]): Buffer {
  const term = formatToTerm(format, data);
  try {
    return write(term);
  } catch (e) {
    if (!(e instanceof EncodeError) || !e.path.startsWith('$')) throw e;
    const suffix = ` at ${e.path}`;
    const message = e.message.endsWith(suffix) ? e.message.slice(0, -suffix.length) : e.message;
    throw new EncodeError(message, `$[0]${e.path.slice(1)}`, { cause: e });
  }
}

/** mypeb's `peb_encode`: the term's encoding without the version byte (as rpc arguments are sent). */
export function encode(format: string, data: unknown[]): Buffer {
  return encodeWith(encodeTerm, format, data);
}

/** mypeb's `peb_vencode`: the term's encoding with the version byte 131 (`term_to_binary`). */
export function vencode(format: string, data: unknown[]): Buffer {
  return encodeWith(termToBinary, format, data);
}

// ---- decoding to mypeb's shape ----

/**
 * The decode options to use before toPebShape: byte lists (STRING_EXT) come as strings of one
 * character per byte, so they can be told apart from lists of numbers, as mypeb told them apart.
 */
export const PEB_DECODE_OPTIONS: Readonly<DecodeOptions> = Object.freeze({ strings: 'string' as const });

/** Bytes as text when they are valid UTF-8 (what a PHP string of UTF-8 reads as), else the Buffer. */
function bytesToShape(b: Buffer): string | Buffer {
  return isUtf8(b) ? b.toString('utf8') : b;
}

/** A string of one character per byte (a decoded STRING_EXT) in mypeb's shape. */
function byteStringToShape(s: string): string | Buffer {
  let wide = false;
  let ascii = true;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) {
      wide = true;
      break;
    }
    if (c >= 0x80) ascii = false;
  }
  if (wide || ascii) return s; // not a byte string, or bytes that read the same as text
  return bytesToShape(Buffer.from(s, 'latin1'));
}

/**
 * One decoded term in mypeb's shape (what one element of `peb_decode`'s result was in PHP):
 * - atoms -> their name as a string; `true`, `false` and `undefined` (decoded as true, false and
 *   null) -> 'true', 'false', 'undefined', as mypeb gave them;
 * - binaries and byte lists (STRING_EXT, decoded with PEB_DECODE_OPTIONS as one character per byte)
 *   -> a string: the UTF-8 text when the bytes are valid UTF-8, else a Buffer of the bytes
 *   (PHP strings held bytes; a JS string cannot, so bytes that are not text stay bytes);
 * - integers -> numbers (bigints past 2^53); floats -> numbers (also integral ones);
 * - tuples and lists -> arrays; an improper list -> its elements followed by its tail;
 * - maps (which mypeb predates) -> a plain object when every key becomes a string or a number,
 *   else a Map, with keys and values in this shape;
 * - pids, refs, ports, funs, exports and bitstrings -> unchanged (a Pid can be sent to again, as
 *   mypeb's pid resource could).
 */
export function toPebValue(term: Term): unknown {
  switch (typeof term) {
    case 'string':
      return byteStringToShape(term);
    case 'boolean':
      return term ? 'true' : 'false';
    case 'undefined':
      return 'undefined';
    case 'symbol':
      return Symbol.keyFor(term) ?? String(term);
    case 'object':
      break;
    default:
      return term;
  }
  if (term === null) return 'undefined';
  if (Array.isArray(term)) return term.map(toPebValue);
  if (term instanceof Uint8Array) return bytesToShape(Buffer.from(term.buffer, term.byteOffset, term.length));
  if (term instanceof Atom) return term.name;
  if (term instanceof Tuple) return term.elements.map(toPebValue);
  if (term instanceof Float) return term.value;
  if (term instanceof Charlist) return term.value;
  if (term instanceof ImproperList) return [...term.elements.map(toPebValue), toPebValue(term.tail)];
  if (term instanceof Map) return mapToShape([...term].map(([k, v]) => [toPebValue(k), toPebValue(v)]));
  const proto = Object.getPrototypeOf(term);
  if (proto === Object.prototype || proto === null) {
    return mapToShape(Object.keys(term).map((k) => [k, toPebValue((term as Record<string, Term>)[k])]));
  }
  return term;
}

function mapToShape(pairs: Array<[unknown, unknown]>): unknown {
  if (!pairs.every(([k]) => typeof k === 'string' || typeof k === 'number')) return new Map(pairs);
  const o: Record<string, unknown> = {};
  for (const [k, v] of pairs) {
    Object.defineProperty(o, String(k), { value: v, writable: true, enumerable: true, configurable: true });
  }
  return o;
}

/**
 * mypeb's decode shape of a whole term: `[toPebValue(term)]`, the term wrapped in an outer array
 * as `peb_decode` returned it (PHP code reads `$rs[0]`). `term` should be decoded with
 * PEB_DECODE_OPTIONS, as decode and vdecode do.
 */
export function toPebShape(term: Term): unknown[] {
  return [toPebValue(term)];
}

type PebDecodeOptions = Pick<DecodeOptions, 'maxDepth' | 'maxUncompressedSize'>;

/** mypeb's `peb_decode`: a term with no version byte (what `encode` writes), in mypeb's shape. */
export function decode(buf: Buffer | Uint8Array, options?: PebDecodeOptions): unknown[] {
  return toPebShape(decodeTerm(buf, { ...options, ...PEB_DECODE_OPTIONS }));
}

/** mypeb's `peb_vdecode`: a term with the version byte 131 (`term_to_binary`), in mypeb's shape. */
export function vdecode(buf: Buffer | Uint8Array, options?: PebDecodeOptions): unknown[] {
  return toPebShape(binaryToTerm(buf, { ...options, ...PEB_DECODE_OPTIONS }));
}
