/**
 * Both codecs decode every vector made by real Erlang (test/vectors/vectors.json: term_to_binary
 * by default, with {minor_version,0|1|2} and compressed, plus hand-made bytes for tags OTP no
 * longer writes) to the value test/vectors/expected.ts names for it.
 */
import { inflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DecodeError } from '../../lib/errors';
import { codecs } from '../support/codecs';
import { noProblems, termDiff } from '../vectors/equal';
import { encodeAlso, expected, withOptions, type CheckContext } from '../vectors/expected';
import { loadVectors, type EncodingName, type Vector } from '../vectors/vectors';

const file = loadVectors();
const byName = new Map(file.vectors.map((v) => [v.name, v]));

/** The bytes of the uncompressed term, for Checks that compare against them. */
function plainBytes(v: Vector, encoding: EncodingName, bytes: Buffer): Buffer {
  if (bytes[1] !== 80) return bytes;
  return Buffer.concat([Buffer.from([131]), inflateSync(bytes.subarray(6))]);
}

function context(v: Vector, encoding: EncodingName, bytes: Buffer): CheckContext {
  return { file, vector: v, encoding, bytes: plainBytes(v, encoding, bytes) };
}

describe('test vectors', () => {
  it(`were made by Erlang/OTP ${file.otpRelease} and cover every tag the codecs read`, () => {
    const tags = [
      'SMALL_INTEGER_EXT', 'INTEGER_EXT', 'SMALL_BIG_EXT', 'LARGE_BIG_EXT', 'FLOAT_EXT', 'NEW_FLOAT_EXT',
      'ATOM_EXT', 'SMALL_ATOM_EXT', 'ATOM_UTF8_EXT', 'SMALL_ATOM_UTF8_EXT', 'BINARY_EXT', 'BIT_BINARY_EXT',
      'STRING_EXT', 'LIST_EXT', 'NIL_EXT', 'SMALL_TUPLE_EXT', 'LARGE_TUPLE_EXT', 'MAP_EXT', 'PID_EXT',
      'NEW_PID_EXT', 'PORT_EXT', 'NEW_PORT_EXT', 'V4_PORT_EXT', 'REFERENCE_EXT', 'NEW_REFERENCE_EXT',
      'NEWER_REFERENCE_EXT', 'NEW_FUN_EXT', 'EXPORT_EXT', 'COMPRESSED',
    ];
    expect(tags.filter((t) => !file.tagsCovered.includes(t))).toEqual([]);
    expect(file.vectors.filter((v) => v.encodings.compressed[1] === 80).length).toBeGreaterThan(10);
  });

  it('every vector has an expected value, and every expected value a vector', () => {
    expect(file.vectors.filter((v) => !(v.name in expected)).map((v) => v.name)).toEqual([]);
    expect(Object.keys(expected).filter((n) => !byName.has(n))).toEqual([]);
    const names = [...withOptions.map((o) => o.name), ...Object.keys(encodeAlso)];
    expect(names.filter((n) => !byName.has(n))).toEqual([]);
  });
});

describe.each(codecs)('$name codec decodes the vectors', (codec) => {
  it.each(file.vectors.map((v) => [v.name, v] as const))('%s', (_name, v) => {
    const want = expected[v.name];
    expect(want, `no expectation for ${v.name}`).toBeDefined();
    const problems: string[] = [];
    for (const [encoding, bytes] of v.distinct) {
      let got: unknown;
      try {
        got = codec.binaryToTerm(bytes);
      } catch (e) {
        problems.push(`${encoding}: threw ${String(e)}`);
        continue;
      }
      const d = termDiff(got, want, { context: context(v, encoding, bytes) });
      if (d) problems.push(`${encoding}: ${d}`);
    }
    noProblems(problems, `${v.name} (Erlang: ${v.erlang})`);
  });

  it.each(withOptions.map((o) => [o.name, JSON.stringify(o.options), o] as const))('%s with %s', (_n, _o, o) => {
    const v = byName.get(o.name)!;
    const problems: string[] = [];
    for (const [encoding, bytes] of v.distinct) {
      const d = termDiff(codec.binaryToTerm(bytes, o.options), o.value, { context: context(v, encoding, bytes) });
      if (d) problems.push(`${encoding}: ${d}`);
    }
    noProblems(problems);
  });

  it('decodes a Uint8Array as it decodes a Buffer, and a view into a larger buffer', () => {
    for (const name of ['session', 'bin_utf8', 'tuple_300', 'large_big_2p2100']) {
      const bytes = byName.get(name)!.encodings.default;
      expect(termDiff(codec.binaryToTerm(new Uint8Array(bytes)), expected[name])).toBeNull();
      const padded = Buffer.concat([Buffer.from([1, 2, 3]), bytes, Buffer.from([4])]);
      const view = padded.subarray(3, 3 + bytes.length);
      expect(termDiff(codec.binaryToTerm(view), expected[name])).toBeNull();
    }
  });

  it('gives binaries that are copies, not views of the input', () => {
    const input = Buffer.from(byName.get('bin_text')!.encodings.default);
    const got = codec.binaryToTerm(input) as Buffer;
    input.fill(0);
    expect(got.toString()).toBe('hello');
    const bits = Buffer.from(byName.get('bits_12')!.encodings.default);
    const gotBits = codec.binaryToTerm(bits) as { buffer: Buffer };
    bits.fill(0);
    expect([...gotBits.buffer]).toEqual([0xab, 0xc0]);
  });

  it('decodes the same vector to the same value every time (no state kept between calls)', () => {
    for (const v of file.vectors.slice(0, 40)) {
      const first = codec.binaryToTerm(v.encodings.default);
      const again = codec.binaryToTerm(v.encodings.default);
      expect(termDiff(again, first, { ordered: true }), v.name).toBeNull();
    }
  });

  it('rejects a vector with a byte after the term, naming where it starts', () => {
    const bytes = byName.get('tuple_pair')!.encodings.default;
    const more = Buffer.concat([bytes, Buffer.from([0])]);
    let err: unknown;
    try {
      codec.binaryToTerm(more);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DecodeError);
    expect((err as DecodeError).offset).toBe(bytes.length);
  });
});
