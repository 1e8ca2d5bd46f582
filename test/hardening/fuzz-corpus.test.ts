/**
 * The two decoders agree on what the fuzzer found, and peb's format encoder never fails other than
 * with an ErlPebError.
 *
 * - Every input in fuzz/corpus/decode and fuzz/regressions/decode (made and kept by
 *   `npm run fuzz`): the pure-TS and the native decoder give the same verdict (both a DecodeError
 *   at the same offset, or both a term, the same term) under the input's own options and under
 *   every combination of the decode flags.
 * - Random format strings and data from a seeded generator: `peb.encode`/`peb.vencode` (native)
 *   and the pure-TS `encode`/`vencode` of lib/peb/format.ts either all write the same bytes, which
 *   both decoders read as the same term, or all throw the same ErlPebError subclass.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as pureCodec from '../../lib/codec/decode';
import * as nativeCodec from '../../lib/codec/native';
import type { DecodeOptions } from '../../lib/codec/options';
import { DecodeError, EncodeError, ErlPebError } from '../../lib/errors';
import { peb } from '../../lib/peb';
import * as format from '../../lib/peb/format';
import {
  atom,
  BitBinary,
  Charlist,
  Export,
  Float,
  ImproperList,
  Pid,
  Port,
  Ref,
  Tuple,
  type Term,
} from '../../lib/terms';
import { show, termDiff } from '../vectors/equal';

const ROOT = join(__dirname, '..', '..');

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

function outcome(f: () => unknown): Outcome {
  try {
    return { ok: true, value: f() };
  } catch (error) {
    return { ok: false, error };
  }
}

function describeError(e: unknown): string {
  if (e instanceof DecodeError) return `DecodeError at ${e.offset}: ${e.message}`;
  if (e instanceof EncodeError) return `EncodeError at ${e.path}: ${e.message}`;
  return `${(e as Error)?.constructor?.name ?? typeof e}: ${(e as Error)?.message ?? String(e)}`;
}

/** Null when both decoders say the same of `bytes`, else what differs. */
function decodeDifference(bytes: Uint8Array, options: DecodeOptions): string | null {
  const n = outcome(() => nativeCodec.binaryToTerm(bytes, options));
  const p = outcome(() => pureCodec.binaryToTerm(bytes, options));
  if (!n.ok && !(n.error instanceof DecodeError)) return `native threw ${describeError(n.error)}`;
  if (!p.ok && !(p.error instanceof DecodeError)) return `pure threw ${describeError(p.error)}`;
  if (n.ok !== p.ok) {
    return n.ok
      ? `native decodes it, pure says ${describeError((p as { error: unknown }).error)}`
      : `pure decodes it, native says ${describeError((n as { error: unknown }).error)}`;
  }
  if (!n.ok && !p.ok) {
    const [a, b] = [n.error as DecodeError, p.error as DecodeError];
    return a.offset === b.offset ? null : `native: ${describeError(a)}; pure: ${describeError(b)}`;
  }
  const diff = termDiff((n as { value: unknown }).value, (p as { value: unknown }).value, { ordered: true });
  return diff === null ? null : `the terms differ: ${diff}`;
}

// ---- the fuzz corpus ----

/** The options an input's first byte picks, as fuzz/decode_target.cc reads it. */
function optionsOf(o: number): DecodeOptions {
  return {
    binaries: o & 1 ? 'string' : 'buffer',
    strings: o & 2 ? 'string' : 'list',
    maps: o & 4 ? 'object' : 'map',
    maxDepth: o & 8 ? 3 : 1024,
    maxUncompressedSize: o & 16 ? 100 : 1024 * 1024,
  };
}

function inputs(dir: string): Array<[string, Buffer]> {
  const path = join(ROOT, dir);
  if (!existsSync(path)) return [];
  return readdirSync(path)
    .sort()
    .map((name): [string, Buffer] => [`${dir}/${name}`, readFileSync(join(path, name))]);
}

describe('the pure-TS and the native decoder on the fuzz corpus', () => {
  const corpus = [...inputs('fuzz/corpus/decode'), ...inputs('fuzz/regressions/decode')];

  it('has a corpus to check', () => {
    expect(corpus.length).toBeGreaterThan(100);
  });

  it('give the same verdict and the same term for every input, under its own options and every flag combination', () => {
    const problems: string[] = [];
    let terms = 0;
    let errors = 0;
    for (const [name, file] of corpus) {
      if (file.length === 0) continue;
      const bytes = file.subarray(1);
      const own = optionsOf(file[0]);
      const combos: DecodeOptions[] = [own];
      for (let flags = 0; flags < 8; flags++) combos.push(optionsOf(flags));
      for (const options of combos) {
        const d = decodeDifference(bytes, options);
        if (d !== null) problems.push(`${name} with ${JSON.stringify(options)}: ${d}`);
      }
      if (outcome(() => pureCodec.binaryToTerm(bytes, own)).ok) terms++;
      else errors++;
    }
    expect(problems.slice(0, 20)).toEqual([]);
    // The corpus holds both: inputs that decode and inputs that fail in many ways.
    expect(terms).toBeGreaterThan(20);
    expect(errors).toBeGreaterThan(20);
  });
});

