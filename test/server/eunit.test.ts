/**
 * Builds the Erlang session server (scripts/build-erlang.js) with its EUnit tests and runs them in
 * a fresh node: the behaviour suite against ETS and against Mnesia, the sweep, the rpc contract of
 * session_handler, configuration. Passes when EUnit says every test passed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const ebin = path.join(root, 'erlang', 'ebin');

interface Run {
  code: number | null;
  output: string;
}

function run(command: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, output }));
  });
}

describe('EUnit: the Erlang session server', () => {
  let work: string;
  let testBeams: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'erl-peb-eunit-'));
    testBeams = path.join(work, 'ebin');
    const build = await run(process.execPath, [path.join(root, 'scripts', 'build-erlang.js'), '--tests', testBeams], root);
    if (build.code !== 0) throw new Error(`build-erlang.js failed:\n${build.output}`);
  }, 120_000);

  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('passes every EUnit test, against ETS and against Mnesia', async () => {
    const modules = readdirSync(path.join(root, 'erlang', 'test'))
      .filter((f) => f.endsWith('_tests.erl'))
      .map((f) => path.basename(f, '.erl'));
    expect(modules).toContain('erl_peb_tests');
    const expr = [
      `R = eunit:test([${modules.join(', ')}], []),`,
      'erlang:halt(case R of ok -> 0; _ -> 1 end).',
    ].join(' ');
    // A temporary working directory: nothing the tests do lands in the repository.
    const result = await run('erl', ['-noshell', '-pa', ebin, '-pa', testBeams, '-eval', expr], work);
    const summary = result.output
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => /^(All \d+ tests? passed\.|Failed: \d+\.\s+Skipped: \d+\.\s+Passed: \d+\.)/.test(l))
      .pop();
    console.log(`EUnit: ${summary ?? '(no summary line)'}`);
    if (result.code !== 0 || !summary?.startsWith('All ')) console.log(result.output);
    expect(summary).toMatch(/^All \d+ tests passed\.$/);
    expect(result.code).toBe(0);
  }, 120_000);
});
