/**
 * npm run bench:session [-- --json] [-- --duration S] [-- --rounds N] [-- --warmup S] [-- --connections N] [-- --only erlang,redis]
 *
 * The same Express app (express-session; a handler that reads a counter from the session,
 * increments it and answers it) with three stores, in one run:
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
 *
 * This kind of machine changes speed from one few seconds to the next (one MemoryStore app, ten
 * rounds of 4 s in a row: 347 to 559 µs of CPU per request). So the timed load is cut into many
 * short rounds, the stores take their turns round by round in an order that rotates, and each
 * figure is the median of a store's rounds; the ratio of two stores is also given round by round
 * (their rounds n ran within seconds of each other), and the rounds are in the JSON. Requests per
 * second and p99 latency come from autocannon; non-2xx answers and errors are counted and shown.
 * The CPU time per request of the app's process and of the store's server (from /proc) is shown
 * too.
 *
 * The Erlang node runs with the flags `erl-peb server start` gives it (SERVER_VM_ARGS in
 * lib/cli/server-options.ts: delay_send on distribution sockets, schedulers that do not busy-wait).
 * BENCH_ERL_ARGS='...' replaces those flags (BENCH_ERL_ARGS='' for Erlang's defaults).
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { ErlangNode } from '../test/support/erlang-node';
import { machine, median, progress as log, report, wantJson, type Row } from './harness';
import { cpuMs, startRedis, waitForLine, type Redis } from './processes';
import { intFlag, makeStore, printFooter, runAs, startSessionNode, STORE_LABELS, wantedStores, type StoreKind } from './stores';

const ROOT = join(__dirname, '..');
const EBIN = join(ROOT, 'erlang', 'ebin');
const SECRET = 'erl-peb bench: not a secret';

/** Seconds of load per store, in ROUNDS rounds taken in turn. */
const DURATION_S = intFlag('duration', 40);
const ROUNDS = intFlag('rounds', 20);
const ROUND_S = Math.max(1, Math.round(DURATION_S / ROUNDS));
const WARMUP_S = intFlag('warmup', 3);
const CONNECTIONS = intFlag('connections', 32);
/** `--only erlang,memory`: a subset of the stores (MemoryStore is always measured: the others are compared with it). */
const wanted = wantedStores();

type Kind = StoreKind;
const LABELS = STORE_LABELS;

// ---------------------------------------------------------------------------------------------
// The app (child process): `bench/session.ts --serve <kind>`

async function serve(kind: Kind): Promise<void> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const express = require('express') as typeof import('express');
  const session = require('express-session') as typeof import('express-session');
  /* eslint-enable @typescript-eslint/no-require-imports */
  const store = await makeStore(kind);
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

interface App {
  url: string;
  pid: number | undefined;
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
    pid: child.pid,
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

/** The part of autocannon's programmatic API used here (it ships no types). */
type Autocannon = (options: Record<string, unknown>) => Promise<{
  requests: { average: number; total: number };
  latency: { p99: number; average: number };
  non2xx: number;
  errors: number;
  timeouts: number;
}>;

interface Round {
  requestsPerSecond: number;
  /** CPU time per request of the app's process and of the store's server (Erlang node, redis-server), µs. */
  appCpuUs: number | null;
  storeCpuUs: number | null;
  /** Requests answered. */
  total: number;
  p99Ms: number;
  meanMs: number;
  non2xx: number;
  errors: number;
}

interface Result {
  store: string;
  /** Medians over the rounds. */
  requestsPerSecond: number;
  p99Ms: number;
  meanMs: number;
  appCpuUs: number | null;
  storeCpuUs: number | null;
  rounds: Round[];
  non2xx: number;
  errors: number;
  /** A session's counter after the run: every request of that connection was counted. */
  finalCount: number;
}

async function load(url: string, cookies: string[], seconds: number): Promise<Round> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const autocannon = require('autocannon') as Autocannon;
  let next = 0;
  const r = await autocannon({
    url,
    connections: cookies.length,
    duration: seconds,
    // One session per connection: each connection sends the cookie of its own session.
    setupClient: (client: { setHeaders(h: Record<string, string>): void }) => client.setHeaders({ cookie: cookies[next++ % cookies.length]! }),
  });
  return {
    requestsPerSecond: r.requests.average,
    appCpuUs: null,
    storeCpuUs: null,
    total: r.requests.total,
    p99Ms: r.latency.p99,
    meanMs: r.latency.average,
    non2xx: r.non2xx,
    errors: r.errors + r.timeouts,
  };
}

/** A timed round, with the CPU time the app and the store's server spent on it. */
async function timedRound(t: Target, seconds: number): Promise<Round> {
  const app0 = cpuMs(t.app.pid);
  const store0 = cpuMs(t.storePid);
  const r = await load(t.app.url, t.cookies, seconds);
  const app1 = cpuMs(t.app.pid);
  const store1 = cpuMs(t.storePid);
  const per = (a: number | undefined, b: number | undefined): number | null => (a === undefined || b === undefined || r.total === 0 ? null : ((b - a) * 1000) / r.total);
  return { ...r, appCpuUs: per(app0, app1), storeCpuUs: t.storePid === undefined ? null : per(store0, store1) };
}

