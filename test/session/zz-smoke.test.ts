import { it, expect } from 'vitest';
import { startSessionServer } from './server';
import { SessionClient } from '../../lib/session/client';
it('smoke', async () => {
  const node = await startSessionServer();
  const c = new SessionClient({ connect: { node: node.name, cookie: node.cookie } });
  const v = await c.set('a', { visits: 1, when: new Date(5), m: new Map([[1, 'x']]), s: new Set([1n]), b: Buffer.from('hi'), u: undefined, n: null, arr: [1, , 3] }, 60000);
  console.log(v, await c.get('a'));
  console.log(await node.evalText('{ok, D, _, _} = erl_peb:get(<<"a">>), D'));
  console.log(await c.status());
  const t = await c.lock('a', 1000, 0); console.log(t, await c.lock('a', 1000, 0), await c.unlock('a', t!));
  await c.close(); await node.stop();
});
