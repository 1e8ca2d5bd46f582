/**
 * Real HTTP for the express-session tests: an Express app with express-session and a given store
 * on 127.0.0.1 (port 0), and a browser-like client keeping its own cookie jar.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import express, { type NextFunction, type Request, type Response } from 'express';
import session, { type SessionOptions, type Store } from 'express-session';

declare module 'express-session' {
  interface SessionData {
    visits?: number;
    [key: string]: unknown;
  }
}

export interface App {
  url: string;
  server: Server;
  close(): Promise<void>;
  /** Requests /hang is holding: call one to answer it. */
  hanging: Array<() => void>;
  /** Resolves when a /hang request is closed by its client. */
  aborted: Array<Promise<void>>;
}

export async function startApp(store: Store, options: Partial<SessionOptions> = {}): Promise<App> {
  const app = express();
  const hanging: Array<() => void> = [];
  const aborted: Array<Promise<void>> = [];
  app.use(
    session({
      store,
      secret: 'erl-peb test secret',
      resave: false,
      saveUninitialized: false,
      ...options,
    }),
  );
  app.get('/visit', (req, res) => {
    if (!req.session) {
      res.status(503).json({ error: 'no session' });
      return;
    }
    req.session.visits = (req.session.visits ?? 0) + 1;
    res.json({ visits: req.session.visits, id: req.sessionID });
  });
  // Reads without changing: express-session touches the session.
  app.get('/peek', (req, res) => {
    res.json(req.session ? { visits: req.session.visits ?? null, id: req.sessionID } : null);
  });
  app.get('/set-types', (req, res) => {
    req.session.when = new Date('2030-01-02T03:04:05.678Z');
    req.session.tags = new Set(['a', 'b']);
    req.session.scores = new Map([['alice', 3]]);
    req.session.raw = Buffer.from([0, 1, 255]);
    req.session.nested = { deep: { list: [1, { two: 2 }] } };
    res.json({ ok: true });
  });
  app.get('/check-types', (req, res) => {
    const s = req.session as unknown as Record<string, unknown>;
    res.json({
      when: s.when instanceof Date ? (s.when as Date).toISOString() : typeof s.when,
      tags: s.tags instanceof Set ? [...(s.tags as Set<string>)] : typeof s.tags,
      scores: s.scores instanceof Map ? [...(s.scores as Map<string, number>)] : typeof s.scores,
      raw: Buffer.isBuffer(s.raw) ? (s.raw as Buffer).toString('hex') : typeof s.raw,
      nested: s.nested,
    });
  });
  app.get('/set', (req, res) => {
    for (const [k, v] of Object.entries(req.query)) req.session[k] = v;
    res.json({ id: req.sessionID });
  });
  app.get('/destroy', (req, res, next) => {
    req.session.destroy((err) => (err ? next(err) : res.json({ destroyed: true })));
  });
  app.get('/regenerate', (req, res, next) => {
    req.session.regenerate((err) => {
      if (err) return next(err);
      req.session.visits = 100;
      res.json({ id: req.sessionID });
    });
  });
  // Ends the request without a session (with unset: 'keep', nothing is saved or touched).
  app.get('/drop', (req, res) => {
    (req as { session: unknown }).session = null;
    res.json({ dropped: true });
  });
  // Holds the request until the test answers it or the client goes away.
  app.get('/hang', (req, res) => {
    aborted.push(new Promise((resolve) => res.once('close', () => resolve())));
    hanging.push(() => res.json({ visits: req.session?.visits ?? null }));
  });
  app.use((err: Error & { code?: string }, _req: Request, res: Response, _next: NextFunction) => {
    // express-session saves as the response ends: a failed save arrives here after the headers
    // went out, and the response is ended by express-session itself.
    if (res.headersSent) return;
    res.status(500).json({ error: err.message, code: err.code ?? null, name: err.name });
  });
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    server,
    hanging,
    aborted,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A client with a cookie jar of its own: sends back the cookies the server set. */
export class Browser {
  readonly cookies = new Map<string, string>();
  constructor(readonly base: string) {}

  async get(path: string, init: RequestInit = {}): Promise<{ status: number; body: any; headers: Headers }> {
    const headers = new Headers(init.headers);
    if (this.cookies.size > 0) headers.set('cookie', [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; '));
    const res = await fetch(this.base + path, { ...init, headers });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const i = pair!.indexOf('=');
      const name = pair!.slice(0, i).trim();
      const value = pair!.slice(i + 1).trim();
      if (/expires=Thu, 01 Jan 1970/i.test(line)) this.cookies.delete(name);
      else this.cookies.set(name, value);
    }
    const text = await res.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, body, headers: res.headers };
  }

  /** The session id in the signed cookie `connect.sid` (s:<id>.<signature>). */
  get sid(): string | undefined {
    const v = this.cookies.get('connect.sid');
    if (v === undefined) return undefined;
    const decoded = decodeURIComponent(v);
    return decoded.slice(2, decoded.lastIndexOf('.'));
  }
}
