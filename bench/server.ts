/**
 * npm run bench:server [-- --json]
 *
 * The session server measured from inside Erlang, for the ETS backend and for the Mnesia backend
 * (ram_copies and disc_copies): each in a fresh node started here, with the server's shipped
 * configuration. The timed loops are in bench/erlang/erl_peb_bench_server.erl (which says what
 * each path is); this script starts the node, calls them one at a time and prints the tables.
 *
 * - operations per second of get and set from 1 and from 64 concurrent processes;
 * - memory per stored session, for a 1 KB payload (a session map, and a 1 KB binary);
 * - the periodic sweep over 1,000,000 expired sessions, and the latency of reads of live
 *   sessions from other processes while it runs and while nothing runs; for ETS, whose server
 *   deletes each batch itself, also with sweep_batch 1000 (the shipped batch is 100), to show
 *   why the batch is small.
 *
 * About three minutes on a 2-core machine, most of it the Mnesia sweeps.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNode, type ErlangNode } from '../test/support/erlang-node';
import { machine, percentile, report, wantJson, type Row } from './harness';

const ROOT = join(__dirname, '..');
const BENCH_MODULE = join(__dirname, 'erlang', 'erl_peb_bench_server.erl');
/** Sessions in the table while get and set are timed (the ids they use). */
const LIVE = 10_000;
const CALLERS = [1, 64] as const;
/** Three windows of 300 ms per figure; the median window is shown. */
const WINDOWS = '{3, 300}';
const EXPIRED = 1_000_000;

interface Backend {
  label: string;
  /** erl_peb:start_server/1 options; DIR is replaced by a fresh data directory. */
  options: string;
  /** Sessions written for the memory figure (disc_copies writes are fsynced: fewer). */
  memorySessions: number;
  /** sweep_batch settings timed in a second sweep beside the shipped one. */
  otherBatches?: number[];
}

const BACKENDS: Backend[] = [
  // With ETS the server itself deletes each batch: a larger batch is shown, for what it does to reads.
  { label: 'ETS', options: '#{backend => ets}', memorySessions: 10_000, otherBatches: [1000] },
  { label: 'Mnesia ram_copies', options: '#{backend => mnesia, copies => ram_copies, data_dir => "DIR"}', memorySessions: 10_000 },
  { label: 'Mnesia disc_copies', options: '#{backend => mnesia, copies => disc_copies, data_dir => "DIR"}', memorySessions: 3_000 },
];

const OPS = [
  { op: 'get_direct', name: 'get', path: 'erl_peb:get/1 (reads the table in the caller)' },
  { op: 'get_call', name: 'get', path: 'erl_peb:call({get, Id}) (gen_server call)' },
  { op: 'set', name: 'set', path: 'erl_peb:set/3 ({set, Id, Data, default}, gen_server call)' },
] as const;

const log = (s: string): void => {
  if (!wantJson()) process.stderr.write(`${s}\n`);
};

/** Calls erl_peb_bench_server:F(Args) in the node; the function's map comes back as JSON. */
async function bench<T>(node: ErlangNode, call: string): Promise<T> {
  const etf = await node.eval(`erl_peb_bench_server:json(erl_peb_bench_server:${call})`);
  // 131, BINARY_EXT (109), 4-byte length, the JSON text.
  if (etf[0] !== 131 || etf[1] !== 109) throw new Error(`unexpected reply to ${call}`);
  return JSON.parse(etf.subarray(6, 6 + etf.readUInt32BE(2)).toString('utf8')) as T;
}

interface OpsResult {
  ops_per_s: number;
  rounds: number[];
}
interface MemoryResult {
  sessions: number;
  payload_bytes: number;
  table_bytes_per_session: number;
  binary_bytes_per_session: number;
  total_bytes_per_session: number;
}
interface SweepResult {
  expired: number;
  live: number;
  fill_ms: number;
  late: boolean;
  sweep_interval: number | string;
  sweep_batch: number;
  pass_removed: number;
  pass_ms: number;
  expired_to_removed_ms: number;
  latency_us: Record<'get_direct' | 'get_call', { during: number[]; idle: number[] }>;
}
interface Parallelism {
  schedulers: number;
  speedup: number;
}

const opsRows: Row[] = [];
const memoryRows: Row[] = [];
const sweepRows: Row[] = [];
const latencyRows: Row[] = [];
let parallelism: Parallelism | undefined;

