/**
 * The native and the pure-TS codec are interchangeable: for every expected value (and the other
 * JS values of expected.ts, and every decoded vector) they write the same bytes, uncompressed;
 * they decode every vector the same way under each option; compressed output of either decodes
 * in the other; and they refuse the same unencodable values with the same EncodeError path.
 */
import { describe, expect, it } from 'vitest';
import type { DecodeOptions } from '../../lib/codec/options';
import { EncodeError } from '../../lib/errors';
import { atom, BitBinary, float, ImproperList, Pid, Port, Ref, tuple, Export, type Term } from '../../lib/terms';
import { nativeCodec as native, pureCodec as pure, type Codec } from '../support/codecs';
import { Check, noProblems, show, termDiff } from '../vectors/equal';
import { encodeAlso, expected } from '../vectors/expected';
import { loadVectors } from '../vectors/vectors';

const file = loadVectors();

function outcome(f: () => unknown): { ok: true; value: unknown } | { ok: false; error: unknown } {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

function values(): Array<[string, Term]> {
  const out: Array<[string, Term]> = [];
  for (const v of file.vectors) {
    if (!(expected[v.name] instanceof Check)) out.push([`${v.name} (expected)`, expected[v.name] as Term]);
  }
  for (const [name, vs] of Object.entries(encodeAlso)) vs.forEach((x, i) => out.push([`${name} (encodeAlso[${i}])`, x]));
  return out;
}

function sameBytes(list: Array<[string, Term]>): string[] {
  const problems: string[] = [];
  for (const [name, value] of list) {
    const n = outcome(() => native.termToBinary(value));
    const p = outcome(() => pure.termToBinary(value));
    if (!n.ok || !p.ok) {
      problems.push(`${name}: native ${n.ok ? 'wrote bytes' : String(n.error)}; pure ${p.ok ? 'wrote bytes' : String(p.error)}`);
    } else if (!(n.value as Buffer).equals(p.value as Buffer)) {
      const a = n.value as Buffer;
      const b = p.value as Buffer;
      let i = 0;
      while (i < a.length && a[i] === b[i]) i++;
      problems.push(`${name}: bytes differ from offset ${i} (native ${a.subarray(i, i + 12).toString('hex')}, pure ${b.subarray(i, i + 12).toString('hex')}; lengths ${a.length}/${b.length})`);
    }
  }
  return problems;
}

const OPTION_SETS: DecodeOptions[] = [
  {},
  { binaries: 'string' },
  { strings: 'string' },
  { maps: 'object' },
  { binaries: 'string', strings: 'string', maps: 'object' },
];

describe('native and pure-TS codecs agree', () => {
  it('write the same bytes for every expected value and every other JS value in expected.ts', () => {
    noProblems(sameBytes(values()));
  });

  it('write the same bytes for what they decoded from every vector', () => {
    const list: Array<[string, Term]> = [];
    for (const v of file.vectors) {
      for (const [encoding, bytes] of v.distinct) {
        const d = outcome(() => pure.binaryToTerm(bytes));
        if (d.ok) list.push([`${v.name} ${encoding} (decoded by pure)`, d.value as Term]);
        const n = outcome(() => native.binaryToTerm(bytes));
        if (n.ok) list.push([`${v.name} ${encoding} (decoded by native)`, n.value as Term]);
      }
    }
    expect(list.length).toBeGreaterThan(0);
    noProblems(sameBytes(list));
  });

  it.each(OPTION_SETS.map((o) => [JSON.stringify(o), o] as const))('decode every vector the same way with %s', (_s, options) => {
    const problems: string[] = [];
    for (const v of file.vectors) {
      for (const [encoding, bytes] of v.distinct) {
        const n = outcome(() => native.binaryToTerm(bytes, options));
        const p = outcome(() => pure.binaryToTerm(bytes, options));
        if (!n.ok || !p.ok) {
          problems.push(`${v.name} ${encoding}: native ${n.ok ? 'decoded' : String(n.error)}; pure ${p.ok ? 'decoded' : String(p.error)}`);
          continue;
        }
        // Same order too: both keep the order of the bytes.
        const d = termDiff(n.value, p.value, { ordered: true });
        if (d) problems.push(`${v.name} ${encoding}: native vs pure: ${d}`);
      }
    }
    noProblems(problems);
  });

  it('each decodes what the other compresses, and compresses only when it makes the term shorter', () => {
    const problems: string[] = [];
    for (const [name, value] of values()) {
      for (const [writer, reader] of [
        [native, pure],
        [pure, native],
      ] as Array<[Codec, Codec]>) {
        const plain = outcome(() => writer.termToBinary(value));
        const packed = outcome(() => writer.termToBinary(value, { compressed: 9 }));
        if (!plain.ok || !packed.ok) {
          problems.push(`${name}: ${writer.name} threw ${String(plain.ok ? (packed as { error: unknown }).error : plain.error)}`);
          continue;
        }
        const bytes = packed.value as Buffer;
        const plainBytes = plain.value as Buffer;
        if (bytes[1] === 80 ? bytes.length >= plainBytes.length : !bytes.equals(plainBytes)) {
          problems.push(`${name}: ${writer.name} compressed to ${bytes.length} bytes, plain is ${plainBytes.length}`);
        }
        const back = outcome(() => reader.binaryToTerm(bytes));
        const direct = outcome(() => reader.binaryToTerm(plainBytes));
        if (!back.ok || !direct.ok) {
          problems.push(`${name}: ${reader.name} could not read what ${writer.name} compressed: ${String(back.ok ? (direct as { error: unknown }).error : back.error)}`);
          continue;
        }
        const d = termDiff(back.value, direct.value, { ordered: true });
        if (d) problems.push(`${name}: ${writer.name} -> ${reader.name}: ${d}`);
      }
    }
    noProblems(problems);
  });

  it('refuse the same unencodable values, with the same EncodeError path', () => {
    const cyclic: Term[] = [1];
    cyclic.push(cyclic);
    const deep = Array.from({ length: 2000 }).reduce<Term>((acc) => [acc], []);
    const bad: Array<[string, unknown]> = [
      ['NaN', NaN],
      ['Infinity', [1, -Infinity]],
      ['unsafe integer', { n: 1e300 }],
      ['Date', { when: new Date(0) }],
      ['function', [() => 1]],
      ['class instance', { x: new (class Thing {})() }],
      ['Set', new Set([1])],
      ['symbol', Symbol('no')],
      ['Int16Array', new Int16Array(2)],
      ['ArrayBuffer', new ArrayBuffer(2)],
      ['DataView', new DataView(new ArrayBuffer(2))],
      ['BitBinary bits 0', new BitBinary(Buffer.from([1]), 0)],
      ['BitBinary bits 9', new BitBinary(Buffer.from([1]), 9)],
      ['BitBinary empty', new BitBinary(Buffer.alloc(0), 3)],
      ['atom of 256 code points', atom('a'.repeat(256))],
      ['atom of 256 emoji', tuple(atom('🚀'.repeat(256)))],
      ['Pid id too big', new Pid(atom('a@b'), 2 ** 32, 0, 0)],
      ['Ref of 6 words', new Ref(atom('a@b'), 0, [1, 2, 3, 4, 5, 6])],
      ['Ref of no words', new Ref(atom('a@b'), 0, [])],
      ['Port id negative', new Port(atom('a@b'), -1, 0)],
      ['Export arity 256', new Export(atom('m'), atom('f'), 256)],
      ['float NaN', float(NaN)],
      ['in a Map value', new Map<Term, Term>([[1, { a: [0, undefined, new Date()] } as unknown as Term]])],
      ['in a Map key', new Map<unknown, Term>([[new Date(), 1]]) as unknown as Term],
      ['in an improper tail', new ImproperList([1], new Date() as unknown as Term)],
      ['odd object key', { 'not an identifier': [new Date()] }],
      ['cyclic', cyclic],
      ['too deep', deep],
    ];
    const problems: string[] = [];
    for (const [name, value] of bad) {
      const n = outcome(() => native.termToBinary(value as Term));
      const p = outcome(() => pure.termToBinary(value as Term));
      const verdict = (o: ReturnType<typeof outcome>) =>
        o.ok ? `wrote ${(o.value as Buffer).toString('hex').slice(0, 24)}` : o.error instanceof EncodeError ? `EncodeError at ${o.error.path}` : `threw ${String(o.error)}`;
      const vn = verdict(n);
      const vp = verdict(p);
      if (!vn.startsWith('EncodeError') || vn !== vp) problems.push(`${name} (${show(value)}): native ${vn}; pure ${vp}`);
    }
    noProblems(problems);
  });
});
