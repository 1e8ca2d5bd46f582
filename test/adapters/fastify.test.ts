/**
 * ErlangFastifyStore (erl-peb/fastify) under @fastify/session, over real HTTP, against a real
 * session server node (ETS). What a user checks: the counter goes on across requests, destroy
 * forgets the session, the session expires with its cookie, and Erlang code reads what Node wrote.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors';
import { ErlangFastifyStore } from '../../lib/fastify';
import { SessionClient } from '../../lib/session/client';
import { startNode, type ErlangNode } from '../support/erlang-node';

/* eslint-disable @typescript-eslint/no-require-imports */
const Fastify = require('fastify') as typeof import('fastify').default;
const fastifyCookie = require('@fastify/cookie') as typeof import('@fastify/cookie').default;
const fastifySession = require('@fastify/session') as typeof import('@fastify/session').default;
/* eslint-enable @typescript-eslint/no-require-imports */

const ebin = join(__dirname, '..', '..', 'erlang', 'ebin');
const SECRET = 'a secret of at least thirty-two characters, for tests';

type App = ReturnType<typeof Fastify>;

interface Visit {
  status: number;
  body: { count: number; id: string; expires: number | null };
  cookie: string | undefined;
}

/** A browser of one: keeps the session cookie between requests. */
class Client {
  cookie: string | undefined;
  constructor(private readonly base: string) {}
  async get(path: string): Promise<Visit> {
    const res = await fetch(this.base + path, { headers: this.cookie ? { cookie: this.cookie } : {} });
    const set = res.headers.get('set-cookie');
    if (set) this.cookie = set.split(';')[0];
    const text = await res.text();
    return { status: res.status, body: res.status === 200 ? JSON.parse(text) : text, cookie: this.cookie };
  }
}

async function startApp(store: ErlangFastifyStore, cookie: Record<string, unknown> = {}): Promise<{ app: App; base: string }> {
  const app = Fastify();
  await app.register(fastifyCookie);
  await app.register(fastifySession, { secret: SECRET, store, saveUninitialized: false, cookie: { secure: false, ...cookie } });
  app.get('/count', async (request) => {
    const s = request.session as unknown as { count?: number; cookie: { expires: Date | null } };
    s.count = (s.count ?? 0) + 1;
    return { count: s.count, id: request.session.sessionId, expires: s.cookie.expires ? s.cookie.expires.getTime() : null };
  });
  app.get('/logout', async (request) => {
    await request.session.destroy();
    return { count: 0, id: '', expires: null };
  });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, base: address };
}

