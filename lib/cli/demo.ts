/**
 * `erl-peb demo` (`npm run demo`): a small Express app whose sessions live in an Erlang node.
 *
 * - Finds the session server node (default erl_peb_demo@127.0.0.1) through EPMD; when it is not
 *   running, starts it the way `erl-peb server start` does (ETS, loopback only, a generated
 *   cookie in ~/.erlang.cookie when there is none) and stops it again at Ctrl-C.
 * - Serves http://127.0.0.1:3000 (`--port`): the visit counter, the first characters of the
 *   session id, the Erlang node holding the session and when it expires.
 * - A second `erl-peb demo --port 3001` finds the running server and shares its sessions: the
 *   browser sends the same cookie to both ports, and both apps derive the same cookie-signing
 *   secret from the Erlang cookie (never shown).
 * Exit status: 0 after Ctrl-C (SIGINT/SIGTERM), 1 when it cannot start, 2 a command-line mistake.
 */
import { createHmac } from 'node:crypto';
import type { Server } from 'node:http';
import type { ErlangStore } from '../express';
import { SessionClient } from '../session/client';
import { boolFlag, CliError, parseArgs, stringFlag, UsageError, type FlagSpecs, type Parsed } from './args';
import { epmdPort, lookupNode } from './epmd';
import { serverCommand, type Output } from './server';
import { findCookie, loadConfig, type CliEnvironment } from './server-options';

export const DEMO_NODE = 'erl_peb_demo@127.0.0.1';
const DEFAULT_PORT = 3000;
/** Sessions of the demo are `demo:<id>` in the server. */
const PREFIX = 'demo:';
const SESSION_MINUTES = 30;

export const DEMO_USAGE = `Usage: erl-peb demo [options]

Runs a small Express app on 127.0.0.1 whose sessions are kept in an Erlang node (the erl-peb
session server, ETS). Starts that node unless it is already running, and stops it at Ctrl-C if it
started it. Run it again in a second terminal with another --port: the second app finds the
running node and shares the same sessions.

Options:
  --port N             the app's port on 127.0.0.1 (default ${DEFAULT_PORT}; 0 for any free port)
  --node NAME          the session server's node (default ${DEMO_NODE})
  --cookie-file FILE   the Erlang cookie (default: ERL_PEB_COOKIE, the config file's cookieFile,
                       ~/.erlang.cookie; when there is none, a new one is written there, mode 0600)
  --config FILE        the config file (default: ERL_PEB_CONFIG, else searched from here)
  -h, --help           this help

Needs express and express-session (npm install express express-session).
`;

