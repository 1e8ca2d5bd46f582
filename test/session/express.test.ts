/**
 * ErlangStore with express-session over real HTTP, against a real session server: every store
 * method and option, and what requests see when the Erlang node is killed and comes back.
 */
import { once } from 'node:events';
import type { SessionData } from 'express-session';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErlangStore, type ErlangStoreOptions } from '../../lib/express';
import { ConfigError } from '../../lib/errors';
import { SessionClient } from '../../lib/session/client';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { Browser, startApp, type App } from './http';
import { ebin, startSessionServer, until } from './server';

let node: ErlangNode;
/** Sees the whole table, prefixes included. */
let inspector: SessionClient;
const cleanup: Array<() => Promise<void>> = [];

beforeAll(async () => {
  node = await startSessionServer('#{backend => ets, sweep_interval => infinity}');
  inspector = new SessionClient({ connect: { node: node.name, cookie: node.cookie } });
});
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});
afterAll(async () => {
  await inspector?.close();
  await node?.stop();
});

function store(options: ErlangStoreOptions = {}): ErlangStore {
  const s = new ErlangStore({ connect: { node: node.name, cookie: node.cookie }, ...options });
  cleanup.push(() => s.close());
  return s;
}

async function app(s: ErlangStore, options: Parameters<typeof startApp>[1] = {}): Promise<App> {
  const a = await startApp(s, options);
  cleanup.push(() => a.close());
  return a;
}

async function stored(key: string): Promise<{ data: Record<string, unknown>; expiresAt: number | null } | null> {
  const r = await inspector.get(key);
  return r === null ? null : { data: r.data as Record<string, unknown>, expiresAt: r.expiresAt };
}

