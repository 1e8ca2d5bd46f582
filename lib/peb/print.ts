/**
 * `printTerm`: a term in Erlang's own syntax, as `io_lib:format("~p", [Term])` writes it, on one line
 * (Erlang breaks lines past 80 columns; this never does). Binaries and strings are shown as Latin-1
 * text when every byte/character is printable Latin-1, as `~p` (not `~tp`) does; map keys are
 * printed in Erlang's term order. Pids, references and ports print with node index 0, as local ones
 * do: the index of a remote node is known only inside that Erlang node.
 */
import { Atom, BitBinary, Charlist, Export, Float, Fun, ImproperList, Pid, Port, Ref, Tuple, type Term } from '../terms';
import { EncodeError } from '../errors';

const RESERVED = new Set(
  'after and andalso band begin bnot bor bsl bsr bxor case catch cond div end fun if let not of or orelse receive rem try when xor'.split(' '),
);

export function printTerm(term: Term): string {
  return print(term, 0);
}

function print(t: Term, depth: number): string {
  if (depth > 10_000) throw new EncodeError('nesting too deep to print', '$');
  switch (typeof t) {
    case 'number':
      return Number.isInteger(t) ? String(t === 0 ? 0 : t) : printFloat(t);
    case 'bigint':
      return t.toString();
    case 'boolean':
      return String(t);
    case 'undefined':
      return 'undefined';
    case 'string':
      return printBinary(Buffer.from(t, 'utf8'));
    case 'symbol':
      return printAtom(Symbol.keyFor(t) ?? t.description ?? '');
    case 'object':
      break;
    default:
      throw new EncodeError(`cannot print a ${typeof t}`, '$');
  }
  if (t === null) return 'undefined';
  if (t instanceof Atom) return printAtom(t.name);
  if (t instanceof Float) return printFloat(t.value);
  if (t instanceof Uint8Array) return printBinary(t);
  if (Array.isArray(t)) return printList(t, undefined, depth);
  if (t instanceof Tuple) return `{${t.elements.map((e) => print(e, depth + 1)).join(',')}}`;
  if (t instanceof Charlist) return printList([...t.value].map((c) => c.codePointAt(0)!), undefined, depth);
  if (t instanceof ImproperList) return printList(t.elements, t.tail, depth);
  if (t instanceof Map) return printMap([...t.entries()], depth);
  if (t instanceof BitBinary) {
    const full = t.buffer.subarray(0, t.buffer.length - 1);
    const last = t.buffer[t.buffer.length - 1]! >> (8 - t.bits);
    return `<<${[...full, `${last}:${t.bits}`].join(',')}>>`;
  }
  if (t instanceof Pid) return `<0.${t.id}.${t.serial}>`;
  if (t instanceof Ref) return `#Ref<0.${[...t.ids].reverse().join('.')}>`;
  if (t instanceof Port) return `#Port<0.${t.id}>`;
  if (t instanceof Export) return `fun ${printAtom(t.module.name)}:${printAtom(t.function.name)}/${t.arity}`;
  if (t instanceof Fun) return `#Fun<${t.module.name}.${t.index}.${funUniq(t)}>`;
  const proto = Object.getPrototypeOf(t);
  if (proto === Object.prototype || proto === null) {
    return printMap(Object.keys(t).map((k) => [k, (t as Record<string, Term>)[k]!]), depth);
  }
  throw new EncodeError(`cannot print ${proto?.constructor?.name ?? 'this object'}`, '$');
}

/** Erlang prints a fun's old-style uniq: the 32-bit integer after the module atom and old index. */
function funUniq(f: Fun): string {
  // NEW_FUN_EXT: tag, size u32, arity u8, uniq[16], index u32, numfree u32, module, oldindex, olduniq.
  let i = 1 + 4 + 1 + 16 + 4 + 4;
  i = skipSimple(f.bytes, i); // module atom
  i = skipSimple(f.bytes, i); // old index
  const tag = f.bytes[i];
  if (tag === 98) return String(f.bytes.readInt32BE(i + 1));
  if (tag === 97) return String(f.bytes[i + 1]);
  return '0';
}

function skipSimple(b: Buffer, i: number): number {
  switch (b[i]) {
    case 97:
      return i + 2;
    case 98:
      return i + 5;
    case 119:
    case 115:
      return i + 2 + b[i + 1]!;
    case 118:
    case 100:
      return i + 3 + b.readUInt16BE(i + 1);
    default:
      return i + 1;
  }
}

export function printAtom(name: string): string {
  if (/^[a-z][a-zA-Z0-9_@]*$/.test(name) && !RESERVED.has(name)) return name;
  return `'${escape(name, "'")}'`;
}

const ESCAPES: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 11: '\\v', 12: '\\f', 13: '\\r', 27: '\\e', 92: '\\\\' };

function escape(s: string, quote: string): string {
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === quote) out += `\\${quote}`;
    else if (ESCAPES[c]) out += ESCAPES[c];
    else if (c < 32 || c === 127) out += `\\^${String.fromCharCode(c + 64)}`;
    else out += ch;
  }
  return out;
}

/** Printable as `~p` sees it: Latin-1 graphic characters and the usual escapes. */
function printable(c: number): boolean {
  return (c >= 32 && c <= 126) || (c >= 160 && c <= 255) || (c >= 8 && c <= 13) || c === 27;
}

function printBinary(b: Uint8Array): string {
  if (b.length === 0) return '<<>>';
  if (b.every(printable)) return `<<"${escape(Buffer.from(b).toString('latin1'), '"')}">>`;
  return `<<${b.join(',')}>>`;
}

