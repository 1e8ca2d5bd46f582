/**
 * The pure-TypeScript codec (`erl-peb/pure`) on its own: the exact bytes it writes for every kind
 * of term, the options, EncodeError paths, cycles and deep nesting, and how it reads every tag and
 * rejects bad bytes (DecodeError offsets). A real Erlang node checks that what it writes is what
 * Erlang reads, and gives it Erlang-made bytes to read.
 */
import { deflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeTerm } from '../../lib/codec/encode';
import { decodeTerm } from '../../lib/codec/decode';
import * as pure from '../../lib/pure';
import {
  Atom,
  BitBinary,
  ConfigError,
  DecodeError,
  EncodeError,
  Export,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Ref,
  Tuple,
  atom,
  binaryToTerm,
  charlist,
  float,
  termToBinary,
  tuple,
  type Term,
} from '../../lib/pure';
import { startNode, type ErlangNode } from '../support/erlang-node';

const bytes = (...parts: Array<number | number[] | string | Buffer>): Buffer =>
  Buffer.concat(
    parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'latin1') : Buffer.from(p))),
  );
const u16 = (n: number): number[] => [n >>> 8, n & 0xff];
const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
/** The encoding of `term` after the version byte, as hex. */
const enc = (term: unknown, options?: pure.EncodeOptions): string => termToBinary(term as Term, options).subarray(1).toString('hex');
const hex = (...parts: Array<number | number[] | string | Buffer>): string => bytes(...parts).toString('hex');

function decodeError(f: () => unknown): DecodeError {
  try {
    f();
  } catch (e) {
    if (e instanceof DecodeError) return e;
    throw new Error(`expected a DecodeError, got ${String(e)}`);
  }
  throw new Error('expected a DecodeError, but it decoded');
}

function encodeError(f: () => unknown): EncodeError {
  try {
    f();
  } catch (e) {
    if (e instanceof EncodeError) return e;
    throw new Error(`expected an EncodeError, got ${String(e)}`);
  }
  throw new Error('expected an EncodeError, but it encoded');
}

const node = atom('n@host');
const nodeAtom = [119, 6, 'n@host'] as const;

describe('the erl-peb/pure entry point', () => {
  it('exports the codec, the term classes and helpers, and the errors', () => {
    for (const name of ['termToBinary', 'binaryToTerm', 'atom', 'tuple', 'charlist', 'float', 'Atom', 'Tuple', 'Pid', 'Ref', 'Port', 'Fun', 'Export', 'BitBinary', 'ImproperList', 'Charlist', 'Float', 'ErlPebError', 'DecodeError', 'EncodeError']) {
      expect(typeof (pure as Record<string, unknown>)[name], name).toBe('function');
    }
  });

  it('does not load the native addon', async () => {
    const { execFileSync } = await import('node:child_process');
    const root = `${__dirname}/../..`;
    const out = execFileSync(
      process.execPath,
      [
        `${root}/node_modules/tsx/dist/cli.mjs`,
        '-e',
        "require('./lib/pure'); console.log(JSON.stringify(Object.keys(require.cache).filter((f) => f.endsWith('.node') || /native/.test(f))))",
      ],
      { cwd: root, encoding: 'utf8' },
    );
    expect(JSON.parse(out.trim())).toEqual([]);
  });
});