const FLAGS: FlagSpecs = {
  port: { type: 'string' },
  node: { type: 'string' },
  'cookie-file': { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

/** The demo with the process's own output: what the CLI's `demo` command runs. */
export function demo(argv: string[]): Promise<number> {
  return main(argv, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
}

/** `erl-peb demo <args>`: resolves with the exit status once the demo has stopped. */
export async function main(argv: readonly string[], o: Output, e: CliEnvironment = { env: process.env, cwd: process.cwd() }): Promise<number> {
  let p: Parsed;
  try {
    p = parseArgs(argv, FLAGS);
    if (p.positionals.length > 0 && !boolFlag(p, 'help')) throw new UsageError(`unexpected argument '${p.positionals[0]}'`);
  } catch (err) {
    if (err instanceof UsageError) {
      o.err(`erl-peb demo: ${err.message}\n\n${DEMO_USAGE}`);
      return 2;
    }
    throw err;
  }
  if (boolFlag(p, 'help')) {
    o.out(DEMO_USAGE);
    return 0;
  }
  try {
    return await run(p, o, e);
  } catch (err) {
    if (err instanceof UsageError) {
      o.err(`erl-peb demo: ${err.message}\n\n${DEMO_USAGE}`);
      return 2;
    }
    if (err instanceof CliError) {
      o.err(`erl-peb demo: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof Error && err.name !== 'Error') {
      // erl-peb's own errors (ConnectionError, ConfigError, ...): their message says it all.
      o.err(`erl-peb demo: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

function portOf(p: Parsed): number {
  const v = stringFlag(p, 'port');
  if (v === undefined) return DEFAULT_PORT;
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw new UsageError(`--port must be a port number from 0 to 65535, got '${v}'`);
  return n;
}

/** express and express-session are not dependencies of erl-peb: a clear message when they are missing. */
function loadExpress(): { express: typeof import('express'); session: typeof import('express-session'); ErlangStore: typeof ErlangStore } {
  try {
    /* eslint-disable @typescript-eslint/no-require-imports */
    const express = require('express') as typeof import('express');
    const session = require('express-session') as typeof import('express-session');
    const { ErlangStore: Store } = require('../express') as typeof import('../express');
    /* eslint-enable @typescript-eslint/no-require-imports */
    return { express, session, ErlangStore: Store };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND' && /'express(-session)?'/.test((err as Error).message)) {
      throw new CliError('the demo needs express and express-session: npm install express express-session');
    }
    throw err;
  }
}

interface ServerState {
  node: string;
  /** True when this process started the node (and so stops it). */
  started: boolean;
}

/** The running session server, or a new one started as `erl-peb server start` does. */
async function ensureServer(node: string, p: Parsed, o: Output, e: CliEnvironment): Promise<ServerState> {
  const alive = node.slice(0, node.indexOf('@'));
  const host = node.slice(node.indexOf('@') + 1);
  const running = async (): Promise<boolean> => (await lookupNode(alive, host, epmdPort(e.env)).catch(() => ({ port: undefined }))).port !== undefined;
  if (await running()) {
    o.out(`erl-peb demo: using the running session server ${node}\n`);
    return { node, started: false };
  }
  o.out(`erl-peb demo: starting the session server ${node} (ETS, on 127.0.0.1)...\n`);
  const args = ['start', '--name', node, '--backend', 'ets', ...cookieArgs(p)];
  const captured: string[] = [];
  const status = await serverCommand(args, e, { out: () => undefined, err: (t) => captured.push(t) });
  if (status !== 0) {
    // Another demo may have started it meanwhile: then share it.
    if (await running()) {
      o.out(`erl-peb demo: using the running session server ${node}\n`);
      return { node, started: false };
    }
    o.err(captured.join(''));
    throw new CliError(`the session server ${node} did not start`, status);
  }
  return { node, started: true };
}

function cookieArgs(p: Parsed): string[] {
  const args: string[] = [];
  const file = stringFlag(p, 'cookie-file');
  if (file !== undefined) args.push('--cookie-file', file);
  const config = stringFlag(p, 'config');
  if (config !== undefined) args.push('--config', config);
  return args;
}

async function stopServer(s: ServerState, p: Parsed, o: Output, e: CliEnvironment): Promise<void> {
  if (!s.started) return;
  const captured: string[] = [];
  const status = await serverCommand(['stop', '--name', s.node, ...cookieArgs(p)], e, { out: () => undefined, err: (t) => captured.push(t) }).catch(
    (err: unknown) => {
      captured.push(`${(err as Error).message}\n`);
      return 1;
    },
  );
  if (status === 0) o.out(`erl-peb demo: stopped the session server ${s.node}\n`);
  else o.err(`erl-peb demo: could not stop the session server ${s.node}: ${captured.join('').trim()}\n`);
}

async function run(p: Parsed, o: Output, e: CliEnvironment): Promise<number> {
  const port = portOf(p);
  const node = stringFlag(p, 'node') ?? DEMO_NODE;
  if (!/^[A-Za-z0-9_-]+@[A-Za-z0-9_.-]+$/.test(node)) throw new UsageError(`--node must be a node name like name@127.0.0.1, got '${node}'`);
  const { express, session, ErlangStore: Store } = loadExpress();

  // Listening for Ctrl-C from here on: one that comes while the server starts is kept for when
  // it has started, so that what was started is also stopped.
  const signal = signals();
  let server: ServerState;
  try {
    server = await ensureServer(node, p, o, e);
  } catch (err) {
    signal.dispose();
    throw err;
  }
  let client: SessionClient | undefined;
  let http: Server | undefined;
  try {
    const cookie = findCookie(p, e, loadConfig(p, e));
    if (cookie === undefined) throw new CliError(`no Erlang cookie found for ${node}: give it with --cookie-file`);
    client = new SessionClient({ connect: { node, cookie: cookie.value, config: false }, prefix: PREFIX });
    const c = client;
    // The node holding the sessions, as the server itself names it (looked up again after a reconnection).
    const status = await c.status();
    let holder = String(status.node ?? node);
    let backend = String(status.backend ?? '?');
    c.on('connect', () => {
      c.status().then(
        (s) => {
          holder = String(s.node ?? holder);
          backend = String(s.backend ?? backend);
        },
        () => undefined,
      );
    });

    const store = new Store({ client: c });
    const app = express();
    app.disable('x-powered-by');
    app.use(
      session({
        name: 'erl_peb_demo.sid',
        // The same secret in every demo app of this node: derived from the cookie, which they share.
        secret: createHmac('sha256', cookie.value).update('erl-peb demo: session cookie signing').digest('hex'),
        store,
        resave: false,
        saveUninitialized: false,
        cookie: { maxAge: SESSION_MINUTES * 60_000, httpOnly: true, sameSite: 'lax' },
      }),
    );
    let listening = port;
    app.get('/', (req, res) => {
      // express-session hands requests on without a session while the store is disconnected.
      if (req.session === undefined) {
        res.status(503).type('html').send(errorPage(new Error(`the session server ${holder} is out of reach; the app reconnects by itself`)));
        return;
      }
      const s = req.session as unknown as { visits?: number };
      s.visits = (s.visits ?? 0) + 1;
      const expires = req.session.cookie.expires;
      res.type('html').send(
        page({
          visits: s.visits,
          id: req.sessionID,
          holder,
          backend,
          expires: expires ? new Date(expires) : null,
          port: listening,
          pid: process.pid,
        }),
      );
    });
    app.post('/forget', (req, res, next) => {
      req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
    });
    // A session server out of reach is a page that says so, not a stack trace.
    app.use((err: Error, _req: import('express').Request, res: import('express').Response, _next: import('express').NextFunction) => {
      res.status(503).type('html').send(errorPage(err));
    });

    http = await listen(app, port);
    listening = (http.address() as { port: number }).port;
    o.out(
      [
        `erl-peb demo: listening on http://127.0.0.1:${listening}`,
        `  sessions are kept in ${holder} (${backend}${server.started ? ', started by this demo' : ''})`,
        `  a second app sharing them: npm run demo -- --port ${listening === DEFAULT_PORT ? DEFAULT_PORT + 1 : DEFAULT_PORT}${node === DEMO_NODE ? '' : ` --node ${node}`}`,
        `  Ctrl-C stops this app${server.started ? ' and the session server' : ''}`,
        '',
      ].join('\n'),
    );

    await signal.received;
    o.out('\nerl-peb demo: stopping\n');
    return 0;
  } finally {
    // Further signals (a second Ctrl-C, or one sent to the whole process group) must not cut
    // the stop short and leave the node running: the stop has its own timeout.
    signal.onAgain(() => o.err('erl-peb demo: still stopping...\n'));
    try {
      if (http !== undefined) await closeHttp(http);
      await client?.close();
      await stopServer(server, p, o, e);
    } finally {
      signal.dispose();
    }
  }
}

function listen(app: import('express').Express, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = app.listen(port, '127.0.0.1');
    s.once('listening', () => resolve(s));
    s.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new CliError(`port ${port} is already in use on 127.0.0.1: choose another with --port`));
      else if (err.code === 'EACCES') reject(new CliError(`port ${port} needs privileges: choose a port above 1023 with --port`));
      else reject(err);
    });
  });
}

function closeHttp(s: Server): Promise<void> {
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}

interface Signals {
  /** Resolves at the first SIGINT or SIGTERM. */
  readonly received: Promise<void>;
  /** What to do at the signals after the first. */
  onAgain(fn: () => void): void;
  /** Stops listening: the signals' default action (exit) applies again. */
  dispose(): void;
}

function signals(): Signals {
  let first: () => void = () => undefined;
  let again: () => void = () => undefined;
  let seen = false;
  const received = new Promise<void>((resolve) => {
    first = resolve;
  });
  const handler = (): void => {
    if (seen) again();
    seen = true;
    first();
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    received,
    onAgain: (fn) => {
      again = fn;
    },
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The page

interface PageData {
  visits: number;
  id: string;
  holder: string;
  backend: string;
  expires: Date | null;
  port: number;
  pid: number;
}

function escape(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;color:#222}
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.4rem 1rem}dt{color:#666}dd{margin:0}
#visits{font-size:2rem;font-weight:600}code{background:#f3f3f3;padding:0 .3rem;border-radius:3px}button{font:inherit}`;

function page(d: PageData): string {
  const expires = d.expires ? `${d.expires.toISOString()} (in ${Math.max(0, Math.round((d.expires.getTime() - Date.now()) / 60_000))} min)` : 'when the browser closes';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>erl-peb demo</title><style>${STYLE}</style></head>
<body>
<h1>Sessions in Erlang</h1>
<dl>
<dt>Visits</dt><dd><span id="visits">${d.visits}</span></dd>
<dt>Session id</dt><dd><code id="session">${escape(d.id.slice(0, 8))}…</code></dd>
<dt>Held by the Erlang node</dt><dd><code id="node">${escape(d.holder)}</code> (${escape(d.backend)})</dd>
<dt>Expires</dt><dd id="expires">${escape(expires)}</dd>
<dt>Served by</dt><dd id="app">the app on port ${d.port} (pid ${d.pid})</dd>
</dl>
<p>Reload to count a visit. Open the same page on another port (a second <code>npm run demo -- --port N</code>):
it reads the same session from the same node.</p>
<form method="post" action="/forget"><button type="submit">Forget this session</button></form>
</body></html>
`;
}

function errorPage(err: Error): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>erl-peb demo: no session server</title><style>${STYLE}</style></head>
<body><h1>The session server did not answer</h1><p id="error">${escape(err.message)}</p>
<p>Reload once it is back: the app reconnects by itself.</p></body></html>
`;
}
