/**
 * npm run bench:session [-- --json] [-- --duration S] [-- --warmup S] [-- --connections N] [-- --only erlang,redis]
 *
 * The same Express app (express-session; a handler that reads a counter from the session,
 * increments it and answers it) with three stores, one after the other in one run:
 *
 * - ErlangStore (erl-peb/express) against a session server node (ETS) started here;
 * - connect-redis (node-redis client) against a redis-server started here on a free loopback
 *   port (skipped, with a note, when redis-server is not installed);
 * - express-session's MemoryStore (in the app's own process: the ceiling).
 *
 * Each app runs in a child process of its own (this file with --serve), so that the load
 * generator (autocannon, in this process) and the app do not share an event loop. Every
 * connection has a session of its own: a first request per connection gets a cookie, and the
 * connection sends it with every request, so every measured request reads and writes its session.
 * Same connections, warm-up and duration for each store. Requests per second and p99 latency
 * come from autocannon; non-2xx answers and errors are counted and shown.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { startNode, type ErlangNode } from '../test/support/erlang-node';
import { machine, report, wantJson, type Row } from './harness';

const ROOT = join(__dirname, '..');
const EBIN = join(ROOT, 'erlang', 'ebin');
const SECRET = 'erl-peb bench: not a secret';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} takes a positive integer`);
  return n;
}

const DURATION_S = flag('duration', 10);
const WARMUP_S = flag('warmup', 3);
const CONNECTIONS = flag('connections', 32);
/** `--only erlang,memory`: a subset of the stores (MemoryStore is always measured: the others are compared with it). */
const ONLY = (() => {
  const i = process.argv.indexOf('--only');
  return i < 0 ? undefined : new Set(process.argv[i + 1]!.split(','));
})();
const wanted = (k: string): boolean => ONLY === undefined || ONLY.has(k);

type Kind = 'erlang' | 'redis' | 'memory';
const LABELS: Record<Kind, string> = {
  erlang: 'ErlangStore (erl-peb, ETS)',
  redis: 'connect-redis (redis-server)',
  memory: 'MemoryStore (in process)',
};

const log = (s: string): void => {
  if (!wantJson()) process.stderr.write(`${s}\n`);
};

// ---------------------------------------------------------------------------------------------
// The app (child process): `bench/session.ts --serve <kind>`

async function serve(kind: Kind): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const express = require('express') as typeof import('express');
  const session = require('express-session') as typeof import('express-session');
  let store: import('express-session').Store | undefined;
  if (kind === 'erlang') {
    const { ErlangStore } = require('../lib/express') as typeof import('../lib/express');
    store = new ErlangStore({ connect: { node: process.env.BENCH_ERL_NODE!, cookie: process.env.BENCH_ERL_COOKIE!, config: false } });
  } else if (kind === 'redis') {
    const { createClient } = require('redis') as typeof import('redis');
    const { RedisStore } = require('connect-redis') as typeof import('connect-redis');
    const client = createClient({ url: `redis://127.0.0.1:${process.env.BENCH_REDIS_PORT}` });
    await client.connect();
    store = new RedisStore({ client });
  }
  /* eslint-enable @typescript-eslint/no-require-imports */
  const app = express();
  app.disable('x-powered-by');
  app.use(session({ secret: SECRET, resave: false, saveUninitialized: false, store }));
  app.get('/', (req, res) => {
    const s = req.session as unknown as { count?: number };
    s.count = (s.count ?? 0) + 1;
    res.type('text/plain').send(String(s.count));
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
  });
  // The parent ends this process by closing stdin.
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
}

// ---------------------------------------------------------------------------------------------
// The load (this process)

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

/** Resolves with the first line of `child`'s stdout that matches, rejects if it exits first. */
function waitForLine(child: ChildProcess, pattern: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout! });
    const onExit = (code: number | null): void => reject(new Error(`${what} exited (${code}) before it was ready: ${stderr}`));
    child.once('exit', onExit);
    rl.on('line', (line) => {
      const m = pattern.exec(line);
      if (m) {
        child.off('exit', onExit);
        resolve(m);
      }
    });
  });
}

interface Redis {
  port: number;
  stop(): Promise<void>;
}

async function startRedis(notes: string[]): Promise<Redis | null> {
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    notes.push('connect-redis skipped: no redis-server on PATH (Debian: apt-get install redis-server)');
    return null;
  }
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await waitForLine(server, /Ready to accept connections/, 'redis-server');
  return {
    port,
    stop: () =>
      new Promise((resolve) => {
        if (server.exitCode !== null) return resolve();
        server.once('exit', () => resolve());
        server.kill('SIGTERM');
      }),
  };
}

interface App {
  url: string;
  stop(): Promise<void>;
}

async function startApp(kind: Kind, env: NodeJS.ProcessEnv): Promise<App> {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, '--serve', kind], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const m = await waitForLine(child, /^listening (\d+)$/, `the ${kind} app`);
  return {
    url: `http://127.0.0.1:${m[1]}/`,
    stop: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.stdin!.end();
      }),
  };
}

/** One session per connection: a first request gets each its cookie. */
async function sessions(url: string, n: number): Promise<string[]> {
  const cookies: string[] = [];
  for (let i = 0; i < n; i++) {
    const res = await fetch(url);
    const body = await res.text();
    const set = res.headers.get('set-cookie');
    if (res.status !== 200 || body !== '1' || set === null) throw new Error(`the first request answered ${res.status} ${body}`);
    cookies.push(set.split(';')[0]!);
  }
  return cookies;
}

