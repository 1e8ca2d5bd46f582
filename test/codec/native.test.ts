/**
 * The native codec (lib/codec/native.ts over the C++ addon): every term type both ways, the
 * options, the errors and their offsets or paths, and the addon in worker threads. Expected bytes
 * are written out from the encoding rules; the Erlang-made vectors live in their own tests.
 */
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { binaryToTerm, termToBinary } from '../../lib/codec/native';
import { ConfigError, DecodeError, EncodeError } from '../../lib/errors';
import {
  atom,
  BitBinary,
  charlist,
  Export,
  float,
  Float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Ref,
  tuple,
  Tuple,
  type Term,
} from '../../lib/terms';

// ---- building bytes ----

type Part = number | number[] | Buffer | string;

/** Bytes from parts: a number is one byte, a string its UTF-8, arrays and Buffers as they are. */
function b(...parts: Part[]): Buffer {
  return Buffer.concat(
    parts.map((p) => (typeof p === 'number' ? Buffer.from([p]) : typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))),
  );
}
const u16 = (n: number): number[] => [(n >>> 8) & 255, n & 255];
const u32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const f64 = (d: number): number[] => {
  const x = Buffer.alloc(8);
  x.writeDoubleBE(d);
  return [...x];
};
/** SMALL_ATOM_UTF8_EXT */
const sa = (name: string): number[] => [119, Buffer.byteLength(name), ...Buffer.from(name)];
/** BINARY_EXT */
const bin = (s: string | Buffer): number[] => {
  const x = typeof s === 'string' ? Buffer.from(s) : s;
  return [109, ...u32(x.length), ...x];
};
const V = 131;

const enc = (t: unknown, o?: Parameters<typeof termToBinary>[1]): string => termToBinary(t as Term, o).toString('hex');
const hex = (...parts: Part[]): string => b(...parts).toString('hex');
const dec = (...parts: Part[]): unknown => binaryToTerm(b(...parts));

/** The DecodeError that decoding `bytes` throws. */
function decodeError(bytes: Buffer, options?: Parameters<typeof binaryToTerm>[1]): DecodeError {
  try {
    binaryToTerm(bytes, options);
  } catch (e) {
    expect(e).toBeInstanceOf(DecodeError);
    return e as DecodeError;
  }
  throw new Error(`no DecodeError for ${bytes.toString('hex')}`);
}

/** The EncodeError that encoding `value` throws. */
function encodeError(value: unknown, options?: Parameters<typeof termToBinary>[1]): EncodeError {
  try {
    termToBinary(value as Term, options);
  } catch (e) {
    expect(e).toBeInstanceOf(EncodeError);
    return e as EncodeError;
  }
  throw new Error('no EncodeError');
}

/** A NEW_FUN_EXT term with the given free variables (each already encoded). */
function funBytes(freeVars: Buffer[] = [], sizeDelta = 0): Buffer {
  const body = b(
    1, // arity
    Array.from({ length: 16 }, (_, i) => i), // uniq
    u32(7), // index
    u32(freeVars.length),
    sa('mod'),
    97, 3, // old index
    98, u32(123456), // old uniq
    88, sa('n@h'), u32(1), u32(0), u32(2), // pid
    ...freeVars,
  );
  return b(112, u32(4 + body.length + sizeDelta), body);
}

// ---- encoding ----

