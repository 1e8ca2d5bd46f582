/**
 * A map whose keys encode to the same term: Erlang's binary_to_term refuses it (badarg), and a
 * node that gets one in a distribution message drops the whole connection. Both encoders refuse
 * to write one, with the same EncodeError message and path; maps whose keys only look alike are
 * written as before and read by Erlang as the intended map.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EncodeError } from '../../lib/errors';
import { atom, BitBinary, charlist, float, ImproperList, tuple, type Term } from '../../lib/terms';
import { nativeCodec as native, pureCodec as pure } from '../support/codecs';
import { startNode, type ErlangNode } from '../support/erlang-node';

const OBJECT_KEY =
  'this key is written as the same binary as an earlier key (a lone surrogate becomes U+FFFD); ' +
  'Erlang refuses a map with a repeated key';
const MAP_KEY = 'this key encodes to the same term as an earlier key; Erlang refuses a map with a repeated key';

const map = (...entries: Array<[unknown, unknown]>): Term => new Map(entries) as unknown as Term;

/** [name, value, the path of the key refused, its message]. */
const refused: Array<[string, unknown, string, string]> = [
  ['two lone surrogates', { '\ud800': 1, '\udfff': 2 }, '$["\\udfff"]', OBJECT_KEY],
  ['a lone surrogate and U+FFFD itself', { '\ufffd': 1, '\udc00': 2 }, '$["\\udc00"]', OBJECT_KEY],
  // Found when the first key with a lone surrogate is met; the error names the later of the two.
  ['U+FFFD after the lone surrogate', { a: 1, '\ud800': 2, b: 3, '\ufffd': 4 }, '$["\ufffd"]', OBJECT_KEY],
  ['lone surrogates inside longer keys', { x: { 'k\ud83dz': 1, 'k\ude00z': 2 } }, '$.x["k\\ude00z"]', OBJECT_KEY],
  ['nested in arrays and Maps', [map([1, [{ '\ud800': 1, '\udbff': 2 }]])], '$[0].values[0][0]["\\udbff"]', OBJECT_KEY],
  ['two Buffers of the same bytes', map([Buffer.from('ab'), 1], [Buffer.from('ab'), 2]), '$.keys[1]', MAP_KEY],
  ['a string and the Buffer of its UTF-8', map(['é', 1], [Buffer.from('é'), 2]), '$.keys[1]', MAP_KEY],
  ['a Uint8Array and a Buffer', map([new Uint8Array([1, 2]), 1], [Buffer.from([1, 2]), 2]), '$.keys[1]', MAP_KEY],
  ['a Buffer and a whole-byte BitBinary', map([Buffer.from([7]), 1], [new BitBinary(Buffer.from([7]), 8), 2]), '$.keys[1]', MAP_KEY],
  ['two Tuples of the same elements', map([0, 0], [tuple(1, 'x'), 1], [tuple(1, 'x'), 2]), '$.keys[2]', MAP_KEY],
  ['1 and 1n', map([1, 'a'], [1n, 'b']), '$.keys[1]', MAP_KEY],
  ['a big number and its bigint', map([2 ** 40, 'a'], [2n ** 40n, 'b']), '$.keys[1]', MAP_KEY],
  ['two equal arrays', map([[1, [2]], 1], [[1, [2]], 2]), '$.keys[1]', MAP_KEY],
  ['an array and an improper list with an empty tail', map([[1, 2], 1], [new ImproperList([1, 2], []), 2]), '$.keys[1]', MAP_KEY],
  ['an Atom and its Symbol.for', map([atom('ok'), 1], [Symbol.for('ok'), 2]), '$.keys[1]', MAP_KEY],
  ['null and undefined', map([null, 1], [undefined, 2]), '$.keys[1]', MAP_KEY],
  ['an empty array and an empty charlist', map([[], 1], [charlist(''), 2]), '$.keys[1]', MAP_KEY],
  ['two equal plain objects', map([{ a: 1 }, 1], [{ a: 1 }, 2]), '$.keys[1]', MAP_KEY],
  ['two Maps of the same entries', map([map([1, 2], [3, 4]), 1], [map([1, 2], [3, 4]), 2]), '$.keys[1]', MAP_KEY],
  ['strings that differ only in lone surrogates', map(['\ud800', 1], ['\udc00', 2]), '$.keys[1]', MAP_KEY],
  ['far apart in a large Map', map(...Array.from({ length: 1000 }, (_, i): [unknown, unknown] => [`k${i}`, i]), [Buffer.from('k3'), 'again']), '$.keys[1000]', MAP_KEY],
  ['in a Map nested as a value', map(['m', map([1, 1], [1n, 2])]), '$.values[0].keys[1]', MAP_KEY],
  ['in a Map nested as a key', map([map([1, 1], [1n, 2]), 'v'], ['w', 0]), '$.keys[0].keys[1]', MAP_KEY],
];

