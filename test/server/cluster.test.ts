/**
 * The Mnesia backend across real nodes on this machine: a three-node cluster under a write load
 * losing a node to `kill -9`, the node's return, disc_copies surviving `kill -9`, the lock lease
 * across the cluster, and the original rpc contract through `rex`.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomNodeName, startNode, type ErlangNode } from '../support/erlang-node';

const root = path.resolve(__dirname, '..', '..');
const ebin = path.join(root, 'erlang', 'ebin');

let work: string;
let testBeams: string;
const nodes: ErlangNode[] = [];

function build(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(root, 'scripts', 'build-erlang.js'), '--tests', testBeams], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`build-erlang.js failed:\n${output}`))));
  });
}

// Log reports (a cluster node going down, Mnesia's warnings) go to stderr: stdout carries the
// eval loop's replies.
const LOG_TO_STDERR = ['-kernel', 'logger', '[{handler, default, logger_std_h, #{config => #{type => standard_error}}}]'];

async function erlNode(name: string, cookie: string, args: string[] = []): Promise<ErlangNode> {
  const node = await startNode({ name, cookie, codePaths: [ebin, testBeams], args: [...LOG_TO_STDERR, ...args] });
  nodes.push(node);
  return node;
}

/** An Erlang string literal for a path. */
const str = (s: string): string => JSON.stringify(s);
const atom = (n: ErlangNode | string): string => `'${typeof n === 'string' ? n : n.name}'`;

async function evalInt(node: ErlangNode, expr: string): Promise<number> {
  const text = await node.evalText(expr);
  if (!/^-?\d+$/.test(text)) throw new Error(`expected an integer from ${expr}, got ${text}`);
  return Number(text);
}

