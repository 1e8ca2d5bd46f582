/**
 * `erl-peb server start|status|stop` as a user runs it: the real command (lib/cli/main.ts through
 * tsx) in a child process, real Erlang nodes with random names, a temporary folder as HOME and
 * as the state folder. Every node started here is stopped in afterAll, killed if need be.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../lib/connection';
import { atom, Tuple, tuple, type Term } from '../../lib/terms';
import { listenersOf, LOOPBACK, tcpListeners } from '../support/listeners';
import { run, type Run } from '../support/run';

const root = resolve(__dirname, '..', '..');
const MAIN = join(root, 'lib', 'cli', 'main.ts');
const EPMD_PORT = Number(process.env.ERL_EPMD_PORT || 4369);

const work = mkdtempSync(join(tmpdir(), 'erlpeb-cli-'));
const home = join(work, 'home');
const state = join(work, 'state');
mkdirSync(home);

/** Names given to `server start` here, and pids seen: afterAll makes sure none is left running. */
const started = new Set<string>();
const pids = new Set<number>();
/** Everything the CLI printed, to check that the cookie never appears in it. */
const printed: string[] = [];

function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('ERL_PEB_')) delete env[k];
  return { ...env, HOME: home, ERL_PEB_STATE_DIR: state, ...extra };
}

/** Runs `erl-peb ...args` and collects its exit status and output. */
async function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  if (args[0] === 'server' && args[1] === 'start') {
    const i = args.indexOf('--name');
    if (i >= 0) started.add(args[i + 1]!);
    // The command gives up (and stops the node) well before the test would time out.
    if (!args.includes('--timeout') && !args.includes('--help')) args = [...args, '--timeout', '30'];
  }
  const r = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: root, env: baseEnv(extraEnv) });
  printed.push(r.stdout, r.stderr);
  return r;
}

const nodeName = (prefix: string): string => `${prefix}_${randomBytes(5).toString('hex')}@127.0.0.1`;
const nodeDir = (node: string): string => join(state, node);

/** The pid the CLI recorded for a running node. */
function recordedPid(node: string): number {
  const pid = (JSON.parse(readFileSync(join(nodeDir(node), 'server.json'), 'utf8')) as { pid: number }).pid;
  pids.add(pid);
  return pid;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

const cookie = (): string => readFileSync(join(home, '.erlang.cookie'), 'utf8');

async function withConnection<T>(node: string, f: (c: Connection) => Promise<T>): Promise<T> {
  const conn = await connect({ node, cookie: cookie(), config: false });
  try {
    return await f(conn);
  } finally {
    conn.close();
  }
}

async function statusJson(node: string): Promise<Record<string, unknown>> {
  const r = await cli(['server', 'status', '--name', node, '--json']);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

/** Processes whose command line names the node (found even if the CLI recorded nothing). */
function pidsNaming(node: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a, i) => (a === '-name' || a === '-sname') && args[i + 1] === node)) out.push(Number(entry));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

