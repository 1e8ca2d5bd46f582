/**
 * What both codecs must decode each vector of vectors.json to, following the term mapping in
 * DESIGN.md and the encoding spec: integers are numbers when safe else bigints, integral floats
 * are Float, binaries Buffers, STRING_EXT number[], maps Map, atoms the interned Atom, true/false
 * booleans and undefined null.
 *
 * `expected` holds the default decoding of every vector (a vector without one fails the tests).
 * Pids, ports, references and funs made at run time differ each time the vectors are remade, so
 * their expectation is a Check built from the facts Erlang recorded about them.
 * `withOptions` holds decodings under options; `encodeAlso` holds other JS values that must encode
 * to the same Erlang term as a vector (strings, charlists, plain objects, symbols, bigints ...).
 */
import type { DecodeOptions } from '../../lib/codec/options';
import {
  atom,
  BitBinary,
  charlist,
  Export,
  float,
  Fun,
  ImproperList,
  Pid,
  Port,
  Ref,
  tuple,
  type Term,
} from '../../lib/terms';
import { Check } from './equal';
import { prngBytes, type EncodingName, type Vector, type VectorFile } from './vectors';

export interface CheckContext {
  file: VectorFile;
  vector: Vector;
  encoding: EncodingName;
  /** The bytes of the term without compression (for a compressed vector, its default bytes). */
  bytes: Buffer;
}

export type Expectation = Term | Check<CheckContext>;

const b = (s: string | number[]): Buffer => (typeof s === 'string' ? Buffer.from(s, 'utf8') : Buffer.from(s));
const a = atom;
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const FOREIGN = a('other@host.example');
const map = (...entries: Array<[Term, Term]>): Map<Term, Term> => new Map(entries);

const sessionCsrf = prngBytes(32, 3);

