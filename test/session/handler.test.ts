/**
 * ErlangSessionHandler: the article's six callbacks against a real session server, sharing its
 * sessions with the article's Erlang module `session_handler` (what PHP calls through mypeb).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors';
import { ErlangSessionHandler } from '../../lib/session/handler';
import { SessionClient } from '../../lib/session/client';
import type { ErlangNode } from '../support/erlang-node';
import { startSessionServer, until } from './server';

let node: ErlangNode;
let handler: ErlangSessionHandler;

beforeAll(async () => {
  node = await startSessionServer('#{backend => ets, sweep_interval => infinity}');
  handler = new ErlangSessionHandler({ connect: { node: node.name, cookie: node.cookie } });
});
afterAll(async () => {
  await handler?.shutdown();
  await node?.stop();
});

describe('ErlangSessionHandler', () => {
  it('serves a PHP-style request cycle: open, read, write, close, and the next request reads it', async () => {
    const id = 'k3p9sd0q7u1c2m4n5b6v7x8z9a';
    expect(await handler.open('/var/lib/php/sessions', 'PHPSESSID')).toBe(true);
    expect(await handler.read(id)).toBe('');
    expect(await handler.write(id, 'count|i:1;user|s:5:"alice";')).toBe(true);
    expect(await handler.close()).toBe(true);

    expect(await handler.open('/var/lib/php/sessions', 'PHPSESSID')).toBe(true);
    expect(await handler.read(id)).toBe('count|i:1;user|s:5:"alice";');
    expect(await handler.write(id, 'count|i:2;user|s:5:"alice";')).toBe(true);
    expect(await handler.close()).toBe(true);
    expect(await handler.read(id)).toBe('count|i:2;user|s:5:"alice";');

    expect(await handler.destroy(id)).toBe(true);
    expect(await handler.read(id)).toBe('');
  });

  it("shares sessions with the article's session_handler module", async () => {
    await handler.write('shared', 'name|s:6:"Zoë ☃";');
    const hex = Buffer.from('name|s:6:"Zoë ☃";').toString('hex').toUpperCase();
    expect(await node.evalText('binary:encode_hex(session_handler:read(<<"shared">>))')).toBe(`<<"${hex}">>`);
    await node.evalText('session_handler:write(<<"from-erlang">>, "visits|i:9;")');
    expect(await handler.read('from-erlang')).toBe('visits|i:9;');
  });

  it('reads a session another store wrote in its own shape as an empty string', async () => {
    await node.evalText('erl_peb:set(<<"a-map">>, #{<<"visits">> => 1}, 60000)');
    expect(await handler.read('a-map')).toBe('');
  });

  it('writes sessions that live `lifetime` seconds', async () => {
    const short = new ErlangSessionHandler({ connect: { node: node.name, cookie: node.cookie }, lifetime: 0.001 });
    try {
      await short.open('', 'PHPSESSID');
      await short.write('brief', 'x|i:1;');
      await until(async () => (await short.read('brief')) === '', 'the session expired');
    } finally {
      await short.shutdown();
    }
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie } });
    try {
      const before = Date.now();
      await handler.write('lifetime', 'x');
      const record = await client.get('lifetime');
      expect(record!.expiresAt).toBeGreaterThanOrEqual(before + 1440 * 1000);
    } finally {
      await client.close();
    }
  });

  it('gc removes the sessions older than maxLifetime and says how many', async () => {
    await handler.write('old-1', 'a');
    await handler.write('old-2', 'b');
    expect(await handler.gc(3600)).toBe(0);
    expect(await handler.gc(0)).toBeGreaterThanOrEqual(2);
    expect(await handler.read('old-1')).toBe('');
    expect(await handler.read('old-2')).toBe('');
  });

  it('works over a client it is given, with that client prefix', async () => {
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie }, prefix: 'php:' });
    try {
      const h = new ErlangSessionHandler({ client, lifetime: null });
      await h.open('', 'PHPSESSID');
      await h.write('p1', 'x|i:1;');
      expect(await node.evalText('session_handler:read(<<"php:p1">>)')).toBe('<<"x|i:1;">>');
      expect(await h.read('p1')).toBe('x|i:1;');
      expect((await client.get('p1'))!.expiresAt).toBeNull();
      await h.shutdown(); // not the handler's client: still usable
      expect(await h.read('p1')).toBe('x|i:1;');
    } finally {
      await client.close();
    }
  });

  it('rejects bad options and arguments with a ConfigError', async () => {
    expect(() => new ErlangSessionHandler({ lifetime: 0 })).toThrow(ConfigError);
    expect(() => new ErlangSessionHandler({ lifetime: -1 })).toThrow(/lifetime/);
    expect(() => new ErlangSessionHandler({ client: {} as never })).toThrow(/SessionClient/);
    await expect(handler.write('x', 5 as unknown as string)).rejects.toBeInstanceOf(ConfigError);
    await expect(handler.gc(-1)).rejects.toBeInstanceOf(ConfigError);
  });
});
