/**
 * The original article's PHP session handler, ported line by line to the `peb` facade, run against
 * the session server's `session_handler` module (ETS backend) on a real node.
 *
 * The PHP it ports (session_set_save_handler with six callbacks over mypeb):
 *   function open($path, $name)   { global $link; $link = peb_connect($node, $secret); return (bool) $link; }
 *   function close()              { global $link; peb_close($link); return true; }
 *   function read($id)            { $x = peb_encode("[~s]", array(array($id)));
 *                                   $r = peb_rpc("session_handler", "read", $x, $link);
 *                                   $d = peb_decode($r); return $d[0]; }
 *   function write($id, $data)    { $x = peb_encode("[~s, ~s]", array(array($id, $data)));
 *                                   peb_rpc("session_handler", "write", $x, $link); return true; }
 *   function destroy($id)         { $x = peb_encode("[~s]", array(array($id)));
 *                                   peb_rpc("session_handler", "destroy", $x, $link); return true; }
 *   function gc($maxlifetime)     { $x = peb_encode("[~i]", array(array($maxlifetime)));
 *                                   peb_rpc("session_handler", "gc", $x, $link); return true; }
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peb, type PebLink } from '../../lib/peb';
import { ConnectionError } from '../../lib/errors';
import { startNode, type ErlangNode } from '../support/erlang-node';

const ebin = join(__dirname, '..', '..', 'erlang', 'ebin');

describe("the article's PHP session handler, ported to peb", () => {
  let node: ErlangNode;
  beforeAll(async () => {
    node = await startNode({ codePaths: [ebin] });
    expect(await node.evalText('erl_peb:start_server(#{backend => ets})')).toBe('ok');
  });
  afterAll(() => node?.stop());

  // The six callbacks, as the PHP defined them.
  let link: PebLink | undefined;
  const handler = {
    async open(_path: string, _name: string) {
      link = await peb.connect(node.name, node.cookie);
      return Boolean(link);
    },
    close() {
      peb.close(link);
      return true;
    },
    async read(id: string) {
      const x = peb.encode('[~s]', [[id]]);
      const r = await peb.rpc('session_handler', 'read', x, link);
      const d = peb.decode(r);
      return d[0] as string;
    },
    async write(id: string, data: string) {
      const x = peb.encode('[~s, ~s]', [[id, data]]);
      await peb.rpc('session_handler', 'write', x, link);
      return true;
    },
    async destroy(id: string) {
      const x = peb.encode('[~s]', [[id]]);
      await peb.rpc('session_handler', 'destroy', x, link);
      return true;
    },
    async gc(maxlifetime: number) {
      const x = peb.encode('[~i]', [[maxlifetime]]);
      await peb.rpc('session_handler', 'gc', x, link);
      return true;
    },
  };

  it('keeps a session across requests, as PHP would use it', async () => {
    // Request 1: a new session; PHP reads '' for an unknown id, then writes the serialized $_SESSION.
    expect(await handler.open('/tmp', 'PHPSESSID')).toBe(true);
    const id = 'k3p9sd0q7u1c2m4n5b6v7x8z9a';
    expect(await handler.read(id)).toBe('');
    expect(await handler.write(id, 'count|i:1;user|s:5:"alice";')).toBe(true);
    expect(handler.close()).toBe(true);

    // Request 2: a new link reads what request 1 wrote.
    await handler.open('/tmp', 'PHPSESSID');
    expect(await handler.read(id)).toBe('count|i:1;user|s:5:"alice";');
    await handler.write(id, 'count|i:2;user|s:5:"alice";');
    expect(await handler.read(id)).toBe('count|i:2;user|s:5:"alice";');

    // The data is in the server's table, readable from Erlang.
    expect(await node.evalText(`session_handler:read(<<"${id}">>)`)).toBe('<<"count|i:2;user|s:5:\\"alice\\";">>');

    // gc with a long lifetime keeps it; destroy removes it.
    expect(await handler.gc(1440)).toBe(true);
    expect(await handler.read(id)).toBe('count|i:2;user|s:5:"alice";');
    expect(await handler.destroy(id)).toBe(true);
    expect(await handler.read(id)).toBe('');
    handler.close();
  });

  it('gc removes sessions older than maxlifetime and reports how many', async () => {
    await handler.open('/tmp', 'PHPSESSID');
    await handler.write('old-session', 'x|i:1;');
    // gc(0): every session is past a lifetime of 0 s.
    const removed = peb.decode(await peb.rpc('session_handler', 'gc', peb.encode('[~i]', [[0]]), link));
    expect(removed[0]).toBeGreaterThanOrEqual(1);
    expect(await handler.read('old-session')).toBe('');
    handler.close();
  });

  it('keeps UTF-8 data intact through ~s', async () => {
    await handler.open('/tmp', 'PHPSESSID');
    await handler.write('utf8', 'name|s:6:"Zoë ☃";');
    expect(await handler.read('utf8')).toBe('name|s:6:"Zoë ☃";');
    handler.close();
  });

  it('reports errors through peb.error() and peb.errorno(), never with the cookie', async () => {
    await expect(peb.connect('nobody_here@127.0.0.1', 'not-the-cookie', 1)).rejects.toBeInstanceOf(ConnectionError);
    expect(peb.errorno()).toBe(1);
    expect(peb.error()).toMatch(/nobody_here/);
    expect(peb.error()).not.toContain('not-the-cookie');

    const l = await peb.connect(node.name, node.cookie);
    expect(peb.errorno()).toBe(0);
    const info = peb.linkinfo(l);
    expect(info.connectnodename).toBe(node.name);
    expect(JSON.stringify(info)).not.toContain(node.cookie);
    peb.close(l);
  });

  it('rpc_to then receive, send_byname and print_term', async () => {
    const l = await peb.connect(node.name, node.cookie);
    await peb.rpc_to('lists', 'reverse', peb.encode('[[~i, ~i, ~i]]', [[[1, 2, 3]]]), l);
    const reply = await peb.receive(l, 5);
    expect(peb.decode(reply)).toEqual([[3, 2, 1]]);
    expect(peb.print_term(reply)).toBe('[3,2,1]');

    // A registered process on the node echoes to the pid we send it.
    await node.eval(
      'register(echo, spawn(fun Loop() -> receive {From, M} -> From ! {echoed, M}, Loop() end end))',
    );
    peb.send_byname('echo', peb.vencode('{~P, ~a}', [[l.self, 'hello']]), l);
    expect(peb.vdecode(Buffer.concat([Buffer.of(131), await peb.receive(l, 5)]))).toEqual([['echoed', 'hello']]);
    peb.close(l);
  });
});
