/**
 * SessionClient against a real session server (ETS): every method, prefixes, paging, the lock
 * lease, the errors a user sees, and both ways of getting a connection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../lib/connection';
import { ClosedError, ConfigError, ConnectionError, RemoteError } from '../../lib/errors';
import { SessionClient } from '../../lib/session/client';
import { atom } from '../../lib/terms';
import { randomNodeName, type ErlangNode } from '../support/erlang-node';
import { startSessionServer, until } from './server';

let node: ErlangNode;
const clients: SessionClient[] = [];

function client(options: ConstructorParameters<typeof SessionClient>[0] = {}): SessionClient {
  const c = new SessionClient({ connect: { node: node.name, cookie: node.cookie }, ...options });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  node = await startSessionServer('#{backend => ets, sweep_interval => infinity}');
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await node?.stop();
});

describe('SessionClient', () => {
  it('gets, sets (versions), touches and destroys a session', async () => {
    const c = client();
    expect(await c.get('one')).toBeNull();
    const before = Date.now();
    expect(await c.set('one', { visits: 1 }, 60_000)).toBe(1);
    const r1 = await c.get('one');
    expect(r1).toMatchObject({ data: { visits: 1 }, version: 1 });
    expect(r1!.expiresAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(r1!.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000);

    expect(await c.set('one', { visits: 2 }, 60_000)).toBe(2);
    const at = await c.touch('one', 120_000);
    expect(at).toBeGreaterThanOrEqual(before + 120_000);
    const r2 = await c.get('one');
    expect(r2).toStrictEqual({ data: { visits: 2 }, expiresAt: at, version: 2 }); // touch keeps the version

    expect(await c.touch('one', null)).toBe(Infinity);
    expect((await c.get('one'))!.expiresAt).toBeNull();
    expect(await c.set('forever', 'x', null)).toBe(1);
    expect((await c.get('forever'))!.expiresAt).toBeNull();

    await c.destroy('one');
    expect(await c.get('one')).toBeNull();
    expect(await c.touch('one', 1000)).toBeNull();
    await c.destroy('never-there'); // no error
  });

  it('writes with compare-and-set', async () => {
    const c = client();
    expect(await c.setIfVersion('cas', { n: 1 }, 60_000, 0)).toStrictEqual({ ok: true, version: 1 });
    expect(await c.setIfVersion('cas', { n: 2 }, 60_000, 0)).toStrictEqual({ ok: false, current: 1 });
    expect(await c.setIfVersion('cas', { n: 2 }, 60_000, 1)).toStrictEqual({ ok: true, version: 2 });
    expect(await c.setIfVersion('cas-none', { n: 1 }, 60_000, 3)).toStrictEqual({ ok: false, current: 0 });
    expect((await c.get('cas'))!.data).toStrictEqual({ n: 2 });
  });

  it('does not return an expired session', async () => {
    const c = client();
    await c.set('short', { a: 1 }, 1);
    await until(async () => (await c.get('short')) === null, 'the session expired');
    expect(await c.touch('short', 60_000)).toBeNull();
  });

  it('lists, counts and clears only the ids of its prefix, across pages', async () => {
    const a = client({ prefix: 'a:' });
    const b = client({ prefix: 'b:' });
    const all = client();
    await all.clear();
    const n = 2500; // more than two pages
    const ids = Array.from({ length: n }, (_, i) => `id${String(i).padStart(5, '0')}`);
    await Promise.all(ids.map((id, i) => a.set(id, { i }, 60_000)));
    await Promise.all(['x', 'y'].map((id) => b.set(id, { id }, 60_000)));
    await all.set('plain', 1, 60_000);
    await all.set('a', 'the prefix without the colon', 60_000);
    await all.set('a;', 'sorts right after the prefix', 60_000);

    const seen: string[] = [];
    for await (const id of a.ids()) seen.push(id);
    expect(seen).toStrictEqual(ids);
    const data: unknown[] = [];
    for await (const [id, d] of a.all()) {
      expect(id).toBe(ids[(d as { i: number }).i]);
      data.push(d);
    }
    expect(data).toHaveLength(n);
    expect(await a.count()).toBe(n);
    expect(await b.count()).toBe(2);
    expect(await all.count()).toBe(n + 5);
    const bAll: Array<[string, unknown]> = [];
    for await (const entry of b.all()) bAll.push(entry);
    expect(bAll).toStrictEqual([
      ['x', { id: 'x' }],
      ['y', { id: 'y' }],
    ]);

    await a.clear();
    expect(await a.count()).toBe(0);
    expect(await b.count()).toBe(2);
    const rest: string[] = [];
    for await (const id of all.ids()) rest.push(id);
    expect(rest).toStrictEqual(['a', 'a;', 'b:x', 'b:y', 'plain']);

    await all.clear();
    expect(await all.count()).toBe(0);
  });

  it('takes and gives back the lock lease; a waiter gets it when it is released', async () => {
    const c = client();
    const other = client();
    const token = await c.lock('locked', 10_000, 0);
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(await other.lock('locked', 10_000, 0)).toBeNull();
    const waiting = other.lock('locked', 10_000, 20_000);
    expect(await c.unlock('locked', token!)).toBe(true);
    const second = await waiting;
    expect(second).not.toBeNull();
    expect(await c.unlock('locked', token!)).toBe(false);
    expect(await other.unlock('locked', second!)).toBe(true);
  });

  it('gives a lease up when it runs out', async () => {
    const c = client();
    const token = await c.lock('lease', 50, 0);
    const next = await c.lock('lease', 10_000, 20_000);
    expect(next).not.toBeNull();
    expect(await c.unlock('lease', token!)).toBe(false);
    expect(await c.unlock('lease', next!)).toBe(true);
  });

  it('collects idle sessions with gc and expired ones with sweep', async () => {
    const c = client({ prefix: 'gc:' });
    await c.set('idle', 1, 60_000);
    await c.set('gone', 1, 1);
    await until(async () => (await c.get('gone')) === null, 'the session expired');
    expect(await c.sweep()).toBeGreaterThanOrEqual(1);
    expect(await c.gc(3_600_000)).toBe(0);
    expect(await c.gc(0)).toBeGreaterThanOrEqual(1);
    expect(await c.get('idle')).toBeNull();
  });

  it('reports the server status', async () => {
    const status = await client().status();
    expect(status.node).toBe(node.name);
    expect(status.backend).toBe('ets');
    expect(status.members).toStrictEqual([node.name]);
    expect(typeof status.sessions).toBe('number');
  });

  it('works over a connection it is given, with any decode options, and leaves it open', async () => {
    const conn: Connection = await connect({ node: node.name, cookie: node.cookie, decode: { binaries: 'string', maps: 'object' } });
    try {
      const c = new SessionClient({ connection: conn, prefix: 'given:' });
      const data = { when: new Date(3), tags: new Set(['x']), raw: Buffer.from([255]), nested: { s: 'é' } };
      await c.set('s', data, 60_000);
      expect((await c.get('s'))!.data).toStrictEqual(data);
      const ids: string[] = [];
      for await (const id of c.ids()) ids.push(id);
      expect(ids).toStrictEqual(['s']);
      const token = await c.lock('s', 1000, 0);
      expect(await c.unlock('s', token!)).toBe(true);
      await c.close();
      expect(conn.state).toBe('connected');
      await expect(c.get('s')).rejects.toBeInstanceOf(ClosedError);
    } finally {
      conn.close();
    }
  });

  it('rejects bad arguments and options with a ConfigError', async () => {
    const c = client();
    await expect(c.set('x', 1, 0)).rejects.toBeInstanceOf(ConfigError);
    await expect(c.set('x', 1, -5)).rejects.toThrow(/ttlMs must be a positive number/);
    await expect(c.get(42 as unknown as string)).rejects.toThrow(/a session id must be a string/);
    await expect(c.lock('x', 0, 0)).rejects.toThrow(/leaseMs/);
    await expect(c.unlock('x', 'not a token')).rejects.toBeInstanceOf(ConfigError);
    await expect(c.setIfVersion('x', 1, 1000, -1)).rejects.toBeInstanceOf(ConfigError);
    expect(() => new SessionClient({ prefix: 5 as unknown as string })).toThrow(ConfigError);
    expect(() => new SessionClient({ serializer: {} as never })).toThrow(/serializer/);
    expect(() => new SessionClient({ callTimeout: 0 })).toThrow(/callTimeout/);
    expect(() => new SessionClient({ connection: {} as never })).toThrow(ConfigError);
  });

  it('refuses data the serializer cannot keep, before sending anything', async () => {
    await expect(client().set('x', { f: () => 1 }, 1000)).rejects.toThrow(/at \$\.f/);
  });

  it('rejects with a RemoteError when no session server runs under that name', async () => {
    const c = client({ server: 'no_such_server' });
    const e = await c.get('x').catch((err: unknown) => err);
    expect(e).toBeInstanceOf(RemoteError);
    expect((e as RemoteError).reason).toBe(atom('noproc'));
  });

  it('connects lazily, and tries again after a failed first connect', async () => {
    const name = randomNodeName('erlpeb_late');
    const c = new SessionClient({ connect: { node: name, cookie: node.cookie, timeout: 2000 } });
    clients.push(c);
    await expect(c.get('x')).rejects.toBeInstanceOf(ConnectionError);
    const late = await startSessionServer('#{backend => ets}', { name, cookie: node.cookie });
    try {
      expect(await c.set('x', 1, 60_000)).toBe(1);
      expect((await c.get('x'))!.data).toBe(1);
    } finally {
      await c.close();
      await late.stop();
    }
  });
});
