/**
 * What the session benchmarks (bench:session, bench:store) share: the stores they compare, made in
 * a child process from what the parent put in its environment, and their command-line options.
 */
import type { Store } from 'express-session';
import { SERVER_VM_ARGS } from '../dist/cli/server-options';
import { startNode, type ErlangNode } from '../test/support/erlang-node';
import { machine } from './harness';

export type StoreKind = 'erlang' | 'redis' | 'memory';

export const STORE_LABELS: Record<StoreKind, string> = {
  erlang: 'ErlangStore (erl-peb, ETS)',
  redis: 'connect-redis (redis-server)',
  memory: 'MemoryStore (in process)',
};

/**
 * A node running the session server (ETS), with the flags `erl-peb server start` gives it
 * (SERVER_VM_ARGS: delay_send on distribution sockets, schedulers that do not busy-wait);
 * BENCH_ERL_ARGS='...' replaces those flags (BENCH_ERL_ARGS='' for Erlang's defaults).
 */
export async function startSessionNode(ebin: string): Promise<ErlangNode> {
  const env = process.env.BENCH_ERL_ARGS;
  const node = await startNode({ codePaths: [ebin], args: env !== undefined ? env.split(' ').filter(Boolean) : [...SERVER_VM_ARGS] });
  const started = await node.evalText('erl_peb:start_server(#{backend => ets})');
  if (started !== 'ok') {
    await node.stop();
    throw new Error(`the session server did not start: ${started}`);
  }
  return node;
}

/** `--name N` on the command line: a positive integer, or `fallback`. */
export function intFlag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(process.argv[i + 1]);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} takes a positive integer`);
  return n;
}

/** `--only erlang,redis`: whether a store is wanted (all are without the option). */
export function wantedStores(): (kind: StoreKind) => boolean {
  const i = process.argv.indexOf('--only');
  const only = i < 0 ? undefined : new Set(process.argv[i + 1]!.split(','));
  return (kind) => only === undefined || only.has(kind);
}

/**
 * The store of `kind`, with its defaults, as an app would make it: ErlangStore against
 * BENCH_ERL_NODE (cookie BENCH_ERL_COOKIE), connect-redis with a node-redis client of the
 * redis-server on BENCH_REDIS_PORT, express-session's MemoryStore.
 */
export async function makeStore(kind: StoreKind): Promise<Store> {
  /* eslint-disable @typescript-eslint/no-require-imports */
  if (kind === 'erlang') {
    const { ErlangStore } = require('../dist/express') as typeof import('../dist/express');
    return new ErlangStore({ connect: { node: process.env.BENCH_ERL_NODE!, cookie: process.env.BENCH_ERL_COOKIE!, config: false } });
  }
  if (kind === 'redis') {
    const { createClient } = require('redis') as typeof import('redis');
    const { RedisStore } = require('connect-redis') as typeof import('connect-redis');
    const client = createClient({ url: `redis://127.0.0.1:${process.env.BENCH_REDIS_PORT}` });
    await client.connect();
    return new RedisStore({ client });
  }
  const { MemoryStore } = require('express-session') as typeof import('express-session');
  return new MemoryStore();
  /* eslint-enable @typescript-eslint/no-require-imports */
}

/** Under a session benchmark's table: its notes, and the machine it ran on. */
export function printFooter(notes: string[]): void {
  if (notes.length > 0) console.log(`\n${notes.join('\n')}`);
  const m = machine();
  console.log(`\nNode ${m.node}, ${m.cores} × ${m.cpu}`);
}

/**
 * Runs `child(kind)` in a process started with `--<role> <kind>` (a benchmark's child process),
 * else `main()`; a failure ends the process with code 1.
 */
export function runAs(role: string, child: (kind: StoreKind) => Promise<void>, main: () => Promise<void>): void {
  const at = process.argv.indexOf(`--${role}`);
  const run = at >= 0 ? child(process.argv[at + 1] as StoreKind) : main();
  run.catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
}
