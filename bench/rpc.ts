/**
 * npm run bench:rpc [-- --json] [-- --quick]
 *
 * One connection to a local Erlang node: the round trip of one call at a time, and throughput
 * with 1, 16, 64 and 256 calls in flight, for `call` (a gen_server call to the registered
 * erl_peb_bench_echo) and `rpc` (erlang:node/0 through rex). Beside it, the same calls made by
 * bench/c/ei_bench.c over the same libei (compiled here with the system cc), which is the floor
 * for the addon's overhead, and ioredis GET against a local redis-server when both are installed.
 * Each figure is the median of three runs, erl-peb and C interleaved.
 *
 * A second table gives the floor any Node client stands on: a 32-byte TCP echo over loopback,
 * one message at a time, from a Node net.Socket and from C (bench/c/tcp_echo.c, also the server),
 * without Erlang or ei. What Node's event loop adds to that round trip is part of every Node
 * client's round trip, erl-peb's and ioredis's alike.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type Connection } from '../dist/connection';
import { startNode, type ErlangNode } from '../test/support/erlang-node';
import { machine, median, progress as log, report, wantJson, type Row } from './harness';
import { freePort } from './processes';

const quick = process.argv.includes('--quick');
const ROUNDS = 3;
const INFLIGHT = [1, 16, 64, 256] as const;
/** Calls per timed run, by calls in flight (about a second each on a 2-core machine). */
const CALLS: Record<number, number> = quick ? { 1: 2000, 16: 10_000, 64: 20_000, 256: 20_000 } : { 1: 10_000, 16: 50_000, 64: 100_000, 256: 100_000 };
const ECHO = join(__dirname, 'erlang', 'erl_peb_bench_echo.erl');
const EI_BENCH = join(__dirname, 'c', 'ei_bench.c');
const TCP_ECHO = join(__dirname, 'c', 'tcp_echo.c');
/** Round trips per timed run of the TCP echo floor. */
const ECHO_CALLS = quick ? 5000 : 20_000;

const notes: string[] = [];

type Op = () => Promise<unknown>;

/** Calls per second with `inflight` calls kept in flight until `calls` have completed. */
async function throughput(op: Op, inflight: number, calls: number): Promise<number> {
  let started = 0;
  let done = 0;
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const next = (): void => {
      if (started === calls) {
        if (done === calls) resolve();
        return;
      }
      started++;
      op().then(() => {
        done++;
        next();
      }, reject);
    };
    for (let i = 0; i < inflight; i++) next();
  });
  return calls / (Number(process.hrtime.bigint() - t0) / 1e9);
}

/** Microseconds per call, one call at a time. */
async function latency(op: Op, calls: number): Promise<number> {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < calls; i++) await op();
  return Number(process.hrtime.bigint() - t0) / 1e3 / calls;
}

function eiDir(): string | null {
  const r = spawnSync('erl', ['-noshell', '-eval', 'io:format("~s",[code:lib_dir(erl_interface)])', '-s', 'init', 'stop'], {
    encoding: 'utf8',
  });
  return r.status === 0 && r.stdout ? r.stdout : null;
}

/** Compiles a C program of bench/c with the system cc; null (with a note) when it cannot. */
function buildC(dir: string, src: string, name: string, args: string[], column: string): string | null {
  const bin = join(dir, name);
  const cc = process.env.CC || 'cc';
  const r = spawnSync(cc, ['-O2', '-o', bin, src, ...args], { encoding: 'utf8' });
  if (r.status !== 0) {
    notes.push(`${column} skipped: ${cc} failed: ${(r.stderr || r.error?.message || '').trim()}`);
    return null;
  }
  return bin;
}

/** Builds bench/c/ei_bench.c against the libei the addon links; null (with a note) when it cannot. */
function buildCBench(dir: string): string | null {
  const ei = eiDir();
  if (ei === null) {
    notes.push('C column skipped: erl_interface not found');
    return null;
  }
  // _REENTRANT: the thread-safe libei keeps erl_errno per thread, as in the addon's build.
  return buildC(dir, EI_BENCH, 'ei_bench', ['-D_REENTRANT', `-I${ei}/include`, `${ei}/lib/libei.a`, '-lpthread'], 'C column');
}

function cRun(bin: string, node: ErlangNode, mode: 'call' | 'rpc', inflight: number, calls: number): number {
  const out = execFileSync(bin, [node.name, node.cookie, mode, String(inflight), String(calls)], { encoding: 'utf8' });
  const r = JSON.parse(out) as { calls: number; seconds: number };
  return r.calls / r.seconds;
}