/** Maps whose keys look alike but are different terms: written, and read by Erlang as these maps. */
const kept: Array<[string, unknown, string]> = [
  ['one lone surrogate', { '\ud800': 1, a: 2 }, '#{<<16#EF,16#BF,16#BD>> => 1, <<"a">> => 2}'],
  ['a string and the atom of that name', map(['a', 1], [atom('a'), 2]), '#{<<"a">> => 1, a => 2}'],
  ['an integer and the float of it', map([1, 'i'], [float(1), 'f']), "#{1 => <<\"i\">>, 1.0 => <<\"f\">>}"],
  ['a Tuple and the array of its elements', map([tuple(1, 2), 1], [[1, 2], 2]), '#{{1, 2} => 1, [1, 2] => 2}'],
  ['a binary and a bitstring of the same bytes', map([Buffer.from([0xf0]), 1], [new BitBinary(Buffer.from([0xf0]), 4), 2]), '#{<<16#F0>> => 1, <<15:4>> => 2}'],
  ['the same Buffer as key and as value', map([Buffer.from('k'), Buffer.from('k')], ['v', 1]), '#{<<"k">> => <<"k">>, <<"v">> => 1}'],
  ['one entry', map([1n, 1]), '#{1 => 1}'],
];

// One node for the file: Erlang's own verdicts and Erlang-made maps.
let erl: ErlangNode;
beforeAll(async () => {
  erl = await startNode();
});
afterAll(() => erl?.stop());

describe('maps whose keys encode to the same term', () => {

  it.each(refused)('are refused by both codecs alike: %s', (_name, value, path, message) => {
    for (const codec of [native, pure]) {
      let error: unknown;
      try {
        codec.termToBinary(value as Term);
      } catch (e) {
        error = e;
      }
      expect(error, codec.name).toBeInstanceOf(EncodeError);
      expect((error as EncodeError).path, codec.name).toBe(path);
      expect((error as EncodeError).message, codec.name).toBe(`${message} at ${path}`);
    }
  });

  it('are found once the Map is written: a value that cannot be encoded is reported first, by both codecs', () => {
    const value = map([Buffer.from('a'), [new Date()]], ['a', 3]);
    for (const codec of [native, pure]) {
      expect(() => codec.termToBinary(value), codec.name).toThrow(expect.objectContaining({ path: '$.values[0][0]' }));
    }
  });

  it('are refused in compressed output and without the version byte, as in plain output', () => {
    const value = { '\ud800': 'x'.repeat(1000), '\udfff': 'y'.repeat(1000) };
    expect(() => native.termToBinary(value, { compressed: 6 })).toThrow(EncodeError);
    expect(() => pure.termToBinary(value, { compressed: 6 })).toThrow(EncodeError);
  });

  it('are what Erlang itself refuses (binary_to_term says badarg)', async () => {
    // What an encoder without the check would write for each of two kinds.
    const fffd = [0x6d, 0, 0, 0, 3, 0xef, 0xbf, 0xbd];
    const lone = Buffer.from([131, 0x74, 0, 0, 0, 2, ...fffd, 0x61, 1, ...fffd, 0x61, 2]);
    const tuples = Buffer.from([131, 0x74, 0, 0, 0, 2, 0x68, 1, 0x61, 1, 0x61, 1, 0x68, 1, 0x61, 1, 0x61, 2]);
    for (const bytes of [lone, tuples]) {
      expect(await erl.evalText(`try binary_to_term(binary:decode_hex(<<"${bytes.toString('hex')}">>)) catch error:badarg -> badarg end`)).toBe('badarg');
    }
  });

  it.each(kept)('are written when the keys only look alike, as Erlang reads them: %s', async (_name, value, erlang) => {
    const n = native.termToBinary(value as Term);
    expect(pure.termToBinary(value as Term).equals(n)).toBe(true);
    expect(await erl.readsAs(n, erlang)).toBe('true');
  });
});

describe('maps decoded as objects whose keys are the same text', () => {
  // An atom and a binary of the same text are two keys to Erlang and one to a JS object: such a
  // map decodes as a Map, so that neither value is lost.
  it.each([
    ['an atom and a binary', '#{a => 1, <<"a">> => 2}', [atom('a'), 1], ['a', 2]],
    ['true and <<"true">>', '#{true => 1, <<"true">> => 2}', [true, 1], ['true', 2]],
    ["a Latin-1 atom and the binary of its UTF-8", "#{'\\x{e9}' => 1, <<\"\\x{e9}\"/utf8>> => 2}", [atom('é'), 1], ['é', 2]],
  ] as Array<[string, string, [unknown, number], [string, number]]>)('decode as a Map, in both codecs: %s', async (_name, expr, first, second) => {
    const bytes = await erl.eval(expr);
    for (const codec of [native, pure]) {
      for (const binaries of ['string', 'buffer'] as const) {
        const m = codec.binaryToTerm(bytes, { maps: 'object', binaries });
        expect(m).toBeInstanceOf(Map);
        const entries = [...(m as Map<unknown, unknown>)].map(([k, v]) => [Buffer.isBuffer(k) ? k.toString('utf8') : k, v]);
        expect(entries).toHaveLength(2);
        expect(entries).toContainEqual(first);
        expect(entries).toContainEqual(second);
      }
    }
  });

  it('stay objects when their keys are different texts', async () => {
    const bytes = await erl.eval('#{a => 1, <<"b">> => 2, true => 3}');
    for (const codec of [native, pure]) expect(codec.binaryToTerm(bytes, { maps: 'object' })).toStrictEqual({ a: 1, b: 2, true: 3 });
  });
});