interface Target {
  kind: Kind;
  app: App;
  /** The store's server process (the Erlang node, redis-server), for its CPU time. */
  storePid: number | undefined;
  cookies: string[];
  rounds: Round[];
}
function medianOrNull(xs: Array<number | null>): number | null {
  const known = xs.filter((x): x is number => x !== null);
  return known.length === 0 ? null : median(known);
}

async function main(): Promise<void> {
  const notes: string[] = [];
  let node: ErlangNode | undefined;
  let redis: Redis | null = null;
  const results: Partial<Record<Kind, Result>> = {};
  const targets: Target[] = [];
  try {
    node = await startSessionNode(EBIN);
    if (wanted('redis')) redis = await startRedis(notes);

    const envs: Array<[Kind, NodeJS.ProcessEnv, number | undefined]> = [['memory', {}, undefined]];
    if (wanted('erlang')) envs.push(['erlang', { BENCH_ERL_NODE: node.name, BENCH_ERL_COOKIE: node.cookie }, node.pid]);
    if (redis) envs.push(['redis', { BENCH_REDIS_PORT: String(redis.port) }, redis.pid]);
    for (const [kind, env, storePid] of envs) {
      const app = await startApp(kind, env);
      targets.push({ kind, app, storePid, cookies: await sessions(app.url, CONNECTIONS), rounds: [] });
    }
    for (const t of targets) {
      log(`${LABELS[t.kind]}: warm-up ${WARMUP_S} s`);
      await load(t.app.url, t.cookies, WARMUP_S);
    }
    // The order rotates from round to round, so that no store is always the one timed first.
    for (let n = 0; n < ROUNDS; n++) {
      for (let i = 0; i < targets.length; i++) {
        const t = targets[(n + i) % targets.length]!;
        const r = await timedRound(t, ROUND_S);
        t.rounds.push(r);
        log(`round ${n + 1}/${ROUNDS}, ${LABELS[t.kind]}: ${Math.round(r.requestsPerSecond)} requests/s, p99 ${r.p99Ms} ms, app CPU ${r.appCpuUs?.toFixed(0) ?? '?'} µs/req`);
      }
    }
    for (const t of targets) {
      const check = await fetch(t.app.url, { headers: { cookie: t.cookies[0]! } });
      results[t.kind] = {
        store: LABELS[t.kind],
        requestsPerSecond: median(t.rounds.map((r) => r.requestsPerSecond)),
        p99Ms: median(t.rounds.map((r) => r.p99Ms)),
        meanMs: median(t.rounds.map((r) => r.meanMs)),
        appCpuUs: medianOrNull(t.rounds.map((r) => r.appCpuUs)),
        storeCpuUs: medianOrNull(t.rounds.map((r) => r.storeCpuUs)),
        rounds: t.rounds,
        non2xx: t.rounds.reduce((n, r) => n + r.non2xx, 0),
        errors: t.rounds.reduce((n, r) => n + r.errors, 0),
        finalCount: Number(await check.text()),
      };
    }
  } finally {
    for (const t of targets) await t.app.stop();
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
        'app CPU µs/req': r.appCpuUs,
        'store server CPU µs/req': r.storeCpuUs,
        'non-2xx + errors': String(r.non2xx + r.errors),
      };
    });
  const erl = results.erlang?.requestsPerSecond;
  const goals = {
    'ErlangStore >= connect-redis': red === undefined || erl === undefined ? null : erl >= red,
    'ErlangStore >= 0.9 x MemoryStore': erl === undefined ? null : erl >= 0.9 * mem,
  };
  // Round n of each store ran within seconds of the others' round n: ratios round by round.
  const perRound = (a: Result | undefined, b: Result | undefined): number[] | null =>
    a === undefined || b === undefined ? null : a.rounds.map((r, i) => Number((r.requestsPerSecond / b.rounds[i]!.requestsPerSecond).toFixed(3)));
  const roundRatios = {
    'ErlangStore / connect-redis': perRound(results.erlang, results.redis),
    'ErlangStore / MemoryStore': perRound(results.erlang, results.memory),
  };
  for (const k of Object.keys(results) as Kind[]) {
    const r = results[k]!;
    if (r.non2xx + r.errors > 0) notes.push(`${r.store}: ${r.non2xx} non-2xx answers and ${r.errors} errors/timeouts`);
    if (!(r.finalCount > 1)) notes.push(`${r.store}: the checked session's counter was ${r.finalCount} after the run: sessions were not kept`);
  }
  report(
    `express-session, one counter per session (read + write every request): ${CONNECTIONS} connections, autocannon; per store ${WARMUP_S} s of warm-up, then ${ROUNDS} rounds of ${ROUND_S} s taken in turn with the other stores, in rotating order (medians)`,
    rows,
    { machine: machine(), connections: CONNECTIONS, rounds: ROUNDS, roundSeconds: ROUND_S, warmupSeconds: WARMUP_S, targets: goals, roundRatios, results, notes },
  );
  if (!wantJson()) {
    console.log('');
    for (const [t, ok] of Object.entries(goals)) console.log(`target ${t}: ${ok === null ? 'not measured' : ok ? 'met' : 'NOT met'}`);
    for (const [what, ratios] of Object.entries(roundRatios)) {
      if (ratios !== null) console.log(`${what}, round by round: ${ratios.map((x) => `${x.toFixed(2)}×`).join(' ')}`);
    }
    printFooter(notes);
  }
}

runAs('serve', serve, main);