describe('ErlangStore with express-session', () => {
  it('keeps a visit counter across requests, stored under sess:<id> where Erlang reads it', async () => {
    const a = await app(store());
    const browser = new Browser(a.url);
    expect((await browser.get('/visit')).body.visits).toBe(1);
    expect((await browser.get('/visit')).body.visits).toBe(2);
    const { body } = await browser.get('/visit');
    expect(body).toStrictEqual({ visits: 3, id: browser.sid });
    expect(await node.evalText(`{ok, D, _, _} = erl_peb:get(<<"sess:${browser.sid}">>), maps:get(<<"visits">>, D)`)).toBe('3');
    expect(await node.evalText(`{ok, D, _, _} = erl_peb:get(<<"sess:${browser.sid}">>), is_map(maps:get(<<"cookie">>, D))`)).toBe('true');
    // Another browser has a session of its own.
    expect((await new Browser(a.url).get('/visit')).body.visits).toBe(1);
  });

  it('gives the request handler back Date, Map, Set, Buffer and nested objects', async () => {
    const a = await app(store());
    const browser = new Browser(a.url);
    await browser.get('/set-types');
    expect((await browser.get('/check-types')).body).toStrictEqual({
      when: '2030-01-02T03:04:05.678Z',
      tags: ['a', 'b'],
      scores: [['alice', 3]],
      raw: '0001ff',
      nested: { deep: { list: [1, { two: 2 }] } },
    });
  });

  it('destroys and regenerates sessions', async () => {
    const s = store();
    const a = await app(s);
    const browser = new Browser(a.url);
    await browser.get('/visit');
    const first = browser.sid!;
    expect(await stored(`sess:${first}`)).not.toBeNull();
    const { body } = await browser.get('/regenerate');
    expect(body.id).not.toBe(first);
    expect(await stored(`sess:${first}`)).toBeNull();
    expect((await stored(`sess:${body.id}`))!.data.visits).toBe(100);
    await browser.get('/destroy');
    expect(await stored(`sess:${body.id}`)).toBeNull();
  });

  it('implements every store method, with callbacks and with promises', async () => {
    const s = store({ prefix: 'methods:' });
    await s.clear();
    const cookie = { originalMaxAge: null, expires: null, httpOnly: true, path: '/' } as unknown as SessionData['cookie'];
    const sess = (visits: number): SessionData => ({ cookie, visits }) as SessionData;

    await new Promise<void>((resolve, reject) => s.set('a', sess(1), (err) => (err ? reject(err) : resolve())));
    await s.set('b', sess(2));
    const got = await new Promise<SessionData | null | undefined>((resolve, reject) =>
      s.get('a', (err, v) => (err ? reject(err) : resolve(v))),
    );
    expect(got).toMatchObject({ visits: 1, cookie: { path: '/' } });
    expect(await s.get('none')).toBeNull();

    expect(await s.length()).toBe(2);
    expect(await new Promise((resolve) => s.length((_e, n) => resolve(n)))).toBe(2);
    expect(await s.ids()).toStrictEqual(['a', 'b']);
    const all = await s.all();
    expect(all!.map((x) => [(x as unknown as { id: string }).id, x.visits])).toStrictEqual([
      ['a', 1],
      ['b', 2],
    ]);

    const before = (await stored('methods:a'))!.expiresAt!;
    await new Promise<void>((resolve, reject) => s.touch('a', sess(1), (err) => (err ? reject(err) : resolve())));
    expect((await stored('methods:a'))!.expiresAt!).toBeGreaterThanOrEqual(before);

    await new Promise<void>((resolve, reject) => s.destroy('a', (err) => (err ? reject(err) : resolve())));
    expect(await s.get('a')).toBeNull();
    expect(await s.ids()).toStrictEqual(['b']);

    await inspector.set('other:kept', 1, 60_000);
    await new Promise<void>((resolve, reject) => s.clear((err) => (err ? reject(err) : resolve())));
    expect(await s.length()).toBe(0);
    expect(await inspector.get('other:kept')).not.toBeNull();
  });

  it('keeps each prefix apart', async () => {
    const s1 = store({ prefix: 'app1:' });
    const s2 = store({ prefix: 'app2:' });
    const a1 = await app(s1);
    const b = new Browser(a1.url);
    await b.get('/visit');
    expect(await stored(`app1:${b.sid}`)).not.toBeNull();
    expect(await s1.ids()).toContain(b.sid);
    expect(await s2.ids()).not.toContain(b.sid);
    expect(await s2.get(b.sid!)).toBeNull();
  });

  it('sets the expiry from ttl (seconds) when the cookie has none', async () => {
    const a = await app(store({ ttl: 600 }));
    const b = new Browser(a.url);
    const before = Date.now();
    await b.get('/visit');
    const r = await stored(`sess:${b.sid}`);
    expect(r!.expiresAt!).toBeGreaterThanOrEqual(before + 600_000);
    expect(r!.expiresAt!).toBeLessThanOrEqual(Date.now() + 600_000);
  });

  it('sets the expiry from a ttl function of the session', async () => {
    const a = await app(store({ ttl: (sess) => ((sess.visits ?? 0) >= 2 ? 7200 : 60) }));
    const b = new Browser(a.url);
    await b.get('/visit');
    expect((await stored(`sess:${b.sid}`))!.expiresAt! - Date.now()).toBeLessThanOrEqual(60_000);
    await b.get('/visit');
    expect((await stored(`sess:${b.sid}`))!.expiresAt! - Date.now()).toBeGreaterThan(3_600_000);
  });

  it("sets the expiry from the cookie's when it has one", async () => {
    const a = await app(store({ ttl: 600 }), { cookie: { maxAge: 90_000 } });
    const b = new Browser(a.url);
    await b.get('/visit');
    const r = await stored(`sess:${b.sid}`);
    const cookieExpires = (r!.data.cookie as { expires: Date }).expires;
    expect(cookieExpires).toBeInstanceOf(Date);
    // The session ends with its cookie (to the ms, as written), not after ttl.
    expect(Math.abs(r!.expiresAt! - cookieExpires.getTime())).toBeLessThanOrEqual(50);
    expect(r!.expiresAt! - Date.now()).toBeLessThanOrEqual(90_000);
  });

  it('destroys the session when the TTL is zero or less', async () => {
    let ttl = 60;
    const s = store({ ttl: () => ttl });
    const a = await app(s);
    const b = new Browser(a.url);
    await b.get('/visit');
    expect(await stored(`sess:${b.sid}`)).not.toBeNull();
    ttl = 0;
    await b.get('/visit'); // a save with a TTL of 0
    expect(await stored(`sess:${b.sid}`)).toBeNull();

    ttl = 60;
    await b.get('/visit');
    expect(await stored(`sess:${b.sid}`)).not.toBeNull();
    ttl = -5;
    await b.get('/peek'); // a touch with a negative TTL
    expect(await stored(`sess:${b.sid}`)).toBeNull();

    // A cookie that has expired already.
    const plain = store({ prefix: 'expired:' });
    await plain.set('x', { cookie: { expires: new Date(Date.now() - 1000), originalMaxAge: 1 } } as unknown as SessionData);
    expect(await plain.get('x')).toBeNull();
  });

  it('renews the expiry of a session read but not changed, unless disableTouch', async () => {
    for (const disableTouch of [false, true]) {
      let ttl = 60;
      const a = await app(store({ ttl: () => ttl, disableTouch }));
      const b = new Browser(a.url);
      await b.get('/visit');
      const written = (await stored(`sess:${b.sid}`))!.expiresAt!;
      ttl = 3600;
      expect((await b.get('/peek')).body.visits).toBe(1);
      const after = (await stored(`sess:${b.sid}`))!.expiresAt!;
      if (disableTouch) expect(after).toBe(written);
      else expect(after - written).toBeGreaterThan(3_000_000);
    }
  });

  it('skips renewals that would move the expiry by less than touchAfter', async () => {
    let ttl = 600;
    const a = await app(store({ ttl: () => ttl, touchAfter: 60 }));
    const b = new Browser(a.url);
    await b.get('/visit');
    const written = (await stored(`sess:${b.sid}`))!.expiresAt!;
    ttl = 620; // 20 s later than written: less than touchAfter
    await b.get('/peek');
    expect((await stored(`sess:${b.sid}`))!.expiresAt!).toBe(written);
    ttl = 700; // 100 s later: renewed
    await b.get('/peek');
    expect((await stored(`sess:${b.sid}`))!.expiresAt! - written).toBeGreaterThanOrEqual(99_000);
    // A change is always saved.
    ttl = 701;
    expect((await b.get('/visit')).body.visits).toBe(2);
    expect((await stored(`sess:${b.sid}`))!.data.visits).toBe(2);
  });

  it("stores sessions with connect-redis's kind of serializer (JSON) as a binary", async () => {
    const a = await app(store({ serializer: JSON, prefix: 'json:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    await b.get('/visit');
    expect(await node.evalText(`{ok, D, _, _} = erl_peb:get(<<"json:${b.sid}">>), is_binary(D)`)).toBe('true');
    const text = await node.evalText(`{ok, D, _, _} = erl_peb:get(<<"json:${b.sid}">>), D`);
    expect(text).toContain('\\"visits\\":2');
    await b.get('/set-types');
    // JSON turns the Date into a string, as with any JSON store.
    expect((await b.get('/check-types')).body.when).toBe('string');
  });

  it('takes a custom serializer of its own kind', async () => {
    const calls: string[] = [];
    const a = await app(
      store({
        prefix: 'custom:',
        serializer: {
          serialize: (d) => (calls.push('serialize'), { wrapped: JSON.stringify(d) }),
          deserialize: (t) => (calls.push('deserialize'), JSON.parse(String((t as { wrapped: string }).wrapped))),
        },
      }),
    );
    const b = new Browser(a.url);
    await b.get('/visit');
    expect((await b.get('/visit')).body.visits).toBe(2);
    expect(calls).toContain('serialize');
    expect(calls).toContain('deserialize');
    expect(await node.evalText(`{ok, #{<<"wrapped">> := W}, _, _} = erl_peb:get(<<"custom:${b.sid}">>), is_binary(W)`)).toBe('true');
  });

  it('with a client given, uses that client', async () => {
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie }, prefix: 'given:' });
    cleanup.push(() => client.close());
    const s = new ErlangStore({ client });
    const a = await app(s);
    const b = new Browser(a.url);
    await b.get('/visit');
    expect(await stored(`given:${b.sid}`)).not.toBeNull();
    await s.close(); // not the store's client: it stays open
    expect(await client.get(b.sid!)).not.toBeNull();
  });

  it('validates its options with a ConfigError', () => {
    const bad: Array<[ErlangStoreOptions, RegExp]> = [
      [{ ttl: 0 }, /ttl must be a number of seconds > 0/],
      [{ ttl: 'long' as unknown as number }, /ttl/],
      [{ touchAfter: -1 }, /touchAfter/],
      [{ disableTouch: 'yes' as unknown as boolean }, /disableTouch/],
      [{ lock: { lease: 0 } }, /lock\.lease/],
      [{ lock: { wait: 1.5 } }, /lock\.wait/],
      [{ lock: { leese: 5 } as never }, /unknown lock option/],
      [{ lock: 'yes' as never }, /lock must be/],
      [{ serializer: {} as never }, /serializer/],
      [{ prefix: 3 as unknown as string }, /prefix/],
      [{ client: new SessionClient({ connect: { node: 'a@b', cookie: 'c' } }), prefix: 'x' }, /either client or prefix/],
      [{ nodes: ['a@b'], connect: { nodes: ['c@d'] } }, /nodes/],
      [{ nodes: ['not a node'], connect: { cookie: 'c' } }, /node/],
      [{ ttl: 1, tll: 2 } as never, /unknown ErlangStore option 'tll'/],
    ];
    for (const [options, message] of bad) {
      expect(() => new ErlangStore(options)).toThrow(ConfigError);
      expect(() => new ErlangStore(options)).toThrow(message);
    }
  });
});