describe('termToBinary', () => {
  it('writes integers in their smallest encoding', () => {
    expect(enc(0)).toBe(hex(V, 97, 0));
    expect(enc(255)).toBe(hex(V, 97, 255));
    expect(enc(-0)).toBe(hex(V, 97, 0));
    expect(enc(256)).toBe(hex(V, 98, u32(256)));
    expect(enc(-1)).toBe(hex(V, 98, u32(0xffffffff)));
    expect(enc(2 ** 31 - 1)).toBe(hex(V, 98, u32(0x7fffffff)));
    expect(enc(-(2 ** 31))).toBe(hex(V, 98, u32(0x80000000)));
    expect(enc(2 ** 31)).toBe(hex(V, 110, 4, 0, 0, 0, 0, 0x80));
    expect(enc(-(2 ** 31) - 1)).toBe(hex(V, 110, 4, 1, 1, 0, 0, 0x80));
    expect(enc(2 ** 53 - 1)).toBe(hex(V, 110, 7, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f));
  });

  it('writes bigints by value', () => {
    expect(enc(5n)).toBe(hex(V, 97, 5));
    expect(enc(-5n)).toBe(hex(V, 98, u32(-5 >>> 0)));
    expect(enc(0n)).toBe(hex(V, 97, 0));
    expect(enc(2n ** 64n)).toBe(hex(V, 110, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1));
    expect(enc(-(2n ** 64n - 1n))).toBe(hex(V, 110, 8, 1, Array(8).fill(255)));
    const huge = 2n ** 2048n; // 257 bytes: LARGE_BIG_EXT
    expect(enc(huge)).toBe(hex(V, 111, u32(257), 0, Array(256).fill(0), 1));
  });

  it('writes floats as NEW_FLOAT_EXT, and Float instances even when integral', () => {
    expect(enc(1.5)).toBe(hex(V, 70, f64(1.5)));
    expect(enc(-0.1)).toBe(hex(V, 70, f64(-0.1)));
    expect(enc(float(2))).toBe(hex(V, 70, f64(2)));
    expect(enc(new Float(-0))).toBe(hex(V, 70, f64(-0)));
  });

  it('writes true, false, null and undefined as atoms', () => {
    expect(enc(true)).toBe(hex(V, sa('true')));
    expect(enc(false)).toBe(hex(V, sa('false')));
    expect(enc(null)).toBe(hex(V, sa('undefined')));
    expect(enc(undefined)).toBe(hex(V, sa('undefined')));
  });

  it('writes atoms and registered symbols as UTF-8 atoms', () => {
    expect(enc(atom('ok'))).toBe(hex(V, sa('ok')));
    expect(enc(atom(''))).toBe(hex(V, 119, 0));
    expect(enc(Symbol.for('ok'))).toBe(hex(V, sa('ok')));
    expect(enc(atom('x'.repeat(255)))).toBe(hex(V, 119, 255, 'x'.repeat(255)));
    // 255 characters but more than 255 bytes: ATOM_UTF8_EXT with a 2-byte length.
    expect(enc(atom('é'.repeat(255)))).toBe(hex(V, 118, u16(510), 'é'.repeat(255)));
    expect(enc(atom('😀'.repeat(255)))).toBe(hex(V, 118, u16(1020), '😀'.repeat(255)));
  });

  it('writes strings, Buffers and Uint8Arrays as binaries', () => {
    expect(enc('')).toBe(hex(V, bin('')));
    expect(enc('héllo ☃ 😀')).toBe(hex(V, bin('héllo ☃ 😀')));
    expect(enc('a\ud800b')).toBe(hex(V, bin('a\ufffdb'))); // a lone surrogate, as Buffer.from makes it
    expect(enc(Buffer.from([0, 1, 255]))).toBe(hex(V, bin(Buffer.from([0, 1, 255]))));
    expect(enc(new Uint8Array([9, 8]))).toBe(hex(V, bin(Buffer.from([9, 8]))));
    const big = Buffer.alloc(100_000, 7);
    expect(termToBinary(big).equals(b(V, bin(big)))).toBe(true);
  });

  it('writes bit binaries', () => {
    expect(enc(new BitBinary(Buffer.from([0xff, 0xe0]), 3))).toBe(hex(V, 77, u32(2), 3, 0xff, 0xe0));
    expect(enc(new BitBinary(Buffer.from([1, 2]), 8))).toBe(hex(V, bin(Buffer.from([1, 2]))));
  });

  it('writes arrays as lists, never as STRING_EXT', () => {
    expect(enc([])).toBe(hex(V, 106));
    expect(enc([1, 2, 3])).toBe(hex(V, 108, u32(3), 97, 1, 97, 2, 97, 3, 106));
    expect(enc([[1], []])).toBe(hex(V, 108, u32(2), 108, u32(1), 97, 1, 106, 106, 106));
    expect(enc([, 1])).toBe(hex(V, 108, u32(2), sa('undefined'), 97, 1, 106)); // a hole is undefined
  });

  it('writes charlists by code point', () => {
    expect(enc(charlist(''))).toBe(hex(V, 106));
    expect(enc(charlist('abc'))).toBe(hex(V, 107, u16(3), 'abc'));
    expect(enc(charlist('é'))).toBe(hex(V, 107, u16(1), 0xe9));
    expect(enc(charlist('a☃😀'))).toBe(hex(V, 108, u32(3), 97, 97, 98, u32(9731), 98, u32(0x1f600), 106));
    const long = 'a'.repeat(65536);
    expect(termToBinary(charlist(long)).subarray(0, 7).toString('hex')).toBe(hex(V, 108, u32(65536), 97));
  });

  it('writes improper lists', () => {
    expect(enc(new ImproperList([1, 2], atom('t')))).toBe(hex(V, 108, u32(2), 97, 1, 97, 2, sa('t')));
    expect(enc(new ImproperList([], atom('t')))).toBe(hex(V, sa('t')));
    expect(enc(new ImproperList([1], []))).toBe(hex(V, 108, u32(1), 97, 1, 106));
  });

  it('writes tuples', () => {
    expect(enc(tuple())).toBe(hex(V, 104, 0));
    expect(enc(tuple(atom('ok'), 1))).toBe(hex(V, 104, 2, sa('ok'), 97, 1));
    const wide = new Tuple(Array.from({ length: 256 }, () => 0));
    expect(enc(wide)).toBe(hex(V, 105, u32(256), Array.from({ length: 256 }, () => [97, 0]).flat()));
  });

  it('writes Maps in iteration order and plain objects with binary keys', () => {
    const m = new Map<Term, Term>([
      [atom('a'), 1],
      ['b', [2]],
    ]);
    expect(enc(m)).toBe(hex(V, 116, u32(2), sa('a'), 97, 1, bin('b'), 108, u32(1), 97, 2, 106));
    expect(enc(new Map())).toBe(hex(V, 116, u32(0)));
    expect(enc({})).toBe(hex(V, 116, u32(0)));
    expect(enc({ b: 1, a: 'x', 2: true })).toBe(hex(V, 116, u32(3), bin('2'), sa('true'), bin('b'), 97, 1, bin('a'), bin('x')));
    const nullProto = Object.assign(Object.create(null) as object, { k: null });
    expect(enc(nullProto)).toBe(hex(V, 116, u32(1), bin('k'), sa('undefined')));
    expect(enc({ [Symbol('s')]: 1, v: 2 })).toBe(hex(V, 116, u32(1), bin('v'), 97, 2));
  });

  it('writes pids, refs, ports, funs and exports', () => {
    const node = atom('n@h');
    expect(enc(new Pid(node, 1, 2, 3))).toBe(hex(V, 88, sa('n@h'), u32(1), u32(2), u32(3)));
    expect(enc(new Ref(node, 4, [1, 2, 3]))).toBe(hex(V, 90, u16(3), sa('n@h'), u32(4), u32(1), u32(2), u32(3)));
    expect(enc(new Port(node, 5, 6))).toBe(hex(V, 89, sa('n@h'), u32(5), u32(6)));
    expect(enc(new Port(node, 2n ** 40n, 6))).toBe(hex(V, 120, sa('n@h'), u32(256), u32(0), u32(6)));
    expect(enc(new Port(node, 2 ** 40, 6))).toBe(hex(V, 120, sa('n@h'), u32(256), u32(0), u32(6)));
    const fun = funBytes();
    expect(enc(new Fun(fun, atom('mod'), 1, 7))).toBe(hex(V, fun));
    expect(enc(new Export(atom('lists'), atom('map'), 2))).toBe(hex(V, 113, sa('lists'), sa('map'), 97, 2));
  });

  it('writes the same bytes for a JSON-like value nested among other terms', () => {
    // A Map is not on the JS fast path, so the value inside it is encoded by the full encoder.
    const values: unknown[] = [
      JSON.parse('{"a":[1,2.5,"x",{"b":null}],"c":true,"é":"☃😀","n":-7,"big":4294967296}'),
      [tuple(atom('ok'), float(3), 'z'), [], {}, '', 'a\udc00'],
      { blob: Buffer.from([1, 2, 3]), bytes: new Uint8Array([4]), empty: Buffer.alloc(0), big: Buffer.alloc(70_000, 5) },
    ];
    for (const v of values) {
      const fast = termToBinary(v as Term);
      const inMap = termToBinary(new Map([[1, v as Term]]));
      expect(inMap.subarray(8).equals(fast.subarray(1))).toBe(true);
    }
  });

  it('compresses when asked and when that is shorter, as term_to_binary does', () => {
    const value = Array.from({ length: 200 }, () => 'the same words again');
    const plain = termToBinary(value);
    for (const compressed of [true, 1, 9] as const) {
      const z = termToBinary(value, { compressed });
      expect([z[0], z[1]]).toEqual([131, 80]);
      expect(z.readUInt32BE(2)).toBe(plain.length - 1);
      expect(z.length).toBeLessThan(plain.length);
      expect(binaryToTerm(z, { binaries: 'string' })).toEqual(value);
    }
    // Level 0 stores, so it is never shorter; a tiny term is not shorter either.
    expect(termToBinary(value, { compressed: 0 }).equals(plain)).toBe(true);
    expect(enc(1, { compressed: true })).toBe(hex(V, 97, 1));
    // The full encoder compresses too.
    const withBuffer = [Buffer.alloc(1000), ...value];
    expect(termToBinary(withBuffer, { compressed: true })[1]).toBe(80);
  });

  it('checks its options', () => {
    expect(() => termToBinary(1, { compressed: 10 })).toThrow(ConfigError);
    expect(() => termToBinary(1, { maxDepth: 0 })).toThrow(ConfigError);
  });

  it('lets a getter encode while it is being encoded', () => {
    const value = {
      get inner(): string {
        return termToBinary([1, 2]).toString('hex');
      },
    };
    expect(binaryToTerm(termToBinary(value), { maps: 'object', binaries: 'string' })).toEqual({
      inner: hex(V, 108, u32(2), 97, 1, 97, 2, 106),
    });
  });
});

