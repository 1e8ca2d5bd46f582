/**
 * ErlangKoaStore (erl-peb/koa) as koa-session's external store, over real HTTP, against a real
 * session server node (ETS). What a user checks: the counter goes on across requests, destroy
 * forgets the session, sessions expire, and Erlang code reads what Node wrote.
 */
import type { Server } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, ConnectionError } from '../../lib/errors';
import { ErlangKoaStore } from '../../lib/koa';
import { SessionClient } from '../../lib/session/client';
import { startNode, type ErlangNode } from '../support/erlang-node';

/* eslint-disable @typescript-eslint/no-require-imports */
const Koa = require('koa') as typeof import('koa');
const { createSession } = require('koa-session') as typeof import('koa-session');
/* eslint-enable @typescript-eslint/no-require-imports */

const ebin = join(__dirname, '..', '..', 'erlang', 'ebin');

interface Visit {
  status: number;
  body: { count: number };
}

/** A browser of one: keeps the session cookies (koa's value and its signature) between requests. */
class Client {
  readonly cookies = new Map<string, string>();
  constructor(private readonly base: string) {}
  async get(path: string): Promise<Visit> {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(this.base + path, { headers: cookie ? { cookie } : {} });
    for (const set of res.headers.getSetCookie()) {
      const [pair] = set.split(';');
      const eq = pair!.indexOf('=');
      const value = pair!.slice(eq + 1);
      if (value === '') this.cookies.delete(pair!.slice(0, eq));
      else this.cookies.set(pair!.slice(0, eq), value);
    }
    const text = await res.text();
    return { status: res.status, body: res.status === 200 ? JSON.parse(text) : text };
  }
}

interface Running {
  server: Server;
  /** Errors koa reported (it answers them with a 500). */
  errors: unknown[];
  base: string;
  close(): Promise<void>;
}

