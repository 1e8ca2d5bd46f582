/**
 * npm run bench:codec [-- --json]
 *
 * Times erl-peb's native and pure-TS codecs beside erlpack (native, the most used JS ETF codec),
 * erlang_js (pure JS), JSON and v8.serialize, in one process, on the same values. Each encoder starts
 * from the JS value it takes (erlang_js writes arrays as tuples; erlpack has no tuples, so its
 * list-of-tuples input is a list of arrays, and no Buffer, so its 1 MB input is a Latin-1 string).
 * ETF decoders read the bytes erl-peb writes, except erlpack, which cannot read the atoms OTP 26
 * writes (SMALL_ATOM_UTF8_EXT) and so reads its own encoding of the same value. erlang_js and v8
 * return a view of the input for a binary, where erl-peb copies it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as v8 from 'node:v8';
import { randomBytes } from 'node:crypto';
// The compiled package, as users run it (`npm run build:ts` first).
import * as native from '../dist/codec/native';
import * as pure from '../dist/pure';
import { tuple } from '../dist/terms';
import { machine, measure, report, type Row } from './harness';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const erlpack = require('erlpack') as { pack(v: unknown): Buffer; unpack(b: Buffer): unknown };
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { Erlang } = require('erlang_js') as { Erlang: any };

const ejsEncode = (v: unknown): Buffer => {
  let out: Buffer | undefined;
  Erlang.term_to_binary(v, (err: Error | undefined, b: Buffer) => {
    if (err) throw err;
    out = b;
  });
  return out!;
};
const ejsDecode = (b: Buffer): unknown => {
  let out: unknown;
  Erlang.binary_to_term(b, (err: Error | undefined, t: unknown) => {
    if (err) throw err;
    out = t;
  });
  return out;
};

interface Case {
  name: string;
  /** The value for erl-peb's codecs (and the bytes every ETF decoder reads). */
  term: pure.Term;
  /** The same data as erlpack / erlang_js / JSON / v8 take it. */
  erlpack: unknown;
  erlangJs: unknown;
  json: unknown;
  v8: unknown;
  decode: pure.DecodeOptions;
}

const fixture = join(__dirname, '..', '..', 'shared', 'fixtures', 'session.json');
const session = JSON.parse(readFileSync(fixture, 'utf8')) as Record<string, pure.Term>;
const big = randomBytes(1024 * 1024);
const N = 100_000;
const tuples = Array.from({ length: N }, (_, i) => tuple(i, 'x'));
const pairs = Array.from({ length: N }, (_, i) => [i, 'x']);

const cases: Case[] = [
  { name: 'session object', term: session, erlpack: session, erlangJs: session, json: session, v8: session, decode: { maps: 'object', binaries: 'string' } },
  { name: '1 MB binary', term: big, erlpack: big.toString('latin1'), erlangJs: new Erlang.OtpErlangBinary(big), json: big.toString('base64'), v8: big, decode: {} },
  { name: '100,000 {I, <<"x">>}', term: tuples, erlpack: pairs, erlangJs: new Erlang.OtpErlangList(pairs), json: pairs, v8: pairs, decode: { binaries: 'string' } },
];

const time = (fn: () => unknown): number | null => {
  try {
    fn();
  } catch {
    return null; // this peer cannot do it: shown as '–'
  }
  return measure(fn);
};
const ratio = (peer: number | null, ours: number | null): string | null =>
  peer === null || ours === null ? null : `${(peer / ours).toFixed(2)}×`;

const rows: Row[] = [];
for (const c of cases) {
  const bytes = native.termToBinary(c.term);
  const erlpackBytes = erlpack.pack(c.erlpack);
  const json = JSON.stringify(c.json);
  const v8bytes = v8.serialize(c.v8);
  const enc = {
    native: time(() => native.termToBinary(c.term)),
    pure: time(() => pure.termToBinary(c.term)),
    erlpack: time(() => erlpack.pack(c.erlpack)),
    erlang_js: time(() => ejsEncode(c.erlangJs)),
    JSON: time(() => JSON.stringify(c.json)),
    v8: time(() => v8.serialize(c.v8)),
  };
  const dec = {
    native: time(() => native.binaryToTerm(bytes, c.decode)),
    pure: time(() => pure.binaryToTerm(bytes, c.decode)),
    erlpack: time(() => erlpack.unpack(erlpackBytes)),
    erlang_js: time(() => ejsDecode(bytes)),
    JSON: time(() => JSON.parse(json)),
    v8: time(() => v8.deserialize(v8bytes)),
  };
  for (const [op, t] of [['encode', enc], ['decode', dec]] as const) {
    rows.push({
      case: c.name,
      op,
      'native µs': t.native,
      'pure µs': t.pure,
      'erlpack µs': t.erlpack,
      'erlang_js µs': t.erlang_js,
      'JSON µs': t.JSON,
      'v8 µs': t.v8,
      'native vs erlpack': ratio(t.erlpack, t.native),
      'pure vs erlpack': ratio(t.erlpack, t.pure),
      'native vs JSON': ratio(t.JSON, t.native),
    });
  }
}

report('ETF codecs, µs per operation (lower is better); "vs" columns: peer time ÷ ours (above 1× = ours faster)', rows, {
  machine: machine(),
  sizes: { session: native.termToBinary(session).length, sessionJson: JSON.stringify(session).length },
});
