/**
 * Bad bytes give a DecodeError, never anything else. Every prefix of every vector, and every vector
 * with each byte XORed with 1, 2, 4, ..., 128 and 255, decodes to a term or throws a DecodeError
 * in both codecs, with the same verdict in both (and the same term when both decode). Then the
 * hostile inputs of the issue one by one: truncated buffers, lengths near 2^32, invalid UTF-8 in
 * atoms, atoms over 255 characters, unknown tags, nesting a million deep, a compressed term that
 * claims 4 GiB: each a DecodeError at the right offset, in both codecs.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { deflateSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { DecodeOptions } from '../../lib/codec/options';
import { DecodeError } from '../../lib/errors';
import { codecs, nativeCodec as native, pureCodec as pure, type Codec } from '../support/codecs';
import { noProblems, termDiff } from '../vectors/equal';
import { loadVectors } from '../vectors/vectors';

const file = loadVectors();

type Verdict =
  | { kind: 'term'; value: unknown }
  | { kind: 'DecodeError'; offset: number; message: string }
  | { kind: 'other'; error: unknown };

function run(codec: Codec, bytes: Uint8Array, options?: DecodeOptions): Verdict {
  try {
    return { kind: 'term', value: codec.binaryToTerm(bytes, options) };
  } catch (e) {
    if (e instanceof DecodeError) return { kind: 'DecodeError', offset: e.offset, message: e.message };
    return { kind: 'other', error: e };
  }
}

const MASKS = [1, 2, 4, 8, 16, 32, 64, 128, 255];
/**
 * Inputs up to FULL_LIMIT bytes (most vectors) get every prefix and every mutation. Doing all of
 * them for the bigger ones (the 64 KiB binary, the 100 KB text, the 65,535- and 65,536-element
 * strings, the 1000-element list, the 300-element tuple, ...) would be quadratic and take minutes,
 * so those get a fixed sample: the positions at their start (where the tags and lengths are), at
 * their end, and some spread between, chosen the same way each run. Compressed inputs are sampled
 * the same way: each inflates (up to 128 KB) before it is decoded, and a changed byte inside a
 * zlib stream is almost always just a zlib error. This keeps the file at about 10-15 s on 2 cores.
 */
const FULL_LIMIT = 512;

function positions(bytes: Buffer): number[] {
  const length = bytes.length;
  const isCompressed = bytes[1] === 80;
  if (length <= FULL_LIMIT && !isCompressed) return Array.from({ length }, (_, i) => i);
  const [head, tail, spread] = isCompressed ? [12, 4, 8] : length <= 8192 ? [128, 16, 48] : [12, 4, 4];
  const set = new Set<number>();
  for (let i = 0; i < Math.min(head, length); i++) set.add(i);
  for (let i = 1; i <= Math.min(tail, length); i++) set.add(length - i);
  let x = length;
  for (let i = 0; i < spread; i++) {
    x = (Math.imul(x, 1103515245) + 12345) & 0x7fffffff;
    set.add(x % length);
  }
  return [...set].sort((a, b) => a - b);
}

/** The distinct byte strings of all vectors. */
function inputs(): Array<{ name: string; bytes: Buffer }> {
  const seen = new Set<string>();
  const out: Array<{ name: string; bytes: Buffer }> = [];
  for (const v of file.vectors) {
    for (const [encoding, bytes] of v.distinct) {
      const key = bytes.toString('base64');
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ name: `${v.name} ${encoding}`, bytes });
    }
  }
  return out;
}

interface Tally {
  cases: number;
  terms: number;
  decodeErrors: number;
  offsetsDiffer: number;
  problems: string[];
  offsetExamples: string[];
}

