import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { run, type Run } from '../support/run';

const CHILD = join(__dirname, 'fixtures', 'lifecycle-child.ts');

let node: ErlangNode;

beforeAll(async () => {
  node = await startNode();
});

afterAll(() => node?.stop());

/** Runs the fixture in a child process (with tsx) and resolves when that process has ended by itself. */
function runChild(mode: string, nodeArgs: string[] = []): Promise<Run> {
  return run(process.execPath, [...nodeArgs, '--import', 'tsx', CHILD, mode], {
    cwd: join(__dirname, '..', '..'),
    env: { ...process.env, ERL_PEB_NODE: node.name, ERL_PEB_COOKIE: node.cookie },
  });
}

describe('connection lifetime', () => {
  it('does not keep a process alive once nothing waits on it', async () => {
    const r = await runChild('idle');
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`called ${node.name}`);
    expect(r).toMatchObject({ code: 0, signal: null });
  });

  it('lets process.exit end a process with open connections and calls in flight', async () => {
    const r = await runChild('exit');
    expect(r.stdout).toContain('exiting');
    expect(r).toMatchObject({ code: 0, signal: null });
  });

  it('sends what was sent in the turn that calls process.exit()', async () => {
    await node.eval('register(lifecycle_inbox, spawn(fun() -> receive M -> receive {get, F} -> F ! M end end end))');
    const r = await runChild('send-exit');
    expect(r).toMatchObject({ code: 0, signal: null });
    expect(await node.evalText('lifecycle_inbox ! {get, self()}, receive M -> M after 5000 -> nothing end')).toBe(
      '<<"sent, then exited">>',
    );
  });

  it('closes a connection the garbage collector takes, and keeps one that something waits on', async () => {
    const r = await runChild('gc', ['--expose-gc']);
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('collected');
    expect(r.stdout).toContain('received still here');
    expect(r).toMatchObject({ code: 0, signal: null });
  });

  it('reports a throwing message listener as an uncaught exception, and goes on delivering', async () => {
    const r = await runChild('throwing-listener');
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as Record<string, unknown>;
    expect(out).toEqual({ caught: ['listener failed on 1'], got: ['1', '2', '3', 'last'], after: node.name });
    expect(r).toMatchObject({ code: 0, signal: null });
  });

  it('cleans up after a worker thread that ends or is terminated with a connection open', async () => {
    const r = await runChild('worker');
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain(`worker said ${node.name}`);
    expect(r.stdout).toContain('worker exited 0');
    expect(r.stdout).toContain('worker terminated');
    expect(r.stdout).toContain(`main called ${node.name}`);
    expect(r).toMatchObject({ code: 0, signal: null });
  });
});