export const expected: Record<string, Expectation> = {
  // integers
  int_0: 0,
  int_1: 1,
  int_255: 255,
  int_256: 256,
  int_neg1: -1,
  int_neg256: -256,
  int32_max: 2147483647,
  int32_min: -2147483648,
  big_2p31: 2147483648,
  big_neg_2p31_minus1: -2147483649,
  big_2p32: 4294967296,
  big_2p53_minus1: 9007199254740991,
  big_neg_2p53_plus1: -9007199254740991,
  big_2p53: 9007199254740992n,
  big_neg_2p53: -9007199254740992n,
  big_2p64_minus1: 18446744073709551615n,
  big_2p64: 18446744073709551616n,
  big_neg_2p64: -18446744073709551616n,
  big_neg_huge: -(2n ** 1000n + 7n),
  big_255_bytes: 2n ** 2040n - 1n,
  large_big_256_bytes: 2n ** 2040n,
  large_big_2p2100: 2n ** 2100n + 12345n,
  large_big_neg_2p4000: -(2n ** 4000n),
  // floats: integral ones (-0.0 included) are Float, so they re-encode as floats
  float_0: float(0),
  float_neg0: float(-0),
  float_1: float(1),
  float_1_5: 1.5,
  float_neg_2_5: -2.5,
  float_0_1: 0.1,
  float_pi: 3.141592653589793,
  float_1e300: float(1e300),
  float_neg_1e300: float(-1e300),
  float_2p53: float(9007199254740992),
  float_max: float(1.7976931348623157e308),
  float_min_normal: 2.2250738585072014e-308,
  float_subnormal: 5e-324,
  // atoms
  atom_ok: a('ok'),
  atom_empty: a(''),
  atom_true: true,
  atom_false: false,
  atom_undefined: null,
  atom_nil: a('nil'),
  atom_null: a('null'),
  atom_cafe: a('café'),
  atom_latin1_high: a('\u00ff\u00fe\u00c0'),
  atom_lambda: a('λ'),
  atom_cjk: a('日本語'),
  atom_emoji: a('🚀'),
  atom_with_space_quote: a('it\'s a "test"'),
  atom_255: a('a'.repeat(255)),
  atom_255_latin1: a('é'.repeat(255)),
  atom_255_cjk: a('日'.repeat(255)),
  atom_255_emoji: a('🚀'.repeat(255)),
  // binaries: always a Buffer by default
  bin_empty: Buffer.alloc(0),
  bin_text: b('hello'),
  bin_utf8: b('café ünï 日本 🚀'),
  bin_non_utf8: b([255, 0, 128, 192, 193, 245]),
  bin_overlong_utf8: b([0xc0, 0x80]),
  bin_surrogate_utf8: b([0xed, 0xa0, 0x80]),
  bin_all_bytes: b(range(0, 255)),
  bin_64k_random: prngBytes(65536, 1),
  bin_100k_text: b('The quick brown fox jumps over the lazy dog. '.repeat(2300)),
  // bitstrings: the used bits are the high ones of the last byte
  bits_1: new BitBinary(b([0x80]), 1),
  bits_7: new BitBinary(b([0xfe]), 7),
  bits_12: new BitBinary(b([0xab, 0xc0]), 4),
  bits_1003: new BitBinary(Buffer.concat([prngBytes(125, 2), b([5 << 5])]), 3),
  // strings: STRING_EXT and LIST_EXT of integers both give number[]
  str_abc: [97, 98, 99],
  str_latin1: [99, 97, 102, 233],
  str_bytes: [0, 1, 127, 128, 255],
  str_unicode: [0x65e5, 0x672c],
  str_emoji: [0x1f680, 33],
  str_65535: new Array<number>(65535).fill(97),
  str_65536: new Array<number>(65536).fill(98),
  // lists
  list_nil: [],
  list_ints_as_string: [1, 2, 3],
  list_ints_big: [1, 256, -1, 2 ** 40],
  list_mixed: [1, a('ok'), b('x'), 2.5, [97, 98], tuple(a('t'))],
  list_nested: [[1], [[2]], [], [[[]]]],
  list_improper: new ImproperList([1], 2),
  list_improper_multi: new ImproperList([a('a'), a('b')], a('c')),
  list_improper_bin_tail: new ImproperList([1], b('tail')),
  list_improper_tuple_tail: new ImproperList([b('x')], tuple()),
  list_1000: range(-500, 499),
  list_of_tuples: range(1, 50).map((i) => tuple(i, b('v'))),
  list_deep_100: range(1, 100).reduce<Term>((acc) => [acc], []),
  // tuples
  tuple_empty: tuple(),
  tuple_1: tuple(a('ok')),
  tuple_pair: tuple(a('ok'), 1),
  tuple_nested: tuple(a('a'), tuple(a('b'), tuple(a('c'), tuple())), [tuple(a('d'))]),
  tuple_255: tuple(...range(1, 255)),
  tuple_256: tuple(...range(1, 256)),
  tuple_300: tuple(...range(1, 300).map((i) => tuple(i))),
  // maps
  map_empty: map(),
  map_atom_keys: map([a('a'), 1], [a('b'), 2]),
  map_bin_keys: map([b('x'), 1], [b('y'), b('two')]),
  map_mixed_keys: map([1, a('a')], [a('ok'), a('b')], [b('k'), a('c')], [tuple(a('t')), a('d')], [[1], a('e')], [1.5, a('f')]),
  map_special_atom_keys: map([true, 1], [false, 2], [null, 3]),
  map_non_utf8_key: map([b([255]), 1]),
  map_proto_key: map([b('__proto__'), map([b('polluted'), true])], [b('constructor'), 1]),
  map_nested: map([a('a'), map([a('b'), map([a('c'), [1, map()]])])]),
  map_33_atom_keys: new Map(range(1, 33).map((i) => [a(`k${i}`), i])),
  map_100_bin_keys: new Map(range(1, 100).map((i) => [b(String(i)), i * i])),
  // pids, ports, references of another node
  pid_foreign: new Pid(FOREIGN, 123, 4, 0xdeadbeef),
  pid_foreign_unicode_node: new Pid(a('nöde@höst'), 1, 0, 7),
  port_foreign: new Port(FOREIGN, 77, 3),
  port_v4: new Port(FOREIGN, 2 ** 40 + 5, 3),
  port_v4_huge: new Port(FOREIGN, 2n ** 64n - 1n, 3),
  ref_foreign: new Ref(FOREIGN, 0x12345678, [1, 2, 3]),
  ref_foreign_1: new Ref(FOREIGN, 9, [42]),
  ref_foreign_5: new Ref(FOREIGN, 9, [1, 2, 3, 4, 0xffffffff]),
  // exports
  export_lists_map: new Export(a('lists'), a('map'), 2),
  export_unicode: new Export(a('café'), a('ünï'), 0),
  // a session as a web application keeps it
  session: map(
    [b('user'), map([b('id'), 1042], [b('name'), b('Zoë Ølberg')], [b('email'), b('zoe@example.com')], [b('roles'), [a('admin'), a('editor')]], [b('verified'), true])],
    [b('cart'), [map([b('sku'), b('A-1')], [b('qty'), 2], [b('price'), 19.99]), map([b('sku'), b('B-22')], [b('qty'), 1], [b('price'), float(5)])]],
    [b('csrf'), sessionCsrf],
    [b('createdAt'), 1700000000000],
    [b('flash'), null],
    [b('visits'), 17],
    [b('prefs'), map([a('theme'), a('dark')], [a('lang'), b('pt-BR')])],
    [b('last'), tuple(2024, 5, 17)],
  ),
  // made at run time
  pid_self: runtimeCheck('pid'),
  port_open: runtimeCheck('port'),
  ref_make: runtimeCheck('ref'),
  fun_no_free: runtimeCheck('fun'),
  fun_free_vars: runtimeCheck('fun'),
  fun_arity3: runtimeCheck('fun'),
  // hand-made: tags OTP reads but no longer writes
  h_small_atom_ext: a('abc'),
  h_small_atom_ext_latin1: a('café'),
  h_small_atom_ext_true: true,
  h_small_atom_ext_undefined: null,
  h_atom_ext_empty: a(''),
  h_atom_utf8_ext_short: a('abc'),
  h_atom_utf8_ext_cjk: a('日本'),
  h_float_ext_short: 1.5,
  h_float_ext_neg_exp: -0.0025,
  h_float_ext_integral: float(3),
  h_pid_ext: new Pid(FOREIGN, 5, 1, 3),
  h_port_ext: new Port(FOREIGN, 5, 3),
  h_v4_port_ext_small_id: new Port(FOREIGN, 5, 3),
  h_reference_ext: new Ref(FOREIGN, 3, [5]),
  h_new_reference_ext: new Ref(FOREIGN, 3, [5, 6, 7]),
  h_newer_reference_ext_2: new Ref(FOREIGN, 3, [5, 6]),
  h_small_big_zero: 0,
  h_small_big_neg_zero: 0,
  h_small_big_non_minimal: 1,
  h_small_big_neg_small: -5,
  h_large_big_small: 5,
  h_list_ext_bytes: [1, 2, 3],
  h_list_ext_empty: [],
  // Erlang reads [1 | [2]] as [1, 2]; the spec keeps a LIST_EXT tail that is not NIL as a tail.
  h_list_ext_list_tail: new ImproperList([1], [2]),
  h_string_ext_empty: [],
  h_large_tuple_small: tuple(1, 2),
  h_large_tuple_empty: tuple(),
  h_bit_binary_8: b([1, 2]),
  h_export_small_atoms: new Export(a('lists'), a('map'), 2),
  h_compressed_not_shorter: 1,
  h_compressed_level0: tuple(1, 2),
};

