/**
 * ErlangStore with `nodes: [a, b]`, two members of one Mnesia cluster: when a is killed, the store
 * reconnects to b and the sessions written through a are still served, from b's replica.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErlangStore } from '../../lib/express';
import { randomNodeName, type ErlangNode } from '../support/erlang-node';
import { Browser, startApp, type App } from './http';
import { startSessionServer } from './server';

let work: string;
let a: ErlangNode;
let b: ErlangNode;
let store: ErlangStore;
let app: App;

const LOG_TO_STDERR = ['-kernel', 'logger', '[{handler, default, logger_std_h, #{config => #{type => standard_error}}}]'];

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'erl-peb-failover-'));
  const cookie = randomBytes(16).toString('hex');
  const [nameA, nameB] = [randomNodeName('erlpeb_fa'), randomNodeName('erlpeb_fb')];
  const options = (name: string, join?: string): string =>
    `#{backend => mnesia, data_dir => ${JSON.stringify(path.join(work, name.split('@')[0]!))}${join ? `, join => '${join}'` : ''}}`;
  a = await startSessionServer(options(nameA), { name: nameA, cookie, args: LOG_TO_STDERR });
  b = await startSessionServer(options(nameB, nameA), { name: nameB, cookie, args: LOG_TO_STDERR });
  store = new ErlangStore({
    nodes: [a.name, b.name],
    connect: { cookie, reconnect: { initialDelay: 20, maxDelay: 200 } },
  });
  app = await startApp(store);
}, 60_000);

afterAll(async () => {
  await app?.close();
  await store?.close();
  await Promise.all([a, b].map((n) => n?.stop()));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('ErlangStore over a two-node Mnesia cluster', () => {
  it('serves the sessions from b after a is killed', async () => {
    const members = [a.name, b.name].sort();
    expect((await store.client.status()).members).toStrictEqual(members);
    expect((await store.client.status()).node).toBe(a.name);

    const browsers = [new Browser(app.url), new Browser(app.url)];
    for (const br of browsers) {
      expect((await br.get('/visit')).body.visits).toBe(1);
      expect((await br.get('/visit')).body.visits).toBe(2);
    }
    // Written through a, on b's copy too (acknowledged writes are committed on every replica).
    expect(await b.evalText(`{ok, D, _, _} = erl_peb:get(<<"sess:${browsers[0]!.sid}">>), maps:get(<<"visits">>, D)`)).toBe('2');

    const disconnected = once(store, 'disconnect');
    const connected = once(store, 'connect');
    a.signal('SIGKILL');
    await a.exit;
    await disconnected;
    await connected;
    expect((await store.client.status()).node).toBe(b.name);
    expect((await store.client.status()).running).toStrictEqual([b.name]);

    for (const br of browsers) {
      expect((await br.get('/visit')).body.visits).toBe(3);
      expect((await br.get('/visit')).body.visits).toBe(4);
    }
    expect(((await store.ids()) ?? []).sort()).toStrictEqual(browsers.map((br) => br.sid!).sort());
    expect(await store.length()).toBe(2);
    // A new session after the failover lives on b.
    const late = new Browser(app.url);
    expect((await late.get('/visit')).body.visits).toBe(1);
    expect(await b.evalText(`{ok, D, _, _} = erl_peb:get(<<"sess:${late.sid}">>), maps:get(<<"visits">>, D)`)).toBe('1');
  });
});
