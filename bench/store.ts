/**
 * npm run bench:store [-- --json] [-- --rate N] [-- --rounds N] [-- --seconds S] [-- --only erlang,redis]
 *
 * What one express-session request costs a store, without Express around it: a get of the session
 * and a set of it changed (a counter), as express-session does for a request that changes its
 * session, offered at a fixed rate, with the main thread's CPU time per get + set measured from
 * /proc. Same stores as bench:session:
 *
 * - ErlangStore (erl-peb/express) against a session server node (ETS) started here;
 * - connect-redis (node-redis client) against a redis-server started here (skipped, with a note,
 *   when redis-server is not installed);
 * - express-session's MemoryStore.
 *
 * Why this beside bench:session: the app's CPU per request there is mostly Express and HTTP
 * (400-500 µs here) and moves by a third within seconds on this kind of machine, while the
 * stores differ by a few percent of it. Here the main thread does nothing but the store's work and
 * a 1 ms pacing timer, at a rate every store keeps up with (default 5,000 get + set pairs a second
 * over 64 sessions), so CPU per pair compares the stores' own costs.
 *
 * Each store runs in a child process of its own (this file with --drive), which waits for a line
 * on stdin, runs one timed round and answers one line of JSON; the stores take their turns round
 * by round in an order that rotates, and each figure is the median of a store's rounds.
 *
 * The Erlang node runs with the flags `erl-peb server start` gives it, as in bench:session;
 * BENCH_ERL_ARGS='...' replaces them (BENCH_ERL_ARGS='' for Erlang's defaults).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import type { ErlangNode } from '../test/support/erlang-node';
import { machine, median, percentile, progress as log, report, wantJson, type Row } from './harness';
import { cpuMs, startRedis, waitForLine, type Redis } from './processes';
import { intFlag, makeStore, printFooter, runAs, startSessionNode, STORE_LABELS, wantedStores, type StoreKind } from './stores';

const ROOT = join(__dirname, '..');
const EBIN = join(ROOT, 'erlang', 'ebin');

/** get + set pairs offered per second. */
const RATE = intFlag('rate', 5000);
const ROUNDS = intFlag('rounds', 10);
const ROUND_S = intFlag('seconds', 3);
const WARMUP_S = 2;
/** Sessions the pairs go round; also the most pairs in flight at once. */
const SESSIONS = 64;
const wanted = wantedStores();

type Kind = StoreKind;
const LABELS = STORE_LABELS;

interface Round {
  /** Pairs finished per second. */
  pairsPerSecond: number;
  /** Main-thread CPU (user + system) per pair, µs. */
  mainCpuUs: number;
  /** Milliseconds from a pair's start to its set's callback. */
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** Pairs that could not start on time (all sessions busy): the store did not keep up. */
  late: number;
}

// ---------------------------------------------------------------------------------------------
// The driver (child process): `bench/store.ts --drive <kind>`

/** The main thread's CPU time (user + system), ms: not the connection's I/O thread. */
const mainThreadCpuMs = (): number => cpuMs(process.pid, process.pid) ?? NaN;

