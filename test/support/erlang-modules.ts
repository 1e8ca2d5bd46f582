/**
 * Compiles Erlang modules for a test into a fresh temporary directory (pass it to startNode as a
 * code path). Uses the same `erlc` the node runs with.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { erlangEnv } from './erlang-node';

const run = promisify(execFile);

export const ROOT = join(__dirname, '..', '..');
/** The registered gen_server the rpc benchmark calls. */
export const BENCH_ECHO = join(ROOT, 'bench', 'erlang', 'erl_peb_bench_echo.erl');
/** Helpers of the connection tests (a mirror process, a crashing gen_server, big terms). */
export const CONN_TEST = join(__dirname, 'erlang', 'erl_peb_conn_test.erl');

export interface CompiledModules {
  dir: string;
  remove(): Promise<void>;
}

export async function compileErlang(sources: string[]): Promise<CompiledModules> {
  const dir = await mkdtemp(join(tmpdir(), 'erlpeb-beam-'));
  try {
    await run(process.env.ERLC || 'erlc', ['-o', dir, ...sources], { env: erlangEnv() });
  } catch (e) {
    await rm(dir, { recursive: true, force: true });
    const err = e as { stderr?: string; stdout?: string; message: string };
    throw new Error(`erlc failed: ${err.stdout ?? ''}${err.stderr ?? err.message}`);
  }
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}
