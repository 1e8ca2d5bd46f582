/**
 * The typed serializer: JS session data keeps its types through the Erlang term it is stored as,
 * whatever decode options the connection uses, and Erlang code reads that term as a map with
 * binary keys (and Node reads what Erlang code wrote).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { binaryToTerm, termToBinary } from '../../lib/codec/native';
import type { DecodeOptions } from '../../lib/codec/options';
import { EncodeError } from '../../lib/errors';
import { SessionClient } from '../../lib/session/client';
import { typedSerializer } from '../../lib/session/serializer';
import { atom, Pid, tuple, Tuple, type Term } from '../../lib/terms';
import type { ErlangNode } from '../support/erlang-node';
import { startSessionServer } from './server';

const { serialize, deserialize } = typedSerializer;

/** Through the bytes Erlang would receive and send back, decoded with `options`. */
function throughEtf(value: unknown, options?: DecodeOptions): unknown {
  return deserialize(binaryToTerm(termToBinary(serialize(value)), options));
}

const modes: Array<[string, DecodeOptions | undefined]> = [
  ['default decoding', undefined],
  ['binaries as strings', { binaries: 'string' }],
  ['maps as objects', { maps: 'object' }],
  ['binaries as strings and maps as objects', { binaries: 'string', maps: 'object' }],
];

const sample = (): Record<string, unknown> => ({
  visits: 3,
  name: 'Zoë ☃',
  ratio: 0.25,
  big: 2 ** 60,
  negZero: -0,
  notANumber: NaN,
  inf: Infinity,
  minusInf: -Infinity,
  yes: true,
  no: false,
  nothing: null,
  missing: undefined,
  when: new Date('2024-02-29T12:34:56.789Z'),
  invalid: new Date(NaN),
  tags: new Set(['a', 'b', 1]),
  byId: new Map<unknown, unknown>([
    [1, { name: 'one' }],
    ['two', [2]],
    [{ composite: true }, 'object key'],
  ]),
  counter: 12345678901234567890n,
  small: 5n,
  raw: Buffer.from([0, 255, 1, 128]),
  bytes: new Uint8Array([9, 8, 7]),
  list: [1, 'two', [3, [4]], { five: 5 }],
  withUndefined: [1, undefined, 3],
  nested: { deeper: { deepest: { when: new Date(0), set: new Set([new Map([['k', 1n]])]) } } },
  empty: {},
  emptyList: [],
  ['__proto__']: 'a key, not a prototype',
  'with space': 1,
});