describe('termToBinary errors', () => {
  it('names the path of what cannot be encoded', () => {
    const cart = [{ price: 1 }, { price: 2 }, { price: 3 }, { price: NaN }];
    const e = encodeError({ cart });
    expect(e.path).toBe('$.cart[3].price');
    expect(e.message).toContain('NaN');
    expect(e.code).toBe('ERL_PEB_ENCODE');
    expect(encodeError({ 'a b': [new Date()] }).path).toBe('$["a b"][0]');
    expect(encodeError({ 'q"\n': () => 1 }).path).toBe('$["q\\"\\n"]');
    expect(encodeError(new Map<Term, Term>([[1, 2], [new Date() as never, 3]])).path).toBe('$.keys[1]');
    expect(encodeError(new Map<Term, Term>([[1, Symbol('x')]])).path).toBe('$.values[0]');
    expect(encodeError(tuple(1, tuple(2, Infinity))).path).toBe('$[1][1]');
    expect(encodeError(new ImproperList([1], new Set() as never)).path).toBe('$.tail');
    expect(encodeError(new ImproperList([1, 2n ** 3n, new Date() as never], atom('t'))).path).toBe('$[2]');
    expect(encodeError(1e300).path).toBe('$');
  });

  it('refuses values with no Erlang counterpart', () => {
    class Thing {}
    const cases: Array<[unknown, RegExp]> = [
      [NaN, /NaN/],
      [-Infinity, /Infinity/],
      [2 ** 53, /unsafe integer; use a bigint/],
      [1e300, /unsafe integer/],
      [Symbol('local'), /symbol/],
      [() => 0, /function/],
      [new Date(), /Date/],
      [/x/, /RegExp/],
      [new Set(), /Set/],
      [new Thing(), /Thing/],
      [new Float64Array(1), /Float64Array/],
      [new Uint8ClampedArray(1), /Uint8ClampedArray/],
      [{ x: new Uint8ClampedArray(1) }, /Uint8ClampedArray/],
      [Object.create(Uint8Array.prototype), /no Erlang counterpart/],
      [new ArrayBuffer(1), /ArrayBuffer/],
      [new DataView(new ArrayBuffer(1)), /DataView/],
      [new BitBinary(Buffer.from([1]), 0), /bits/],
      [new BitBinary(Buffer.from([1]), 9), /bits/],
      [new BitBinary(Buffer.alloc(0), 3), /empty/],
      [atom('x'.repeat(256)), /255 characters/],
      [Symbol.for('é'.repeat(256)), /255 characters/],
      [new Pid(atom('n'), -1, 0, 0), /Pid.id/],
      [new Pid(atom('n'), 0, 2 ** 32, 0), /Pid.serial/],
      [new Pid('n' as never, 0, 0, 0), /Pid.node/],
      [new Ref(atom('n'), 0, []), /Ref.ids/],
      [new Ref(atom('n'), 0, [1, 2, 3, 4, 5, 6]), /Ref.ids/],
      [new Ref(atom('n'), 0, [1.5]), /Ref.ids/],
      [new Port(atom('n'), -1, 0), /Port.id/],
      [new Port(atom('n'), 2n ** 64n, 0), /Port.id/],
      [new Export(atom('m'), atom('f'), 256), /Export.arity/],
      [new Fun(Buffer.from([1, 2]), atom('m'), 0, 0), /Fun.bytes/],
      [new Float(NaN), /NaN/],
    ];
    for (const [value, message] of cases) {
      const e = encodeError(value);
      expect(e.message).toMatch(message);
      expect(e.path).toBe(value !== null && typeof value === 'object' && 'x' in value ? '$.x' : '$');
    }
  });

  it('stops cyclic values with the depth bound', () => {
    const obj: Record<string, unknown> = { a: 1 };
    obj.self = obj;
    const e = encodeError(obj);
    expect(e.message).toMatch(/nesting deeper than 1024 \(a cycle\?\)/);
    expect(e.path.startsWith('$.self.self.self')).toBe(true);
    const list: unknown[] = [];
    list.push(list);
    expect(encodeError(list, { maxDepth: 3 }).path).toBe('$[0][0][0]');
    const m = new Map<Term, Term>();
    m.set(1, m);
    expect(encodeError(m).message).toMatch(/a cycle/);
    const t = new Tuple([]);
    t.elements.push(t);
    expect(encodeError(t).message).toMatch(/a cycle/);
  });

  it('counts nesting as the containers written', () => {
    expect(enc([[1]], { maxDepth: 2 })).toBe(hex(V, 108, u32(1), 108, u32(1), 97, 1, 106, 106));
    expect(encodeError([[1]], { maxDepth: 1 }).path).toBe('$[0]');
    expect(enc([[]], { maxDepth: 1 })).toBe(hex(V, 108, u32(1), 106, 106)); // [] is NIL, not a container
    expect(encodeError({ a: {} }, { maxDepth: 1 }).path).toBe('$.a');
    // Deeper than the JS walk goes: the full encoder takes it, without recursion.
    let deep: unknown = 0;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(termToBinary(deep as Term, { maxDepth: 100_000 }).length).toBe(1 + 100_000 * 6 + 2);
  });
});