function compare(tally: Tally, label: string, bytes: Buffer): void {
  tally.cases++;
  const n = run(native, bytes);
  const p = run(pure, bytes);
  for (const [codec, v] of [
    ['native', n],
    ['pure', p],
  ] as const) {
    if (v.kind === 'other') {
      tally.problems.push(`${label}: ${codec} threw ${String(v.error)} (${(v.error as Error)?.constructor?.name})`);
    } else if (v.kind === 'DecodeError' && !(Number.isInteger(v.offset) && v.offset >= 0 && (bytes[1] === 80 || v.offset <= bytes.length))) {
      tally.problems.push(`${label}: ${codec} DecodeError offset ${v.offset} is not a byte of the ${bytes.length}-byte input`);
    }
  }
  if (n.kind === 'other' || p.kind === 'other') return;
  if (n.kind !== p.kind) {
    const say = (v: Verdict) => (v.kind === 'term' ? 'a term' : `DecodeError "${(v as { message: string }).message}"`);
    tally.problems.push(`${label}: native gives ${say(n)}, pure gives ${say(p)}`);
    return;
  }
  if (n.kind === 'term' && p.kind === 'term') {
    tally.terms++;
    const d = termDiff(n.value, p.value, { ordered: true });
    if (d) tally.problems.push(`${label}: both decode, to different terms: ${d}`);
  } else if (n.kind === 'DecodeError' && p.kind === 'DecodeError') {
    tally.decodeErrors++;
    if (n.offset !== p.offset) {
      tally.offsetsDiffer++;
      if (tally.offsetExamples.length < 10) {
        tally.offsetExamples.push(`${label}: native "${n.message}", pure "${p.message}"`);
      }
    }
  }
}

function report(what: string, t: Tally): void {
  console.log(
    `${what}: ${t.cases} inputs; both decode: ${t.terms}; both DecodeError: ${t.decodeErrors} ` +
      `(at different offsets: ${t.offsetsDiffer}); problems: ${t.problems.length}` +
      (t.offsetExamples.length ? `\n  offsets differ, e.g.:\n  ${t.offsetExamples.join('\n  ')}` : ''),
  );
}

const newTally = (): Tally => ({ cases: 0, terms: 0, decodeErrors: 0, offsetsDiffer: 0, problems: [], offsetExamples: [] });

describe('mutated vectors give a term or a DecodeError, the same in both codecs', () => {
  it('every prefix', () => {
    const t = newTally();
    for (const { name, bytes } of inputs()) {
      for (const len of positions(bytes)) compare(t, `${name} prefix ${len}`, bytes.subarray(0, len));
    }
    report('prefixes', t);
    noProblems(t.problems);
    expect(t.decodeErrors).toBeGreaterThan(0);
  });

  it('every byte XORed with 1, 2, 4, ..., 128 and 255', () => {
    const t = newTally();
    for (const { name, bytes } of inputs()) {
      const copy = Buffer.from(bytes);
      for (const i of positions(bytes)) {
        for (const m of MASKS) {
          copy[i] = bytes[i] ^ m;
          compare(t, `${name} byte ${i} ^ ${m}`, copy);
        }
        copy[i] = bytes[i];
      }
    }
    report('mutations', t);
    noProblems(t.problems);
    expect(t.terms).toBeGreaterThan(0);
    expect(t.decodeErrors).toBeGreaterThan(0);
  });
});

// ---- hostile inputs, one by one ----

const u32 = (n: number): number[] => [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255];
const u16 = (n: number): number[] => [(n >>> 8) & 255, n & 255];
const bytesOf = (...parts: Array<number | number[] | Buffer>): Buffer =>
  Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'number' ? [p] : p))));
const compressed = (inner: Buffer, size = inner.length): Buffer => bytesOf(131, 80, u32(size), deflateSync(inner));
const ascii = (s: string): number[] => [...Buffer.from(s, 'latin1')];

interface Hostile {
  name: string;
  bytes: Buffer;
  /** Offsets that are right (the tag of the bad term, its bad field, ...); null: any, as long as both codecs agree. */
  offsets: number[] | null;
  message?: RegExp;
  options?: DecodeOptions;
}

/** The offsets that name a bad length: its term's tag, the length field, or where the data it counts starts. */
const lengthAt = (tag: number, fieldSize: number, extra = 0): number[] => [tag, tag + 1, tag + 1 + fieldSize + extra];

const KNOWN_TAGS = new Set([70, 77, 80, 88, 89, 90, ...Array.from({ length: 20 }, (_, i) => 97 + i), 118, 119, 120]);
const UNKNOWN_TAGS = Array.from({ length: 256 }, (_, i) => i).filter((t) => !KNOWN_TAGS.has(t));

function nested(count: number, unit: number[]): Buffer {
  const out = Buffer.alloc(1 + count * unit.length);
  out[0] = 131;
  for (let i = 0; i < count; i++) out.set(unit, 1 + i * unit.length);
  return out;
}

const funVector = file.vectors.find((v) => v.name === 'fun_free_vars')!.encodings.default;
const funWithSize = (delta: number): Buffer => {
  const b = Buffer.from(funVector);
  b.writeUInt32BE(b.readUInt32BE(2) + delta, 2);
  return b;
};