// ioredis against a local redis-server, when both are there (neither is a dependency of erl-peb).
interface RedisPeer {
  get: Op;
  stop(): Promise<void>;
}

async function startRedis(): Promise<RedisPeer | null> {
  let Redis: new (options: object) => {
    get(k: string): Promise<unknown>;
    set(k: string, v: string): Promise<unknown>;
    ping(): Promise<unknown>;
    quit(): Promise<unknown>;
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    Redis = require('ioredis');
  } catch {
    notes.push('ioredis column skipped: ioredis is not installed');
    return null;
  }
  if (spawnSync('redis-server', ['--version']).status !== 0) {
    notes.push('ioredis column skipped: no redis-server on PATH');
    return null;
  }
  const port = await freePort();
  const server: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // Ready when it says so (it logs to stdout).
  await new Promise<void>((resolve, reject) => {
    let seen = '';
    server.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      if (seen.includes('Ready to accept connections')) resolve();
    });
    server.on('exit', (code) => reject(new Error(`redis-server exited (${code}) before it was ready`)));
  });
  server.stdout!.resume();
  const client = new Redis({ port, host: '127.0.0.1' });
  await client.ping();
  await client.set('erl-peb-bench', 'ping');
  return {
    get: () => client.get('erl-peb-bench'),
    async stop() {
      await client.quit();
      server.kill();
    },
  };
}

interface EchoServer {
  port: number;
  stop(): void;
}

async function startEcho(bin: string): Promise<EchoServer> {
  const server = spawn(bin, ['server'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: server.stdout! });
    lines.once('line', (line) => {
      const m = /^ready (\d+)$/.exec(line);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`tcp_echo server said ${JSON.stringify(line)}`));
    });
    server.once('exit', (code) => reject(new Error(`tcp_echo server exited (${code}) before it was ready`)));
  });
  return { port, stop: () => server.kill() };
}

/** Microseconds per round trip of a 32-byte message from a Node net.Socket, one at a time. */
function nodeEcho(port: number, calls: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const msg = Buffer.alloc(32, 'x');
    const sock = netConnect(port, '127.0.0.1');
    sock.setNoDelay(true);
    let done = 0;
    let got = 0;
    let t0 = 0n;
    sock.on('error', reject);
    sock.on('connect', () => {
      t0 = process.hrtime.bigint();
      sock.write(msg);
    });
    sock.on('data', (d: Buffer) => {
      got += d.length;
      while (got >= 32) {
        got -= 32;
        if (++done === calls) {
          const us = Number(process.hrtime.bigint() - t0) / 1e3 / calls;
          sock.destroy();
          resolve(us);
          return;
        }
        sock.write(msg);
      }
    });
  });
}

function cEcho(bin: string, port: number, calls: number): number {
  const r = JSON.parse(execFileSync(bin, ['client', String(port), String(calls)], { encoding: 'utf8' })) as { calls: number; seconds: number };
  return (r.seconds * 1e6) / r.calls;
}