describe('typedSerializer round trips', () => {
  for (const [label, options] of modes) {
    it(`keeps every type through ETF (${label})`, () => {
      const data = sample();
      const back = throughEtf(data, options) as Record<string, unknown>;
      const { missing: _missing, ...expected } = data;
      expect(back).toStrictEqual(expected);
      // toStrictEqual does not tell these apart: check them one by one.
      expect(Object.is(back.negZero, -0)).toBe(true);
      expect(Buffer.isBuffer(back.raw)).toBe(true);
      expect(back.bytes).toBeInstanceOf(Uint8Array);
      expect(Buffer.isBuffer(back.bytes)).toBe(false);
      expect(typeof back.counter).toBe('bigint');
      expect(typeof back.small).toBe('bigint');
      expect(back.when).toBeInstanceOf(Date);
      expect(Number.isNaN((back.invalid as Date).getTime())).toBe(true);
      expect('missing' in back).toBe(false); // left out, as JSON does
      expect(1 in (back.withUndefined as unknown[])).toBe(true);
      expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(back, '__proto__')?.value).toBe('a key, not a prototype');
      expect([...(back.byId as Map<unknown, unknown>).keys()]).toStrictEqual([1, 'two', { composite: true }]);
    });
  }

  it('reads a hole of a sparse array as undefined', () => {
    // eslint-disable-next-line no-sparse-arrays
    expect(throughEtf([1, , 3])).toStrictEqual([1, undefined, 3]);
  });

  it('keeps top-level values of every kind', () => {
    for (const v of ['text', 42, 1.5, true, null, undefined, new Date(1), 7n, Buffer.from('x'), new Set([1]), new Map([[1, 2]]), [1]]) {
      expect(throughEtf(v)).toStrictEqual(v);
    }
  });

  it('stores class instances as JSON does: toJSON() when they have one, else their own fields', () => {
    class Point {
      constructor(
        public x: number,
        public y: number,
      ) {}
      norm(): number {
        return Math.hypot(this.x, this.y);
      }
    }
    class Money {
      constructor(private cents: number) {}
      toJSON(): string {
        return `${this.cents / 100} EUR`;
      }
    }
    expect(throughEtf({ p: new Point(1, 2), m: new Money(250) })).toStrictEqual({ p: { x: 1, y: 2 }, m: '2.5 EUR' });
  });

  it('refuses functions, symbols and cycles with an EncodeError naming where they are', () => {
    expect(() => serialize({ a: { b: [1, () => 1] } })).toThrow(EncodeError);
    expect(() => serialize({ a: { b: [1, () => 1] } })).toThrow(/at \$\.a\.b\[1\]/);
    expect(() => serialize({ s: Symbol('x') })).toThrow(/at \$\.s/);
    const cyclic: Record<string, unknown> = { name: 'loop' };
    cyclic.self = cyclic;
    expect(() => serialize(cyclic)).toThrow(/nesting deeper than 1024 \(a cycle\?\)/);
    expect(() => serialize(new Map([['k', () => 1]]))).toThrow(/at \$\.values\[0\]/);
  });

  it('keeps Erlang terms as they are, and reads a binary that is not UTF-8 as a Buffer', () => {
    const pid = new Pid(atom('n@h'), 1, 2, 3);
    const term = serialize({ role: atom('admin'), owner: pid, pair: tuple(1, 'x') }) as Record<string, Term>;
    expect(term.role).toBe(atom('admin'));
    const back = throughEtf({ role: atom('admin'), owner: pid, pair: tuple(1, 'x') }) as Record<string, unknown>;
    expect(back.role).toBe(atom('admin'));
    expect(back.owner).toStrictEqual(pid);
    expect(back.pair).toStrictEqual(new Tuple([1, 'x']));
    expect(deserialize(Buffer.from([0xff, 0xfe]))).toStrictEqual(Buffer.from([0xff, 0xfe]));
  });

  it('stores the shape its doc comment gives', () => {
    const t = serialize({ d: new Date(5), n: null, u: undefined, l: [undefined], b: 1n, s: new Set([1]), m: new Map([[1, 2]]), nan: NaN });
    expect(t).toStrictEqual({
      d: tuple(atom('$date'), 5),
      n: null,
      l: [tuple(atom('$undefined'))],
      b: tuple(atom('$bigint'), 1n),
      s: tuple(atom('$set'), [1]),
      m: tuple(atom('$map'), [tuple(1, 2)]),
      nan: tuple(atom('$number'), 'NaN'),
    });
  });
});

describe('typedSerializer with a real session server', () => {
  let node: ErlangNode;
  let client: SessionClient;
  beforeAll(async () => {
    node = await startSessionServer();
    client = new SessionClient({ connect: { node: node.name, cookie: node.cookie } });
  });
  afterAll(async () => {
    await client?.close();
    await node?.stop();
  });

  it('stores a map with binary keys that Erlang code reads', async () => {
    await client.set('s1', { visits: 7, user: { name: 'alice', roles: ['admin'] }, seen: new Date(1700000000000) }, 60_000);
    expect(await node.evalText('{ok, D, _, _} = erl_peb:get(<<"s1">>), maps:get(<<"visits">>, D)')).toBe('7');
    expect(
      await node.evalText('{ok, D, _, _} = erl_peb:get(<<"s1">>), maps:get(<<"name">>, maps:get(<<"user">>, D))'),
    ).toBe('<<"alice">>');
    expect(await node.evalText('{ok, D, _, _} = erl_peb:get(<<"s1">>), maps:get(<<"seen">>, D)')).toBe("{'$date',1700000000000}");
  });

  it('reads a session Erlang code wrote, and writes it back with its Erlang terms intact', async () => {
    await node.evalText(
      'erl_peb:set(<<"s2">>, #{<<"visits">> => 1, <<"role">> => admin, <<"ids">> => [1,2], <<"since">> => {\'$date\', 0}, <<"pid">> => self()}, 60000)',
    );
    const record = await client.get('s2');
    const data = record!.data as Record<string, unknown>;
    expect(data.visits).toBe(1);
    expect(data.role).toBe(atom('admin'));
    expect(data.ids).toStrictEqual([1, 2]);
    expect(data.since).toStrictEqual(new Date(0));
    expect(data.pid).toBeInstanceOf(Pid);
    data.visits = 2;
    await client.set('s2', data, 60_000);
    expect(
      await node.evalText('{ok, D, _, _} = erl_peb:get(<<"s2">>), {maps:get(<<"visits">>, D), maps:get(<<"role">>, D), is_pid(maps:get(<<"pid">>, D))}'),
    ).toBe('{2,admin,true}');
  });
});