describe('encoding: the exact bytes', () => {
  it('starts with the version byte 131', () => {
    expect(termToBinary(1)[0]).toBe(131);
    expect(encodeTerm(1).toString('hex')).toBe('6101');
  });

  it('integers by value: SMALL_INTEGER, INTEGER, SMALL_BIG, LARGE_BIG', () => {
    expect(enc(0)).toBe(hex(97, 0));
    expect(enc(-0)).toBe(hex(97, 0));
    expect(enc(255)).toBe(hex(97, 255));
    expect(enc(256)).toBe(hex(98, u32(256)));
    expect(enc(-1)).toBe(hex(98, u32(0xffffffff)));
    expect(enc(2147483647)).toBe(hex(98, u32(0x7fffffff)));
    expect(enc(-2147483648)).toBe(hex(98, u32(0x80000000)));
    expect(enc(2147483648)).toBe(hex(110, 4, 0, [0, 0, 0, 0x80]));
    expect(enc(-2147483649)).toBe(hex(110, 4, 1, [1, 0, 0, 0x80]));
    expect(enc(Number.MAX_SAFE_INTEGER)).toBe(hex(110, 7, 0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]));
    expect(enc(-Number.MAX_SAFE_INTEGER)).toBe(hex(110, 7, 1, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f]));
    expect(enc(5n)).toBe(hex(97, 5));
    expect(enc(-5n)).toBe(hex(98, u32(-5 >>> 0)));
    expect(enc(2n ** 64n)).toBe(hex(110, 9, 0, [0, 0, 0, 0, 0, 0, 0, 0, 1]));
    expect(enc(-(2n ** 64n) + 1n)).toBe(hex(110, 8, 1, Array(8).fill(0xff)));
    expect(enc(2n ** 2040n)).toBe(hex(111, u32(256), 0, Array(255).fill(0), 1));
    expect(enc(2n ** 2039n)).toBe(hex(110, 255, 0, Array(254).fill(0), 0x80));
  });

  it('an integral number that is not a safe integer is an EncodeError', () => {
    expect(encodeError(() => termToBinary(2 ** 53)).message).toMatch(/unsafe integer.*use a bigint/);
    expect(encodeError(() => termToBinary([1e300])).path).toBe('$[0]');
  });

  it('floats: NEW_FLOAT_EXT for non-integral numbers and float(); no NaN or Infinity', () => {
    expect(enc(1.5)).toBe(hex(70, [0x3f, 0xf8, 0, 0, 0, 0, 0, 0]));
    expect(enc(-0.1)).toBe('46' + Buffer.from(new Float64Array([-0.1]).buffer).reverse().toString('hex'));
    expect(enc(float(2))).toBe(hex(70, [0x40, 0, 0, 0, 0, 0, 0, 0]));
    expect(enc(float(-0))).toBe(hex(70, [0x80, 0, 0, 0, 0, 0, 0, 0]));
    for (const bad of [NaN, Infinity, -Infinity, float(NaN), float(Infinity)]) {
      expect(encodeError(() => termToBinary(bad)).path).toBe('$');
    }
  });

  it('booleans, null and undefined as atoms; Atom and Symbol.for as atoms', () => {
    expect(enc(true)).toBe(hex(119, 4, 'true'));
    expect(enc(false)).toBe(hex(119, 5, 'false'));
    expect(enc(null)).toBe(hex(119, 9, 'undefined'));
    expect(enc(undefined)).toBe(hex(119, 9, 'undefined'));
    expect(enc(atom('ok'))).toBe(hex(119, 2, 'ok'));
    expect(enc(atom(''))).toBe(hex(119, 0));
    expect(enc(atom('é'))).toBe(hex(119, 2, Buffer.from('é')));
    expect(enc(Symbol.for('hello'))).toBe(hex(119, 5, 'hello'));
    expect(encodeError(() => termToBinary(Symbol('local'))).message).toMatch(/symbol/);
  });

  it('atoms: ATOM_UTF8_EXT past 255 bytes; at most 255 characters', () => {
    const e255 = 'é'.repeat(255);
    expect(enc(atom(e255))).toBe(hex(118, u16(510), Buffer.from(e255)));
    const rockets = '🚀'.repeat(255); // 510 UTF-16 units, 255 characters
    expect(enc(atom(rockets))).toBe(hex(118, u16(1020), Buffer.from(rockets)));
    expect(enc(atom('a'.repeat(255)))).toBe(hex(119, 255, 'a'.repeat(255)));
    expect(encodeError(() => termToBinary(atom('a'.repeat(256)))).message).toMatch(/256 characters/);
    expect(encodeError(() => termToBinary([atom('🚀'.repeat(256))])).path).toBe('$[0]');
  });

  it('strings, Buffers and Uint8Arrays as BINARY_EXT', () => {
    expect(enc('')).toBe(hex(109, u32(0)));
    expect(enc('héllo')).toBe(hex(109, u32(6), Buffer.from('héllo')));
    expect(enc(Buffer.from([1, 2, 3]))).toBe(hex(109, u32(3), [1, 2, 3]));
    expect(enc(new Uint8Array([4, 5]))).toBe(hex(109, u32(2), [4, 5]));
    const view = new Uint8Array([9, 8, 7, 6]).subarray(1, 3);
    expect(enc(view)).toBe(hex(109, u32(2), [8, 7]));
    for (const s of ['a'.repeat(20000), 'é'.repeat(20000), '€'.repeat(30000) + 'a', 'x' + '😀'.repeat(9000), 'a'.repeat(70000) + 'é']) {
      expect(enc(s), `${s.length} units`).toBe(hex(109, u32(Buffer.byteLength(s)), Buffer.from(s)));
    }
  });

  it('other typed arrays, ArrayBuffer and DataView are EncodeErrors', () => {
    for (const bad of [new Uint16Array(2), new Int8Array(1), new Uint8ClampedArray(1), new ArrayBuffer(2), new DataView(new ArrayBuffer(2))]) {
      expect(encodeError(() => termToBinary({ data: bad as never })).path).toBe('$.data');
    }
  });

  it('BitBinary: BIT_BINARY_EXT, or BINARY_EXT with 8 bits; bad fields are EncodeErrors', () => {
    expect(enc(new BitBinary(Buffer.from([0xff, 0xe0]), 3))).toBe(hex(77, u32(2), 3, [0xff, 0xe0]));
    expect(enc(new BitBinary(Buffer.from([1]), 8))).toBe(hex(109, u32(1), 1));
    expect(encodeError(() => termToBinary(new BitBinary(Buffer.alloc(0), 3))).message).toMatch(/non-empty/);
    expect(encodeError(() => termToBinary(new BitBinary(Buffer.from([1]), 0))).message).toMatch(/1 to 8/);
    expect(encodeError(() => termToBinary(new BitBinary(Buffer.from([1]), 9))).message).toMatch(/1 to 8/);
  });

  it('arrays as LIST_EXT (never STRING_EXT); [] as NIL_EXT', () => {
    expect(enc([])).toBe(hex(106));
    expect(enc([1, 2, 3])).toBe(hex(108, u32(3), 97, 1, 97, 2, 97, 3, 106));
    expect(enc([[], [atom('a')]])).toBe(hex(108, u32(2), 106, 108, u32(1), 119, 1, 'a', 106, 106));
  });

  it('charlist: STRING_EXT for bytes up to 65535, else a list of code points', () => {
    expect(enc(charlist(''))).toBe(hex(106));
    expect(enc(charlist('abc'))).toBe(hex(107, u16(3), 'abc'));
    expect(enc(charlist('ÿ'))).toBe(hex(107, u16(1), 0xff));
    expect(enc(charlist('Āb'))).toBe(hex(108, u32(2), 98, u32(256), 97, 98, 106));
    expect(enc(charlist('😀'))).toBe(hex(108, u32(1), 98, u32(0x1f600), 106));
    const max = 'x'.repeat(65535);
    expect(enc(charlist(max))).toBe(hex(107, u16(65535), max));
    const over = enc(charlist('x'.repeat(65536)));
    expect(over.slice(0, 10)).toBe(hex(108, u32(65536)));
    expect(over.length).toBe((5 + 65536 * 2 + 1) * 2);
  });

  it('ImproperList: LIST_EXT with its tail; no elements is the tail, a [] tail a proper list', () => {
    expect(enc(new ImproperList([1, 2], atom('t')))).toBe(hex(108, u32(2), 97, 1, 97, 2, 119, 1, 't'));
    expect(enc(new ImproperList([], 5))).toBe(hex(97, 5));
    expect(enc(new ImproperList([1], []))).toBe(enc([1]));
  });

  it('tuples: SMALL_TUPLE_EXT up to 255 elements, else LARGE_TUPLE_EXT', () => {
    expect(enc(tuple())).toBe(hex(104, 0));
    expect(enc(tuple(atom('ok'), 1))).toBe(hex(104, 2, 119, 2, 'ok', 97, 1));
    expect(enc(new Tuple(Array(255).fill(0)))).toBe(hex(104, 255, Array(255).fill([97, 0]).flat()));
    expect(enc(new Tuple(Array(256).fill(0)))).toBe(hex(105, u32(256), Array(256).fill([97, 0]).flat()));
  });

  it('Map in its iteration order; plain objects with binary keys (never atoms) in Object.keys order', () => {
    expect(enc(new Map<Term, Term>([[atom('b'), 1], [2, 'x']]))).toBe(hex(116, u32(2), 119, 1, 'b', 97, 1, 97, 2, 109, u32(1), 'x'));
    expect(enc({ b: 1, a: null, 2: true })).toBe(
      hex(116, u32(3), 109, u32(1), '2', 119, 4, 'true', 109, u32(1), 'b', 97, 1, 109, u32(1), 'a', 119, 9, 'undefined'),
    );
    const bare = Object.create(null) as Record<string, Term>;
    bare.k = 1;
    expect(enc(bare)).toBe(hex(116, u32(1), 109, u32(1), 'k', 97, 1));
    expect(enc({ [Symbol.for('ignored')]: 1, é: 2 })).toBe(hex(116, u32(1), 109, u32(2), Buffer.from('é'), 97, 2));
    expect(enc({})).toBe(hex(116, u32(0)));
  });

  it('Pid, Ref, Port, Fun and Export', () => {
    expect(enc(new Pid(node, 1, 2, 3))).toBe(hex(88, ...nodeAtom, u32(1), u32(2), u32(3)));
    expect(enc(new Ref(node, 7, [1, 2, 3]))).toBe(hex(90, u16(3), ...nodeAtom, u32(7), u32(1), u32(2), u32(3)));
    expect(enc(new Port(node, 5, 1))).toBe(hex(89, ...nodeAtom, u32(5), u32(1)));
    expect(enc(new Port(node, 0xffffffff, 1))).toBe(hex(89, ...nodeAtom, u32(0xffffffff), u32(1)));
    expect(enc(new Port(node, 2 ** 32, 1))).toBe(hex(120, ...nodeAtom, u32(1), u32(0), u32(1)));
    expect(enc(new Port(node, 2n ** 64n - 1n, 2))).toBe(hex(120, ...nodeAtom, u32(0xffffffff), u32(0xffffffff), u32(2)));
    expect(enc(new Export(atom('lists'), atom('map'), 2))).toBe(hex(113, 119, 5, 'lists', 119, 3, 'map', 97, 2));
    const funBytes = Buffer.from([112, 1, 2, 3]);
    expect(enc(new Fun(funBytes, atom('m'), 0, 0))).toBe('70010203');
  });

  it('Pid, Ref, Port, Fun and Export fields out of range are EncodeErrors', () => {
    const bad: Array<[unknown, RegExp]> = [
      [new Pid(node, -1, 0, 0), /Pid\.id/],
      [new Pid(node, 0, 2 ** 32, 0), /Pid\.serial/],
      [new Pid(node, 0, 0, 1.5), /Pid\.creation/],
      [new Pid('n@host' as unknown as Atom, 0, 0, 0), /Pid\.node must be an Atom/],
      [new Ref(node, 0, []), /1 to 5/],
      [new Ref(node, 0, [1, 2, 3, 4, 5, 6]), /1 to 5/],
      [new Ref(node, 0, [-1]), /Ref\.ids\[0\]/],
      [new Port(node, -1, 0), /Port\.id/],
      [new Port(node, 2n ** 64n, 0), /Port\.id/],
      [new Export(atom('m'), atom('f'), 256), /arity/],
      [new Export(atom('m'), 'f' as unknown as Atom, 0), /Export\.function/],
      [new Fun(Buffer.from([113, 0]), atom('m'), 0, 0), /NEW_FUN_EXT/],
    ];
    for (const [term, message] of bad) {
      const e = encodeError(() => termToBinary({ x: [term as Term] }));
      expect(e.message).toMatch(message);
      expect(e.path).toBe('$.x[0]');
    }
  });

  it('anything else is an EncodeError naming what and where', () => {
    class Session {}
    const cases: Array<[unknown, RegExp]> = [
      [new Date(0), /Date/],
      [/x/, /RegExp/],
      [() => 1, /function/],
      [new Session(), /Session/],
      [new Set([1]), /Set/],
      [Promise.resolve(), /Promise/],
    ];
    for (const [value, message] of cases) {
      const e = encodeError(() => termToBinary({ user: { roles: [1, value as Term] } }));
      expect(e).toBeInstanceOf(pure.ErlPebError);
      expect(e.code).toBe('ERL_PEB_ENCODE');
      expect(e.message).toMatch(message);
      expect(e.path).toBe('$.user.roles[1]');
      expect(e.message).toMatch(/at \$\.user\.roles\[1\]$/);
    }
  });

  it('EncodeError paths: keys, quoted keys, tuples, map keys and values, improper tails', () => {
    // a Date has no Erlang counterpart (typed as never: the Term type rejects it at compile time too)
    const date = new Date() as never;
    const cart = [{}, {}, {}, { sku: 'a', price: date }];
    expect(encodeError(() => termToBinary({ cart })).path).toBe('$.cart[3].price');
    expect(encodeError(() => termToBinary({ 'a b': { $ok_1: date } })).path).toBe('$["a b"].$ok_1');
    expect(encodeError(() => termToBinary({ 'say "hi"': date })).path).toBe('$["say \\"hi\\""]');
    expect(encodeError(() => termToBinary({ '1a': date })).path).toBe('$["1a"]');
    expect(encodeError(() => termToBinary(tuple(1, tuple(2, date)))).path).toBe('$[1][1]');
    expect(encodeError(() => termToBinary(new Map<Term, Term>([[1, 2], [date, 3]]))).path).toBe('$.keys[1]');
    expect(encodeError(() => termToBinary(new Map<Term, Term>([[1, 2], [3, [date]]]))).path).toBe('$.values[1][0]');
    expect(encodeError(() => termToBinary(new ImproperList([1], { t: date }))).path).toBe('$.tail.t');
    expect(encodeError(() => termToBinary(new ImproperList([1, date], 2))).path).toBe('$[1]');
  });

  it('cycles are EncodeErrors ("nesting deeper than maxDepth (a cycle?)")', () => {
    const a: unknown[] = [1];
    a.push(a);
    const e = encodeError(() => termToBinary(a as Term));
    expect(e.message).toMatch(/nesting deeper than 1024 \(a cycle\?\)/);
    expect(e.path).toBe('$' + '[1]'.repeat(1024));
    const o: Record<string, unknown> = {};
    o.self = o;
    expect(encodeError(() => termToBinary(o as Term, { maxDepth: 3 })).path).toBe('$.self.self.self');
    const t = tuple(1);
    t.elements.push(t);
    expect(encodeError(() => termToBinary(t)).message).toMatch(/a cycle/);
    const m = new Map<Term, Term>();
    m.set(1, m);
    expect(encodeError(() => termToBinary(m)).message).toMatch(/a cycle/);
  });

  it('maxDepth counts arrays, tuples, maps, objects and improper lists', () => {
    expect(enc([[1]], { maxDepth: 2 })).toBe(hex(108, u32(1), 108, u32(1), 97, 1, 106, 106));
    expect(encodeError(() => termToBinary([[[1]]], { maxDepth: 2 })).path).toBe('$[0][0]');
    expect(encodeError(() => termToBinary({ a: tuple(new Map()) }, { maxDepth: 2 })).path).toBe('$.a[0]');
    expect(encodeError(() => termToBinary([new ImproperList([1], 2)], { maxDepth: 1 })).path).toBe('$[0]');
    // Charlists, binaries and atoms are not containers.
    expect(() => termToBinary([charlist('ab'), 'x', atom('y')], { maxDepth: 1 })).not.toThrow();
  });

  it('empty arrays and improper lists of no elements are not containers', () => {
    expect(enc([[]], { maxDepth: 1 })).toBe(hex(108, u32(1), 106, 106));
    expect(enc([new ImproperList([], [])], { maxDepth: 1 })).toBe(hex(108, u32(1), 106, 106));
    expect(encodeError(() => termToBinary([new ImproperList([], [1])], { maxDepth: 1 })).path).toBe('$[0].tail');
  });

  it('a million nested arrays encode with maxDepth 1,000,000 (no recursion), and fail past it', () => {
    let deep: unknown[] = [];
    for (let i = 0; i < 1_000_000; i++) deep = [deep];
    const b = termToBinary(deep as Term, { maxDepth: 1_000_000 });
    expect(b.length).toBe(1 + 1_000_000 * 6 + 1);
    expect([...b.subarray(0, 6)]).toEqual([131, 108, 0, 0, 0, 1]);
    expect(b.subarray(b.length - 1_000_001).every((x) => x === 106)).toBe(true);
    const e = encodeError(() => termToBinary([deep] as Term, { maxDepth: 1_000_000 }));
    expect(e.message).toMatch(/nesting deeper than 1000000/);
    expect(e.path.length).toBe(1 + 3 * 1_000_000);
    // the encoder still works afterwards
    expect(enc([1])).toBe(hex(108, u32(1), 97, 1, 106));
  });

  it('bad options are ConfigErrors', () => {
    expect(() => termToBinary(1, { compressed: 10 })).toThrow(ConfigError);
    expect(() => termToBinary(1, { maxDepth: 0 })).toThrow(ConfigError);
    expect(() => binaryToTerm(Buffer.from([131, 97, 1]), { maps: 'x' as never })).toThrow(ConfigError);
  });

  it('a getter that encodes while encoding gets its own, correct result', () => {
    let inner: Buffer | undefined;
    const value = {
      get x(): number {
        inner = termToBinary([atom('inner'), 'é']);
        return 7;
      },
      y: 'after',
    };
    expect(enc(value)).toBe(hex(116, u32(2), 109, u32(1), 'x', 97, 7, 109, u32(1), 'y', 109, u32(5), 'after'));
    expect(inner!.toString('hex')).toBe(hex(131, 108, u32(2), 119, 5, 'inner', 109, u32(2), Buffer.from('é'), 106));
  });

  it('results are independent buffers (the scratch buffer is not shared)', () => {
    const a = termToBinary('first');
    const b = termToBinary('second');
    expect(binaryToTerm(a, { binaries: 'string' })).toBe('first');
    expect(binaryToTerm(b, { binaries: 'string' })).toBe('second');
    const big = termToBinary(Buffer.alloc(2 << 20, 1));
    termToBinary(Buffer.alloc(2 << 20, 2));
    expect(big[6]).toBe(1);
    expect(big.length).toBe(6 + (2 << 20));
  });
});