const hostile: Hostile[] = [
  // not a term at all
  { name: 'empty buffer', bytes: bytesOf(), offsets: [0] },
  { name: 'no version byte', bytes: bytesOf(97, 1), offsets: [0] },
  { name: 'version 130', bytes: bytesOf(130, 97, 1), offsets: [0] },
  { name: 'version byte only', bytes: bytesOf(131), offsets: [1] },
  { name: 'a byte after the term', bytes: bytesOf(131, 97, 1, 0), offsets: [3], message: /trailing/ },
  { name: 'a term after the term', bytes: bytesOf(131, 104, 0, 104, 0), offsets: [3], message: /trailing/ },
  // truncated fixed-size fields and elements
  { name: 'truncated INTEGER_EXT', bytes: bytesOf(131, 98, 0, 0), offsets: lengthAt(1, 0) },
  { name: 'truncated NEW_FLOAT_EXT', bytes: bytesOf(131, 70, 0, 0, 0), offsets: lengthAt(1, 0) },
  { name: 'truncated FLOAT_EXT', bytes: bytesOf(131, 99, ascii('1.5')), offsets: lengthAt(1, 0) },
  { name: 'truncated tuple element', bytes: bytesOf(131, 104, 2, 97, 1), offsets: [1, 2, 5] },
  { name: 'truncated list tail', bytes: bytesOf(131, 108, u32(1), 97, 1), offsets: [1, 2, 8] },
  { name: 'truncated map value', bytes: bytesOf(131, 116, u32(1), 97, 1), offsets: [1, 2, 8] },
  { name: 'truncated NEW_PID_EXT', bytes: bytesOf(131, 88, 119, 3, ascii('a@b'), u32(1), u32(0)), offsets: [1, 7] },
  { name: 'truncated atom in a tuple', bytes: bytesOf(131, 104, 1, 119, 5, ascii('ab')), offsets: lengthAt(3, 1) },
  // lengths near 2^32 (and counts whose byte size overflows 32 bits)
  { name: 'BINARY_EXT of 2^32-1 bytes', bytes: bytesOf(131, 109, u32(0xffffffff), 1, 2, 3), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'BINARY_EXT of 2^31 bytes', bytes: bytesOf(131, 109, u32(0x80000000), 1, 2, 3), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'BIT_BINARY_EXT of 2^32-1 bytes', bytes: bytesOf(131, 77, u32(0xffffffff), 3, 1), offsets: lengthAt(1, 4, 1), message: /truncated/ },
  { name: 'LIST_EXT of 2^32-1 elements', bytes: bytesOf(131, 108, u32(0xffffffff), 97, 1, 106), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'LARGE_TUPLE_EXT of 2^32-1 elements', bytes: bytesOf(131, 105, u32(0xffffffff), 97, 1), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'MAP_EXT of 2^32-1 pairs', bytes: bytesOf(131, 116, u32(0xffffffff), 97, 1, 97, 2), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'MAP_EXT of 2^31 pairs (2^32 terms)', bytes: bytesOf(131, 116, u32(0x80000000), 97, 1, 97, 2), offsets: lengthAt(1, 4), message: /truncated/ },
  { name: 'LARGE_BIG_EXT of 2^32-1 bytes', bytes: bytesOf(131, 111, u32(0xffffffff), 0, 1), offsets: lengthAt(1, 4, 1), message: /truncated/ },
  { name: 'STRING_EXT of 65535 bytes', bytes: bytesOf(131, 107, u16(0xffff), 97), offsets: lengthAt(1, 2), message: /truncated/ },
  { name: 'ATOM_EXT of 65535 bytes', bytes: bytesOf(131, 100, u16(0xffff), ascii('abc')), offsets: lengthAt(1, 2) },
  { name: 'ATOM_UTF8_EXT of 65535 bytes', bytes: bytesOf(131, 118, u16(0xffff), ascii('abc')), offsets: lengthAt(1, 2) },
  { name: 'SMALL_ATOM_UTF8_EXT of 255 bytes', bytes: bytesOf(131, 119, 255, ascii('abc')), offsets: lengthAt(1, 1) },
  { name: 'NEWER_REFERENCE_EXT of 65535 words', bytes: bytesOf(131, 90, u16(0xffff), 119, 3, ascii('a@b'), u32(0), u32(1)), offsets: lengthAt(1, 2) },
  { name: 'NEW_FUN_EXT of 2^32-1 bytes', bytes: bytesOf(131, 112, u32(0xffffffff), 0), offsets: lengthAt(1, 4) },
  { name: 'a binary of 2^32-1 bytes in a tuple', bytes: bytesOf(131, 104, 2, 97, 1, 109, u32(0xffffffff), 0), offsets: lengthAt(5, 4), message: /truncated/ },
  { name: 'a list of 2^32-1 elements in a map', bytes: bytesOf(131, 116, u32(1), 97, 1, 108, u32(0xffffffff), 106), offsets: lengthAt(8, 4), message: /truncated/ },
  // atoms: strictly valid UTF-8, at most 255 characters
  ...[
    ['overlong NUL', [0xc0, 0x80]],
    ['overlong 3-byte', [0xe0, 0x80, 0x80]],
    ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['past U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
    ['F5 lead byte', [0xf5, 0x80, 0x80, 0x80]],
    ['cut-off sequence', [0x61, 0xe6, 0x97]],
    ['lone continuation byte', [0x61, 0x80, 0x62]],
    ['FF byte', [0xff]],
  ].flatMap(([what, seq]) => {
    const s = seq as number[];
    const bad = s[0] === 0x61 ? 1 : 0;
    return [
      { name: `SMALL_ATOM_UTF8_EXT: ${what as string}`, bytes: bytesOf(131, 119, s.length, s), offsets: [1, 2, 3, 3 + bad] },
      { name: `ATOM_UTF8_EXT: ${what as string}`, bytes: bytesOf(131, 118, u16(s.length), s), offsets: [1, 2, 4, 4 + bad] },
      { name: `SMALL_ATOM_UTF8_EXT in a tuple: ${what as string}`, bytes: bytesOf(131, 104, 1, 119, s.length, s), offsets: [3, 4, 5, 5 + bad] },
    ];
  }),
  { name: 'ATOM_EXT of 256 characters', bytes: bytesOf(131, 100, u16(256), Buffer.alloc(256, 97)), offsets: [1, 2, 4] },
  { name: 'ATOM_UTF8_EXT of 256 two-byte characters', bytes: bytesOf(131, 118, u16(512), Buffer.from('é'.repeat(256))), offsets: [1, 2, 4] },
  { name: 'ATOM_UTF8_EXT of 256 emoji (1024 bytes)', bytes: bytesOf(131, 118, u16(1024), Buffer.from('🚀'.repeat(256))), offsets: [1, 2, 4] },
  { name: 'ATOM_UTF8_EXT of 256 characters in a list', bytes: bytesOf(131, 108, u32(1), 118, u16(256), Buffer.alloc(256, 98), 106), offsets: [6, 7, 9] },
  // unknown tags, at the top and nested
  ...UNKNOWN_TAGS.map((t) => ({ name: `unknown tag ${t}`, bytes: bytesOf(131, t, Buffer.alloc(8)), offsets: [1], message: new RegExp(`unknown tag ${t}\\b`) })),
  ...[0, 82, 117, 255].map((t) => ({ name: `unknown tag ${t} in a tuple`, bytes: bytesOf(131, 104, 2, 97, 1, t, Buffer.alloc(8)), offsets: [5], message: new RegExp(`unknown tag ${t}\\b`) })),
  { name: 'a compressed term inside a tuple', bytes: bytesOf(131, 104, 1, compressed(bytesOf(97, 1)).subarray(1)), offsets: [3] },
  // nesting a million deep: the default maxDepth (1024) stops it at the 1025th container
  { name: 'lists nested 1,000,000 deep', bytes: nested(1_000_000, [108, 0, 0, 0, 1]), offsets: [1 + 1024 * 5], message: /nesting deeper than 1024/ },
  { name: 'tuples nested 1,000,000 deep', bytes: nested(1_000_000, [104, 1]), offsets: [1 + 1024 * 2], message: /nesting deeper than 1024/ },
  { name: 'maps nested 1,000,000 deep (in values)', bytes: nested(1_000_000, [116, 0, 0, 0, 1, 97, 0]), offsets: [1 + 1024 * 7], message: /nesting deeper than 1024/ },
  { name: 'maps nested 1,000,000 deep (in keys)', bytes: nested(1_000_000, [116, 0, 0, 0, 1]), offsets: [1 + 1024 * 5], message: /nesting deeper than 1024/ },
  { name: 'maxDepth 2: [[[1]]]', bytes: bytesOf(131, 108, u32(1), 108, u32(1), 108, u32(1), 97, 1, 106, 106, 106), offsets: [11], message: /nesting deeper than 2/, options: { maxDepth: 2 } },
  { name: 'maxDepth 1: {[1]}', bytes: bytesOf(131, 104, 1, 108, u32(1), 97, 1, 106), offsets: [3], message: /nesting deeper than 1/, options: { maxDepth: 1 } },
  // compressed terms: the claimed size is capped before anything is allocated
  { name: 'compressed term that claims 4 GiB', bytes: compressed(bytesOf(97, 1), 0xffffffff), offsets: [2] },
  { name: 'compressed term that claims 64 MiB + 1', bytes: compressed(bytesOf(97, 1), 64 * 1024 * 1024 + 1), offsets: [2] },
  { name: 'compressed term over maxUncompressedSize', bytes: compressed(bytesOf(109, u32(6), ascii('abcdef'))), offsets: [2], options: { maxUncompressedSize: 10 } },
  { name: 'compressed term that claims 4 GiB, allowed, holding 2 bytes', bytes: compressed(bytesOf(97, 1), 0xffffffff), offsets: [2, 6], options: { maxUncompressedSize: 0xffffffff } },
  { name: 'compressed term that inflates to more than it claims', bytes: compressed(bytesOf(97, 1), 1), offsets: [2, 6] },
  { name: 'compressed term that inflates to less than it claims', bytes: compressed(bytesOf(97, 1), 3), offsets: [2, 6] },
  { name: 'compressed 16 MiB of zeros claiming 16 bytes', bytes: compressed(bytesOf(109, u32(16 << 20), Buffer.alloc(16 << 20)), 16), offsets: [2, 6] },
  { name: 'compressed term with corrupt zlib data', bytes: bytesOf(131, 80, u32(2), 1, 2, 3, 4), offsets: [2, 6, 7, 8, 9, 10] },
  { name: 'compressed term with no zlib data', bytes: bytesOf(131, 80, u32(2)), offsets: [2, 6] },
  { name: 'compressed term with a truncated size', bytes: bytesOf(131, 80, 0, 0), offsets: [1, 2] },
  { name: 'compressed unknown tag (offset in the inflated bytes)', bytes: compressed(bytesOf(200)), offsets: [0], message: /unknown tag 200.*in compressed term|in compressed term.*unknown tag 200/ },
  { name: 'compressed term with trailing bytes', bytes: compressed(bytesOf(97, 1, 0)), offsets: [2], message: /in compressed term/ },
  { name: 'compressed lists nested 2000 deep', bytes: compressed(nested(2000, [108, 0, 0, 0, 1]).subarray(1)), offsets: [1024 * 5], message: /nesting deeper than 1024/ },
  // values the spec refuses
  { name: 'NEW_FLOAT_EXT NaN', bytes: bytesOf(131, 70, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0), offsets: lengthAt(1, 0) },
  { name: 'NEW_FLOAT_EXT +Infinity', bytes: bytesOf(131, 70, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0), offsets: lengthAt(1, 0) },
  { name: 'FLOAT_EXT "inf"', bytes: bytesOf(131, 99, ascii('inf'), Buffer.alloc(28)), offsets: lengthAt(1, 0) },
  { name: 'FLOAT_EXT "1.5x"', bytes: bytesOf(131, 99, ascii('1.5x'), Buffer.alloc(27)), offsets: lengthAt(1, 0) },
  { name: 'FLOAT_EXT of NULs', bytes: bytesOf(131, 99, Buffer.alloc(31)), offsets: lengthAt(1, 0) },
  { name: 'FLOAT_EXT "1e999"', bytes: bytesOf(131, 99, ascii('1e999'), Buffer.alloc(26)), offsets: lengthAt(1, 0) },
  // Erlang's binary_to_term refuses these too (checked on OTP 25); a JS Number() would take them.
  ...[' 1.5', '\r1.5', '1.5 ', '0x10', 'Infinity', '-Infinity'].map((text) => ({
    name: `FLOAT_EXT ${JSON.stringify(text)}`,
    bytes: bytesOf(131, 99, ascii(text), Buffer.alloc(31 - text.length)),
    offsets: lengthAt(1, 0),
  })),
  { name: 'SMALL_BIG_EXT sign 2', bytes: bytesOf(131, 110, 1, 2, 5), offsets: [1, 2, 3] },
  { name: 'BIT_BINARY_EXT bits 0', bytes: bytesOf(131, 77, u32(1), 0, 1), offsets: [1, 2, 6] },
  { name: 'BIT_BINARY_EXT bits 9', bytes: bytesOf(131, 77, u32(1), 9, 1), offsets: [1, 2, 6] },
  { name: 'BIT_BINARY_EXT of 0 bytes and 3 bits', bytes: bytesOf(131, 77, u32(0), 3), offsets: [1, 2, 6] },
  { name: 'NEWER_REFERENCE_EXT of 0 words', bytes: bytesOf(131, 90, u16(0), 119, 3, ascii('a@b'), u32(0)), offsets: lengthAt(1, 2) },
  { name: 'NEWER_REFERENCE_EXT of 6 words', bytes: bytesOf(131, 90, u16(6), 119, 3, ascii('a@b'), u32(0), Buffer.alloc(24)), offsets: lengthAt(1, 2) },
  { name: 'NEW_REFERENCE_EXT of 0 words', bytes: bytesOf(131, 114, u16(0), 119, 3, ascii('a@b'), 0), offsets: lengthAt(1, 2) },
  { name: 'a pid whose node is not an atom', bytes: bytesOf(131, 88, 97, 1, u32(0), u32(0), u32(0)), offsets: [1, 2] },
  { name: 'NEW_FUN_EXT one byte longer than its fields', bytes: Buffer.concat([funWithSize(1), Buffer.from([0])]), offsets: null },
  { name: 'NEW_FUN_EXT one byte shorter than its fields', bytes: funWithSize(-1), offsets: null },
];

describe.each(hostile.map((h) => [h.name, h] as const))('hostile input: %s', (_name, h) => {
  it('is a DecodeError at the right offset in both codecs', () => {
    const problems: string[] = [];
    const verdicts = codecs.map((c) => [c.name, run(c, h.bytes, h.options)] as const);
    for (const [name, v] of verdicts) {
      if (v.kind !== 'DecodeError') {
        problems.push(`${name}: ${v.kind === 'term' ? 'decoded it' : `threw ${String(v.error)}`}`);
      } else {
        if (h.offsets && !h.offsets.includes(v.offset)) problems.push(`${name}: offset ${v.offset}, want ${h.offsets.join(' or ')} ("${v.message}")`);
        if (h.message && !h.message.test(v.message)) problems.push(`${name}: message "${v.message}" does not match ${h.message}`);
      }
    }
    const [[, a], [, b]] = verdicts;
    if (a.kind === 'DecodeError' && b.kind === 'DecodeError' && a.offset !== b.offset) {
      problems.push(`the codecs name different offsets: ${a.offset} ("${a.message}") and ${b.offset} ("${b.message}")`);
    }
    noProblems(problems);
  });
});

describe('valid edge cases next to the hostile ones', () => {
  it.each([
    ['an atom of 255 emoji (1020 bytes)', bytesOf(131, 118, u16(1020), Buffer.from('🚀'.repeat(255)))],
    ['U+10FFFF in an atom', bytesOf(131, 119, 4, 0xf4, 0x8f, 0xbf, 0xbf)],
    // 1024 lists (the default maxDepth), the innermost holding [], each ending in NIL.
    ['lists nested 1024 deep', bytesOf(nested(1024, [108, 0, 0, 0, 1]), 106, Buffer.alloc(1024, 106))],
    ['a compressed term of exactly maxUncompressedSize bytes', compressed(bytesOf(109, u32(5), ascii('abcde')))],
  ])('%s decodes in both codecs', (name, bytes) => {
    const options = name.startsWith('a compressed') ? { maxUncompressedSize: 10 } : undefined;
    for (const c of codecs) {
      const v = run(c, bytes, options);
      expect(v.kind, `${c.name}: ${v.kind === 'DecodeError' ? v.message : String((v as { error?: unknown }).error)}`).toBe('term');
    }
  });
});

describe('nesting a million deep with the largest maxDepth allowed', () => {
  it.each(codecs.map((c) => [c.name] as const))('%s: a DecodeError, no stack overflow or crash (in a child process)', (name) => {
    const root = join(__dirname, '..', '..');
    const child = spawnSync(process.execPath, [join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs'), join(root, 'test', 'vectors', 'deep-child.ts'), name], {
      cwd: root,
      encoding: 'utf8',
      maxBuffer: 1 << 20,
    });
    const out = `exit ${child.status} signal ${child.signal}\n${child.stdout}${child.stderr.slice(-2000)}`;
    expect(child.status, out).toBe(0);
    const line = JSON.parse(child.stdout.trim().split('\n').pop()!) as { verdict: string; offset?: number; message?: string };
    expect(line.verdict, out).toBe('DecodeError');
  });
});
