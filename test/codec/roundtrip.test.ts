/**
 * What each codec writes, Erlang reads back: a real node with etf_vectors on its code path runs
 * binary_to_term on the bytes and finds the term =:= (and byte-identical under the deterministic
 * encoding, which also tells 0.0 from -0.0) to the term the vector stands for. The written bytes
 * come from each expected value, from other JS values meant to give the same term, and from the
 * values the codec decoded from each vector (decoding is lossless). The checks go to Erlang as one
 * file per batch, so the whole test is a few round trips.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EncodeOptions } from '../../lib/codec/options';
import type { Term } from '../../lib/terms';
import { codecs, type Codec } from '../support/codecs';
import { erlangEnv, startNode, type ErlangNode } from '../support/erlang-node';
import { Check, noProblems } from '../vectors/equal';
import { encodeAlso, expected } from '../vectors/expected';
import { loadVectors } from '../vectors/vectors';

const file = loadVectors();

interface Item {
  /** The vector whose term the bytes must decode to. */
  name: string;
  /** What was encoded, for messages. */
  what: string;
  bytes: Buffer;
}

let dir: string;
let node: ErlangNode;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'erlpeb-vectors-'));
  execFileSync('erlc', ['-o', dir, join(__dirname, '..', 'vectors', 'etf_vectors.erl')], { env: erlangEnv() });
  node = await startNode({ codePaths: [dir] });
});

afterAll(async () => {
  await node?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/**
 * Writes the items as <<NameLen:16, Name, Len:32, Bytes, OrigLen:32, Original>> records (the
 * original vector bytes let Erlang check terms made at run time) and has etf_vectors:check_file/1
 * read them. Gives Erlang's report: "ok N" or one line per failure.
 */
async function erlangChecks(items: Item[]): Promise<string> {
  const parts: Buffer[] = [];
  for (const it of items) {
    const name = Buffer.from(it.name, 'utf8');
    const v = file.vectors.find((x) => x.name === it.name)!;
    const orig = v.runtime ? v.encodings.default : Buffer.alloc(0);
    const head = Buffer.alloc(2 + name.length + 4);
    head.writeUInt16BE(name.length, 0);
    name.copy(head, 2);
    head.writeUInt32BE(it.bytes.length, 2 + name.length);
    const origLen = Buffer.alloc(4);
    origLen.writeUInt32BE(orig.length, 0);
    parts.push(head, it.bytes, origLen, orig);
  }
  const path = join(dir, `batch-${Math.random().toString(36).slice(2)}.bin`);
  writeFileSync(path, Buffer.concat(parts));
  // The report is a binary: read its BINARY_EXT here rather than trust a codec under test.
  const etf = await node.eval(`etf_vectors:check_file(${JSON.stringify(path)})`);
  if (etf[0] !== 131 || etf[1] !== 109) throw new Error(`unexpected reply ${etf.toString('hex')}`);
  return etf.subarray(6, 6 + etf.readUInt32BE(2)).toString('utf8');
}

/** Encodes each value; an encoder that throws is a failure named with the value's vector. */
function encodeAll(codec: Codec, values: Array<{ name: string; what: string; value: Term }>, options?: EncodeOptions) {
  const items: Item[] = [];
  const thrown: string[] = [];
  for (const { name, what, value } of values) {
    try {
      items.push({ name, what, bytes: codec.termToBinary(value, options) });
    } catch (e) {
      thrown.push(`${name} (${what}): ${String(e)}`);
    }
  }
  return { items, thrown };
}

/** The expected value of every vector that has one as a value (run-time terms have a Check). */
function expectedValues() {
  return file.vectors
    .filter((v) => !(expected[v.name] instanceof Check))
    .map((v) => ({ name: v.name, what: 'expected value', value: expected[v.name] as Term }));
}

function otherValues() {
  return Object.entries(encodeAlso).flatMap(([name, values]) =>
    values.map((value, i) => ({ name, what: `encodeAlso[${i}]`, value })),
  );
}

describe.each(codecs)('Erlang reads back what the $name codec writes', (codec) => {
  it('from every expected value', async () => {
    const { items, thrown } = encodeAll(codec, expectedValues());
    noProblems(thrown);
    expect(await erlangChecks(items)).toBe(`ok ${items.length}`);
  });

  it('from every expected value, compressed (level 6 and 1)', async () => {
    const six = encodeAll(codec, expectedValues(), { compressed: true });
    const one = encodeAll(codec, expectedValues(), { compressed: 1 });
    noProblems([...six.thrown, ...one.thrown]);
    const items = [...six.items, ...one.items];
    expect(items.filter((i) => i.bytes[1] === 80).length).toBeGreaterThan(10);
    expect(await erlangChecks(items)).toBe(`ok ${items.length}`);
  });

  it('from other JS values with the same meaning (strings, charlists, objects, symbols, bigints)', async () => {
    const { items, thrown } = encodeAll(codec, otherValues());
    noProblems(thrown);
    expect(await erlangChecks(items)).toBe(`ok ${items.length}`);
  });

  it('from what it decoded from every vector (lossless re-encoding)', async () => {
    const values: Array<{ name: string; what: string; value: Term }> = [];
    const failed: string[] = [];
    for (const v of file.vectors) {
      for (const [encoding, bytes] of v.distinct) {
        try {
          values.push({ name: v.name, what: `decoded ${encoding}`, value: codec.binaryToTerm(bytes) });
        } catch (e) {
          failed.push(`${v.name} ${encoding}: ${String(e)}`);
        }
      }
    }
    noProblems(failed);
    const { items, thrown } = encodeAll(codec, values);
    noProblems(thrown);
    expect(await erlangChecks(items)).toBe(`ok ${items.length}`);
  });
});

describe('the Erlang side of these checks', () => {
  it('rejects bytes of a different term, a term with trailing bytes, and bytes that are no term', async () => {
    const v = (name: string) => file.vectors.find((x) => x.name === name)!.encodings.default;
    const report = await erlangChecks([
      { name: 'int_1', what: 'the bytes of 2', bytes: Buffer.from([131, 97, 2]) },
      { name: 'float_0', what: 'the bytes of -0.0', bytes: v('float_neg0') },
      { name: 'int_1', what: 'trailing byte', bytes: Buffer.from([131, 97, 1, 0]) },
      { name: 'int_1', what: 'not a term', bytes: Buffer.from([131, 200]) },
      { name: 'pid_self', what: 'another pid', bytes: v('pid_foreign') },
    ]);
    const lines = report.trim().split('\n');
    expect(lines.map((l) => l.split(':')[0])).toEqual(['int_1', 'float_0', 'int_1', 'int_1', 'pid_self']);
  });
});