interface Result {
  store: string;
  requestsPerSecond: number;
  p99Ms: number;
  meanMs: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** A session's counter after the run: every request of that connection was counted. */
  finalCount: number;
}

async function load(url: string, cookies: string[], seconds: number): Promise<import('autocannon').Result> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as typeof import('autocannon');
  let next = 0;
  return autocannon({
    url,
    connections: cookies.length,
    duration: seconds,
    setupClient: (client: { setHeaders(h: Record<string, string>): void }) => client.setHeaders({ cookie: cookies[next++ % cookies.length]! }),
  } as import('autocannon').Options);
}

async function measure(kind: Kind, env: NodeJS.ProcessEnv): Promise<Result> {
  const app = await startApp(kind, env);
  try {
    const cookies = await sessions(app.url, CONNECTIONS);
    log(`${LABELS[kind]}: warm-up ${WARMUP_S} s`);
    await load(app.url, cookies, WARMUP_S);
    log(`${LABELS[kind]}: ${DURATION_S} s, ${CONNECTIONS} connections`);
    const r = await load(app.url, cookies, DURATION_S);
    const check = await fetch(app.url, { headers: { cookie: cookies[0]! } });
    const finalCount = Number(await check.text());
    return {
      store: LABELS[kind],
      requestsPerSecond: r.requests.average,
      p99Ms: r.latency.p99,
      meanMs: r.latency.average,
      requests: r.requests.total,
      non2xx: r.non2xx,
      errors: r.errors + r.timeouts,
      finalCount,
    };
  } finally {
    await app.stop();
  }
}

async function main(): Promise<void> {
  const notes: string[] = [];
  let node: ErlangNode | undefined;
  let redis: Redis | null = null;
  const results: Partial<Record<Kind, Result>> = {};
  try {
    // Schedulers that sleep when idle rather than spin: on 2 cores a spinning BEAM takes time
    // from the app and the load generator.
    node = await startNode({ codePaths: [EBIN], args: ['+sbwt', 'none', '+sbwtdcpu', 'none', '+sbwtdio', 'none'] });
    const started = await node.evalText('erl_peb:start_server(#{backend => ets})');
    if (started !== 'ok') throw new Error(`the session server did not start: ${started}`);
    redis = await startRedis(notes);

    results.memory = await measure('memory', {});
    if (wanted('erlang')) results.erlang = await measure('erlang', { BENCH_ERL_NODE: node.name, BENCH_ERL_COOKIE: node.cookie });
    if (redis && wanted('redis')) results.redis = await measure('redis', { BENCH_REDIS_PORT: String(redis.port) });
  } finally {
    await redis?.stop();
    await node?.stop();
  }

  const mem = results.memory!.requestsPerSecond;
  const red = results.redis?.requestsPerSecond;
  const rows: Row[] = (['erlang', 'redis', 'memory'] as const)
    .filter((k) => results[k] !== undefined)
    .map((k) => {
      const r = results[k]!;
      return {
        store: r.store,
        'requests/s': Math.round(r.requestsPerSecond),
        'p99 ms': r.p99Ms,
        'mean ms': r.meanMs,
        'vs MemoryStore': `${(r.requestsPerSecond / mem).toFixed(2)}×`,
        'vs connect-redis': red === undefined ? null : `${(r.requestsPerSecond / red).toFixed(2)}×`,
        'non-2xx + errors': String(r.non2xx + r.errors),
      };
    });
  const erl = results.erlang?.requestsPerSecond;
  const targets = {
    'ErlangStore >= connect-redis': red === undefined || erl === undefined ? null : erl >= red,
    'ErlangStore >= 0.9 x MemoryStore': erl === undefined ? null : erl >= 0.9 * mem,
  };
  for (const k of Object.keys(results) as Kind[]) {
    const r = results[k]!;
    if (r.non2xx + r.errors > 0) notes.push(`${r.store}: ${r.non2xx} non-2xx answers and ${r.errors} errors/timeouts`);
    if (!(r.finalCount > 1)) notes.push(`${r.store}: the checked session's counter was ${r.finalCount} after the run: sessions were not kept`);
  }
  report(
    `express-session, one counter per session (read + write every request): ${CONNECTIONS} connections, ${DURATION_S} s each after ${WARMUP_S} s of warm-up; autocannon`,
    rows,
    { machine: machine(), connections: CONNECTIONS, durationSeconds: DURATION_S, targets, results, notes },
  );
  if (!wantJson()) {
    console.log('');
    for (const [t, ok] of Object.entries(targets)) console.log(`target ${t}: ${ok === null ? 'not measured' : ok ? 'met' : 'NOT met'}`);
    if (notes.length > 0) console.log(`\n${notes.join('\n')}`);
    const m = machine();
    console.log(`\nNode ${m.node}, ${m.cores} × ${m.cpu}`);
  }
}

const serveAt = process.argv.indexOf('--serve');
if (serveAt >= 0) {
  serve(process.argv[serveAt + 1] as Kind).catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
} else {
  main().catch((e: unknown) => {
    console.error(e);
    process.exitCode = 1;
  });
}