/** Pids, ports, refs and funs made at run time, checked against what Erlang said about them. */
function runtimeCheck(kind: 'pid' | 'port' | 'ref' | 'fun'): Check<CheckContext> {
  return new Check<CheckContext>(`a ${kind} as etf_vectors recorded it`, (v, ctx) => {
    const info = ctx.vector.runtime;
    if (!info || info.kind !== kind) return `vectors.json has no ${kind} facts for ${ctx.vector.name}`;
    const nodeAtom = a(info.node ?? ctx.file.node);
    const want = (cond: boolean, what: string): string | null => (cond ? null : what);
    if (kind === 'pid') {
      // pid_to_list of a local pid: <0.Id.Serial>
      const [, id, serial] = /^<0\.(\d+)\.(\d+)>$/.exec(info.text!)!.map(Number);
      if (!(v instanceof Pid)) return 'not a Pid';
      return (
        want(v.node === nodeAtom, `node ${v.node?.name}`) ??
        want(v.id === id && v.serial === serial, `id ${v.id} serial ${v.serial} instead of ${info.text}`) ??
        want(v.creation === ctx.file.creation, `creation ${v.creation} instead of ${ctx.file.creation}`)
      );
    }
    if (kind === 'port') {
      const id = Number(/^#Port<0\.(\d+)>$/.exec(info.text!)![1]);
      if (!(v instanceof Port)) return 'not a Port';
      return (
        want(v.node === nodeAtom, `node ${v.node?.name}`) ??
        want(v.id === id, `id ${String(v.id)} instead of ${info.text}`) ??
        want(v.creation === ctx.file.creation, `creation ${v.creation} instead of ${ctx.file.creation}`)
      );
    }
    if (kind === 'ref') {
      // ref_to_list: #Ref<0.W3.W2.W1>, the words most significant first; Ref.ids keeps wire order.
      const words = /^#Ref<0\.([\d.]+)>$/.exec(info.text!)![1].split('.').map(Number).reverse();
      if (!(v instanceof Ref)) return 'not a Ref';
      return (
        want(v.node === nodeAtom, `node ${v.node?.name}`) ??
        want(v.creation === ctx.file.creation, `creation ${v.creation} instead of ${ctx.file.creation}`) ??
        want(v.ids.length === words.length && v.ids.every((w, i) => w === words[i]), `ids ${JSON.stringify(v.ids)} instead of ${info.text}`)
      );
    }
    if (!(v instanceof Fun)) return 'not a Fun';
    return (
      want(v.module === a(info.module!), `module ${v.module?.name}`) ??
      want(v.arity === info.arity, `arity ${v.arity} instead of ${info.arity}`) ??
      want(v.index === info.index, `index ${v.index} instead of ${info.index}`) ??
      want(Buffer.isBuffer(v.bytes) && v.bytes.equals(ctx.bytes.subarray(1)), 'bytes are not the NEW_FUN_EXT bytes of the vector')
    );
  });
}

function ownProto(value: Term): Record<string, Term> {
  // An own enumerable "__proto__" key, as a decoder must make it (a plain assignment would set the prototype).
  const o: Record<string, Term> = {};
  Object.defineProperty(o, '__proto__', { value, enumerable: true, writable: true, configurable: true });
  return o;
}

export interface OptionExpectation {
  name: string;
  options: DecodeOptions;
  value: Term;
}

const STRINGS: DecodeOptions = { strings: 'string' };
const BINS: DecodeOptions = { binaries: 'string' };
const OBJ: DecodeOptions = { maps: 'object' };
const ALL: DecodeOptions = { binaries: 'string', strings: 'string', maps: 'object' };

export const withOptions: OptionExpectation[] = [
  // binaries: 'string' gives a string only for valid UTF-8 (strict: no overlongs, no surrogates)
  { name: 'bin_text', options: BINS, value: 'hello' },
  { name: 'bin_empty', options: BINS, value: '' },
  { name: 'bin_utf8', options: BINS, value: 'café ünï 日本 🚀' },
  { name: 'bin_non_utf8', options: BINS, value: b([255, 0, 128, 192, 193, 245]) },
  { name: 'bin_overlong_utf8', options: BINS, value: b([0xc0, 0x80]) },
  { name: 'bin_surrogate_utf8', options: BINS, value: b([0xed, 0xa0, 0x80]) },
  { name: 'list_mixed', options: BINS, value: [1, a('ok'), 'x', 2.5, [97, 98], tuple(a('t'))] },
  { name: 'bits_12', options: BINS, value: new BitBinary(b([0xab, 0xc0]), 4) },
  { name: 'h_bit_binary_8', options: BINS, value: '\u0001\u0002' },
  // strings: 'string' changes STRING_EXT only, one character per byte
  { name: 'str_abc', options: STRINGS, value: 'abc' },
  { name: 'str_latin1', options: STRINGS, value: 'caf\u00e9' },
  { name: 'str_bytes', options: STRINGS, value: '\u0000\u0001\u007f\u0080\u00ff' },
  { name: 'list_ints_as_string', options: STRINGS, value: '\u0001\u0002\u0003' },
  { name: 'h_string_ext_empty', options: STRINGS, value: '' },
  { name: 'str_unicode', options: STRINGS, value: [0x65e5, 0x672c] },
  { name: 'h_list_ext_bytes', options: STRINGS, value: [1, 2, 3] },
  { name: 'list_nil', options: STRINGS, value: [] },
  { name: 'bin_text', options: STRINGS, value: b('hello') },
  // maps: 'object' when every key is an atom or a UTF-8 binary, else still a Map
  { name: 'map_empty', options: OBJ, value: {} },
  { name: 'map_atom_keys', options: OBJ, value: { a: 1, b: 2 } },
  { name: 'map_bin_keys', options: OBJ, value: { x: 1, y: b('two') } },
  { name: 'map_bin_keys', options: { maps: 'object', binaries: 'string' }, value: { x: 1, y: 'two' } },
  { name: 'map_special_atom_keys', options: OBJ, value: { true: 1, false: 2, undefined: 3 } },
  { name: 'map_mixed_keys', options: OBJ, value: expected.map_mixed_keys as Term },
  { name: 'map_non_utf8_key', options: OBJ, value: map([b([255]), 1]) },
  { name: 'map_nested', options: OBJ, value: { a: { b: { c: [1, {}] } } } },
  { name: 'map_33_atom_keys', options: OBJ, value: Object.fromEntries(range(1, 33).map((i) => [`k${i}`, i])) },
  { name: 'map_proto_key', options: OBJ, value: { ...ownProto({ polluted: true }), constructor: 1 } },
  { name: 'map_atom_keys', options: ALL, value: { a: 1, b: 2 } },
  {
    name: 'session',
    options: ALL,
    value: {
      user: { id: 1042, name: 'Zoë Ølberg', email: 'zoe@example.com', roles: [a('admin'), a('editor')], verified: true },
      cart: [
        { sku: 'A-1', qty: 2, price: 19.99 },
        { sku: 'B-22', qty: 1, price: float(5) },
      ],
      csrf: sessionCsrf, // not valid UTF-8, so it stays a Buffer
      createdAt: 1700000000000,
      flash: null,
      visits: 17,
      prefs: { theme: a('dark'), lang: 'pt-BR' },
      last: tuple(2024, 5, 17),
    },
  },
];

/** Other JS values that encode to the term of a vector (checked by Erlang and across codecs). */
export const encodeAlso: Record<string, Term[]> = {
  int_0: [-0, 0n],
  int_1: [1n, new ImproperList([], 1)],
  big_2p31: [2147483648n],
  big_2p53_minus1: [9007199254740991n],
  big_neg_2p53: [-9007199254740992n],
  float_0: [float(0)],
  float_neg0: [float(-0)],
  float_1: [float(1)],
  float_1_5: [float(1.5)],
  atom_ok: [Symbol.for('ok')],
  atom_emoji: [Symbol.for('🚀')],
  atom_undefined: [undefined],
  atom_true: [Symbol.for('true')],
  atom_255_emoji: [Symbol.for('🚀'.repeat(255))],
  bin_text: ['hello', new Uint8Array([104, 101, 108, 108, 111]), new BitBinary(b('hello'), 8)],
  bin_empty: [''],
  bin_utf8: ['café ünï 日本 🚀'],
  str_abc: [charlist('abc')],
  str_latin1: [charlist('café')],
  str_unicode: [charlist('日本')],
  str_emoji: [charlist('🚀!')],
  str_65535: [charlist('a'.repeat(65535))],
  str_65536: [charlist('b'.repeat(65536))],
  list_nil: [charlist(''), new ImproperList([], [])],
  list_ints_as_string: [new ImproperList([1, 2, 3], []), new ImproperList([1, 2], [3])],
  list_improper_multi: [new ImproperList([a('a')], new ImproperList([a('b')], a('c')))],
  map_empty: [{}, Object.create(null) as Record<string, Term>],
  map_bin_keys: [{ x: 1, y: 'two' }],
  map_proto_key: [JSON.parse('{"__proto__": {"polluted": true}, "constructor": 1}') as Record<string, Term>],
  tuple_pair: [tuple(Symbol.for('ok'), 1n)],
  session: [
    {
      user: { id: 1042, name: 'Zoë Ølberg', email: 'zoe@example.com', roles: [a('admin'), Symbol.for('editor')], verified: true },
      cart: [
        { sku: 'A-1', qty: 2, price: 19.99 },
        { sku: 'B-22', qty: 1, price: float(5) },
      ],
      csrf: sessionCsrf,
      createdAt: 1700000000000,
      flash: undefined,
      visits: 17,
      prefs: map([a('theme'), a('dark')], [a('lang'), 'pt-BR']),
      last: tuple(2024, 5, 17),
    },
  ],
};