async function startApp(store: ErlangKoaStore, maxAge: number | 'session'): Promise<Running> {
  const app = new Koa();
  const errors: unknown[] = [];
  app.silent = true;
  app.on('error', (err: unknown) => errors.push(err));
  app.keys = ['a key for koa-session signatures, for tests'];
  app.use(createSession({ store, maxAge, key: 'sid' }, app));
  app.use(async (ctx) => {
    if (ctx.path === '/logout') {
      ctx.session = null;
      ctx.body = { count: 0 };
      return;
    }
    const s = ctx.session as unknown as { count?: number };
    s.count = (s.count ?? 0) + 1;
    ctx.body = { count: s.count };
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const port = (server.address() as { port: number }).port;
  return {
    server,
    errors,
    base: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('ErlangKoaStore with koa-session', () => {
  let node: ErlangNode;
  let store: ErlangKoaStore;
  let app: Running;

  beforeAll(async () => {
    node = await startNode({ codePaths: [ebin] });
    expect(await node.evalText('erl_peb:start_server(#{backend => ets})')).toBe('ok');
    store = new ErlangKoaStore({ connect: { node: node.name, cookie: node.cookie, config: false } });
    app = await startApp(store, 3_600_000);
  });
  afterAll(async () => {
    expect(app?.errors ?? []).toEqual([]);
    await app?.close();
    await store?.close();
    await node?.stop();
  });

  const fromErlang = (id: string, expr: string): Promise<string> =>
    node.evalText(`case erl_peb:get(<<"${id}">>) of {ok, D, E, V} -> ${expr}; not_found -> not_found end`);

  it('counts visits across requests, and Erlang reads the count Node wrote', async () => {
    const browser = new Client(app.base);
    const first = await browser.get('/');
    expect(first.status).toBe(200);
    expect(first.body.count).toBe(1);
    const key = browser.cookies.get('sid');
    expect(key).toMatch(/^[0-9a-f-]{36}$/);
    expect((await browser.get('/')).body.count).toBe(2);
    expect((await browser.get('/')).body.count).toBe(3);
    expect(browser.cookies.get('sid')).toBe(key);

    expect(await fromErlang(`koa:sess:${key}`, 'maps:get(<<"count">>, D)')).toBe('3');
    // koa-session's own expiry stamp is there too, as the integer it is.
    expect(await fromErlang(`koa:sess:${key}`, 'is_integer(maps:get(<<"_expire">>, D))')).toBe('true');

    const other = new Client(app.base);
    expect((await other.get('/')).body.count).toBe(1);
    expect(other.cookies.get('sid')).not.toBe(key);
  });

  it('stores with the TTL koa-session asks for (its maxAge, plus the 10 s it adds)', async () => {
    const browser = new Client(app.base);
    const before = Date.now();
    await browser.get('/');
    const after = Date.now();
    const key = browser.cookies.get('sid')!;
    const expiresAt = Number(await fromErlang(`koa:sess:${key}`, 'E'));
    expect(expiresAt).toBeGreaterThanOrEqual(before + 3_600_000 + 10_000);
    expect(expiresAt).toBeLessThanOrEqual(after + 3_600_000 + 10_000);
    const expire = Number(await fromErlang(`koa:sess:${key}`, 'maps:get(<<"_expire">>, D)'));
    expect(expiresAt - expire).toBeGreaterThanOrEqual(10_000);
  });

  it('destroys the session: Erlang forgets it and the next visit starts again', async () => {
    const browser = new Client(app.base);
    await browser.get('/');
    expect((await browser.get('/')).body.count).toBe(2);
    const key = browser.cookies.get('sid')!;
    const signature = browser.cookies.get('sid.sig')!;
    expect((await browser.get('/logout')).status).toBe(200);
    expect(browser.cookies.has('sid')).toBe(false);
    expect(await fromErlang(`koa:sess:${key}`, 'D')).toBe('not_found');
    // Even with the old (validly signed) cookie sent again, the session is gone.
    browser.cookies.set('sid', key);
    browser.cookies.set('sid.sig', signature);
    expect((await browser.get('/')).body.count).toBe(1);
  });

  it('expires a session in Erlang at the TTL it was given ("session" cookies use the ttl option)', async () => {
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie, config: false }, prefix: 'short:' });
    // maxAge 'session': koa-session passes no number, so the store's ttl (seconds) applies.
    const shortStore = new ErlangKoaStore({ client, ttl: 0.3 });
    const short = await startApp(shortStore, 'session');
    try {
      const browser = new Client(short.base);
      const before = Date.now();
      expect((await browser.get('/')).body.count).toBe(1);
      const key = browser.cookies.get('sid')!;
      expect((await browser.get('/')).body.count).toBe(2);
      const expiresAt = Number(await fromErlang(`short:${key}`, 'E'));
      expect(expiresAt).toBeGreaterThanOrEqual(before + 300);
      // Wait until the server's own expiry check drops it (polled in the node), then visit again.
      await node.evalText(`(fun W() -> case erl_peb:get(<<"short:${key}">>) of not_found -> ok; _ -> timer:sleep(20), W() end end)()`);
      expect((await browser.get('/')).body.count).toBe(1);
      // A given client is not closed by the store.
      await shortStore.close();
      expect(await client.count()).toBeGreaterThan(0);
    } finally {
      await short.close();
      await client.close();
    }
  });

  it('works when koa-session calls the methods detached from the store', async () => {
    const { get, set, destroy } = store;
    await set('detached', { count: 7 }, 60_000, { rolling: false, changed: true });
    expect(await get('detached', 60_000, { rolling: false })).toEqual({ count: 7 });
    await destroy('detached');
    expect(await get('detached', 60_000, { rolling: false })).toBeNull();
  });

  it('refuses an option it does not know, and client settings next to a client', async () => {
    expect(() => new ErlangKoaStore({ maxAge: 5 } as never)).toThrow(ConfigError);
    expect(() => new ErlangKoaStore({ ttl: -1 })).toThrow(/ttl/);
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie, config: false } });
    try {
      expect(() => new ErlangKoaStore({ client, connect: {} })).toThrow(/either client or connect/);
    } finally {
      await client.close();
    }
  });

  it('answers a request with an error, not a hang, when the session server cannot be reached', async () => {
    const lost = new ErlangKoaStore({ connect: { node: `nobody_here_${process.pid}@127.0.0.1`, cookie: node.cookie, config: false, reconnect: false } });
    const app3 = await startApp(lost, 60_000);
    try {
      const browser = new Client(app3.base);
      expect((await browser.get('/')).status).toBe(500);
      // With a valid session cookie (from the app that works: same keys), reading it fails the same way.
      const good = new Client(app.base);
      await good.get('/');
      for (const [k, v] of good.cookies) browser.cookies.set(k, v);
      expect((await browser.get('/')).status).toBe(500);
      expect(app3.errors).toHaveLength(2);
      for (const e of app3.errors) expect(e).toBeInstanceOf(ConnectionError);
    } finally {
      await app3.close();
      await lost.close();
    }
  });
});