// ---- peb's format encoder, randomly ----

/** A small seeded PRNG (mulberry32), so a failure names a case that can be run again. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

class Gen {
  constructor(readonly rnd: () => number) {}
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  chance(p: number): boolean {
    return this.rnd() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)];
  }

  text(): string {
    const len = this.pick([0, 1, 3, 8, 30, 256, 300]);
    let s = '';
    for (let i = 0; i < len; i++) {
      const k = this.int(10);
      if (k < 6) s += String.fromCharCode(0x20 + this.int(95));
      else if (k < 8) s += String.fromCharCode(0x80 + this.int(0x780));
      else if (k < 9) s += String.fromCodePoint(0x10000 + this.int(0x1000));
      else s += String.fromCharCode(0xd800 + this.int(0x800)); // a lone surrogate, now and then
    }
    return s;
  }

  bytes(): Buffer {
    const b = Buffer.alloc(this.pick([0, 1, 5, 64, 300]));
    for (let i = 0; i < b.length; i++) b[i] = this.int(256);
    return b;
  }

  number(): number {
    return this.pick([
      () => this.int(256),
      () => this.int(2 ** 31) * (this.chance(0.5) ? -1 : 1),
      () => this.pick([2 ** 31 - 1, -(2 ** 31), 2 ** 31, 2 ** 32, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 63, 2 ** 64]),
      () => (this.rnd() - 0.5) * 10 ** this.int(30),
      () => this.pick([NaN, Infinity, -Infinity, -0, 0.5, 1e308, 5e-324]),
    ])();
  }

  bigint(): bigint {
    const edges = [0n, 1n, -1n, 2n ** 31n, 2n ** 53n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 63n, 2n ** 64n - 1n, 2n ** 64n];
    return this.pick(edges) + BigInt(this.int(3) - 1);
  }

  pid(): unknown {
    const u32 = (): number => this.pick([0, 1, 32767, 2 ** 32 - 1, 2 ** 32, -1, 1.5]);
    return new Pid(atom(this.pick(['n@h', 'node@127.0.0.1', '', 'ü@h'])), u32(), u32(), u32());
  }

  /** Any JS value, many of them with no Erlang form. */
  value(depth: number): unknown {
    const leaf = depth > 3;
    switch (this.int(leaf ? 14 : 22)) {
      case 0:
        return this.text();
      case 1:
        return this.number();
      case 2:
        return this.bigint();
      case 3:
        return this.bytes();
      case 4:
        return this.pick([true, false, null, undefined]);
      case 5:
        return atom(this.text());
      case 6:
        return new Float(this.number());
      case 7:
        return this.pid();
      case 8:
        return new Charlist(this.text());
      case 9:
        return new BitBinary(this.bytes(), this.pick([1, 7, 8, 0, 9]));
      case 10:
        return new Ref(atom('n@h'), this.int(4), Array.from({ length: this.pick([1, 3, 5, 0, 6]) }, () => this.int(2 ** 32)));
      case 11:
        return new Port(atom('n@h'), this.pick([1, 2 ** 40, 2n ** 64n - 1n, 2n ** 64n, -1]), 1);
      case 12:
        return new Export(atom('m'), atom('f'), this.pick([0, 255, 256, -1]));
      case 13:
        return this.pick([new Date(0), Symbol.for('sym'), Symbol('local'), () => 1, new Set([1]), new Uint8Array([1, 2])]);
      case 14:
      case 15:
        return Array.from({ length: this.int(4) }, () => this.value(depth + 1));
      case 16:
        // Deliberately any JS value where a Term belongs: the encoders must refuse what has no Erlang form.
        return new Tuple(Array.from({ length: this.int(4) }, () => this.value(depth + 1) as Term));
      case 17: {
        const o: Record<string, unknown> = {};
        for (let i = this.int(4); i > 0; i--) o[this.text()] = this.value(depth + 1);
        return o;
      }
      case 18:
        return new Map([[this.value(depth + 1), this.value(depth + 1)]]);
      case 19:
        return new ImproperList([this.value(depth + 1) as Term], this.value(depth + 1) as Term);
      case 20: {
        const cyclic: unknown[] = [1];
        cyclic.push(cyclic);
        return cyclic;
      }
      default:
        return Object.create(null);
    }
  }

  /** A value meant for directive `ch` (the right kind most of the time). */
  valueFor(ch: string, depth: number): unknown {
    if (this.chance(0.15)) return this.value(depth);
    switch (ch) {
      case 'a':
        return this.chance(0.2) ? atom(this.text()) : this.text();
      case 's':
      case 'b':
        return this.chance(0.3) ? this.bytes() : this.text();
      case 'i':
      case 'l':
      case 'u':
        return this.chance(0.4) ? this.bigint() : this.number();
      case 'f':
      case 'd':
        return this.chance(0.2) ? new Float(this.number()) : this.number();
      case 'p':
        return this.pid();
      default:
        return this.value(depth);
    }
  }

  space(): string {
    return this.pick(['', '', ' ', '  ', '\n', '\t']);
  }

  /** A format item and the value it takes (with mypeb's nesting rule). */
  item(depth: number): { fmt: string; data: unknown; omit?: boolean } {
    if (depth < 4 && this.chance(0.35)) {
      const [open, close] = this.chance(0.5) ? ['[', ']'] : ['{', '}'];
      const n = this.int(4);
      const parts: string[] = [];
      const data: unknown[] = [];
      for (let i = 0; i < n; i++) {
        const it = this.item(depth + 1);
        parts.push(it.fmt);
        if (!it.omit) data.push(it.data);
      }
      const sep = (): string => (this.chance(0.7) ? `,${this.space()}` : ' ');
      const fmt = `${open}${this.space()}${parts.join(sep())}${this.space()}${close}`;
      return { fmt, data, omit: n === 0 && this.chance(0.5) };
    }
    const ch = this.pick([...'asbiludfpP']);
    return { fmt: `~${ch}`, data: this.valueFor(ch, depth) };
  }

  /** A format and its data: mostly well made, sometimes broken in the format or the data. */
  formatCase(): { fmt: string; data: unknown[] } {
    const it = this.item(0);
    let fmt = `${this.space()}${it.fmt}${this.space()}`;
    let data: unknown[] = it.omit ? [] : [it.data];
    if (this.chance(0.15)) {
      // A character in, out, or changed: unbalanced brackets, unknown directives, stray text.
      const at = this.int(fmt.length + 1);
      const c = this.pick([...'[]{}~,aszx P9"']);
      fmt = this.pick([
        fmt.slice(0, at) + c + fmt.slice(at),
        fmt.slice(0, at) + fmt.slice(at + 1),
        fmt.slice(0, at) + c + fmt.slice(at + 1),
      ]);
    }
    if (this.chance(0.1)) data = this.pick([[], [it.data, it.data], [this.value(0)], it.data as unknown[]]);
    if (this.chance(0.02)) fmt = this.pick([123, null, undefined, ['~a']]) as unknown as string;
    return { fmt, data };
  }
}