function med(xs: number[]): number | null {
  return xs.length === 0 ? null : median(xs);
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'erlpeb-bench-'));
  let node: ErlangNode | undefined;
  let conn: Connection | undefined;
  let redis: RedisPeer | null = null;
  let echo: EchoServer | undefined;
  try {
    execFileSync(process.env.ERLC || 'erlc', ['-o', work, ECHO]);
    const cBin = buildCBench(work);
    node = await startNode({ codePaths: [work] });
    await node.eval('{ok, _} = erl_peb_bench_echo:start()');
    conn = await connect({ node: node.name, cookie: node.cookie, config: false, callTimeout: 60_000 });
    redis = await startRedis();
    const echoBin = buildC(work, TCP_ECHO, 'tcp_echo', [], 'TCP echo floor');
    if (echoBin) echo = await startEcho(echoBin);

    const c = conn;
    const ops = {
      call: () => c.call('erl_peb_bench_echo', 'ping'),
      rpc: () => c.rpc('erlang', 'node', []),
    };
    // Warm-up: JIT, buffers, the monitor of each target.
    for (const op of Object.values(ops)) await throughput(op, 64, 20_000);
    if (redis) await throughput(redis.get, 64, 20_000);

    const result = {
      latency: {} as Record<string, { ours: number | null; c: number | null; redis: number | null }>,
      throughput: {} as Record<string, Record<number, { ours: number | null; c: number | null; redis: number | null }>>,
    };
    for (const mode of ['call', 'rpc'] as const) {
      const ours: number[] = [];
      const cs: number[] = [];
      const rs: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ours.push(await latency(ops[mode], CALLS[1]!));
        if (cBin) cs.push(1e6 / cRun(cBin, node, mode, 1, CALLS[1]!));
        if (redis && mode === 'call') rs.push(await latency(redis.get, CALLS[1]!));
      }
      result.latency[mode] = { ours: med(ours), c: med(cs), redis: med(rs) };
      log(`${mode}: round trip ${med(ours)?.toFixed(1)} µs, C ${med(cs)?.toFixed(1)} µs`);
      result.throughput[mode] = {};
      for (const inflight of INFLIGHT) {
        const calls = CALLS[inflight]!;
        const o: number[] = [];
        const cc: number[] = [];
        const rr: number[] = [];
        for (let r = 0; r < ROUNDS; r++) {
          o.push(await throughput(ops[mode], inflight, calls));
          if (cBin) cc.push(cRun(cBin, node, mode, inflight, calls));
          if (redis && mode === 'call') rr.push(await throughput(redis.get, inflight, calls));
        }
        result.throughput[mode][inflight] = { ours: med(o), c: med(cc), redis: med(rr) };
        log(`${mode}: ${inflight} in flight: ${Math.round(med(o)!)}/s, C ${med(cc) === null ? '–' : Math.round(med(cc)!)}/s`);
      }
    }

    let floor: { node: number | null; c: number | null } | null = null;
    if (echoBin && echo) {
      const port = echo.port;
      await nodeEcho(port, 2000); // warm-up
      cEcho(echoBin, port, 2000);
      const ns: number[] = [];
      const cs: number[] = [];
      for (let r = 0; r < ROUNDS; r++) {
        ns.push(await nodeEcho(port, ECHO_CALLS));
        cs.push(cEcho(echoBin, port, ECHO_CALLS));
      }
      floor = { node: med(ns), c: med(cs) };
      log(`TCP echo: Node ${floor.node?.toFixed(1)} µs, C ${floor.c?.toFixed(1)} µs`);
    }

    const ratio = (a: number | null, b: number | null): string | null => (a === null || b === null ? null : `${(a / b).toFixed(2)}×`);
    const rows: Row[] = [];
    const lat = result.latency;
    rows.push({
      measure: 'round trip, µs (1 at a time)',
      'erl-peb call': lat.call!.ours,
      'C ei call': lat.call!.c,
      'call vs C': ratio(lat.call!.ours, lat.call!.c),
      'erl-peb rpc': lat.rpc!.ours,
      'C ei rpc': lat.rpc!.c,
      'rpc vs C': ratio(lat.rpc!.ours, lat.rpc!.c),
      'ioredis GET': lat.call!.redis,
    });
    for (const inflight of INFLIGHT) {
      const call = result.throughput.call![inflight]!;
      const rpc = result.throughput.rpc![inflight]!;
      rows.push({
        measure: `calls/s, ${inflight} in flight`,
        'erl-peb call': call.ours,
        'C ei call': call.c,
        'call vs C': ratio(call.ours, call.c),
        'erl-peb rpc': rpc.ours,
        'C ei rpc': rpc.c,
        'rpc vs C': ratio(rpc.ours, rpc.c),
        'ioredis GET': call.redis,
      });
    }
    report(
      'One connection, local Erlang node: round trip (lower is better) and calls per second (higher is better); "vs C": erl-peb ÷ the C program over the same libei',
      rows,
      { machine: machine(), notes, tcpEchoFloorUs: floor },
    );
    if (!wantJson() && floor !== null) {
      report('The floor under any Node client: a 32-byte TCP echo over loopback, one at a time (no Erlang, no ei), same echo server', [
        {
          measure: 'round trip, µs',
          'Node net.Socket': floor.node,
          C: floor.c,
          'Node vs C': ratio(floor.node, floor.c),
          'Node − C, µs': floor.node === null || floor.c === null ? null : floor.node - floor.c,
        },
      ]);
    }
    if (!wantJson() && notes.length > 0) console.log(`\n${notes.join('\n')}`);
  } finally {
    conn?.close();
    await redis?.stop();
    echo?.stop();
    await node?.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exitCode = 1;
});
