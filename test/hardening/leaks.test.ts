/**
 * Native code that leaks takes a long-running server down slowly: a million codec calls and
 * thousands of connect/close cycles must leave the resident memory where it was. Each loop runs in a
 * child process of its own (fixtures/leak-child.ts, with --expose-gc), which notes its RSS after a
 * warm-up and a full collection, and again after the loop and another collection.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { run } from '../support/run';

const CHILD = join(__dirname, 'fixtures', 'leak-child.ts');
const MB = 1024 * 1024;
// Generous: the allocator and V8 keep some memory they touched once. A leak of even a few dozen
// bytes per iteration would pass it many times over.
const MAX_GROWTH = 64 * MB;

interface Measured {
  iterations: number;
  rssBefore: number;
  rssAfter: number;
}

async function runChild(mode: 'codec' | 'connect', count: number, env: NodeJS.ProcessEnv = {}): Promise<Measured> {
  const r = await run(process.execPath, ['--expose-gc', '--import', 'tsx', CHILD, mode, String(count)], {
    cwd: join(__dirname, '..', '..'),
    env: { ...process.env, ...env },
  });
  if (r.code !== 0) throw new Error(`leak-child ${mode} ended with ${r.code ?? r.signal}: ${r.stderr}`);
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as Measured;
  } catch {
    throw new Error(`leak-child ${mode} printed no measurement: ${r.stdout}${r.stderr}`);
  }
}

function describeGrowth(m: Measured): string {
  const mb = (n: number) => (n / MB).toFixed(1);
  return `${m.iterations} iterations: RSS ${mb(m.rssBefore)} MB -> ${mb(m.rssAfter)} MB (${mb(m.rssAfter - m.rssBefore)} MB)`;
}

describe('resident memory stays flat', () => {
  let node: ErlangNode;

  beforeAll(async () => {
    node = await startNode();
  });

  afterAll(() => node?.stop());

  it('over 1,000,000 native encode/decode round trips of a session', async () => {
    const m = await runChild('codec', 1_000_000);
    console.log(`codec: ${describeGrowth(m)}`);
    expect(m.iterations).toBe(1_000_000);
    expect(m.rssAfter - m.rssBefore).toBeLessThan(MAX_GROWTH);
  }, 90_000);

  it('over 10,000 connect/close cycles against one node', async () => {
    const m = await runChild('connect', 10_000, { ERL_PEB_NODE: node.name, ERL_PEB_COOKIE: node.cookie });
    console.log(`connect/close: ${describeGrowth(m)}`);
    expect(m.iterations).toBe(10_000);
    expect(m.rssAfter - m.rssBefore).toBeLessThan(MAX_GROWTH);
  }, 90_000);
});