describe('round trips', () => {
  it('the session fixture decodes back to itself with maps: "object" and binaries: "string"', async () => {
    const { readFileSync } = await import('node:fs');
    const session = JSON.parse(readFileSync(`${__dirname}/../../../shared/fixtures/session.json`, 'utf8'));
    expect(binaryToTerm(termToBinary(session), { maps: 'object', binaries: 'string' })).toEqual(session);
  });

  it('the default decoding is lossless: it encodes back to the same bytes (STRING_EXT aside, which comes back as a LIST_EXT)', () => {
    const term: Term = [tuple(atom('ok'), float(1), 1.5, 2n ** 80n), new Map<Term, Term>([['k', [atom('v')]]]), new ImproperList([1], 2), new BitBinary(Buffer.from([0x80]), 1)];
    const bytes1 = termToBinary(term);
    expect(termToBinary(binaryToTerm(bytes1)).equals(bytes1)).toBe(true);
  });
});

describe('compression', () => {
  const text = 'session data '.repeat(200);

  it('compressed: true writes 131, 80, the size, and zlib data, when shorter', () => {
    const plain = termToBinary(text);
    const z = termToBinary(text, { compressed: true });
    expect(z.length).toBeLessThan(plain.length);
    expect([...z.subarray(0, 2)]).toEqual([131, 80]);
    expect(z.readUInt32BE(2)).toBe(plain.length - 1);
    expect(z.subarray(6).equals(deflateSync(plain.subarray(1), { level: 6 }))).toBe(true);
    expect(binaryToTerm(z, { binaries: 'string' })).toBe(text);
    for (const level of [0, 1, 9]) expect(binaryToTerm(termToBinary(text, { compressed: level }), { binaries: 'string' })).toBe(text);
  });

  it('stays uncompressed when compression would not be shorter', () => {
    expect(termToBinary(atom('ok'), { compressed: 9 }).equals(termToBinary(atom('ok')))).toBe(true);
    expect(termToBinary(text, { compressed: 0 }).equals(termToBinary(text))).toBe(true);
    expect(termToBinary(text, { compressed: false }).equals(termToBinary(text))).toBe(true);
  });
});

