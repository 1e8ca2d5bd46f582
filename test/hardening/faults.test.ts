/**
 * An Express app with express-session and ErlangStore under load from many concurrent browsers
 * while its session server node is killed (SIGKILL) and started again, and while it is stopped
 * (SIGSTOP) and continued. What a user of the app must see: every request is answered (200, or a
 * clear 5xx) well within its client's timeout, nothing ends up as an unhandled rejection or an
 * uncaught exception, the store says 'disconnect' and then 'connect', and sessions work again
 * once the node is back.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express, { type NextFunction, type Request, type Response } from 'express';
import session from 'express-session';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErlangStore } from '../../lib/express';
import type { ErlangNode } from '../support/erlang-node';
import { waitForProcessState } from '../support/process-state';
import { Browser } from '../session/http';
import { startSessionServer, until } from '../session/server';

/** The store's call timeout, ms. */
const CALL_TIMEOUT = 2_000;
/**
 * Each HTTP request gives up after this (AbortSignal.timeout): a store call that fails takes at
 * most CALL_TIMEOUT, and a request makes two in a row (read, then save).
 */
const REQUEST_TIMEOUT = 2 * CALL_TIMEOUT + 3_000;
const BROWSERS = 24;
const SERVER_OPTIONS = '#{backend => ets, sweep_interval => infinity}';

interface Outcome {
  browser: number;
  status?: number;
  body?: { visits?: number; error?: string; name?: string; code?: string | null };
  /** A request that got no response: its error (a timeout here is a request that hung). */
  failure?: string;
}