async function run(backend: Backend, beams: string): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'erl-peb-bench-mnesia-'));
  const node = await startNode({ codePaths: [join(ROOT, 'erlang', 'ebin'), beams] });
  const start = async (extra = ''): Promise<void> => {
    const options = backend.options.replace('DIR', dataDir).replace(/}$/, `${extra}}`);
    const started = await node.evalText(`erl_peb:start_server(${options})`);
    if (started !== 'ok') throw new Error(`${backend.label}: the server did not start: ${started}`);
  };
  try {
    await start();
    if (!parallelism) parallelism = await bench<Parallelism>(node, 'parallelism()');

    // First, while the table has never held anything but these sessions.
    log(`${backend.label}: memory`);
    for (const kind of ['session', 'binary'] as const) {
      const m = await bench<MemoryResult>(node, `memory(${kind}, ${backend.memorySessions})`);
      memoryRows.push({
        backend: backend.label,
        payload: kind === 'session' ? 'session map (1024 B as ETF)' : '1 KB binary',
        sessions: m.sessions,
        'table, B/session': m.table_bytes_per_session,
        'off-heap binaries, B/session': m.binary_bytes_per_session,
        'total, B/session': m.total_bytes_per_session,
      });
    }

    log(`${backend.label}: get and set`);
    await bench(node, `populate(${LIVE}, session)`);
    for (const o of OPS) {
      const row: Row = { backend: backend.label, op: o.name, path: o.path };
      for (const c of CALLERS) {
        const r = await bench<OpsResult>(node, `ops(${o.op}, ${c}, ${WINDOWS})`);
        row[`${c} caller${c > 1 ? 's' : ''}, ops/s`] = Math.round(r.ops_per_s);
      }
      opsRows.push(row);
    }

    // The live sessions written above are the ones read during the sweep.
    await sweep(backend, node);
    for (const batch of backend.otherBatches ?? []) {
      await node.evalText('erl_peb:stop()');
      await start(`, sweep_batch => ${batch}`);
      await bench(node, `populate(${LIVE}, session)`);
      await sweep(backend, node);
    }
  } finally {
    await node.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function sweep(backend: Backend, node: ErlangNode): Promise<void> {
  log(`${backend.label}: sweep of ${EXPIRED.toLocaleString('en')} expired sessions`);
  const s = await bench<SweepResult>(node, `sweep(${EXPIRED})`);
  sweepRows.push({
    backend: backend.label,
    'expired sessions': s.pass_removed,
    sweep_batch: s.sweep_batch,
    'sweep_interval, ms': s.sweep_interval,
    'pass, ms': s.pass_ms,
    'removed/s': Math.round((s.pass_removed / s.pass_ms) * 1000),
    'expiry → all removed, ms': s.expired_to_removed_ms,
    note: s.pass_removed < s.expired ? `the last of several passes (${s.expired} expired)` : null,
  });
  for (const [path, label] of [['get_direct', 'erl_peb:get/1'], ['get_call', 'erl_peb:call({get, Id})']] as const) {
    const { idle, during } = s.latency_us[path];
    latencyRows.push({
      backend: backend.label,
      sweep_batch: s.sweep_batch,
      read: label,
      'idle p50, µs': percentile(idle, 50),
      'idle p99, µs': percentile(idle, 99),
      'during sweep p50, µs': percentile(during, 50),
      'during sweep p99, µs': percentile(during, 99),
      'reads (idle / during)': `${idle.length} / ${during.length}`,
    });
  }
}

async function main(): Promise<void> {
  const t0 = Date.now();
  // The server's own build (nothing to do when up to date); its output is not part of the report.
  execFileSync(process.execPath, [join(ROOT, 'scripts', 'build-erlang.js')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const beams = mkdtempSync(join(tmpdir(), 'erl-peb-bench-beam-'));
  try {
    execFileSync(process.env.ERLC || 'erlc', ['-I', join(ROOT, 'erlang', 'src'), '-o', beams, BENCH_MODULE], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    for (const b of BACKENDS) await run(b, beams);
  } finally {
    rmSync(beams, { recursive: true, force: true });
  }

  const env = {
    machine: machine(),
    erlang: {
      schedulers: parallelism?.schedulers,
      twoProcessSpeedup: parallelism && Number(parallelism.speedup.toFixed(2)),
      loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    },
    seconds: Math.round((Date.now() - t0) / 1000),
  };
  report(
    'Session server throughput inside Erlang, operations/s (higher is better; median of 3 windows of 300 ms; ' +
      `${LIVE.toLocaleString('en')} sessions with a 1 KB session map; 64 callers = 64 Erlang processes)`,
    opsRows,
    env,
  );
  report(
    'Memory per stored session (table: ets:info / mnesia:table_info memory × wordsize; off-heap binaries: ' +
      'erlang:memory(binary); both over N sessions minus the empty table)',
    memoryRows,
    env,
  );
  report(
    `The periodic sweep over ${EXPIRED.toLocaleString('en')} expired sessions (shipped configuration, and ETS with a ` +
      'other sweep_batch; "expiry → all removed" includes the wait for the next pass)',
    sweepRows,
    env,
  );
  report(
    `Latency of a get of a live session from another process (one read per ms per path), with no sweep running and during the sweep above`,
    latencyRows,
    env,
  );
  if (!wantJson()) {
    console.log(
      `\n${env.machine.cpu}, ${env.machine.cores} cores, ${env.erlang.schedulers} schedulers; ` +
        `two busy Erlang processes did ${env.erlang.twoProcessSpeedup}× the work of one; ` +
        `load average ${env.erlang.loadAverage1m}; ${env.seconds} s in all.`,
    );
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