describe('decoding every tag', () => {
  const dec = (...parts: Array<number | number[] | string | Buffer>): unknown => binaryToTerm(bytes(131, ...parts));

  it('integers: numbers when safe, bigints past 2^53; non-minimal bigs accepted', () => {
    expect(dec(97, 200)).toBe(200);
    expect(dec(98, u32(0xfffffffe))).toBe(-2);
    expect(dec(110, 0, 0)).toBe(0);
    expect(Object.is(dec(110, 1, 1, 0), 0)).toBe(true);
    expect(dec(110, 2, 1, 5, 0)).toBe(-5);
    expect(dec(110, 7, 0, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f])).toBe(Number.MAX_SAFE_INTEGER);
    expect(dec(110, 7, 0, [0, 0, 0, 0, 0, 0, 0x20])).toBe(2n ** 53n);
    expect(dec(110, 9, 1, [0, 0, 0, 0, 0, 0, 0, 0, 1])).toBe(-(2n ** 64n));
    expect(dec(111, u32(3), 0, [1, 0, 0])).toBe(1);
    expect(dec(111, u32(256), 0, Array(255).fill(0), 1)).toBe(2n ** 2040n);
  });

  it('floats: an integral value decodes to a Float, so it re-encodes as a float', () => {
    expect(dec(70, [0x3f, 0xf8, 0, 0, 0, 0, 0, 0])).toBe(1.5);
    const two = dec(70, [0x40, 0, 0, 0, 0, 0, 0, 0]);
    expect(two).toBeInstanceOf(Float);
    expect((two as Float).value).toBe(2);
    expect(Object.is((dec(70, [0x80, 0, 0, 0, 0, 0, 0, 0]) as Float).value, -0)).toBe(true);
    const text = (s: string): Buffer => Buffer.concat([Buffer.from(s, 'latin1'), Buffer.alloc(31 - s.length)]);
    expect(dec(99, text('1.50000000000000000000e+00'))).toBe(1.5);
    expect(dec(99, text('-2.50000000000000000000e-01'))).toBe(-0.25);
    expect(dec(99, text('3.00000000000000000000e+00'))).toEqual(float(3));
  });

  it('atoms: Latin-1 and UTF-8 tags; true, false and undefined as JS values; interned', () => {
    expect(dec(100, u16(2), 'ok')).toBe(atom('ok'));
    expect(dec(115, 1, 0xe9)).toBe(atom('é'));
    expect(dec(100, u16(1), 0xff)).toBe(atom('ÿ'));
    expect(dec(118, u16(4), Buffer.from('🚀'))).toBe(atom('🚀'));
    expect(dec(119, 2, Buffer.from('é'))).toBe(atom('é'));
    expect(dec(119, 4, 'true')).toBe(true);
    expect(dec(100, u16(5), 'false')).toBe(false);
    expect(dec(115, 9, 'undefined')).toBeNull();
    expect(dec(119, 255, 'a'.repeat(255))).toBe(atom('a'.repeat(255)));
  });

  it('binaries: a copy of the bytes (never a view), or text with binaries: "string"', () => {
    const input = bytes(131, 109, u32(3), 'abc');
    const b = binaryToTerm(input) as Buffer;
    expect(Buffer.isBuffer(b)).toBe(true);
    expect(b.toString()).toBe('abc');
    input[6] = 0x7a;
    expect(b.toString()).toBe('abc');
    const big = bytes(131, 109, u32(5000), Buffer.alloc(5000, 0x41));
    const bb = binaryToTerm(big) as Buffer;
    big.fill(0, 6);
    expect(bb.every((x) => x === 0x41)).toBe(true);
    expect(bb.buffer).not.toBe(big.buffer);
    expect(binaryToTerm(bytes(131, 109, u32(6), Buffer.from('héllo')), { binaries: 'string' })).toBe('héllo');
    expect(binaryToTerm(bytes(131, 109, u32(0)), { binaries: 'string' })).toBe('');
    const long = 'x'.repeat(3000) + 'é';
    expect(binaryToTerm(termToBinary(long), { binaries: 'string' })).toBe(long);
    expect(binaryToTerm(termToBinary('y'.repeat(5000)), { binaries: 'string' })).toBe('y'.repeat(5000));
    for (const invalid of [[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], Array(3000).fill(0x61).concat([0xff])]) {
      const v = binaryToTerm(bytes(131, 109, u32(invalid.length), invalid), { binaries: 'string' });
      expect(Buffer.isBuffer(v), `${invalid.length} bytes`).toBe(true);
      expect([...(v as Buffer)]).toEqual(invalid);
    }
  });

  it('bitstrings: BitBinary, or a binary when all 8 bits of the last byte are used', () => {
    const v = dec(77, u32(2), 3, [1, 0xe0]) as BitBinary;
    expect(v).toBeInstanceOf(BitBinary);
    expect([...v.buffer, v.bits]).toEqual([1, 0xe0, 3]);
    expect([...(dec(77, u32(1), 8, [7]) as Buffer)]).toEqual([7]);
    expect(binaryToTerm(bytes(131, 77, u32(2), 8, 'hi'), { binaries: 'string' })).toBe('hi');
  });

  it('STRING_EXT: a list of numbers, or a string of one character per byte', () => {
    expect(dec(107, u16(3), [1, 2, 255])).toEqual([1, 2, 255]);
    expect(binaryToTerm(bytes(131, 107, u16(3), [104, 0xe9, 0xff]), { strings: 'string' })).toBe('héÿ');
  });

  it('lists: Array, ImproperList, NIL', () => {
    expect(dec(106)).toEqual([]);
    expect(dec(108, u32(2), 97, 1, 106, 106)).toEqual([1, []]);
    const il = dec(108, u32(2), 97, 1, 97, 2, 119, 1, 't') as ImproperList;
    expect(il).toBeInstanceOf(ImproperList);
    expect(il.elements).toEqual([1, 2]);
    expect(il.tail).toBe(atom('t'));
    const long = termToBinary(Array.from({ length: 20000 }, (_, i) => i));
    expect((binaryToTerm(long) as number[])[19999]).toBe(19999);
  });

  it('tuples: small, large, empty', () => {
    expect(dec(104, 0)).toEqual(tuple());
    const t = dec(104, 2, 119, 2, 'ok', 97, 1) as Tuple;
    expect(t).toBeInstanceOf(Tuple);
    expect(t.elements).toEqual([atom('ok'), 1]);
    expect((dec(105, u32(300), Array(300).fill([97, 3]).flat()) as Tuple).length).toBe(300);
  });

  it('maps: a Map by default; with maps: "object" a plain object when all keys are atoms or UTF-8 binaries', () => {
    const bin = (s: string): number[] => [109, ...u32(Buffer.byteLength(s)), ...Buffer.from(s)];
    const input = bytes(131, 116, u32(3), 119, 1, 'a', 97, 1, bin('é'), 97, 2, 119, 4, 'true', 97, 3);
    const m = binaryToTerm(input) as Map<unknown, unknown>;
    expect(m).toBeInstanceOf(Map);
    expect([...m.values()]).toEqual([1, 2, 3]);
    const o = binaryToTerm(input, { maps: 'object' });
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(o).toEqual({ a: 1, é: 2, true: 3 });
    expect(binaryToTerm(bytes(131, 116, u32(1), 119, 9, 'undefined', 97, 0), { maps: 'object' })).toEqual({ undefined: 0 });
    expect(binaryToTerm(bytes(131, 116, u32(0)), { maps: 'object' })).toEqual({});
    // an integer key, a key that is not UTF-8, a byte-list key: still a Map
    expect(binaryToTerm(bytes(131, 116, u32(2), 119, 1, 'a', 97, 1, 97, 5, 97, 2), { maps: 'object' })).toBeInstanceOf(Map);
    expect(binaryToTerm(bytes(131, 116, u32(1), 109, u32(1), 0xff, 97, 1), { maps: 'object' })).toBeInstanceOf(Map);
    expect(binaryToTerm(bytes(131, 116, u32(1), 107, u16(1), 'k', 97, 1), { maps: 'object', strings: 'string' })).toBeInstanceOf(Map);
    // binaries: "string" applies to keys and values alike
    expect(binaryToTerm(bytes(131, 116, u32(1), bin('k'), bin('v')), { binaries: 'string' })).toEqual(new Map([['k', 'v']]));
    // nested maps
    expect(binaryToTerm(termToBinary({ a: { b: [{ c: 'd' }] } }), { maps: 'object', binaries: 'string' })).toEqual({ a: { b: [{ c: 'd' }] } });
  });

  it('a "__proto__" key becomes an own property, never the prototype', () => {
    const o = binaryToTerm(bytes(131, 116, u32(1), 109, u32(9), '__proto__', 116, u32(1), 119, 1, 'x', 97, 1), { maps: 'object' }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(o)).toBe(Object.prototype);
    expect(Object.keys(o)).toEqual(['__proto__']);
    expect((o as { x?: unknown }).x).toBeUndefined();
    expect(Object.getOwnPropertyDescriptor(o, '__proto__')!.value).toEqual({ x: 1 });
  });

  it('pids, ports and references in all their encodings', () => {
    expect(dec(103, ...nodeAtom, u32(1), u32(2), 3)).toEqual(new Pid(node, 1, 2, 3));
    expect(dec(88, ...nodeAtom, u32(1), u32(2), u32(0x12345678))).toEqual(new Pid(node, 1, 2, 0x12345678));
    expect(dec(102, ...nodeAtom, u32(9), 2)).toEqual(new Port(node, 9, 2));
    expect(dec(89, ...nodeAtom, u32(9), u32(5))).toEqual(new Port(node, 9, 5));
    expect(dec(120, ...nodeAtom, u32(0x1fffff), u32(0xffffffff), u32(5))).toEqual(new Port(node, Number.MAX_SAFE_INTEGER, 5));
    expect(dec(120, ...nodeAtom, u32(0xffffffff), u32(0xffffffff), u32(5))).toEqual(new Port(node, 2n ** 64n - 1n, 5));
    expect(dec(101, ...nodeAtom, u32(42), 1)).toEqual(new Ref(node, 1, [42]));
    expect(dec(114, u16(2), ...nodeAtom, 3, u32(1), u32(2))).toEqual(new Ref(node, 3, [1, 2]));
    expect(dec(90, u16(5), ...nodeAtom, u32(7), u32(1), u32(2), u32(3), u32(4), u32(5))).toEqual(new Ref(node, 7, [1, 2, 3, 4, 5]));
    // the node is always an Atom, even when named like a JS-mapped atom
    expect((dec(88, 119, 4, 'true', u32(0), u32(0), u32(0)) as Pid).node).toBe(atom('true'));
  });

  it('EXPORT_EXT', () => {
    expect(dec(113, 100, u16(5), 'lists', 119, 3, 'map', 97, 2)).toEqual(new Export(atom('lists'), atom('map'), 2));
    expect(decodeError(() => dec(113, 119, 1, 'm', 119, 1, 'f', 98, u32(2))).offset).toBe(8);
  });

  it('accepts a Uint8Array as input', () => {
    const b = termToBinary([1, 'x']);
    const u8 = new Uint8Array(b.length + 2);
    u8.set(b, 2);
    expect(binaryToTerm(u8.subarray(2))).toEqual([1, Buffer.from('x')]);
  });

  it('decodeTerm reads a term without the version byte', () => {
    expect(decodeTerm(encodeTerm(tuple(1, [2])))).toEqual(tuple(1, [2]));
    expect(decodeError(() => decodeTerm(Buffer.from([97, 1, 2]))).offset).toBe(2);
  });
});