/** Browsers that each request /visit, one request after another, until stopped. */
class Load {
  readonly browsers: Browser[];
  readonly outcomes: Outcome[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(url: string, n: number) {
    this.browsers = Array.from({ length: n }, () => new Browser(url));
    this.loops = this.browsers.map((_, i) => this.loop(i));
  }

  private async loop(i: number): Promise<void> {
    const b = this.browsers[i]!;
    while (this.running) {
      try {
        const r = await b.get('/visit', { signal: AbortSignal.timeout(REQUEST_TIMEOUT) });
        this.outcomes.push({ browser: i, status: r.status, body: r.body });
      } catch (e) {
        const err = e as Error & { cause?: Error };
        this.outcomes.push({ browser: i, failure: `${err.name}: ${err.message}${err.cause ? ` (${err.cause.message})` : ''}` });
      }
    }
  }

  get count(): number {
    return this.outcomes.length;
  }

  since(mark: number): Outcome[] {
    return this.outcomes.slice(mark);
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
  }
}

/** Whether every browser, after `mark`, got two answers in a row with its counter going up by one. */
function everyBrowserCounts(load: Load, mark: number): boolean {
  const last = new Map<number, number>();
  const counting = new Set<number>();
  for (const o of load.since(mark)) {
    const v = o.status === 200 ? o.body?.visits : undefined;
    if (v !== undefined && last.get(o.browser) === v - 1) counting.add(o.browser);
    if (v === undefined) last.delete(o.browser);
    else last.set(o.browser, v);
  }
  return counting.size === load.browsers.length;
}

/**
 * A store call's failure that says what happened: the node is gone (ConnectionError), did not
 * answer in time (TimeoutError), or is back with its session server not registered yet
 * (RemoteError noproc).
 */
function clearStoreError(name: string, message: string): boolean {
  if (message === '') return false;
  return name === 'ConnectionError' || name === 'TimeoutError' || (name === 'RemoteError' && /\(noproc\)/.test(message));
}

/** The outcomes that are neither a session served (200) nor a clear error from the app. */
function unclear(outcomes: Outcome[]): Outcome[] {
  return outcomes.filter((o) => {
    if (o.failure !== undefined) return true;
    if (o.status === 200) return typeof o.body?.visits !== 'number';
    // The node is away and express-session knows: the request goes on without a session.
    if (o.status === 503) return o.body?.error !== 'no session';
    // A store call failed: the error handler's answer names why.
    if (o.status === 500) return !clearStoreError(o.body?.name ?? '', o.body?.error ?? '');
    return true;
  });
}

interface App {
  url: string;
  close(): Promise<void>;
  /** Errors of saves that failed after their response was complete. */
  lateErrors: Error[];
}

/**
 * The app: a visit counter, and the error handler an app needs with express-session. A session is
 * saved as its response ends (express-session holds the last byte back until the save is done): a
 * save that fails then is passed to the error handler with the response already under way, and
 * complete by the time the handler runs. Answering it again would throw, and Express would then
 * drop the connection, resetting the browser's next request on it.
 */
async function startCounterApp(s: ErlangStore): Promise<App> {
  const lateErrors: Error[] = [];
  const a = express();
  a.use(session({ store: s, secret: 'erl-peb faults secret', resave: false, saveUninitialized: false }));
  a.get('/visit', (req, res) => {
    // express-session goes on without a session while the store is disconnected.
    if (!req.session) {
      res.status(503).json({ error: 'no session' });
      return;
    }
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.json({ visits: req.session.visits });
  });
  a.use((err: Error, _req: Request, res: Response, _next: NextFunction) => {
    if (res.headersSent) {
      lateErrors.push(err);
      return;
    }
    res.status(500).json({ error: err.message, name: err.name });
  });
  const server = await new Promise<Server>((resolve) => {
    const srv = a.listen(0, '127.0.0.1', () => resolve(srv));
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    lateErrors,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let node: ErlangNode;
let store: ErlangStore;
let app: App;
const events: string[] = [];
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
const onUncaught = (error: unknown): void => {
  unhandled.push(error);
};

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled);
  process.on('uncaughtException', onUncaught);
  node = await startSessionServer(SERVER_OPTIONS);
  store = new ErlangStore({
    connect: { node: node.name, cookie: node.cookie, config: false, reconnect: { initialDelay: 20, maxDelay: 200 } },
    callTimeout: CALL_TIMEOUT,
  });
  store.on('disconnect', () => events.push('disconnect'));
  store.on('connect', () => events.push('connect'));
  app = await startCounterApp(store);
}, 60_000);

afterAll(async () => {
  node?.signal('SIGCONT');
  await app?.close();
  await store?.close();
  await node?.stop();
  process.off('unhandledRejection', onUnhandled);
  process.off('uncaughtException', onUncaught);
});

describe(`ErlangStore under load from ${BROWSERS} browsers`, () => {
  it('answers every request while the node is killed and restarted, then serves sessions again', async () => {
    const load = new Load(app.url, BROWSERS);
    try {
      await until(() => everyBrowserCounts(load, 0), 'every browser has a session');

      const killedAt = load.count;
      const disconnected = new Promise((resolve) => store.once('disconnect', resolve));
      node.signal('SIGKILL');
      await node.exit;
      await disconnected;
      // Requests go on while the node is away: answered at once, without a session.
      const awayFrom = load.count;
      await until(() => load.since(awayFrom).filter((o) => o.status === 503).length >= 4 * BROWSERS, 'requests answered during the outage');

      const connected = new Promise((resolve) => store.once('connect', resolve));
      node = await startSessionServer(SERVER_OPTIONS, { name: node.name, cookie: node.cookie });
      await connected;
      const backAt = load.count;
      await until(() => everyBrowserCounts(load, backAt), 'every browser counts again after the restart');
      await load.stop();

      expect(events).toStrictEqual(['disconnect', 'connect']);
      expect(unclear(load.outcomes)).toStrictEqual([]);
      const outage = load.since(killedAt);
      expect(outage.some((o) => o.status === 503)).toBe(true);
      // No error the app passed on shows the cookie.
      expect(JSON.stringify(load.outcomes)).not.toContain(node.cookie);
      expect(unhandled).toStrictEqual([]);
      expect(app.lateErrors.filter((e) => !clearStoreError(e.name, e.message))).toStrictEqual([]);
      console.log(
        `kill/restart: ${load.count} requests, ${load.outcomes.filter((o) => o.status === 200).length} with a session, ` +
          `${outage.filter((o) => (o.status ?? 0) >= 500).length} 5xx during the outage, ${app.lateErrors.length} saves failed after their response`,
      );
    } finally {
      await load.stop();
    }
  }, 60_000);

  it('answers every request while the node is stopped (a timeout error) and continued', async () => {
    const load = new Load(app.url, BROWSERS);
    try {
      await until(() => everyBrowserCounts(load, 0), 'every browser has a session');
      const before = new Map<number, number>();
      const eventsBefore = events.length;
      const stoppedAt = load.count;
      node.signal('SIGSTOP');
      try {
        await waitForProcessState(node.pid, (s) => s === 'T', 'stopped');
        // Each browser's request fails with the store's TimeoutError once the call times out.
        await until(() => {
          const timedOut = new Set(load.since(stoppedAt).filter((o) => o.status === 500 && o.body?.name === 'TimeoutError').map((o) => o.browser));
          return timedOut.size === BROWSERS;
        }, 'every browser got a timeout error');
      } finally {
        node.signal('SIGCONT');
      }
      for (const o of load.outcomes.slice(0, stoppedAt)) if (o.status === 200) before.set(o.browser, o.body!.visits!);
      const continuedAt = load.count;
      await until(() => everyBrowserCounts(load, continuedAt), 'every browser counts again after SIGCONT');
      await load.stop();

      expect(unclear(load.outcomes)).toStrictEqual([]);
      // The node kept its sessions: each counter goes on from where it was.
      for (const o of load.since(continuedAt)) {
        if (o.status === 200) expect(o.body!.visits!).toBeGreaterThan(before.get(o.browser)!);
      }
      // A stall shorter than the node's tick time does not cost the connection.
      expect(events.slice(eventsBefore)).toStrictEqual([]);
      expect(unhandled).toStrictEqual([]);
      expect(app.lateErrors.filter((e) => !clearStoreError(e.name, e.message))).toStrictEqual([]);
      const timeouts = load.since(stoppedAt).filter((o) => o.body?.name === 'TimeoutError');
      expect(timeouts[0]!.body!.error).toMatch(/timed out after 2000 ms/);
      console.log(`stop/continue: ${load.count} requests, ${timeouts.length} timed out while the node was stopped`);
    } finally {
      await load.stop();
    }
  }, 60_000);
});