afterAll(async () => {
  for (const node of started) {
    const running = pidsNaming(node).filter(alive);
    if (running.length === 0) continue;
    for (const pid of running) pids.add(pid);
    await cli(['server', 'stop', '--name', node, '--timeout', '10']);
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL');
  rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('erl-peb server with the ETS backend', () => {
  const node = nodeName('cli_ets');

  it('starts a node, generating a cookie of 160 bits in ~/.erlang.cookie with mode 0600', async () => {
    expect(existsSync(join(home, '.erlang.cookie'))).toBe(false);
    const r = await cli(['server', 'start', '--name', node]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`the session server ${node} is running (backend ets`);
    expect(r.stdout).toContain(`connect({ node: '${node}' })`);

    const file = join(home, '.erlang.cookie');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(cookie()).toMatch(/^[0-9a-f]{32,}$/);
    const pid = recordedPid(node);
    expect(alive(pid)).toBe(true);
    // Not on the node's command line either: `ps` shows that to every user.
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(cookie());
    expect(readFileSync(join(nodeDir(node), 'node.log'), 'utf8')).not.toContain(cookie());
  });

  it('status: the node, backend ets, no session, itself as the only member', async () => {
    const r = await cli(['server', 'status', '--name', node]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^node: +${node.replace(/\./g, '\\.')}$`, 'm'));
    expect(r.stdout).toMatch(/^backend: +ets$/m);
    expect(r.stdout).toMatch(/^sessions: +0$/m);
    expect(r.stdout).toMatch(new RegExp(`^members: +${node.replace(/\./g, '\\.')}$`, 'm'));

    const s = await statusJson(node);
    expect(s).toMatchObject({ node, backend: 'ets', sessions: 0, members: [node], running: [node] });
  });

  it('counts a session written through a connection', async () => {
    const reply = await withConnection(node, (c) =>
      c.call('erl_peb_sessions', tuple(atom('set'), Buffer.from('sid-1'), Buffer.from('{"user":1}'), 600_000)),
    );
    expect(reply).toEqual(tuple(atom('ok'), 1));
    expect(await statusJson(node)).toMatchObject({ sessions: 1 });
  });

  it('listens on 127.0.0.1 only: the distribution port and EPMD', async () => {
    const pid = recordedPid(node);
    const own = listenersOf(pid);
    expect(own.length).toBeGreaterThan(0);
    for (const l of own) expect(l.address).toBe('127.0.0.1');
    // The port the node registered with EPMD is one of those.
    const registered = (JSON.parse(readFileSync(join(nodeDir(node), 'server.json'), 'utf8')) as { port: number }).port;
    expect(own.map((l) => l.port)).toContain(registered);

    const epmd = tcpListeners().filter((l) => l.port === EPMD_PORT);
    expect(epmd.length).toBeGreaterThan(0);
    for (const l of epmd) expect(LOOPBACK).toContain(l.address);
  });

  it('refuses to start a second node with the same name', async () => {
    const r = await cli(['server', 'start', '--name', node]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`a node named ${node} is already running`);
  });

  it('stops it, after which status and stop fail with "not running"', async () => {
    const pid = recordedPid(node);
    const r = await cli(['server', 'stop', '--name', node]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`stopped ${node} (pid ${pid})`);
    expect(alive(pid)).toBe(false);
    expect(existsSync(join(nodeDir(node), 'server.json'))).toBe(false);

    const status = await cli(['server', 'status', '--name', node]);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain(`the session server ${node} is not running`);
    const stop = await cli(['server', 'stop', '--name', node]);
    expect(stop.code).toBe(1);
    expect(stop.stderr).toContain('is not running');
  });

  it('never printed the cookie', () => {
    const c = cookie();
    for (const text of printed) expect(text).not.toContain(c);
  });
});

describe('erl-peb server refusing to start', () => {
  let busy: Server;
  let busyPort: number;

  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    busyPort = (busy.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((r) => busy.close(() => r())));

  it('a port already in use: a clear message, exit 1, no node left', async () => {
    const node = nodeName('cli_port');
    const r = await cli(['server', 'start', '--name', node, '--port', String(busyPort)]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`port ${busyPort} is already in use`);
    const status = await cli(['server', 'status', '--name', node]);
    expect(status.code).toBe(1);
    expect(status.stderr).toContain('is not running');
  });

  it('a node that dies while starting: the reason, exit 1', async () => {
    const node = nodeName('cli_dies');
    const ghost = nodeName('cli_ghost');
    const r = await cli(['server', 'start', '--name', node, '--backend', 'mnesia', '--join', ghost]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the session server did not start: {join_failed');
    expect(r.stderr).toContain(ghost);
    expect((await cli(['server', 'status', '--name', node])).code).toBe(1);
  });

  it('bad flags: the message and the usage, exit 2', async () => {
    const bogus = await cli(['server', 'start', '--bogus']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toContain('unknown option --bogus');
    expect(bogus.stderr).toContain('Usage: erl-peb server start');

    const port = await cli(['server', 'start', '--port', 'eighty']);
    expect(port.code).toBe(2);
    expect(port.stderr).toContain('--port must be an integer from 1 to 65535');

    const backend = await cli(['server', 'start', '--backend', 'redis']);
    expect(backend.code).toBe(2);
    expect(backend.stderr).toContain('--backend must be ets or mnesia');

    const copies = await cli(['server', 'start', '--copies', 'disc_copies']);
    expect(copies.code).toBe(2);
    expect(copies.stderr).toContain('--copies applies to the mnesia backend only');
  });

  it('no Erlang on PATH: a clear message, exit 1', async () => {
    const r = await cli(['server', 'start', '--name', nodeName('cli_noerl')], { PATH: join(work, 'empty-bin') });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Erlang/OTP is not installed');
  });
});

describe('erl-peb help and unknown commands', () => {
  it('--help and server --help print the usage, exit 0', async () => {
    const top = await cli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Usage: erl-peb <command>');
    const server = await cli(['server', '--help']);
    expect(server.code).toBe(0);
    expect(server.stdout).toContain('Usage: erl-peb server <command>');
    const start = await cli(['server', 'start', '--help']);
    expect(start.code).toBe(0);
    expect(start.stdout).toContain('--backend ets|mnesia');
  });

  it('an unknown command prints the usage, exit 2', async () => {
    const r = await cli(['frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown command 'frobnicate'");
    expect(r.stderr).toContain('Usage: erl-peb <command>');
    const s = await cli(['server', 'restart']);
    expect(s.code).toBe(2);
    expect(s.stderr).toContain("unknown server command 'restart'");
  });
});

describe('erl-peb server with Mnesia disc_copies', () => {
  const node = nodeName('cli_disc');
  const args = ['server', 'start', '--name', node, '--backend', 'mnesia', '--copies', 'disc_copies'];

  it('keeps a session across stop and start', async () => {
    const first = await cli(args);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain('backend mnesia, disc_copies');
    expect(first.stdout).toContain(`data:    ${join(nodeDir(node), 'mnesia')}`);
    recordedPid(node);

    const set = await withConnection(node, (c) =>
      c.call('erl_peb_sessions', tuple(atom('set'), Buffer.from('kept'), Buffer.from('across restarts'), 600_000)),
    );
    expect(set).toEqual(tuple(atom('ok'), 1));
    expect((await cli(['server', 'stop', '--name', node])).code).toBe(0);

    const again = await cli(args);
    expect(again.code).toBe(0);
    recordedPid(node);
    const got = (await withConnection(node, (c) => c.call('erl_peb_sessions', tuple(atom('get'), Buffer.from('kept'))))) as Term;
    expect(got).toBeInstanceOf(Tuple);
    const [tag, data] = (got as Tuple).elements;
    expect(tag).toBe(atom('ok'));
    expect(data).toEqual(Buffer.from('across restarts'));
    expect(await statusJson(node)).toMatchObject({ backend: 'mnesia', copies: 'disc_copies', sessions: 1 });

    expect((await cli(['server', 'stop', '--name', node])).code).toBe(0);
  });
});

describe('erl-peb server with a cookie of its own', () => {
  const node = nodeName('cli_cookie');
  const cookieFile = join(work, 'own.cookie');

  it('hands the cookie over without leaving a copy, and stop reaches a node it cannot connect to', async () => {
    writeFileSync(cookieFile, `own-${randomBytes(16).toString('hex')}`, { mode: 0o600 });
    const r = await cli(['server', 'start', '--name', node, '--cookie-file', cookieFile]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`the cookie in ${cookieFile}`);
    const pid = recordedPid(node);
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).not.toContain(readFileSync(cookieFile, 'utf8'));
    expect(existsSync(join(nodeDir(node), 'home'))).toBe(false);

    const status = await cli(['server', 'status', '--name', node, '--cookie-file', cookieFile]);
    expect(status.code).toBe(0);
    // With the wrong cookie status cannot connect, and says so...
    const wrong = await cli(['server', 'status', '--name', node]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/cookie/);
    // ...and stop falls back to the pid it recorded.
    const stop = await cli(['server', 'stop', '--name', node]);
    expect(stop.code).toBe(0);
    expect(stop.stderr).toContain(`stopping pid ${pid}`);
    expect(alive(pid)).toBe(false);
    for (const text of printed) expect(text).not.toContain(readFileSync(cookieFile, 'utf8'));
  });
});