describe('decoding bad bytes: DecodeError with the offset', () => {
  const at = (input: Buffer, options?: pure.DecodeOptions): [number, string] => {
    const e = decodeError(() => binaryToTerm(input, options));
    expect(e.code).toBe('ERL_PEB_DECODE');
    return [e.offset, e.message];
  };

  it('the version byte, empty input, non-bytes, trailing bytes', () => {
    expect(at(Buffer.alloc(0))[0]).toBe(0);
    expect(at(bytes(130, 97, 1))).toEqual([0, 'expected the version byte 131, found 130 at byte 0']);
    expect(decodeError(() => binaryToTerm('83' as never)).offset).toBe(0);
    expect(decodeError(() => binaryToTerm([131, 97, 1] as never)).offset).toBe(0);
    expect(at(bytes(131, 97, 1, 0))).toEqual([3, 'trailing bytes after the term at byte 3']);
  });

  it('unknown tags, at the tag', () => {
    expect(at(bytes(131, 104, 2, 97, 1, 200))).toEqual([5, 'unknown tag 200 at byte 5']);
    expect(at(bytes(131, 80 + 2))[1]).toMatch(/unknown tag 82/);
  });

  it('every prefix of a compound term is a DecodeError', () => {
    const full = termToBinary([tuple(atom('ok'), 'bin', 1.5, 2n ** 70n), new Map([[1, new Pid(node, 1, 2, 3)]]), new Ref(node, 1, [1, 2]), charlist('abc'), new ImproperList([1], 2)]);
    for (let n = 0; n < full.length; n++) {
      const e = decodeError(() => binaryToTerm(full.subarray(0, n)));
      expect(e.offset, `prefix of ${n} bytes`).toBeLessThanOrEqual(n);
    }
    expect(() => binaryToTerm(full)).not.toThrow();
  });

  it('lengths near 2^32 are checked against the bytes left before anything is allocated (reported at the tag)', () => {
    expect(at(bytes(131, 109, u32(0xffffffff), 1, 2))).toEqual([1, 'truncated binary: needs 4294967295 bytes, 2 left at byte 1']);
    expect(at(bytes(131, 104, 2, 97, 1, 109, u32(0x80000000), 0))[0]).toBe(5);
    expect(at(bytes(131, 108, u32(0xffffffff), 106))[1]).toMatch(/^truncated list/);
    expect(at(bytes(131, 105, u32(0xffffffff), 97, 1))[1]).toMatch(/^truncated tuple/);
    expect(at(bytes(131, 116, u32(0x80000000), 97, 1, 97, 1))[1]).toMatch(/^truncated map/);
    expect(at(bytes(131, 111, u32(0xffffffff), 0, 1))[1]).toMatch(/^truncated big integer/);
    expect(at(bytes(131, 77, u32(0xffffffff), 3, 1))[1]).toMatch(/^truncated bitstring/);
    expect(at(bytes(131, 107, u16(0xffff), 1))[1]).toMatch(/^truncated string/);
    expect(at(bytes(131, 90, u16(5), ...nodeAtom, u32(0)))[1]).toMatch(/^truncated reference/);
  });

  it('atoms: invalid UTF-8 and more than 255 characters, at the tag', () => {
    for (const bad of [[0xc0, 0x80], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xe2, 0x82], [0xff]]) {
      expect(at(bytes(131, 104, 1, 119, bad.length, bad))).toEqual([3, 'atom is not valid UTF-8 at byte 3']);
    }
    expect(at(bytes(131, 100, u16(256), 'a'.repeat(256)))[1]).toMatch(/256 characters/);
    expect(at(bytes(131, 118, u16(512), Buffer.from('é'.repeat(256))))[1]).toMatch(/256 characters/);
  });

  it('bad values inside terms', () => {
    expect(at(bytes(131, 110, 1, 2, 5))).toEqual([1, 'bad sign byte 2 in a big integer at byte 1']);
    expect(at(bytes(131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0))[0]).toBe(1);
    expect(at(bytes(131, 99, Buffer.concat([Buffer.from('1.5x'), Buffer.alloc(27)])))[0]).toBe(1);
    expect(at(bytes(131, 99, Buffer.concat([Buffer.from('1e999'), Buffer.alloc(26)])))[0]).toBe(1);
    expect(at(bytes(131, 77, u32(1), 0, 1))[0]).toBe(1);
    expect(at(bytes(131, 104, 1, 77, u32(0), 3))[0]).toBe(3);
    expect(at(bytes(131, 90, u16(0), ...nodeAtom, u32(0)))).toEqual([1, 'reference of 0 words; 1 to 5 expected at byte 1']);
    // a truncated pid is reported at the pid; a bad node atom at the atom
    expect(at(bytes(131, 104, 1, 88, ...nodeAtom, u32(1)))[0]).toBe(3);
    expect(at(bytes(131, 88, 119, 44, 'x'))[0]).toBe(2);
    expect(at(bytes(131, 88, 97, 1, u32(0), u32(0), u32(0)))).toEqual([2, 'expected an atom, found tag 97 at byte 2']);
  });

  it('nesting deeper than maxDepth, without recursion: a million nested lists and tuples', () => {
    const lists = Buffer.concat([Buffer.from([131]), Buffer.alloc(5_000_000).fill(Buffer.from([108, 0, 0, 0, 1]))]);
    expect(at(lists)).toEqual([1 + 1024 * 5, 'nesting deeper than 1024 at byte 5121']);
    const tuples = Buffer.concat([Buffer.from([131]), Buffer.alloc(2_000_000).fill(Buffer.from([104, 1])), Buffer.from([97, 0])]);
    expect(at(tuples, { maxDepth: 10 })[0]).toBe(1 + 10 * 2);
    // the largest maxDepth allowed: decoded with no stack overflow
    let v = binaryToTerm(tuples, { maxDepth: 1_000_000 });
    let depth = 0;
    while (v instanceof Tuple) {
      v = v.elements[0];
      depth++;
    }
    expect([depth, v]).toEqual([1_000_000, 0]);
  });

  it('maxDepth counts lists, tuples, maps and funs; not NIL, strings or binaries', () => {
    expect(binaryToTerm(bytes(131, 108, u32(2), 106, 107, u16(1), 'a', 106), { maxDepth: 1 })).toEqual([[], [97]]);
    expect(at(bytes(131, 104, 1, 116, u32(0)), { maxDepth: 1 })).toEqual([3, 'nesting deeper than 1 at byte 3']);
  });

  describe('compressed terms', () => {
    const compressed = (inner: Buffer, size = inner.length): Buffer => bytes(131, 80, u32(size), deflateSync(inner));

    it('are inflated and decoded', () => {
      expect(binaryToTerm(compressed(bytes(108, u32(2), 97, 1, 97, 2, 106)))).toEqual([1, 2]);
    });

    it('a claimed size over maxUncompressedSize is refused at the size field, before inflating', () => {
      expect(at(compressed(bytes(97, 1), 0xffffffff))).toEqual([
        2,
        'compressed term claims 4294967295 bytes, more than maxUncompressedSize (67108864) at byte 2',
      ]);
      expect(at(compressed(bytes(109, u32(20), Buffer.alloc(20))), { maxUncompressedSize: 10 })[0]).toBe(2);
      expect(binaryToTerm(compressed(bytes(109, u32(5), 'abcde')), { maxUncompressedSize: 10, binaries: 'string' })).toBe('abcde');
    });

    it('must inflate to exactly the size it claims, and be valid zlib data', () => {
      expect(at(compressed(bytes(97, 1), 1))[1]).toMatch(/inflates to 2 bytes, not the 1/);
      expect(at(compressed(bytes(109, u32(100), Buffer.alloc(100)), 10))[1]).toMatch(/more than the 10 bytes it claims/);
      expect(at(compressed(bytes(97, 1), 3))[1]).toMatch(/inflates to 2 bytes, not the 3/);
      expect(at(compressed(bytes(109, u32(16 << 20), Buffer.alloc(16 << 20)), 16))[0]).toBe(2);
      // zlib reads the 2-byte header before it finds it wrong: reported where it stopped reading
      expect(at(bytes(131, 80, u32(2), 1, 2, 3))).toEqual([8, 'corrupt compressed data (incorrect header check) at byte 8']);
      expect(at(compressed(bytes(97, 1)).subarray(0, 9))).toEqual([9, 'truncated compressed data at byte 9']);
      expect(at(bytes(131, 80, 0, 0))).toEqual([2, 'truncated compressed term size: needs 4 bytes, 2 left at byte 2']);
      expect(at(Buffer.concat([compressed(bytes(97, 1)), Buffer.from([0])]))[1]).toMatch(/trailing bytes after the compressed data/);
    });

    it('errors inside name offsets in the inflated bytes and say so', () => {
      expect(at(compressed(bytes(104, 2, 97, 1, 200)))).toEqual([4, 'unknown tag 200 in compressed term at byte 4']);
      expect(at(compressed(bytes(97, 1, 0)))).toEqual([2, 'trailing bytes after the term in compressed term at byte 2']);
      // tag 80 is only valid straight after the version byte
      expect(at(bytes(131, 104, 1, compressed(bytes(97, 1)).subarray(1)))[1]).toMatch(/unknown tag 80/);
    });
  });
});