describe('ErlangFastifyStore with @fastify/session', () => {
  let node: ErlangNode;
  let store: ErlangFastifyStore;
  let app: App;
  let base: string;

  beforeAll(async () => {
    node = await startNode({ codePaths: [ebin] });
    expect(await node.evalText('erl_peb:start_server(#{backend => ets})')).toBe('ok');
    store = new ErlangFastifyStore({ connect: { node: node.name, cookie: node.cookie, config: false } });
    ({ app, base } = await startApp(store, { maxAge: 3_600_000 }));
  });
  afterAll(async () => {
    await app?.close();
    await store?.close();
    await node?.stop();
  });

  /** The session as Erlang holds it: `{ok, Data, ExpiresAt, Version}` or `not_found`. */
  const fromErlang = (id: string, expr: string): Promise<string> =>
    node.evalText(`case erl_peb:get(<<"${id}">>) of {ok, D, E, V} -> ${expr}; not_found -> not_found end`);

  it('counts visits across requests, and Erlang reads the count Node wrote', async () => {
    const browser = new Client(base);
    const first = await browser.get('/count');
    expect(first.status).toBe(200);
    expect(first.body.count).toBe(1);
    expect(first.cookie).toMatch(/^sessionId=/);
    expect((await browser.get('/count')).body.count).toBe(2);
    const third = await browser.get('/count');
    expect(third.body.count).toBe(3);
    expect(third.body.id).toBe(first.body.id);

    // The session is a map with binary keys under the store's prefix.
    expect(await fromErlang(`sess:${third.body.id}`, 'maps:get(<<"count">>, D)')).toBe('3');
    // The cookie's expiry went with it: a Date, as `{'$date', Ms}`.
    expect(await fromErlang(`sess:${third.body.id}`, "{'$date', Ms} = maps:get(<<\"expires\">>, maps:get(<<\"cookie\">>, D)), Ms")).toBe(
      String(third.body.expires),
    );

    // Another browser has a session of its own.
    const other = new Client(base);
    const o = await other.get('/count');
    expect(o.body.count).toBe(1);
    expect(o.body.id).not.toBe(third.body.id);
  });

  it('keeps the session until the cookie expires: the TTL in Erlang is the cookie expiry', async () => {
    const browser = new Client(base);
    const v = await browser.get('/count');
    const expiresAt = Number(await fromErlang(`sess:${v.body.id}`, 'E'));
    // Written with the cookie's remaining lifetime: Erlang's expiry is the cookie's, to the
    // time between the store's clock reading and the server's.
    expect(Math.abs(expiresAt - v.body.expires!)).toBeLessThan(1000);
  });

  it('destroys the session: Erlang forgets it and the next visit starts again', async () => {
    const browser = new Client(base);
    await browser.get('/count');
    const v = await browser.get('/count');
    expect(v.body.count).toBe(2);
    const logout = await browser.get('/logout');
    expect(logout.status).toBe(200);
    expect(await fromErlang(`sess:${v.body.id}`, 'D')).toBe('not_found');
    const again = await browser.get('/count');
    expect(again.body.count).toBe(1);
    expect(again.body.id).not.toBe(v.body.id);
  });

  it('lets a session expire with its cookie (a short maxAge), in Erlang too', async () => {
    const shortStore = new ErlangFastifyStore({ connect: { node: node.name, cookie: node.cookie, config: false }, prefix: 'short:' });
    const short = await startApp(shortStore, { maxAge: 400 });
    try {
      const browser = new Client(short.base);
      const v = await browser.get('/count');
      expect(v.body.count).toBe(1);
      const expiresAt = Number(await fromErlang(`short:${v.body.id}`, 'E'));
      expect(Math.abs(expiresAt - v.body.expires!)).toBeLessThan(1000);
      // Wait for that moment to pass (by the server's own expiry check, polled), then visit again.
      await node.evalText(
        `(fun W() -> case erl_peb:get(<<"short:${v.body.id}">>) of not_found -> ok; _ -> timer:sleep(20), W() end end)()`,
      );
      const after = await browser.get('/count');
      expect(after.body.count).toBe(1);
    } finally {
      await short.app.close();
      await shortStore.close();
    }
  });

  it('uses the ttl option when the cookie has no expiry, and a shared SessionClient', async () => {
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie, config: false }, prefix: 'ttl:' });
    const ttlStore = new ErlangFastifyStore({ client, ttl: 120 });
    expect(ttlStore.prefix).toBe('ttl:');
    const app2 = await startApp(ttlStore); // no maxAge: a browser-session cookie
    try {
      const browser = new Client(app2.base);
      const before = Date.now();
      const v = await browser.get('/count');
      const after = Date.now();
      expect(v.body.expires).toBeNull();
      const expiresAt = Number(await fromErlang(`ttl:${v.body.id}`, 'E'));
      expect(expiresAt).toBeGreaterThanOrEqual(before + 120_000);
      expect(expiresAt).toBeLessThanOrEqual(after + 120_000);
      expect((await browser.get('/count')).body.count).toBe(2);
      // The store does not close a client it was given.
      await ttlStore.close();
      expect(await client.get(v.body.id)).not.toBeNull();
    } finally {
      await app2.app.close();
      await client.close();
    }
  });

  it('refuses an option it does not know, and client settings next to a client', async () => {
    expect(() => new ErlangFastifyStore({ prefx: 'x:' } as never)).toThrow(ConfigError);
    expect(() => new ErlangFastifyStore({ ttl: 0 })).toThrow(/ttl/);
    const client = new SessionClient({ connect: { node: node.name, cookie: node.cookie, config: false } });
    try {
      expect(() => new ErlangFastifyStore({ client, prefix: 'x:' })).toThrow(/either client or prefix/);
    } finally {
      await client.close();
    }
  });

  it('answers a request with an error, not a hang, when the session server cannot be reached', async () => {
    const lost = new ErlangFastifyStore({ connect: { node: `nobody_here_${process.pid}@127.0.0.1`, cookie: node.cookie, config: false, reconnect: false } });
    const app3 = await startApp(lost, { maxAge: 60_000 });
    try {
      const browser = new Client(app3.base);
      // No cookie yet: nothing to read, but saving the new session fails.
      const v = await browser.get('/count');
      expect(v.status).toBe(500);
      expect(String(v.body)).toContain('cannot connect to nobody_here_');
    } finally {
      await app3.app.close();
      await lost.close();
    }
  });
});