// ---- decoding ----

describe('binaryToTerm', () => {
  it('reads integers, as numbers when safe and bigints beyond', () => {
    expect(dec(V, 97, 200)).toBe(200);
    expect(dec(V, 98, u32(-7 >>> 0))).toBe(-7);
    expect(dec(V, 110, 0, 0)).toBe(0);
    expect(Object.is(dec(V, 110, 1, 1, 0), 0)).toBe(true); // -0 is 0
    expect(dec(V, 110, 2, 1, 1, 1)).toBe(-257);
    expect(dec(V, 110, 4, 0, 5, 0, 0, 0)).toBe(5); // not minimal: accepted
    expect(dec(V, 110, 7, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f)).toBe(2 ** 53 - 1);
    expect(dec(V, 110, 7, 0, 0, 0, 0, 0, 0, 0, 0x20)).toBe(2n ** 53n);
    expect(dec(V, 110, 9, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1)).toBe(-(2n ** 64n));
    expect(dec(V, 111, u32(257), 0, Array(256).fill(0), 1)).toBe(2n ** 2048n);
  });

  it('reads floats, integral ones as Float', () => {
    expect(dec(V, 70, f64(9.99))).toBe(9.99);
    expect(dec(V, 70, f64(2))).toEqual(float(2));
    expect(dec(V, 70, f64(2))).toBeInstanceOf(Float);
    expect(Object.is((dec(V, 70, f64(-0)) as Float).value, -0)).toBe(true);
    const text = (s: string): Buffer => b(V, 99, s, Array(31 - s.length).fill(0));
    expect(binaryToTerm(text('1.50000000000000000000e+00'))).toBe(1.5);
    expect(binaryToTerm(text('-2.5e-3'))).toBe(-0.0025);
    expect(binaryToTerm(text('3.00000000000000000000e+00'))).toEqual(float(3));
  });

  it('reads atoms: booleans, null, and interned Atoms', () => {
    expect(dec(V, sa('true'))).toBe(true);
    expect(dec(V, 100, u16(5), 'false')).toBe(false);
    expect(dec(V, 115, 9, 'undefined')).toBe(null);
    expect(dec(V, sa('ok'))).toBe(atom('ok'));
    expect(dec(V, 100, u16(2), 0xe9, 0x74)).toBe(atom('ét')); // Latin-1
    expect(dec(V, 115, 1, 0xff)).toBe(atom('ÿ'));
    expect(dec(V, 118, u16(3), '☃')).toBe(atom('☃'));
    expect(dec(V, 118, u16(1020), '😀'.repeat(255))).toBe(atom('😀'.repeat(255)));
  });

  it('reads binaries as Buffer copies, or strings with binaries: "string"', () => {
    const input = b(V, bin('abc'));
    const out = binaryToTerm(input) as Buffer;
    expect(Buffer.isBuffer(out)).toBe(true);
    expect(out.toString()).toBe('abc');
    input[6] = 0x7a;
    expect(out.toString()).toBe('abc'); // a copy, not a view of the input
    expect(binaryToTerm(b(V, bin('')))).toEqual(Buffer.alloc(0));
    const big = Buffer.alloc(200_000, 1);
    expect((binaryToTerm(b(V, bin(big))) as Buffer).equals(big)).toBe(true);
    expect(binaryToTerm(b(V, bin('héllo ☃ 😀')), { binaries: 'string' })).toBe('héllo ☃ 😀');
    expect(binaryToTerm(b(V, bin('\ufeffbom')), { binaries: 'string' })).toBe('\ufeffbom');
    // Not valid UTF-8 (a lone continuation byte, an encoded surrogate, an overlong): stays a Buffer.
    for (const bad of [[0x80], [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf4, 0x90, 0x80, 0x80]]) {
      expect(binaryToTerm(b(V, bin(Buffer.from(bad))), { binaries: 'string' })).toEqual(Buffer.from(bad));
    }
    expect(binaryToTerm(b(V, 77, u32(1), 8, 0x41), { binaries: 'string' })).toBe('A');
  });

  it('reads bit binaries', () => {
    expect(dec(V, 77, u32(2), 3, 0xff, 0xe0)).toEqual(new BitBinary(Buffer.from([0xff, 0xe0]), 3));
    expect(dec(V, 77, u32(2), 8, 1, 2)).toEqual(Buffer.from([1, 2]));
    expect(dec(V, 77, u32(0), 8)).toEqual(Buffer.alloc(0));
  });

  it('reads lists, strings and improper lists', () => {
    expect(dec(V, 106)).toEqual([]);
    expect(dec(V, 108, u32(2), 97, 1, sa('a'), 106)).toEqual([1, atom('a')]);
    expect(dec(V, 107, u16(3), 'abc')).toEqual([97, 98, 99]);
    expect(binaryToTerm(b(V, 107, u16(2), 0x61, 0xe9), { strings: 'string' })).toBe('aé');
    expect(dec(V, 108, u32(2), 97, 1, 97, 2, sa('t'))).toEqual(new ImproperList([1, 2], atom('t')));
    expect(dec(V, 108, u32(0), sa('t'))).toEqual(new ImproperList([], atom('t')));
    expect(dec(V, 108, u32(0), 106)).toEqual([]);
    expect(dec(V, 108, u32(1), 97, 1, 108, u32(1), 97, 2, 106)).toEqual(new ImproperList([1], [2]));
  });

  it('reads tuples', () => {
    expect(dec(V, 104, 0)).toEqual(tuple());
    expect(dec(V, 104, 2, sa('ok'), 97, 1)).toEqual(tuple(atom('ok'), 1));
    expect(dec(V, 105, u32(2), 97, 1, 97, 2)).toEqual(tuple(1, 2));
    expect(dec(V, 104, 1, 106)).toBeInstanceOf(Tuple);
  });

  it('reads maps as Maps, or as plain objects with maps: "object"', () => {
    const bytes = b(V, 116, u32(3), sa('a'), 97, 1, bin('b'), 97, 2, sa('true'), 106);
    expect(binaryToTerm(bytes)).toEqual(
      new Map<Term, Term>([
        [atom('a'), 1],
        [Buffer.from('b'), 2],
        [true, []],
      ]),
    );
    const obj = binaryToTerm(bytes, { maps: 'object' }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect(obj).toEqual({ a: 1, b: 2, true: [] });
    expect(binaryToTerm(b(V, 116, u32(0)), { maps: 'object' })).toEqual({});
    expect(binaryToTerm(b(V, 116, u32(1), 115, 9, 'undefined', 97, 1), { maps: 'object' })).toEqual({ undefined: 1 });
    // A key that is neither an atom nor a UTF-8 binary keeps it a Map, with every key as ever.
    const mixed = b(V, 116, u32(3), sa('a'), 97, 1, 97, 7, 97, 2, bin('c'), 97, 3);
    expect(binaryToTerm(mixed, { maps: 'object' })).toEqual(
      new Map<Term, Term>([
        [atom('a'), 1],
        [7, 2],
        [Buffer.from('c'), 3],
      ]),
    );
    expect(binaryToTerm(mixed, { maps: 'object', binaries: 'string' })).toEqual(
      new Map<Term, Term>([
        [atom('a'), 1],
        [7, 2],
        ['c', 3],
      ]),
    );
    const badKey = b(V, 116, u32(1), bin(Buffer.from([0xff])), 97, 1);
    expect(binaryToTerm(badKey, { maps: 'object' })).toEqual(new Map([[Buffer.from([0xff]), 1]]));
    // A STRING_EXT key is a list, not a binary, even when it reads as a string.
    const listKey = b(V, 116, u32(1), 107, u16(1), 'k', 97, 1);
    expect(binaryToTerm(listKey, { maps: 'object', strings: 'string' })).toEqual(new Map([['k', 1]]));
  });

  it('keeps a "__proto__" key as an own property', () => {
    const obj = binaryToTerm(b(V, 116, u32(1), bin('__proto__'), 116, u32(1), bin('x'), 97, 1), {
      maps: 'object',
    }) as Record<string, unknown>;
    expect(Object.getPrototypeOf(obj)).toBe(Object.prototype);
    expect(Object.keys(obj)).toEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(obj, '__proto__')?.value).toEqual({ x: 1 });
  });

  it('gives the same keys however often they come and go', () => {
    const o = { maps: 'object', binaries: 'string' } as const;
    const item = (k: string): number[] => [116, ...u32(1), ...bin(k), 97, 1];
    // A decode that fails after new keys, then the same keys again.
    decodeError(b(V, 108, u32(2), item('first'), item('second'), 255));
    expect(binaryToTerm(b(V, 108, u32(2), item('first'), item('second'), 106), o)).toEqual([{ first: 1 }, { second: 1 }]);
    // Keys inside a fun's free variables (which the Fun drops), then the same key outside it.
    const fun = funBytes([b(item('inside'))]);
    const t = binaryToTerm(b(V, 104, 2, fun, item('inside')), o) as Tuple;
    expect(t.elements[0]).toBeInstanceOf(Fun);
    expect(t.elements[1]).toEqual({ inside: 1 });
    // More distinct keys than the key cache holds, twice.
    const keys = Array.from({ length: 5000 }, (_, i) => `key${i}`);
    const many = b(V, 116, u32(keys.length), keys.flatMap((k, i) => [...bin(k), 98, ...u32(i)]));
    for (let round = 0; round < 2; round++) {
      const obj = binaryToTerm(many, o) as Record<string, number>;
      expect(Object.keys(obj)).toEqual(keys);
      expect(obj.key4321).toBe(4321);
    }
  });

  it('reads pids, ports, refs, exports and funs', () => {
    const node = atom('n@h');
    expect(dec(V, 103, sa('n@h'), u32(1), u32(2), 3)).toEqual(new Pid(node, 1, 2, 3));
    expect(dec(V, 88, sa('n@h'), u32(1), u32(2), u32(0xfffffff0))).toEqual(new Pid(node, 1, 2, 0xfffffff0));
    expect(dec(V, 102, sa('n@h'), u32(5), 1)).toEqual(new Port(node, 5, 1));
    expect(dec(V, 89, sa('n@h'), u32(5), u32(9))).toEqual(new Port(node, 5, 9));
    expect(dec(V, 120, sa('n@h'), u32(0x1fffff), u32(0xffffffff), u32(9))).toEqual(new Port(node, 2 ** 53 - 1, 9));
    expect(dec(V, 120, sa('n@h'), u32(0xffffffff), u32(1), u32(9))).toEqual(new Port(node, 0xffffffff00000001n, 9));
    expect(dec(V, 101, sa('n@h'), u32(7), 2)).toEqual(new Ref(node, 2, [7]));
    expect(dec(V, 114, u16(2), sa('n@h'), 3, u32(1), u32(2))).toEqual(new Ref(node, 3, [1, 2]));
    expect(dec(V, 90, u16(3), sa('n@h'), u32(4), u32(1), u32(2), u32(3))).toEqual(new Ref(node, 4, [1, 2, 3]));
    expect(dec(V, 113, sa('lists'), sa('map'), 97, 2)).toEqual(new Export(atom('lists'), atom('map'), 2));
    // A node or module named like a special atom is still an Atom.
    expect((dec(V, 88, sa('true'), u32(1), u32(2), u32(3)) as Pid).node).toBe(atom('true'));
    const fun = funBytes([b(97, 1), b(108, u32(1), 116, u32(0), 106)]);
    const f = dec(V, fun) as Fun;
    expect(f).toEqual(new Fun(fun, atom('mod'), 1, 7));
    expect(f.bytes.equals(fun)).toBe(true);
    expect(enc(f)).toBe(hex(V, fun));
  });

  it('reads compressed terms', () => {
    const inner = b(108, u32(3), bin('a'), bin('b'), bin('c'), 106);
    const z = b(V, 80, u32(inner.length), deflateSync(inner));
    expect(binaryToTerm(z, { binaries: 'string' })).toEqual(['a', 'b', 'c']);
    expect(binaryToTerm(z)).toEqual([Buffer.from('a'), Buffer.from('b'), Buffer.from('c')]);
  });

  it('reads from a Uint8Array and from a Buffer that is a slice of a larger one', () => {
    expect(binaryToTerm(new Uint8Array([131, 97, 5]))).toBe(5);
    const big = Buffer.concat([Buffer.from([1, 2, 3]), b(V, bin('xy'))]);
    expect(binaryToTerm(big.subarray(3))).toEqual(Buffer.from('xy'));
  });

  it('decodes what it encodes', () => {
    const value = {
      user: { name: 'Alice', roles: ['admin'], score: 1.25, id: 2n ** 70n },
      tags: [atom('a'), tuple(1, 2), float(4), new Map<Term, Term>([[1, 'one']])],
      empty: [],
    };
    expect(binaryToTerm(termToBinary(value as Term), { maps: 'object', binaries: 'string' })).toEqual(value);
  });

  it('checks its options', () => {
    expect(() => binaryToTerm(b(V, 97, 1), { maps: 'objects' as never })).toThrow(ConfigError);
    expect(() => binaryToTerm(b(V, 97, 1), { maxUncompressedSize: -1 })).toThrow(ConfigError);
  });
});

