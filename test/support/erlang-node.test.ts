import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type ErlangNode } from './erlang-node';

describe('test support: a real Erlang node', () => {
  let node: ErlangNode;
  beforeAll(async () => {
    node = await startNode();
  });
  afterAll(() => node?.stop());

  it('answers with its own name and evaluates expressions', async () => {
    expect(await node.evalText('node()')).toBe(`'${node.name}'`);
    expect(await node.evalText('lists:seq(1, 3)')).toBe('[1,2,3]');
    await expect(node.eval('erlang:error(boom)')).rejects.toThrow(/boom/);
  });
});