async function drive(kind: Kind): Promise<void> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const session = require('express-session') as typeof import('express-session');
  const store = await makeStore(kind);
  type Data = import('express-session').SessionData & { count: number };
  const get = (sid: string): Promise<Data> =>
    new Promise((resolve, reject) => store.get(sid, (err, s) => (err ? reject(err) : s ? resolve(s as Data) : reject(new Error(`session ${sid} is missing`)))));
  const set = (sid: string, s: Data): Promise<void> => new Promise((resolve, reject) => store.set(sid, s, (err) => (err ? reject(err) : resolve())));

  // A session as express-session hands it to a store: its Cookie, and the app's data.
  const sids = Array.from({ length: SESSIONS }, (_, i) => `bench-store-${process.pid}-${i}`);
  // (@types/express-session leaves out the constructor's options.)
  const CookieWithOptions = session.Cookie as unknown as new (o: object) => import('express-session').Cookie;
  for (const sid of sids) {
    const cookie = new CookieWithOptions({ maxAge: 86_400_000, httpOnly: true, path: '/' });
    await set(sid, { cookie, count: 0 } as unknown as Data);
  }
  const busy = new Set<string>();

  const round = (seconds: number): Promise<Round> =>
    new Promise((resolve) => {
      // Preallocated, so that the harness allocates nothing per pair: with a growing array the
      // ErlangStore driver's young-generation collections ran long (4 rounds: 43 over 2 ms,
      // 264 ms of GC in all; preallocated: none over 2 ms, 120 ms) and its p99 read 4.7 ms
      // instead of 1.3 ms. That was the harness's cost, not the store's.
      const latencies = new Float64Array(Math.ceil(RATE * seconds) + 1);
      let measured = 0;
      let started = 0;
      let done = 0;
      let errors = 0;
      let late = 0;
      let next = 0;
      const cpu0 = mainThreadCpuMs();
      const t0 = performance.now();
      const pair = (sid: string): void => {
        const at = performance.now();
        busy.add(sid);
        get(sid)
          .then((s) => {
            s.count++;
            return set(sid, s);
          })
          .then(
            () => void (latencies[measured++] = performance.now() - at),
            () => errors++,
          )
          .finally(() => {
            busy.delete(sid);
            done++;
          });
      };
      const tick = (): void => {
        const now = performance.now();
        if (now - t0 >= seconds * 1000) {
          const finish = (): void => {
            if (busy.size > 0) return void setTimeout(finish, 1);
            const cpu = mainThreadCpuMs() - cpu0;
            resolve({
              pairsPerSecond: done / seconds,
              mainCpuUs: done === 0 ? 0 : (cpu * 1000) / done,
              p50Ms: measured ? percentile(latencies.subarray(0, measured), 50) : 0,
              p99Ms: measured ? percentile(latencies.subarray(0, measured), 99) : 0,
              errors,
              late,
            });
          };
          finish();
          return;
        }
        const due = Math.floor(((now - t0) * RATE) / 1000);
        while (started < due) {
          started++;
          // The next session not in use; none free: the pair is late (counted, not queued).
          let sid: string | undefined;
          for (let k = 0; k < SESSIONS && sid === undefined; k++) {
            const c = sids[next++ % SESSIONS]!;
            if (!busy.has(c)) sid = c;
          }
          if (sid === undefined) late++;
          else pair(sid);
        }
        setTimeout(tick, 1);
      };
      tick();
    });

  await round(WARMUP_S);
  process.stdout.write('ready\n');
  const rl = createInterface({ input: process.stdin });
  for await (const line of rl) {
    if (line === 'round') process.stdout.write(`${JSON.stringify(await round(ROUND_S))}\n`);
  }
  // stdin closed: the run is over.
  process.exit(0);
}

// ---------------------------------------------------------------------------------------------
// The run (this process)

interface Driver {
  kind: Kind;
  child: ChildProcess;
  lines: Interface;
  rounds: Round[];
}

async function startDriver(kind: Kind, env: NodeJS.ProcessEnv): Promise<Driver> {
  const child = spawn(process.execPath, ['--import', 'tsx', __filename, '--drive', kind, ...process.argv.slice(2)], {
    cwd: ROOT,
    env: { ...process.env, ...env, NODE_ENV: 'production' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  await waitForLine(child, /^ready$/, `the ${kind} driver`);
  return { kind, child, lines: createInterface({ input: child.stdout! }), rounds: [] };
}

function timedRound(d: Driver): Promise<Round> {
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`the ${d.kind} driver exited (${code})`));
    d.child.once('exit', onExit);
    d.lines.once('line', (line) => {
      d.child.off('exit', onExit);
      resolve(JSON.parse(line) as Round);
    });
    d.child.stdin!.write('round\n');
  });
}

async function stopDriver(d: Driver): Promise<void> {
  if (d.child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => d.child.kill('SIGKILL'), 5000);
    d.child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    d.child.stdin!.end();
  });
}