describe('binaryToTerm errors', () => {
  it('names the byte offset', () => {
    const cases: Array<[Buffer, number, RegExp]> = [
      [b(), 0, /empty/],
      [b(130, 97, 1), 0, /version byte 130/],
      [b(V), 1, /truncated/],
      [b(V, 97, 1, 0), 3, /trailing bytes/],
      [b(V, 255), 1, /unknown tag 255/],
      [b(V, 80 + 0), 2, /truncated compressed/],
      [b(V, 108, u32(2), 97, 1), 1, /truncated list: 2 elements but only 2 bytes left/],
      [b(V, 108, u32(1), 97, 1, 97, 1, 106, 7), 10, /trailing bytes/], // [1 | 1], then 106, 7
      [b(V, 104, 2, 97, 1, 99), 5, /unknown tag 99|truncated float/],
      [b(V, 109, u32(10), 'abc'), 1, /truncated binary/],
      [b(V, 118, u16(2), 0xc3, 0x28), 1, /not valid UTF-8/],
      [b(V, 100, u16(256), 'a'.repeat(256)), 1, /255 characters/],
      [b(V, 118, u16(512), 'é'.repeat(256)), 1, /255 characters/],
      [b(V, 77, u32(1), 0, 1), 1, /0 bits/],
      [b(V, 77, u32(1), 9, 1), 1, /9 bits/],
      [b(V, 77, u32(0), 3), 1, /empty bit binary/],
      [b(V, 110, 1, 2, 5), 1, /sign byte 2/],
      [b(V, 70, f64(NaN)), 1, /not finite/],
      [b(V, 70, f64(Infinity)), 1, /not finite/],
      [b(V, 99, 'abc', Array(28).fill(0)), 1, /float text/],
      [b(V, 99, '1.0e+400', Array(23).fill(0)), 1, /not finite/],
      [b(V, 90, u16(0), sa('n'), u32(0)), 1, /0 ids/],
      [b(V, 90, u16(6), sa('n'), u32(0)), 1, /6 ids/],
      [b(V, 88, 97, 1), 2, /pid node must be an atom/],
      [b(V, 113, sa('m'), sa('f'), 98, u32(1)), 8, /arity/],
      [b(V, 116, u32(0x7fffffff)), 1, /truncated map/],
      [b(V, 105, u32(0xffffffff)), 1, /truncated tuple/],
      [b(V, 108, u32(0xffffffff), 106), 1, /truncated list/],
      [b(V, 109, u32(0xffffffff)), 1, /truncated binary/],
      [b(V, 111, u32(0xffffffff), 0), 1, /truncated integer/],
      [b(V, 104, 2, 97, 1, 80, 1), 5, /unknown tag 80/], // tag 80 only straight after the version byte
    ];
    for (const [bytes, offset, message] of cases) {
      const e = decodeError(bytes);
      expect(e.message, bytes.toString('hex')).toMatch(message);
      expect(e.offset, bytes.toString('hex')).toBe(offset);
      expect(e.code).toBe('ERL_PEB_DECODE');
      expect(e.message).toContain(`at byte ${offset}`);
    }
  });

  it('checks every field of a fun against its size', () => {
    expect(decodeError(b(V, funBytes([], 1))).message).toMatch(/fun/);
    expect(decodeError(b(V, funBytes([b(97, 1)], -1))).message).toMatch(/fun/);
    const longer = funBytes([b(97, 1)], 2);
    expect(decodeError(b(V, longer, 97, 1, 106)).message).toMatch(/fun size does not match/);
    expect(decodeError(b(V, 112, u32(0x7fffffff), 1)).message).toMatch(/truncated fun/);
  });

  it('rejects input that is not bytes', () => {
    for (const input of ['83', [131, 97, 1], null, undefined, new Uint16Array([131]), new ArrayBuffer(3)]) {
      const e = decodeError(input as never);
      expect(e.offset).toBe(0);
    }
  });

  it('gives a DecodeError, never a crash, for every prefix of a term', () => {
    const full = termToBinary(
      [
        { a: [1, 2.5, 'x', 2n ** 80n], b: tuple(atom('ok'), charlist('hi')) },
        new Pid(atom('n@h'), 1, 2, 3),
        new Ref(atom('n@h'), 1, [1, 2, 3]),
        new Port(atom('n@h'), 2n ** 60n, 1),
        new Export(atom('m'), atom('f'), 1),
        new BitBinary(Buffer.from([1, 2]), 5),
        new ImproperList([1], atom('t')),
        new Fun(funBytes([b(97, 1)]), atom('mod'), 1, 7),
      ] as Term[],
    );
    for (let n = 0; n < full.length; n++) {
      for (const options of [undefined, { maps: 'object', binaries: 'string', strings: 'string' } as const]) {
        const e = decodeError(full.subarray(0, n), options);
        expect(e.offset).toBeLessThanOrEqual(n);
      }
    }
  });

  it('bounds nesting before it recurses: a million nested lists', () => {
    const depth = 1_000_000;
    // [[[...[]...]]]: each level a LIST_EXT header (5 bytes) now, its tail (NIL) at the end.
    const deep = Buffer.alloc(1 + depth * 5 + 1);
    deep[0] = 131;
    for (let i = 0; i < depth; i++) {
      deep[1 + i * 5] = 108;
      deep.writeUInt32BE(1, 2 + i * 5);
    }
    deep[1 + depth * 5] = 106; // the innermost element; the tails of all the levels are missing
    const e = decodeError(deep);
    expect(e.message).toMatch(/nesting deeper than 1024/);
    expect(e.offset).toBe(1 + 1024 * 5);
    expect(decodeError(deep, { maxDepth: 10 }).offset).toBe(1 + 10 * 5);
    // Allowed that deep, it is decoded without recursion (and the missing tails are reported).
    expect(decodeError(deep, { maxDepth: depth }).message).toMatch(/truncated/);
    const complete = Buffer.concat([deep, Buffer.alloc(depth, 106)]);
    let v = binaryToTerm(complete, { maxDepth: depth }) as unknown[];
    let levels = 0;
    while (Array.isArray(v) && v.length === 1) {
      v = v[0] as unknown[];
      levels++;
    }
    expect(levels).toBe(depth);
  });

  it('counts maps, tuples and fun free variables as nesting', () => {
    expect(binaryToTerm(b(V, 104, 1, 104, 0), { maxDepth: 2 })).toEqual(tuple(tuple()));
    expect(decodeError(b(V, 104, 1, 104, 0), { maxDepth: 1 }).offset).toBe(3);
    expect(decodeError(b(V, 116, u32(1), 97, 1, 116, u32(0)), { maxDepth: 1 }).offset).toBe(8);
    expect(decodeError(b(V, funBytes([b(104, 0)])), { maxDepth: 1 }).message).toMatch(/nesting/);
    expect(binaryToTerm(b(V, 108, u32(1), 106, 106), { maxDepth: 1 })).toEqual([[]]); // NIL is no container
  });

  it('checks compressed terms before and after inflating', () => {
    const inner = b(108, u32(2), 97, 1, 97, 2, 106);
    const z = deflateSync(inner);
    // Claims 4 GiB: refused at the size field, before any allocation.
    let e = decodeError(b(V, 80, u32(0xffffffff), z));
    expect(e.offset).toBe(2);
    expect(e.message).toMatch(/maxUncompressedSize/);
    e = decodeError(b(V, 80, u32(inner.length), z), { maxUncompressedSize: inner.length - 1 });
    expect(e.offset).toBe(2);
    expect(binaryToTerm(b(V, 80, u32(inner.length), z), { maxUncompressedSize: inner.length })).toEqual([1, 2]);
    // Inflates to more, or to less, than the size says.
    expect(decodeError(b(V, 80, u32(inner.length - 1), z)).message).toMatch(/more than/);
    expect(decodeError(b(V, 80, u32(inner.length + 1), z)).message).toMatch(
      new RegExp(`inflates to ${inner.length} bytes, not the ${inner.length + 1}`),
    );
    // Corrupt, truncated, or followed by more bytes.
    expect(decodeError(b(V, 80, u32(inner.length), 0x78, 0x9c, 0xff, 0xff)).message).toMatch(/corrupt/);
    expect(decodeError(b(V, 80, u32(inner.length), z.subarray(0, z.length - 3))).message).toMatch(/truncated/);
    e = decodeError(b(V, 80, u32(inner.length), z, 0));
    expect(e.message).toMatch(/trailing bytes/);
    expect(e.offset).toBe(6 + z.length);
    // Errors inside: offsets in the inflated bytes, and the message says so.
    const bad = b(104, 2, 97, 1, 255);
    e = decodeError(b(V, 80, u32(bad.length), deflateSync(bad)));
    expect(e.message).toMatch(/unknown tag 255 in compressed term/);
    expect(e.offset).toBe(4);
    const extra = b(97, 1, 97, 2);
    e = decodeError(b(V, 80, u32(extra.length), deflateSync(extra)));
    expect(e.message).toMatch(/trailing bytes in compressed term/);
    expect(e.offset).toBe(2);
  });

  it('leaves no damage behind a failed decode', () => {
    for (let i = 0; i < 3; i++) decodeError(b(V, 104, 3, 116, u32(1), bin('k'), 97, 1, 97, 2, 255));
    expect(binaryToTerm(b(V, 116, u32(1), bin('k'), 97, 1), { maps: 'object' })).toEqual({ k: 1 });
    expect(binaryToTerm(b(V, sa('ok')))).toBe(atom('ok'));
  });
});