describe('against a real Erlang node', () => {
  let erl: ErlangNode;
  beforeAll(async () => {
    erl = await startNode();
  });
  afterAll(() => erl?.stop());

  /** True when Erlang reads `bytes` with binary_to_term as a term =:= `expr`. */
  const erlangReads = (b: Buffer, expr: string): Promise<string> => erl.readsAs(b, expr);

  it('reads what the pure codec writes as the intended term', async () => {
    const term: Term = [
      tuple(atom('ok'), 1, -1, 300, 2 ** 40, 2n ** 100n, -(2n ** 100n), 1.5, float(2)),
      ['héllo', Buffer.from([0, 255]), charlist('abc'), charlist('Ā'), [], atom('é'), true, null],
      new Map<Term, Term>([[atom('k'), [1]], ['b', tuple()]]),
      { key: 'value' },
      new ImproperList([1, 2], atom('t')),
      new BitBinary(Buffer.from([0xff, 0xe0]), 3),
      new Export(atom('lists'), atom('map'), 2),
    ];
    const expr =
      "[{ok, 1, -1, 300, 1 bsl 40, 1 bsl 100, -(1 bsl 100), 1.5, 2.0}," +
      ' [<<104, 195, 169, 108, 108, 111>>, <<0, 255>>, "abc", [256], [], list_to_atom([233]), true, undefined],' +
      ' #{k => [1], <<"b">> => {}}, #{<<"key">> => <<"value">>}, [1, 2 | t], <<255, 7:3>>, fun lists:map/2]';
    expect(await erlangReads(termToBinary(term), expr)).toBe('true');
    expect(await erlangReads(termToBinary(term, { compressed: 9 }), expr)).toBe('true');
  });

  it('reads the pids, refs and ports it wrote, and they are equal to the ones it made', async () => {
    const made = await erl.eval('{self(), make_ref(), hd(erlang:ports())}');
    const t = binaryToTerm(made) as Tuple;
    const [pid, ref, port] = t.elements;
    expect(pid).toBeInstanceOf(Pid);
    expect(ref).toBeInstanceOf(Ref);
    expect(port).toBeInstanceOf(Port);
    const back = termToBinary(t);
    expect(await erlangReads(back, `binary_to_term(binary:decode_hex(<<"${made.toString('hex')}">>))`)).toBe('true');
    // the eval loop runs in one process, so self() there is the same pid
    expect(await erl.evalText(`element(1, binary_to_term(binary:decode_hex(<<"${back.toString('hex')}">>))) =:= self()`)).toBe('true');
  });

  it('decodes an Erlang fun with free variables and writes back its exact bytes', async () => {
    const made = await erl.eval('X = 42, Y = <<"free">>, F = fun(A) -> {A, X, Y} end, F');
    const f = binaryToTerm(made) as Fun;
    expect(f).toBeInstanceOf(Fun);
    expect(f.module).toBe(atom('erl_eval'));
    expect(termToBinary(f).equals(made)).toBe(true);
    // a size one byte off is a DecodeError
    const bad = Buffer.from(made);
    bad.writeUInt32BE(bad.readUInt32BE(2) + 1, 2);
    expect(decodeError(() => binaryToTerm(bad)).message).toMatch(/truncated NEW_FUN_EXT|NEW_FUN_EXT size/);
  });

  it('decodes compressed and minor_version 0 (FLOAT_EXT) terms Erlang writes', async () => {
    expect(binaryToTerm(await erl.eval('term_to_binary(lists:seq(1, 300), [compressed])').then((b) => binaryToTerm(b) as Buffer))).toEqual(
      Array.from({ length: 300 }, (_, i) => i + 1),
    );
    const floats = binaryToTerm(await erl.eval('term_to_binary([1.5, -0.0, 3.0, 1.0e300], [{minor_version, 0}])').then((b) => binaryToTerm(b) as Buffer));
    expect(floats).toEqual([1.5, float(-0), float(3), float(1e300)]);
  });
});