/** Polls an Erlang condition until it holds; a condition another node brings about. */
async function until(node: ErlangNode, expr: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await node.evalTrue(expr))) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms on ${node.name}: ${expr}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function killed(node: ErlangNode): Promise<void> {
  node.signal('SIGKILL');
  await node.exit;
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), 'erl-peb-cluster-'));
  testBeams = path.join(work, 'test-ebin');
  await build();
}, 120_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop().catch(() => undefined)));
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('Mnesia cluster of three nodes', () => {
  const cookie = randomBytes(16).toString('hex');
  const names = [randomNodeName('erlpeb_a'), randomNodeName('erlpeb_b'), randomNodeName('erlpeb_c')];
  let a: ErlangNode;
  let b: ErlangNode;
  let c: ErlangNode;
  const dir = (n: string): string => path.join(work, n.split('@')[0]);
  const options = (n: string, join?: string): string =>
    `#{backend => mnesia, data_dir => ${str(dir(n))}, sweep_interval => 1000${join ? `, join => ${atom(join)}` : ''}}`;

  beforeAll(async () => {
    [a, b, c] = await Promise.all(names.map((n) => erlNode(n, cookie)));
    expect(await a.evalText(`erl_peb:start_server(${options(a.name)})`)).toBe('ok');
    // b joins as it starts; c starts alone and joins afterwards, dropping its own table.
    expect(await b.evalText(`erl_peb:start_server(${options(b.name, a.name)})`)).toBe('ok');
    expect(await c.evalText(`erl_peb:start_server(${options(c.name)})`)).toBe('ok');
    expect(await c.evalText(`{ok, 1} = erl_peb:set(<<"c-alone">>, x, 60000), erl_peb:join(${atom(a)})`)).toBe('ok');
  }, 60_000);

  it('has all three nodes as members, each with a copy', async () => {
    const members = [...names].sort().map((n) => `'${n}'`).join(',');
    for (const node of [a, b, c]) {
      expect(await node.evalText('{ok, #{members := M}} = erl_peb:status(), M')).toBe(`[${members}]`);
      expect(await node.evalText('{ok, #{replicas := R}} = erl_peb:status(), R')).toBe(`[${members}]`);
    }
    // Written on one node, read from another's own copy.
    expect(await a.evalText('{ok, V} = erl_peb:set(<<"hello">>, #{<<"from">> => <<"a">>}, 60000), V')).toBe('1');
    expect(await c.evalText('{ok, D, _, 1} = erl_peb:get(<<"hello">>), D')).toBe('#{<<"from">> => <<"a">>}');
    // c's sessions from before it joined were replaced by the cluster's.
    expect(await c.evalText('erl_peb:get(<<"c-alone">>)')).toBe('not_found');
  });

  it('keeps every acknowledged write when a node is killed under load, and the node catches up when it returns', async () => {
    const targets = `[${[a, b, c].map(atom).join(', ')}]`;
    // Writers on b and c write through all three servers, a's included.
    await b.eval(`erl_peb_test_load:start(load, ${targets}, 4)`);
    await c.eval(`erl_peb_test_load:start(load, ${targets}, 4)`);
    const ackedBy = async (node: ErlangNode, target: ErlangNode): Promise<number> =>
      evalInt(node, `maps:get(${atom(target)}, erl_peb_test_load:acked(load), 0)`);
    const total = async (): Promise<number> =>
      (await evalInt(b, 'lists:sum(maps:values(erl_peb_test_load:acked(load)))')) +
      (await evalInt(c, 'lists:sum(maps:values(erl_peb_test_load:acked(load)))'));

    // Writes acknowledged by a's server before it dies.
    await until(b, `maps:get(${atom(a)}, erl_peb_test_load:acked(load), 0) >= 200`);
    await until(c, `maps:get(${atom(a)}, erl_peb_test_load:acked(load), 0) >= 200`);
    await killed(a);
    const ackedByA = (await ackedBy(b, a)) + (await ackedBy(c, a));
    // The load goes on against the survivors.
    const atKill = await total();
    const onB = await evalInt(b, 'lists:sum(maps:values(erl_peb_test_load:acked(load)))');
    await until(b, `lists:sum(maps:values(erl_peb_test_load:acked(load))) >= ${onB + 500}`);
    await b.eval('erl_peb_test_load:stop(load)');
    await c.eval('erl_peb_test_load:stop(load)');
    const acked = await total();
    console.log(`cluster: ${acked} writes acknowledged, ${ackedByA} of them by the node killed; ${acked - atKill} after the kill`);

    for (const reader of [b, c]) {
      for (const loader of [b, c]) {
        expect(await evalInt(loader, `erl_peb_test_load:missing(load, ${atom(reader)})`)).toBe(0);
      }
    }
    const status = await b.evalText('{ok, #{running := R}} = erl_peb:status(), R');
    expect(status).not.toContain(a.name);

    // The same name again; it rejoins through b and loads the table from the survivors.
    a = await erlNode(names[0], cookie);
    expect(await a.evalText(`erl_peb:start_server(${options(a.name, b.name)})`)).toBe('ok');
    for (const loader of [b, c]) {
      expect(await evalInt(loader, `erl_peb_test_load:missing(load, ${atom(a)})`)).toBe(0);
    }
    const running = [...names].sort().map((n) => `'${n}'`).join(',');
    expect(await a.evalText('{ok, #{running := R}} = erl_peb:status(), R')).toBe(`[${running}]`);
    await b.eval('erl_peb_test_load:finish(load)');
    await c.eval('erl_peb_test_load:finish(load)');
  }, 120_000);

  it('50 clients on three nodes incrementing one counter through the lock lease lose no update', async () => {
    const clients = 50;
    const rounds = 8;
    const value = await evalInt(
      b,
      `erl_peb_test_load:hammer(<<"counter">>, [${[a, b, c].map(atom).join(', ')}], ${clients}, ${rounds})`,
    );
    expect(value).toBe(clients * rounds);
    // Every node's copy agrees.
    for (const node of [a, b, c]) {
      expect(await node.evalText('{ok, N, _, _} = erl_peb:get(<<"counter">>), N')).toBe(String(clients * rounds));
    }
  }, 120_000);

  it('answers the original contract through rex, with ids and data as Erlang strings', async () => {
    // rpc:call to another node goes through that node's rex server, as mypeb's peb_rpc does.
    expect(await b.evalText(`rpc:call(${atom(c)}, session_handler, write, ["php-sid-1", "count|i:1;"])`)).toBe('ok');
    expect(await a.evalText(`rpc:call(${atom(b)}, session_handler, read, ["php-sid-1"])`)).toBe('<<"count|i:1;">>');
    expect(await a.evalText(`rpc:call(${atom(c)}, session_handler, read, ["unknown"])`)).toBe('<<>>');
    expect(await c.evalText(`rpc:call(${atom(a)}, session_handler, destroy, ["php-sid-1"])`)).toBe('ok');
    expect(await b.evalText('session_handler:read("php-sid-1")')).toBe('<<>>');
  });
});