// ---- worker threads ----

describe('in worker threads', () => {
  const requireHere = createRequire(__filename);
  const tsx = requireHere.resolve('tsx/cjs');
  const codec = path.resolve(__dirname, '../../lib/codec/native.ts');
  const terms = path.resolve(__dirname, '../../lib/terms.ts');
  const errors = path.resolve(__dirname, '../../lib/errors.ts');

  function runWorker(): Promise<{ result: unknown; exitCode: number }> {
    const code = `
      require(${JSON.stringify(tsx)});
      const { parentPort } = require('node:worker_threads');
      const { termToBinary, binaryToTerm } = require(${JSON.stringify(codec)});
      const { atom, tuple } = require(${JSON.stringify(terms)});
      const { DecodeError } = require(${JSON.stringify(errors)});
      const bytes = termToBinary({ cart: [{ sku: 'A', qty: 2 }], t: tuple(atom('ok'), 1) });
      const back = binaryToTerm(bytes, { maps: 'object', binaries: 'string' });
      let error;
      try { binaryToTerm(Buffer.from([131, 255])); } catch (e) { error = e instanceof DecodeError && e.offset; }
      parentPort.postMessage({
        hex: bytes.toString('hex'),
        sku: back.cart[0].sku,
        atomSame: back.t.elements[0] === atom('ok'),
        error,
      });
    `;
    return new Promise((resolve, reject) => {
      const worker = new Worker(code, { eval: true });
      let result: unknown;
      worker.on('message', (m) => (result = m));
      worker.on('error', reject);
      worker.on('exit', (exitCode) => resolve({ result, exitCode }));
    });
  }

  it('loads the addon in a Worker, encodes and decodes there, and exits cleanly', async () => {
    const expected = termToBinary({ cart: [{ sku: 'A', qty: 2 }], t: tuple(atom('ok'), 1) }).toString('hex');
    const { result, exitCode } = await runWorker();
    expect(exitCode).toBe(0);
    expect(result).toEqual({ hex: expected, sku: 'A', atomSame: true, error: 1 });
  });

  it('runs in several Workers at once, again and again', async () => {
    for (let round = 0; round < 2; round++) {
      const runs = await Promise.all([runWorker(), runWorker(), runWorker()]);
      for (const { result, exitCode } of runs) {
        expect(exitCode).toBe(0);
        expect((result as { sku: string }).sku).toBe('A');
      }
    }
    // The main thread's addon is untouched by the Workers coming and going.
    expect(binaryToTerm(termToBinary({ k: [atom('ok')] }), { maps: 'object' })).toEqual({ k: [atom('ok')] });
  });
});