describe("peb's format encoder on random formats and data", () => {
  const SEED = 0x5eed_f00d;
  const CASES = 3000;

  it(`either writes bytes both decoders read as the same term, or throws an ErlPebError (seed ${SEED}, ${CASES} cases)`, () => {
    const gen = new Gen(prng(SEED));
    const problems: string[] = [];
    let written = 0;
    let refused = 0;
    for (let i = 0; i < CASES && problems.length < 20; i++) {
      const { fmt, data } = gen.formatCase();
      const where = `case ${i}: format ${show(fmt)}, data ${show(data)}`.slice(0, 400);
      const calls = {
        'peb.encode': outcome(() => peb.encode(fmt, data)),
        'peb.vencode': outcome(() => peb.vencode(fmt, data)),
        'format.encode': outcome(() => format.encode(fmt, data)),
        'format.vencode': outcome(() => format.vencode(fmt, data)),
      };
      const results = Object.entries(calls);
      for (const [name, r] of results) {
        if (!r.ok && !(r.error instanceof ErlPebError)) problems.push(`${where}: ${name} threw ${describeError(r.error)}`);
        if (r.ok && !Buffer.isBuffer(r.value)) problems.push(`${where}: ${name} returned ${show(r.value)}`);
      }
      if (results.some(([, r]) => r.ok) && results.some(([, r]) => !r.ok)) {
        problems.push(`${where}: ${results.map(([n, r]) => `${n} ${r.ok ? 'writes' : describeError(r.error)}`).join('; ')}`);
        continue;
      }
      if (!calls['peb.vencode'].ok) {
        refused++;
        const errors = results.map(([, r]) => (r as { error: ErlPebError }).error);
        const kinds = new Set(errors.map((e) => `${e?.constructor?.name} ${e instanceof EncodeError ? e.path : ''}`));
        if (kinds.size !== 1) problems.push(`${where}: the four refuse it differently: ${[...kinds].join(' / ')}`);
        continue;
      }
      written++;
      const [enc, venc, penc, pvenc] = results.map(([, r]) => (r as { value: Buffer }).value);
      if (!venc.equals(pvenc)) problems.push(`${where}: native and pure vencode write different bytes`);
      if (!enc.equals(penc)) problems.push(`${where}: native and pure encode write different bytes`);
      if (venc[0] !== 131 || !venc.subarray(1).equals(enc)) problems.push(`${where}: vencode is not 131 then encode's bytes`);
      for (const options of [{}, format.PEB_DECODE_OPTIONS, { maps: 'object' as const, binaries: 'string' as const }]) {
        const n = outcome(() => nativeCodec.binaryToTerm(venc, options));
        if (!n.ok) problems.push(`${where}: the native decoder refuses what was written: ${describeError(n.error)}`);
        const d = decodeDifference(venc, options);
        if (d !== null) problems.push(`${where} with ${JSON.stringify(options)}: ${d}`);
      }
    }
    expect(problems).toEqual([]);
    // Both outcomes are well represented.
    expect(written).toBeGreaterThan(CASES / 5);
    expect(refused).toBeGreaterThan(CASES / 5);
  });
});
