/**
 * mypeb's format-string encoder and decode shape (lib/peb/format.ts): the terms and bytes each
 * directive and bracket gives, mypeb's nesting rule, the errors for what mypeb silently garbled,
 * and a real Erlang node reading what vencode writes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decode, encode, formatToTerm, toPebShape, toPebValue, vdecode, vencode, PEB_DECODE_OPTIONS } from '../../lib/peb/format';
import { binaryToTerm, termToBinary } from '../../lib/pure';
import { Charlist, EncodeError, Float, ImproperList, Pid, Ref, Tuple, atom, charlist, float, tuple, type Term } from '../../lib/pure';
import { startNode, type ErlangNode } from '../support/erlang-node';

const u32 = (n: number): number[] => [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

function encodeError(f: () => unknown): EncodeError {
  try {
    f();
  } catch (e) {
    if (e instanceof EncodeError) return e;
    throw new Error(`expected an EncodeError, got ${String(e)}`);
  }
  throw new Error('expected an EncodeError, but it encoded');
}

describe('peb encode: the rpc-argument idiom', () => {
  it('encode("[~s]", [[id]]) is the Erlang list [Id] with Id a byte list, without the version byte', () => {
    const b = encode('[~s]', [['sid-1']]);
    expect([...b]).toEqual([108, ...u32(1), 107, 0, 5, ...Buffer.from('sid-1'), 106]);
    expect(vencode('[~s]', [['sid-1']]).equals(Buffer.concat([Buffer.from([131]), b]))).toBe(true);
  });

  it('data for a list item must be an array (mypeb: peb_encode("[~s]", array(array($id))))', () => {
    const e = encodeError(() => encode('[~s]', ['sid-1']));
    expect(e.path).toBe('$[0]');
    expect(e.message).toMatch(/the list at position 0 of format "\[~s\]" takes an array of its 1 values, got a string/);
    expect(e.message).toMatch(/array\(array\(/);
  });

  it('two arguments, as the session handler writes them', () => {
    expect(formatToTerm('[~s, ~s]', [['id', 'data']])).toEqual([charlist('id'), charlist('data')]);
  });
});

describe('peb formatToTerm: directives', () => {
  const one = (format: string, value: unknown): Term => formatToTerm(format, [value]);

  it('~a: an atom from a string (or an Atom)', () => {
    expect(one('~a', 'ok')).toBe(atom('ok'));
    expect(one('~a', atom('x'))).toBe(atom('x'));
    expect(one('~a', 'true')).toBe(atom('true'));
    expect(encodeError(() => one('~a', 1)).message).toMatch(/~a at position 0 of format "~a" wants a string \(the atom name\), got a number \(1\)/);
    expect(encodeError(() => one('~a', 'x'.repeat(256))).message).toMatch(/at most 255/);
  });

  it('~s: an Erlang string of the UTF-8 bytes (as mypeb wrote PHP strings), or of a Buffer', () => {
    expect(one('~s', 'abc')).toEqual(new Charlist('abc'));
    expect(one('~s', 'é')).toEqual(new Charlist('\u00c3\u00a9'));
    expect([...encode('~s', ['é'])]).toEqual([107, 0, 2, 0xc3, 0xa9]);
    expect([...encode('~s', [''])]).toEqual([106]);
    expect([...encode('~s', [Buffer.from([0, 255])])]).toEqual([107, 0, 2, 0, 255]);
    const long = encode('~s', ['x'.repeat(70000)]);
    expect([...long.subarray(0, 5)]).toEqual([108, ...u32(70000)]);
    expect(encodeError(() => one('~s', 5)).message).toMatch(/wants a string or a Buffer/);
  });

  it('~b: a binary from a string (UTF-8) or a Buffer', () => {
    expect([...encode('~b', ['é'])]).toEqual([109, ...u32(2), 0xc3, 0xa9]);
    expect([...encode('~b', [Buffer.from([7])])]).toEqual([109, ...u32(1), 7]);
    expect(encodeError(() => one('~b', null)).message).toMatch(/~b .* got null/);
  });

  it('~i: an integer in int32 range', () => {
    expect(one('~i', 5)).toBe(5);
    expect(one('~i', -2147483648)).toBe(-2147483648);
    expect(one('~i', 7n)).toBe(7);
    for (const bad of [2147483648, -2147483649, 1.5, '1', NaN]) {
      expect(encodeError(() => one('~i', bad)).message).toMatch(/wants an integer from -2147483648 to 2147483647/);
    }
  });

  it('~l: int64 range, number or bigint; ~u: 0..2^64-1', () => {
    expect(one('~l', 2n ** 63n - 1n)).toBe(2n ** 63n - 1n);
    expect(one('~l', -(2n ** 63n))).toBe(-(2n ** 63n));
    expect(one('~l', 2n ** 40n)).toBe(2 ** 40);
    expect(encodeError(() => one('~l', 2n ** 63n)).message).toMatch(/-2\^63 to 2\^63-1/);
    expect(one('~u', 2n ** 64n - 1n)).toBe(2n ** 64n - 1n);
    expect(one('~u', 0)).toBe(0);
    expect(encodeError(() => one('~u', -1)).message).toMatch(/0 to 2\^64-1/);
    expect(encodeError(() => one('~u', 2n ** 64n)).message).toMatch(/0 to 2\^64-1/);
  });

  it('~f and ~d: always a float, also for integral values', () => {
    expect(one('~f', 2)).toEqual(float(2));
    expect(one('~d', 1.5)).toEqual(float(1.5));
    expect([...encode('~d', [2])]).toEqual([70, 0x40, 0, 0, 0, 0, 0, 0, 0]);
    expect(encodeError(() => one('~f', Infinity)).message).toMatch(/finite number/);
    expect(encodeError(() => one('~d', '1.5')).message).toMatch(/finite number/);
  });

  it('~p: a Pid', () => {
    const pid = new Pid(atom('n@h'), 1, 2, 3);
    expect(one('~p', pid)).toBe(pid);
    expect(encodeError(() => one('~p', 'pid')).message).toMatch(/wants a Pid/);
  });

  it('~P: any term, by the term mapping', () => {
    const value = { cart: [1, 2], at: tuple(atom('ok')) };
    expect(one('~P', value)).toBe(value);
    // the codec refuses what has no Erlang counterpart; the path names the value in data
    const e = encodeError(() => encode('[~s, ~P]', [['x', { d: new Date() }]]));
    expect(e.path).toBe('$[0][1].d');
    expect(e.message).toMatch(/Date at \$\[0\]\[1\]\.d$/);
    expect(encodeError(() => vencode('~P', [new Date()])).path).toBe('$[0]');
  });
});

describe('peb formatToTerm: lists, tuples and the nesting rule', () => {
  it('a list or tuple takes one element of data that is the array of its values', () => {
    expect(formatToTerm('{~a, [~i, ~i], ~s}', [['ok', [1, 2], 'x']])).toEqual(tuple(atom('ok'), [1, 2], charlist('x')));
    expect(formatToTerm('[{~a, ~i}, {~a, ~i}]', [[['a', 1], ['b', 2]]])).toEqual([tuple(atom('a'), 1), tuple(atom('b'), 2)]);
  });

  it('[] and {} need no value: left out, or an empty array', () => {
    for (const data of [[], [[]]]) expect(formatToTerm('[]', data)).toEqual([]);
    expect(formatToTerm('{}', [])).toEqual(tuple());
    expect(formatToTerm('[~s, []]', [['a']])).toEqual([charlist('a'), []]);
    expect(formatToTerm('[~s, []]', [['a', []]])).toEqual([charlist('a'), []]);
    expect(formatToTerm('[[]]', [[]])).toEqual([[]]);
    expect([...encode('[]', [])]).toEqual([106]);
    expect(encodeError(() => formatToTerm('[]', [[1]])).path).toBe('$[0][0]');
  });

  it('commas and white space separate items', () => {
    const expected = [atom('a'), charlist('b'), 3];
    expect(formatToTerm('[~a,~s,~i]', [['a', 'b', 3]])).toEqual(expected);
    expect(formatToTerm(' [ ~a ,\t~s\n~i ] ', [['a', 'b', 3]])).toEqual(expected);
    expect(formatToTerm('[~a~s~i]', [['a', 'b', 3]])).toEqual(expected);
  });

  it('missing and extra values are EncodeErrors naming the item and the data path', () => {
    let e = encodeError(() => formatToTerm('[~s, ~i]', [['a']]));
    expect(e.message).toMatch(/missing value for ~i at position 5 of format "\[~s, ~i\]"/);
    expect(e.path).toBe('$[0][1]');
    e = encodeError(() => formatToTerm('[~s, ~i]', [['a', 1, 2]]));
    expect(e.message).toMatch(/extra value: the list at position 0 .* takes 2 values, data has 3/);
    expect(e.path).toBe('$[0][2]');
    e = encodeError(() => formatToTerm('~a', ['a', 'b']));
    expect(e.path).toBe('$[1]');
    e = encodeError(() => formatToTerm('~a', []));
    expect(e.message).toMatch(/missing value for ~a/);
    e = encodeError(() => formatToTerm('{~a, [~i]}', [['a', 'x']]));
    expect(e.message).toMatch(/the list at position 5 .* takes an array of its 1 values, got a string/);
    expect(e.path).toBe('$[0][1]');
    e = encodeError(() => formatToTerm('[{~a}]', [[]]));
    expect(e.message).toMatch(/missing value for the tuple at position 1/);
    expect(encodeError(() => formatToTerm('~a', 'a' as never)).message).toMatch(/data must be an array/);
  });

  it('unknown directives, unbalanced brackets and stray text are EncodeErrors naming the position', () => {
    const cases: Array<[string, RegExp]> = [
      ['[~x]', /unknown directive ~x .* at position 1 of format "\[~x\]"/],
      ['[~s', /unbalanced brackets: '\[' is never closed; it opens at position 0/],
      ['{~s]', /unbalanced brackets: '\]' does not close '\{' \(position 0\) at position 3/],
      ['~s]', /unbalanced brackets: '\]' closes nothing at position 2/],
      ['[~s,,~s]', /unexpected ',' at position 4/],
      ['[,~s]', /unexpected ',' at position 1/],
      ['[~s,]', /a ',' must be followed by an item at position 3/],
      ['[~s] x', /unexpected "x"; expected a directive \(~a, ~s, \.\.\.\), '\[' or '\{' at position 5/],
      ['['.repeat(2000) + ']'.repeat(2000), /brackets nested deeper than 1024 at position 1024/],
      ['~', /'~' at the end of the format/],
      ['', /empty format/],
      ['  ', /empty format/],
      ['~a ~s', /2 top-level items; it must describe one term .* at position 3/],
      ['~a, ~s', /2 top-level items/],
    ];
    for (const [format, message] of cases) {
      const e = encodeError(() => formatToTerm(format, [['x']]));
      expect(e.message, format).toMatch(message);
      expect(e.path).toBe('$');
    }
  });
});

describe('peb decode shape', () => {
  it('wraps the term in an outer array; atoms, binaries and byte lists as strings; tuples as arrays', () => {
    const b = termToBinary(
      tuple(atom('ok'), charlist('abc'), 'bin', [1, 2, 300], 1.5, float(2), true, false, null, new ImproperList([atom('a')], atom('b'))),
    );
    expect(vdecode(b)).toEqual([['ok', 'abc', 'bin', [1, 2, 300], 1.5, 2, 'true', 'false', 'undefined', ['a', 'b']]]);
    expect(decode(b.subarray(1))).toEqual(vdecode(b));
  });

  it('byte lists and binaries that are UTF-8 read as text; other bytes stay a Buffer', () => {
    expect(vdecode(vencode('~s', ['héllo']))).toEqual(['héllo']);
    expect(vdecode(vencode('~b', ['héllo']))).toEqual(['héllo']);
    const notText = vdecode(vencode('[~s, ~b]', [[Buffer.from([0xff]), Buffer.from([0xc0, 0x80])]]))[0] as Buffer[];
    expect(notText.map((x) => [...x])).toEqual([[0xff], [0xc0, 0x80]]);
    // a list of small integers that Erlang sends as a string is a string, as in mypeb
    expect(vdecode(termToBinary(charlist('\u0001\u0002')))).toEqual(['\u0001\u0002']);
  });

  it('maps become plain objects (or a Map when a key is not a string or number); pids stay pids', () => {
    const pid = new Pid(atom('n@h'), 1, 2, 3);
    const m = new Map<Term, Term>([[atom('a'), 1], ['b', [charlist('c')]], [3, pid]]);
    expect(vdecode(termToBinary(m))).toEqual([{ a: 1, b: ['c'], 3: pid }]);
    const withTupleKey = vdecode(termToBinary(new Map<Term, Term>([[tuple(1), 2]])))[0];
    expect(withTupleKey).toEqual(new Map([[[1], 2]]));
    const proto = vdecode(termToBinary(new Map<Term, Term>([['__proto__', 1]])))[0] as object;
    expect(Object.getPrototypeOf(proto)).toBe(Object.prototype);
    expect(Object.keys(proto)).toEqual(['__proto__']);
  });

  it('toPebShape / toPebValue take a term decoded with PEB_DECODE_OPTIONS', () => {
    // a byte list holding the UTF-8 of "é", and a binary
    const term = binaryToTerm(termToBinary(tuple(charlist('\u00c3\u00a9'), Buffer.from('x'))), PEB_DECODE_OPTIONS);
    expect(toPebShape(term)).toEqual([['é', 'x']]);
    expect(toPebValue(term)).toEqual(['é', 'x']);
    // byte 233 alone is not UTF-8: it stays bytes
    expect([...(toPebValue(binaryToTerm(termToBinary(charlist('é')), PEB_DECODE_OPTIONS)) as Buffer)]).toEqual([233]);
    const ref = new Ref(atom('n@h'), 1, [1]);
    expect(toPebValue(ref)).toBe(ref);
    expect(toPebValue(2n ** 70n)).toBe(2n ** 70n);
    expect(toPebValue(new Tuple([]))).toEqual([]);
    expect(toPebValue(new Float(3))).toBe(3);
  });

  it('decode(encode(...)) round-trips the session-handler arguments', () => {
    expect(decode(encode('[~s, ~s]', [['sid', 'data']]))).toEqual([['sid', 'data']]);
  });
});

describe('peb vencode against a real Erlang node', () => {
  let erl: ErlangNode;
  beforeAll(async () => {
    erl = await startNode();
  });
  afterAll(() => erl?.stop());

  const reads = (b: Buffer, expr: string): Promise<string> => erl.readsAs(b, expr);

  it('binary_to_term reads what vencode writes as the intended term', async () => {
    const pid = new Pid(atom('n@h'), 1, 2, 3);
    const b = vencode('{~a, ~s, ~b, ~i, ~l, ~u, ~f, ~d, [~P, ~P], [], {}, ~p}', [
      ['ok', 'h\u00e9', 'bin', -5, 2n ** 62n, 2n ** 64n - 1n, 2, 0.5, [{ k: 1 }, tuple(atom('x'))], [], [], pid],
    ]);
    expect(
      await reads(
        b,
        '{ok, [104, 195, 169], <<"bin">>, -5, 1 bsl 62, (1 bsl 64) - 1, 2.0, 0.5, [#{<<"k">> => 1}, {x}], [], {}, ' +
          "binary_to_term(<<131, 88, 119, 3, \"n@h\", 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3>>)}",
      ),
    ).toBe('true');
  });

  it('encode("[~s]", [[id]]) is term_to_binary([Id]) without the version byte, as rpc arguments', async () => {
    const fromErlang = await erl.eval('["sid-42"]');
    expect(encode('[~s]', [['sid-42']]).equals(fromErlang.subarray(1))).toBe(true);
  });

  it('vdecode reads what Erlang writes in mypeb shape', async () => {
    const b = await erl.eval('{ok, "abc", <<"bin">>, [1, 2, 300], 1.5, true, undefined, [a | b], #{k => "v"}}');
    expect(vdecode(b)).toEqual([['ok', 'abc', 'bin', [1, 2, 300], 1.5, 'true', 'undefined', ['a', 'b'], { k: 'v' }]]);
  });
});