async function main(): Promise<void> {
  const notes: string[] = [];
  let node: ErlangNode | undefined;
  let redis: Redis | null = null;
  const drivers: Driver[] = [];
  const storeCpu: Partial<Record<Kind, number[]>> = {};
  try {
    node = await startSessionNode(EBIN);
    if (wanted('redis')) redis = await startRedis(notes);
    const envs: Array<[Kind, NodeJS.ProcessEnv]> = [['memory', {}]];
    if (wanted('erlang')) envs.push(['erlang', { BENCH_ERL_NODE: node.name, BENCH_ERL_COOKIE: node.cookie }]);
    if (redis) envs.push(['redis', { BENCH_REDIS_PORT: String(redis.port) }]);
    for (const [kind, env] of envs) {
      log(`${LABELS[kind]}: starting, warm-up ${WARMUP_S} s`);
      drivers.push(await startDriver(kind, env));
    }
    const serverPid = (k: Kind): number | undefined => (k === 'erlang' ? node!.pid : k === 'redis' ? redis?.pid : undefined);
    for (let n = 0; n < ROUNDS; n++) {
      for (let i = 0; i < drivers.length; i++) {
        const d = drivers[(n + i) % drivers.length]!;
        const s0 = cpuMs(serverPid(d.kind));
        const r = await timedRound(d);
        const s1 = cpuMs(serverPid(d.kind));
        if (s0 !== undefined && s1 !== undefined && r.pairsPerSecond > 0) {
          (storeCpu[d.kind] ??= []).push(((s1 - s0) * 1000) / (r.pairsPerSecond * ROUND_S));
        }
        d.rounds.push(r);
        log(`round ${n + 1}/${ROUNDS}, ${LABELS[d.kind]}: ${r.mainCpuUs.toFixed(1)} µs of main-thread CPU per get + set, p99 ${r.p99Ms.toFixed(2)} ms`);
      }
    }
  } finally {
    for (const d of drivers) await stopDriver(d);
    await redis?.stop();
    await node?.stop();
  }

  const med = (d: Driver, f: (r: Round) => number): number => median(d.rounds.map(f));
  const byKind = new Map(drivers.map((d) => [d.kind, d]));
  const cpuOf = (k: Kind): number | undefined => {
    const d = byKind.get(k);
    return d === undefined ? undefined : med(d, (r) => r.mainCpuUs);
  };
  const redisCpu = cpuOf('redis');
  const memoryCpu = cpuOf('memory')!;
  const rows: Row[] = (['erlang', 'redis', 'memory'] as const)
    .filter((k) => byKind.has(k))
    .map((k) => {
      const d = byKind.get(k)!;
      const cpu = med(d, (r) => r.mainCpuUs);
      const errors = d.rounds.reduce((n, r) => n + r.errors, 0);
      const late = d.rounds.reduce((n, r) => n + r.late, 0);
      if (errors + late > 0) notes.push(`${LABELS[k]}: ${errors} failed pairs, ${late} pairs that could not start on time`);
      return {
        store: LABELS[k],
        'get + set /s': Math.round(med(d, (r) => r.pairsPerSecond)),
        'main-thread CPU µs per get + set': cpu,
        'vs connect-redis': redisCpu === undefined ? null : `${(cpu / redisCpu).toFixed(2)}×`,
        'vs MemoryStore': `${(cpu / memoryCpu).toFixed(2)}×`,
        'p50 ms': med(d, (r) => r.p50Ms),
        'p99 ms': med(d, (r) => r.p99Ms),
        'store server CPU µs per get + set': storeCpu[k] === undefined ? null : median(storeCpu[k]!),
      };
    });
  // Round n of each store ran within seconds of the others' round n: ratios round by round.
  const perRound = (a: Kind, b: Kind): number[] | null => {
    const x = byKind.get(a);
    const y = byKind.get(b);
    return x === undefined || y === undefined ? null : x.rounds.map((r, i) => Number((r.mainCpuUs / y.rounds[i]!.mainCpuUs).toFixed(3)));
  };
  const roundRatios = { 'ErlangStore / connect-redis': perRound('erlang', 'redis'), 'ErlangStore / MemoryStore': perRound('erlang', 'memory') };
  report(
    `A store's own cost per express-session request (get + set of a session), ${RATE} pairs/s offered over ${SESSIONS} sessions; ${ROUNDS} rounds of ${ROUND_S} s per store in rotating order (medians; CPU: lower is better)`,
    rows,
    { machine: machine(), rate: RATE, sessions: SESSIONS, rounds: ROUNDS, roundSeconds: ROUND_S, roundRatios, results: Object.fromEntries(drivers.map((d) => [d.kind, d.rounds])), notes },
  );
  if (!wantJson()) {
    for (const [what, ratios] of Object.entries(roundRatios)) {
      if (ratios !== null) console.log(`\n${what}, main-thread CPU round by round: ${ratios.map((x) => `${x.toFixed(2)}×`).join(' ')}`);
    }
    printFooter(notes);
  }
}

runAs('drive', drive, main);
