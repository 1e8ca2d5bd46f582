import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { binaryToTerm } from '../../lib/pure';
import { printTerm, printFloat } from '../../lib/peb/print';
import { atom, charlist, float, tuple } from '../../lib/terms';

// Terms short enough that io_lib:format("~p") keeps them on one line.
const EXPRESSIONS = [
  '1', '-42', '123456789012345678901234567890', '1.0', '0.1', '-0.0', '1.0e300', '1000.0', '12345.0', '1.5e6',
  '0.00012', '0.0001', '2.5e-5', '3.14159', '5.0e-324',
  'ok', "'Hello'", "'a b'", "'it\\'s'", 'true', 'undefined', "'receive'", 'maybe',
  '<<>>', '<<"abc">>', '<<1,2,3>>', '<<"a\\nb">>', '<<200>>', '<<1,2,3:4>>',
  '[]', '"abc"', '"a\\tb"', '[1,2,3]', '[1000]', '[97,1000]', '[1,2|x]', '[[97]]',
  '{}', '{a,1,<<"x">>}', '#{}', '#{b => 1, a => 2, <<"k">> => [], 1 => x}', '#{{a} => [], [] => {}}',
  'fun lists:map/2', "fun erlang:'+'/2",
];

describe('peb print_term: Erlang syntax as io_lib:format("~p") writes it', () => {
  let node: ErlangNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(() => node?.stop());

  it('prints what Erlang prints, for every kind of term', async () => {
    const list = `[${EXPRESSIONS.join(', ')}]`;
    const terms = binaryToTerm(await node.eval(list)) as unknown[];
    // Erlang's own text of each, as a binary of its characters (UTF-8).
    const texts = binaryToTerm(
      await node.eval(`[unicode:characters_to_binary(io_lib:format("~p", [T])) || T <- ${list}]`),
      { binaries: 'string' },
    ) as string[];
    expect(terms).toHaveLength(EXPRESSIONS.length);
    terms.forEach((t, i) => expect(printTerm(t as never), EXPRESSIONS[i]).toBe(texts[i]));
  });

  it('prints JS values by the term mapping', () => {
    expect(printTerm({ user: 'alice', n: [1, 2] })).toBe('#{<<"n">> => [1,2],<<"user">> => <<"alice">>}');
    expect(printTerm(tuple(atom('ok'), charlist('hi'), float(2), null))).toBe('{ok,"hi",2.0,undefined}');
    expect(printTerm(Symbol.for('EXIT'))).toBe("'EXIT'");
  });

  it('writes floats in the shorter of plain and scientific form, plain on a tie', () => {
    expect(printFloat(100)).toBe('100.0');
    expect(printFloat(1000)).toBe('1.0e3');
    expect(printFloat(0.0001)).toBe('0.0001');
    expect(printFloat(-1.5e-7)).toBe('-1.5e-7');
  });
});