describe('Mnesia cluster of two nodes with majority writes, partitioned', () => {
  it('refuses writes without a majority, keeps reads, and reports the inconsistent database when the sides meet again', async () => {
    const cookie = randomBytes(16).toString('hex');
    const [p, q] = await Promise.all([
      erlNode(randomNodeName('erlpeb_p'), cookie),
      erlNode(randomNodeName('erlpeb_q'), cookie),
    ]);
    const options = (n: ErlangNode, join?: ErlangNode): string =>
      `#{backend => mnesia, majority => true, data_dir => ${str(path.join(work, n.name.split('@')[0]))}` +
      `${join ? `, join => ${atom(join)}` : ''}}`;
    expect(await p.evalText(`erl_peb:start_server(${options(p)})`)).toBe('ok');
    expect(await q.evalText(`erl_peb:start_server(${options(q, p)})`)).toBe('ok');
    expect(await p.evalText('{ok, #{majority := M}} = erl_peb:status(), M')).toBe('true');
    expect(await p.evalText('erl_peb:set(<<"before">>, 1, 600000)')).toBe('{ok,1}');

    // Cut the connection: each side is one replica of two, no majority.
    expect(await p.evalText(`erlang:disconnect_node(${atom(q)})`)).toBe('true');
    for (const [self, other] of [[p, q], [q, p]] as const) {
      await until(self, `begin {ok, #{running := R}} = erl_peb:status(), not lists:member(${atom(other)}, R) end`);
      expect(await self.evalText('erl_peb:set(<<"during">>, 2, 600000)')).toMatch(/^\{error,\{no_majority,erl_peb_sessions\}\}$/);
      expect(await self.evalText('{ok, V, _, _} = erl_peb:call({get, <<"before">>}), V')).toBe('1');
    }
    expect(await p.evalText('{ok, #{inconsistent := I}} = erl_peb:status(), I')).toBe('[]');

    // The sides meet again: Mnesia finds the network was partitioned while both ran.
    expect(await p.evalText(`net_kernel:connect_node(${atom(q)})`)).toBe('true');
    await until(p, `begin {ok, #{inconsistent := I}} = erl_peb:status(), I =/= [] end`);
    expect(await p.evalText('{ok, #{inconsistent := [E | _]}} = erl_peb:status(), maps:get(node, E)')).toBe(atom(q));
  }, 60_000);
});

describe('Mnesia disc_copies on one node', () => {
  it('has every acknowledged session after kill -9 and a restart', async () => {
    const cookie = randomBytes(16).toString('hex');
    const name = randomNodeName('erlpeb_disc');
    const dataDir = path.join(work, 'disc');
    // Configured from the command line, as `erl -erl_peb backend mnesia ...` would be.
    const args = ['-erl_peb', 'backend', 'mnesia', '-erl_peb', 'copies', 'disc_copies', '-erl_peb', 'data_dir', str(dataDir)];
    let node = await erlNode(name, cookie, args);
    expect(await node.evalText('erl_peb:start()')).toBe('ok');
    expect(await node.evalText('{ok, #{copies := C}} = erl_peb:status(), C')).toBe('disc_copies');
    const count = 10_000;
    expect(await evalInt(node, `erl_peb_test_load:write_n(<<"disc">>, ${count}, 16)`)).toBe(count);
    await killed(node);

    node = await erlNode(name, cookie, args);
    expect(await node.evalText('erl_peb:start()')).toBe('ok');
    expect(await evalInt(node, `erl_peb_test_load:missing_n(<<"disc">>, ${count})`)).toBe(0);
    expect(await evalInt(node, '{ok, N} = erl_peb:count(), N')).toBe(count);

    // A second disc node, alone with a session of its own, joins: it takes the cluster's sessions
    // on its own disc.
    const other = await erlNode(randomNodeName('erlpeb_disc2'), cookie);
    const otherDir = str(path.join(work, 'disc2'));
    expect(await other.evalText(`erl_peb:start_server(#{backend => mnesia, copies => disc_copies, data_dir => ${otherDir}})`)).toBe('ok');
    expect(await other.evalText('erl_peb:set(<<"own">>, x, 60000)')).toBe('{ok,1}');
    expect(await other.evalText(`erl_peb:join(${atom(node)})`)).toBe('ok');
    expect(await other.evalText('{ok, #{copies := C, members := M}} = erl_peb:status(), {C, length(M)}')).toBe('{disc_copies,2}');
    expect(await evalInt(other, `erl_peb_test_load:missing_n(<<"disc">>, ${count})`)).toBe(0);
    expect(await other.evalText('erl_peb:get(<<"own">>)')).toBe('not_found');
  }, 120_000);
});