describe('ErlangStore with lock', () => {
  it('serializes concurrent requests for one session', async () => {
    const a = await app(store({ lock: true, prefix: 'locked:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    await Promise.all(Array.from({ length: 50 }, () => b.get('/visit')));
    expect((await b.get('/peek')).body.visits).toBe(51);
  });

  it('gives the lock back when a request ends without saving or touching its session', async () => {
    // A long lease and a short wait: a lock left held would make the next request fail.
    const a = await app(store({ lock: { lease: 60_000, wait: 2_000 }, prefix: 'drop:' }), { unset: 'keep' });
    const b = new Browser(a.url);
    await b.get('/visit');
    expect((await b.get('/drop')).body).toStrictEqual({ dropped: true });
    expect((await b.get('/visit')).body.visits).toBe(2);
  });

  it('gives the lock back when a request destroys or regenerates its session', async () => {
    const a = await app(store({ lock: { lease: 60_000, wait: 2_000 }, prefix: 'destroy:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    const cookies = new Map(b.cookies);
    expect((await b.get('/destroy')).body).toStrictEqual({ destroyed: true });
    // The same (destroyed) session id again: its lock is free, and a new session starts.
    for (const [k, v] of cookies) b.cookies.set(k, v);
    expect((await b.get('/visit')).body.visits).toBe(1);
    const before = new Map(b.cookies);
    const sidBefore = b.sid;
    const regenerated = await b.get('/regenerate');
    expect(regenerated.body.id).not.toBe(sidBefore);
    expect(b.sid).toBe(regenerated.body.id);
    expect((await b.get('/visit')).body.visits).toBe(101);
    // The session regenerate replaced: its lock is free too.
    b.cookies.clear();
    for (const [k, v] of before) b.cookies.set(k, v);
    expect((await b.get('/visit')).body.visits).toBe(1);
  });

  it('gives the lock back when express-session cannot use what it read', async () => {
    const a = await app(store({ lock: { lease: 60_000, wait: 2_000 }, prefix: 'broken:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    // Erlang code replaces the session with a map express-session cannot take (it has no cookie).
    await node.evalText(`erl_peb:set(<<"broken:${b.sid}">>, #{<<"visits">> => 5}, 60000)`);
    for (let i = 0; i < 2; i++) {
      const r = await b.get('/visit');
      expect(r.status).toBe(500);
      expect(r.body.name).toBe('TypeError'); // not a TimeoutError waiting for the lock
    }
  });

  it('gives the lock back when the client aborts its request', async () => {
    const a = await app(store({ lock: { lease: 60_000, wait: 2_000 }, prefix: 'abort:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    const controller = new AbortController();
    const hung = b.get('/hang', { signal: controller.signal }).catch((e: unknown) => e);
    while (a.aborted.length === 0) await new Promise((r) => setTimeout(r, 5));
    controller.abort();
    expect(await hung).toBeInstanceOf(Error);
    await a.aborted[0];
    expect((await b.get('/visit')).body.visits).toBe(2);
  });

  it('fails a request that waits longer than lock.wait with a clear error', async () => {
    const a = await app(store({ lock: { lease: 60_000, wait: 200 }, prefix: 'wait:' }));
    const b = new Browser(a.url);
    await b.get('/visit');
    const held = b.get('/hang');
    while (a.hanging.length === 0) await new Promise((r) => setTimeout(r, 5));
    const second = await b.get('/visit');
    expect(second.status).toBe(500);
    expect(second.body.name).toBe('TimeoutError');
    expect(second.body.error).toMatch(/lock was not granted within 200 ms/);
    a.hanging[0]!();
    expect((await held).body.visits).toBe(1);
    expect((await b.get('/visit')).body.visits).toBe(2);
  });
});

describe('ErlangStore when the Erlang node goes away', () => {
  /** A store (reconnecting quickly) on a session server node of its own, and a browser that has visited once. */
  async function storeOnItsOwnNode(): Promise<{ own: ErlangNode; serving: { node: ErlangNode }; s: ErlangStore; b: Browser }> {
    const own = await startSessionServer('#{backend => ets}');
    // The node serving now: a restart replaces it.
    const serving = { node: own };
    cleanup.push(() => serving.node.stop());
    const s = new ErlangStore({ connect: { node: own.name, cookie: own.cookie, reconnect: { initialDelay: 20, maxDelay: 200 } } });
    cleanup.push(() => s.close());
    const a = await app(s);
    const b = new Browser(a.url);
    expect((await b.get('/visit')).body.visits).toBe(1);
    return { own, serving, s, b };
  }

  it("says 'connect' once the node's session server answers: until then requests go on without a session", async () => {
    const { own, serving, s, b } = await storeOnItsOwnNode();
    let connects = 0;
    s.on('connect', () => connects++);

    const disconnected = once(s, 'disconnect');
    own.signal('SIGKILL');
    await own.exit;
    await disconnected;
    // The node comes back without its session server: the connection is up again, the store is not.
    serving.node = await startNode({ name: own.name, cookie: own.cookie, codePaths: [ebin] });
    await until(() => s.client.conn?.state === 'connected', 'the store reconnects to the node');
    for (let i = 0; i < 3; i++) {
      const r = await b.get('/visit');
      expect(r.status).toBe(503);
      expect(r.body).toStrictEqual({ error: 'no session' });
    }
    expect(connects).toBe(0);

    const connected = once(s, 'connect');
    expect(await serving.node.evalText('erl_peb:start_server(#{backend => ets})')).toBe('ok');
    await connected;
    expect(connects).toBe(1);
    expect((await b.get('/visit')).body.visits).toBe(1);
  });

  it('answers requests without a session during the outage, and serves sessions again after a restart', async () => {
    const { own, serving, s, b } = await storeOnItsOwnNode();

    const disconnected = once(s, 'disconnect');
    own.signal('SIGKILL');
    await own.exit;
    // A request racing the news of the node's death: a clear error, or no session.
    const racing = await b.get('/visit');
    expect([500, 503]).toContain(racing.status);
    if (racing.status === 500) expect(racing.body.name).toBe('ConnectionError');
    await disconnected;

    // express-session now hands requests on without a session, at once.
    for (let i = 0; i < 3; i++) {
      const r = await b.get('/visit');
      expect(r.status).toBe(503);
      expect(r.body).toStrictEqual({ error: 'no session' });
    }

    const connected = once(s, 'connect');
    serving.node = await startSessionServer('#{backend => ets}', { name: own.name, cookie: own.cookie });
    await connected;
    // The new node's ETS table is empty: the old cookie finds nothing and a new session starts.
    expect((await b.get('/visit')).body.visits).toBe(1);
    expect((await b.get('/visit')).body.visits).toBe(2);
    expect(await s.length()).toBe(1);
  });
});
