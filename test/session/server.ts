/**
 * A real session server for the session tests: an Erlang node (test/support/erlang-node.ts) with
 * erl_peb started in it, ETS backend unless told otherwise.
 */
import path from 'node:path';
import { startNode, type ErlangNode, type StartNodeOptions } from '../support/erlang-node';

export const ebin = path.join(__dirname, '..', '..', 'erlang', 'ebin');

/** Starts a node and the session server in it (`options`: an Erlang map expression for start_server/1). */
export async function startSessionServer(
  serverOptions = '#{backend => ets}',
  nodeOptions: StartNodeOptions = {},
): Promise<ErlangNode> {
  const node = await startNode({ ...nodeOptions, codePaths: [ebin, ...(nodeOptions.codePaths ?? [])] });
  const started = await node.evalText(`erl_peb:start_server(${serverOptions})`);
  if (started !== 'ok') {
    await node.stop();
    throw new Error(`the session server did not start on ${node.name}: ${started}`);
  }
  return node;
}

/** Waits for a condition another process brings about, polling it (never a fixed sleep). */
export async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