function printList(elements: Term[], tail: Term | undefined, depth: number): string {
  if (tail === undefined && elements.length > 0 && elements.every((e) => typeof e === 'number' && Number.isInteger(e) && printable(e))) {
    return `"${escape(String.fromCharCode(...(elements as number[])), '"')}"`;
  }
  const body = elements.map((e) => print(e, depth + 1)).join(',');
  if (tail === undefined || (Array.isArray(tail) && tail.length === 0)) return `[${body}]`;
  return `[${body}|${print(tail, depth + 1)}]`;
}

function printMap(entries: Array<[Term, Term]>, depth: number): string {
  entries.sort((a, b) => compareTerms(a[0], b[0]));
  return `#{${entries.map(([k, v]) => `${print(k, depth + 1)} => ${print(v, depth + 1)}`).join(',')}}`;
}

/** A float as Erlang's shortest form writes it: the shorter of plain and scientific, plain on a tie. */
export function printFloat(f: number): string {
  if (Object.is(f, -0)) return '-0.0';
  const [mant, expStr] = f.toExponential().split('e') as [string, string];
  const exp = Number(expStr);
  const neg = mant.startsWith('-');
  const digits = mant.replace('-', '').replace('.', '');
  const sciMant = digits.length === 1 ? `${digits}.0` : `${digits[0]}.${digits.slice(1)}`;
  const sci = `${neg ? '-' : ''}${sciMant}e${exp}`;
  let plain: string;
  if (exp >= 0) {
    const intPart = digits.length > exp + 1 ? digits.slice(0, exp + 1) : digits.padEnd(exp + 1, '0');
    const frac = digits.length > exp + 1 ? digits.slice(exp + 1) : '0';
    plain = `${neg ? '-' : ''}${intPart}.${frac}`;
  } else {
    plain = `${neg ? '-' : ''}0.${'0'.repeat(-exp - 1)}${digits}`;
  }
  return plain.length <= sci.length ? plain : sci;
}

// Erlang's term order: number < atom < reference < fun < port < pid < tuple < map < nil < list < bitstring.
function rank(t: Term): number {
  if (typeof t === 'number' || typeof t === 'bigint' || t instanceof Float) return 0;
  if (typeof t === 'boolean' || t === null || t === undefined || typeof t === 'symbol' || t instanceof Atom) return 1;
  if (t instanceof Ref) return 2;
  if (t instanceof Fun || t instanceof Export) return 3;
  if (t instanceof Port) return 4;
  if (t instanceof Pid) return 5;
  if (t instanceof Tuple) return 6;
  if (Array.isArray(t)) return t.length === 0 ? 8 : 9;
  if (t instanceof Charlist) return t.value.length === 0 ? 8 : 9;
  if (t instanceof ImproperList) return 9;
  if (typeof t === 'string' || t instanceof Uint8Array || t instanceof BitBinary) return 10;
  return 7; // Map or plain object
}

function atomName(t: Term): string {
  if (typeof t === 'boolean') return String(t);
  if (t === null || t === undefined) return 'undefined';
  if (typeof t === 'symbol') return Symbol.keyFor(t) ?? '';
  return (t as Atom).name;
}

function bytesOf(t: Term): Uint8Array {
  if (typeof t === 'string') return Buffer.from(t, 'utf8');
  if (t instanceof BitBinary) return t.buffer;
  return t as Uint8Array;
}

function listOf(t: Term): Term[] {
  if (t instanceof Charlist) return [...t.value].map((c) => c.codePointAt(0)!);
  if (t instanceof ImproperList) return t.elements;
  return t as Term[];
}

function mapEntries(t: Term): Array<[Term, Term]> {
  const e: Array<[Term, Term]> = t instanceof Map ? [...t.entries()] : Object.entries(t as object);
  return e.sort((a, b) => compareTerms(a[0], b[0]));
}

const cmp = (a: number | bigint | string, b: number | bigint | string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Compares two terms in Erlang's term order (-1, 0, 1). */
export function compareTerms(a: Term, b: Term): number {
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== rb) return ra < rb ? -1 : 1;
  switch (ra) {
    case 0: {
      const x = a instanceof Float ? a.value : (a as number | bigint);
      const y = b instanceof Float ? b.value : (b as number | bigint);
      return typeof x === typeof y ? cmp(x, y) : cmp(Number(x), Number(y));
    }
    case 1:
      return Buffer.compare(Buffer.from(atomName(a)), Buffer.from(atomName(b)));
    case 6: {
      const x = (a as Tuple).elements;
      const y = (b as Tuple).elements;
      if (x.length !== y.length) return cmp(x.length, y.length);
      for (let i = 0; i < x.length; i++) {
        const c = compareTerms(x[i]!, y[i]!);
        if (c) return c;
      }
      return 0;
    }
    case 7: {
      const x = mapEntries(a);
      const y = mapEntries(b);
      if (x.length !== y.length) return cmp(x.length, y.length);
      for (let i = 0; i < x.length; i++) {
        const c = compareTerms(x[i]![0], y[i]![0]);
        if (c) return c;
      }
      for (let i = 0; i < x.length; i++) {
        const c = compareTerms(x[i]![1], y[i]![1]);
        if (c) return c;
      }
      return 0;
    }
    case 9: {
      const x = listOf(a);
      const y = listOf(b);
      for (let i = 0; i < Math.min(x.length, y.length); i++) {
        const c = compareTerms(x[i]!, y[i]!);
        if (c) return c;
      }
      return cmp(x.length, y.length);
    }
    case 10:
      return Buffer.compare(Buffer.from(bytesOf(a)), Buffer.from(bytesOf(b)));
    case 2:
    case 4:
    case 5:
      return cmp(String(a), String(b));
    default:
      return 0;
  }
}

