/**
 * `erl-peb server start|stop|status`: runs the session server (erlang/, the erl_peb application)
 * as a named Erlang node of its own, detached from the CLI, listening on loopback only.
 *
 * - start: checks what it can before starting (flags, the node's host resolving to 127.0.0.1,
 *   the name not taken in EPMD, --port free), starts `erl ... -s erl_peb boot` in a session of its
 *   own with its output appended to <state>/<node>/node.log, and polls the server's `status`
 *   until it answers (or the node exits, or the deadline passes). The cookie is never on the
 *   node's command line (`ps` shows it to every user): the node reads $HOME/.erlang.cookie, and
 *   a cookie configured elsewhere is handed over in a private HOME that is removed once the node
 *   has read it.
 * - stop: `init:stop()` through rpc, then waits for the OS process to exit; SIGKILL after the
 *   deadline.
 * - status: the server's status request, as text or --json.
 * Exit status: 0 done, 1 failed or not running, 2 a mistake in the command line.
 */
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import {
  chmodSync,
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { connect, type Connection } from '../connection';
import type { ConfigFile } from '../config';
import { ConnectionError, RemoteError } from '../errors';
import { Atom, atom, BitBinary, Float, ImproperList, Tuple, type Term } from '../terms';
import { boolFlag, CliError, parseArgs, stringFlag, UsageError, type FlagSpecs, type Parsed } from './args';
import { epmdPort, lookupNode } from './epmd';
import { findExecutable, isAlive, isNodeProcess, portIsFree, sleep, waitForExit } from './process';
import {
  describeCookie,
  ensureCookie,
  erlArgs,
  loadConfig,
  nodeDir,
  requireCookie,
  resolveNodeName,
  resolveStart,
  stateDir,
  type CliEnvironment,
  type Cookie,
  type StartSettings,
} from './server-options';

/** The registered name of the session server (erl_peb's `server_name` default). */
const SERVER = 'erl_peb_sessions';
const DEFAULT_START_TIMEOUT_S = 60;
const DEFAULT_STOP_TIMEOUT_S = 30;
/** How long a killed node gets to go away before `stop` gives up. */
const KILL_WAIT_MS = 10_000;

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

export const SERVER_USAGE = `Usage: erl-peb server <command> [options]

Runs the erl-peb session server: a named Erlang node running the erl_peb application,
listening on 127.0.0.1 only (distribution port and EPMD).

Commands:
  start     start the server in the background and wait until it answers
  stop      stop it (init:stop through rpc; killed if it does not exit in time)
  status    print its node, backend, session count and cluster members

Run 'erl-peb server <command> --help' for a command's options.
`;

export const START_USAGE = `Usage: erl-peb server start [options]

Options:
  --name NODE            node name (default: ERL_PEB_NODE, the config file's server.name or node,
                         else erl_peb@127.0.0.1); its host must resolve to 127.0.0.1
  --backend ets|mnesia   storage (default ets: one node, in memory)
  --copies ram_copies|disc_copies
                         Mnesia storage on this node (default ram_copies)
  --data-dir DIR         Mnesia's folder (default <state>/<node>/mnesia)
  --join NODE            join the Mnesia cluster of NODE (may be repeated: the first that answers)
  --majority             Mnesia: refuse writes on the minority side of a partition
  --port N               the distribution port (default: any free port)
  --cookie-file FILE     the cookie (default: ERL_PEB_COOKIE, the config file's cookieFile,
                         ~/.erlang.cookie; when there is none, a new one is written there, mode 0600)
  --config FILE          the config file (default: ERL_PEB_CONFIG, else searched from here);
                         its "server" section may hold name, backend, copies, dataDir, join, port,
                         majority, defaultTtl, sweepInterval
  --timeout SECONDS      how long to wait for the server to answer (default ${DEFAULT_START_TIMEOUT_S})
  -h, --help             this help

Files: <state>/<node>/node.log (the node's output), <state>/<node>/server.json (its pid),
<state>/<node>/mnesia/ (Mnesia's data by default); <state> is ERL_PEB_STATE_DIR, else ~/.erl-peb.

Environment: ERL_PEB_NODE, ERL_PEB_COOKIE, ERL_PEB_CONFIG, ERL_PEB_STATE_DIR, HOME (where
.erlang.cookie is), ERL_PEB_ERL (the erl program, default erl on PATH), ERL_EPMD_PORT.
`;

export const STOP_USAGE = `Usage: erl-peb server stop [options]

Options:
  --name NODE            the node (default as for start)
  --cookie-file FILE     the cookie (default as for start)
  --config FILE          the config file
  --timeout SECONDS      how long to wait for the node to exit before killing it (default ${DEFAULT_STOP_TIMEOUT_S})
  -h, --help             this help

Exits 1 when the server is not running.
`;

export const STATUS_USAGE = `Usage: erl-peb server status [options]

Options:
  --name NODE            the node (default as for start)
  --json                 print the whole status as JSON
  --cookie-file FILE     the cookie (default as for start)
  --config FILE          the config file
  -h, --help             this help

Exits 1 when the server is not running.
`;

const COMMON: FlagSpecs = {
  name: { type: 'string' },
  'cookie-file': { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const START_FLAGS: FlagSpecs = {
  ...COMMON,
  backend: { type: 'string' },
  copies: { type: 'string' },
  'data-dir': { type: 'string' },
  join: { type: 'string', multiple: true },
  port: { type: 'string' },
  majority: { type: 'boolean' },
  timeout: { type: 'string' },
};
const STOP_FLAGS: FlagSpecs = { ...COMMON, timeout: { type: 'string' } };
const STATUS_FLAGS: FlagSpecs = { ...COMMON, json: { type: 'boolean' } };

/** Thrown with the usage text of the command whose command line is wrong. */
export class CommandUsageError extends UsageError {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

function parse(argv: readonly string[], flags: FlagSpecs, usage: string): Parsed {
  let p: Parsed;
  try {
    p = parseArgs(argv, flags);
  } catch (e) {
    if (e instanceof UsageError) throw new CommandUsageError(e.message, usage);
    throw e;
  }
  if (p.positionals.length > 0 && !boolFlag(p, 'help')) throw new CommandUsageError(`unexpected argument '${p.positionals[0]}'`, usage);
  return p;
}

function seconds(p: Parsed, fallback: number, usage: string): number {
  const v = stringFlag(p, 'timeout');
  if (v === undefined) return fallback * 1000;
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > 86_400) throw new CommandUsageError(`--timeout must be a number of seconds from 0 to 86400, got '${v}'`, usage);
  return n * 1000;
}

/** `erl-peb server <args>`: the exit status. */
export async function serverCommand(argv: readonly string[], e: CliEnvironment, o: Output): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      if (command === undefined) {
        o.err(SERVER_USAGE);
        return 2;
      }
      o.out(SERVER_USAGE);
      return 0;
    case 'start': {
      const p = parse(rest, START_FLAGS, START_USAGE);
      if (boolFlag(p, 'help')) return help(o, START_USAGE);
      return withUsage(START_USAGE, () => start(p, e, o, seconds(p, DEFAULT_START_TIMEOUT_S, START_USAGE)));
    }
    case 'stop': {
      const p = parse(rest, STOP_FLAGS, STOP_USAGE);
      if (boolFlag(p, 'help')) return help(o, STOP_USAGE);
      return withUsage(STOP_USAGE, () => stop(p, e, o, seconds(p, DEFAULT_STOP_TIMEOUT_S, STOP_USAGE)));
    }
    case 'status': {
      const p = parse(rest, STATUS_FLAGS, STATUS_USAGE);
      if (boolFlag(p, 'help')) return help(o, STATUS_USAGE);
      return withUsage(STATUS_USAGE, () => status(p, e, o));
    }
    default:
      throw new CommandUsageError(`unknown server command '${command}'`, SERVER_USAGE);
  }
}

/** A flag value found wrong while running the command is shown with that command's usage. */
async function withUsage(usage: string, run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (e) {
    if (e instanceof UsageError && !(e instanceof CommandUsageError)) throw new CommandUsageError(e.message, usage);
    throw e;
  }
}

function help(o: Output, usage: string): number {
  o.out(usage);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// start

/** The package's compiled Erlang code (this file is lib/cli/ or dist/cli/). */
export function ebinDir(): string {
  return join(__dirname, '..', '..', 'erlang', 'ebin');
}

function hostOf(node: string): string {
  return node.slice(node.indexOf('@') + 1);
}

function aliveOf(node: string): string {
  return node.slice(0, node.indexOf('@'));
}

/** The node listens on 127.0.0.1 only, so clients must find it there through its host name. */
async function checkHost(node: string): Promise<void> {
  const host = hostOf(node);
  let address: string;
  try {
    // IPv4, first address: what ei's gethostbyname gives a client.
    address = (await lookup(host, { family: 4 })).address;
  } catch (err) {
    throw new CliError(`the host of ${node} does not resolve (${(err as NodeJS.ErrnoException).code}); use a name @127.0.0.1`);
  }
  if (address !== '127.0.0.1') {
    throw new CliError(
      `the host of ${node} resolves to ${address}, but the server listens on 127.0.0.1 only: use a name @127.0.0.1 (the default is erl_peb@127.0.0.1)`,
    );
  }
}

interface Launch {
  pid: number;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  spawnError: Error | undefined;
}

async function start(p: Parsed, e: CliEnvironment, o: Output, timeoutMs: number): Promise<number> {
  const config = loadConfig(p, e);
  const s = resolveStart(p, e, config);

  const ebin = ebinDir();
  if (!existsSync(join(ebin, 'erl_peb.app'))) {
    throw new CliError(`the session server's Erlang code is not built (${ebin} has no erl_peb.app): run \`npm run build:erlang\``);
  }
  const erl = findExecutable(e.env.ERL_PEB_ERL || 'erl', e.env);
  if (erl === undefined) {
    throw new CliError(
      `Erlang/OTP is not installed: no \`${e.env.ERL_PEB_ERL || 'erl'}\` on PATH (Debian: apt-get install erlang-nox; or set ERL_PEB_ERL to the erl program)`,
    );
  }
  await checkHost(s.node);
  const epmd = epmdPort(e.env);
  const known = await lookupNode(aliveOf(s.node), '127.0.0.1', epmd);
  if (known.port !== undefined) {
    throw new CliError(
      `a node named ${s.node} is already running (registered with EPMD, distribution port ${known.port}); see \`erl-peb server status --name ${s.node}\``,
    );
  }
  if (s.port !== undefined && !(await portIsFree(s.port))) {
    throw new CliError(`port ${s.port} is already in use on 127.0.0.1: choose another --port, or leave it out to use any free port`);
  }

  if (s.dataDir !== undefined && existsSync(s.dataDir) && !statSync(s.dataDir).isDirectory()) {
    throw new CliError(`the data folder ${s.dataDir} exists and is not a folder`);
  }

  const cookie = ensureCookie(p, e, config);
  try {
    mkdirSync(s.nodeDir, { recursive: true, mode: 0o700 });
    chmodSync(s.nodeDir, 0o700);
  } catch (err) {
    throw new CliError(`cannot create the node's folder ${s.nodeDir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); set ERL_PEB_STATE_DIR to a folder of yours`);
  }

  let nodeHome: string | undefined;
  if (cookie.handOver) nodeHome = handOverCookie(s.nodeDir, cookie);
  const logFile = join(s.nodeDir, 'node.log');
  const args = erlArgs(s, ebin);
  let launch: Launch;
  let logStart: number;
  try {
    const logFd = openSync(logFile, 'a', 0o600);
    try {
      logStart = fstatSync(logFd).size;
      writeSync(logFd, `--- ${new Date().toISOString()} erl-peb server start: erl ${args.join(' ')}\n`);
      launch = spawnNode(erl, args, s, nodeHome, logFd, e.env);
    } finally {
      closeSync(logFd);
    }
    const ready = await waitReady(s, cookie, launch, timeoutMs, epmd, logFile, logStart);
    try {
      const pid = await osPid(ready.conn, launch.pid);
      const port = (await lookupNode(aliveOf(s.node), '127.0.0.1', epmd)).port;
      writeFileSync(
        join(s.nodeDir, 'server.json'),
        `${JSON.stringify({ node: s.node, pid, backend: s.backend, copies: s.copies, dataDir: s.dataDir, port, log: logFile, startedAt: new Date().toISOString() }, null, 2)}\n`,
        { mode: 0o600 },
      );
      o.out(readyMessage(s, cookie, pid, port, epmd, logFile, ready.backend));
      warnIfEpmdNotLoopback(epmd, o);
    } finally {
      ready.conn.close();
    }
    return 0;
  } finally {
    // The node has read the cookie by now (or is gone): no copy of it stays on disc.
    if (nodeHome !== undefined) rmSync(nodeHome, { recursive: true, force: true });
  }
}

/** A private HOME holding the cookie, for a node whose cookie is not in $HOME/.erlang.cookie. */
function handOverCookie(dir: string, cookie: Cookie): string {
  const home = join(dir, 'home');
  rmSync(home, { recursive: true, force: true });
  mkdirSync(home, { mode: 0o700 });
  writeFileSync(join(home, '.erlang.cookie'), cookie.value, { mode: 0o400, flag: 'wx' });
  return home;
}

function spawnNode(erl: string, args: string[], s: StartSettings, nodeHome: string | undefined, logFd: number, env: NodeJS.ProcessEnv): Launch {
  const child = spawn(erl, args, {
    cwd: s.nodeDir,
    // A session of its own: the node outlives the CLI and its terminal.
    detached: true,
    stdio: ['ignore', logFd, logFd],
    env: {
      ...env,
      // EPMD, if this node starts it, listens on loopback only.
      ERL_EPMD_ADDRESS: '127.0.0.1',
      ERL_CRASH_DUMP: join(s.nodeDir, 'erl_crash.dump'),
      ...(nodeHome !== undefined ? { HOME: nodeHome } : {}),
    },
  });
  const launch: Launch = { pid: child.pid ?? -1, exit: undefined, spawnError: undefined };
  child.on('error', (err) => {
    launch.spawnError = err;
  });
  child.on('exit', (code, signal) => {
    launch.exit = { code, signal };
  });
  child.unref();
  return launch;
}

interface Ready {
  conn: Connection;
  backend: string;
}

/** Polls the server's status until it answers, the node exits or the deadline passes. */
async function waitReady(
  s: StartSettings,
  cookie: Cookie,
  launch: Launch,
  timeoutMs: number,
  epmd: number,
  logFile: string,
  logStart: number,
): Promise<Ready> {
  const deadline = performance.now() + timeoutMs;
  let conn: Connection | undefined;
  let last = 'it did not register with EPMD';
  let delay = 50;
  for (;;) {
    if (launch.spawnError !== undefined) {
      conn?.close();
      throw new CliError(`cannot run Erlang: ${launch.spawnError.message}`);
    }
    if (launch.exit !== undefined) {
      conn?.close();
      throw new CliError(startFailure(s, launch, logFile, logStart));
    }
    const left = deadline - performance.now();
    if (left <= 0) break;
    try {
      const registered = conn !== undefined || (await lookupNode(aliveOf(s.node), '127.0.0.1', epmd)).port !== undefined;
      if (registered) {
        if (conn === undefined) {
          const connectMs = clampMs(left, 2000);
          conn = await bounded(connect({ node: s.node, cookie: cookie.value, timeout: connectMs, config: false }), connectMs, 'connect', (c) => c.close());
        }
        const callMs = clampMs(deadline - performance.now(), 5000);
        const current: Connection = conn;
        const reply = await bounded(current.call(SERVER, atom('status'), { timeout: callMs }), callMs, 'the status request', () => undefined).catch((err: unknown) => {
          // A status request that never came back: start over on a new connection.
          if (err instanceof BoundExceeded) current.close();
          throw err;
        });
        const map = statusMap(reply);
        if (map !== undefined) return { conn, backend: text(map.get(atom('backend'))) };
        last = `its status request answered ${JSON.stringify(toPlain(reply))}`;
      }
    } catch (err) {
      last = (err as Error).message;
      if (conn !== undefined && conn.state !== 'connected') {
        conn.close();
        conn = undefined;
      }
    }
    await sleep(Math.max(1, Math.min(delay, deadline - performance.now())));
    delay = Math.min(delay * 2, 250);
  }
  conn?.close();
  // Leave nothing half-started behind.
  await killNode(launch.pid, s.node);
  throw new CliError(
    `the session server ${s.node} did not answer within ${Math.round(timeoutMs / 1000)} s (${last}); the node was stopped.${logTail(logFile, logStart)}`,
  );
}

class BoundExceeded extends CliError {}

/**
 * The promise, or a rejection once `ms` (plus a margin) has passed: the poll must go on by its
 * own clock whatever a single attempt does. A result that comes after that is handed to `late`.
 */
function bounded<T>(p: Promise<T>, ms: number, what: string, late: (value: T) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let over = false;
    const timer = setTimeout(() => {
      over = true;
      reject(new BoundExceeded(`${what} did not finish within ${ms} ms`));
    }, ms + 1000);
    p.then(
      (v) => {
        clearTimeout(timer);
        if (over) late(v);
        else resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        if (!over) reject(e);
      },
    );
  });
}

function clampMs(ms: number, max: number): number {
  return Math.max(1, Math.min(max, Math.floor(ms)));
}

/** Why the node exited while starting, from its output. */
function startFailure(s: StartSettings, launch: Launch, logFile: string, logStart: number): string {
  const log = readLog(logFile, logStart);
  const status = launch.exit!.signal ? `signal ${launch.exit!.signal}` : `status ${launch.exit!.code}`;
  if (/register\/listen error: eaddrinuse/.test(log)) {
    const why = s.port !== undefined ? `port ${s.port} is already in use` : 'the distribution port is already in use';
    return `${why} (node ${s.node} exited at start, ${status}).${logTail(logFile, logStart)}`;
  }
  if (/seems to be in use by another Erlang node/.test(log)) {
    return `a node named ${s.node} is already running (node ${s.node} exited at start, ${status}).${logTail(logFile, logStart)}`;
  }
  // The reason erl_peb:boot/0 prints, else (when the node halted before that line reached the
  // log) the first supervisor report's. Either spans many lines: one line, cut short.
  const boot = log.indexOf(BOOT_FAILED);
  const report = /^=SUPERVISOR REPORT[^\n]*\n(?:[^\n]*\n)*?\s+reason: /m.exec(log);
  const at = boot >= 0 ? boot + BOOT_FAILED.length : report ? report.index + report[0].length : -1;
  if (at >= 0) {
    let reason = log.slice(at).split(/\n(?=\S|\s{0,4}\w+:)/)[0]!.replace(/\s+/g, ' ').trim();
    if (reason.length > 400) reason = `${reason.slice(0, 397)}...`;
    return `the session server did not start: ${reason} (node ${s.node} exited, ${status}; its output is in ${logFile})`;
  }
  return `the node ${s.node} exited at start (${status}).${logTail(logFile, logStart)}`;
}

/** What `erl_peb:boot/0` prints before it halts the node. */
const BOOT_FAILED = 'erl_peb: the session server did not start:';

function readLog(logFile: string, from: number): string {
  try {
    return readFileSync(logFile).subarray(from).toString('utf8');
  } catch {
    return '';
  }
}

function logTail(logFile: string, from: number): string {
  const lines = readLog(logFile, from).split('\n').filter((l) => l.trim() !== '' && !l.startsWith('--- '));
  if (lines.length === 0) return ` Its log: ${logFile}`;
  // The first lines: the first error reported is the cause, what follows its consequences.
  const shown = lines.slice(0, 20).map((l) => `  ${l}`);
  if (lines.length > 20) shown.push(`  ... (${lines.length - 20} more lines)`);
  return `\nThe node's output (${logFile}):\n${shown.join('\n')}`;
}

/** The node's OS pid as it reports it (the spawned pid, unless a wrapper forked). */
async function osPid(conn: Connection, fallback: number): Promise<number> {
  try {
    const v = await bounded(conn.rpc('os', 'getpid', [], { timeout: 5000 }), 5000, 'os:getpid()', () => undefined);
    const n = Number(Array.isArray(v) ? String.fromCharCode(...(v as number[])) : String(v));
    return Number.isInteger(n) && n > 0 ? n : fallback;
  } catch {
    return fallback;
  }
}

function readyMessage(s: StartSettings, cookie: Cookie, pid: number, port: number | undefined, epmd: number, logFile: string, backend: string): string {
  const lines = [
    `erl-peb: the session server ${s.node} is running (backend ${backend}${s.copies ? `, ${s.copies}` : ''}, pid ${pid})`,
    `  listening on 127.0.0.1:${port ?? '?'} (EPMD 127.0.0.1:${epmd})`,
    `  cookie:  ${describeCookie(cookie)}`,
  ];
  if (s.dataDir !== undefined) lines.push(`  data:    ${s.dataDir}`);
  if (s.join.length > 0) lines.push(`  joined:  ${s.join.join(', ')}`);
  lines.push(`  log:     ${logFile}`);
  lines.push('Connect from Node.js:');
  lines.push(`  const conn = await require('erl-peb').connect({ node: '${s.node}' });`);
  lines.push(
    cookie.source === 'home' || cookie.source === 'generated'
      ? `  (or set ERL_PEB_NODE=${s.node}; clients read the cookie from ${cookie.file})`
      : `  (or set ERL_PEB_NODE=${s.node}; clients need the same cookie: ERL_PEB_COOKIE or the config file's cookieFile)`,
  );
  lines.push(`Stop it with: erl-peb server stop --name ${s.node}`);
  return `${lines.join('\n')}\n`;
}

/**
 * An EPMD started earlier by someone else may listen on every interface: the node registers
 * with it regardless, so say so (Linux: read from /proc/net).
 */
function warnIfEpmdNotLoopback(epmd: number, o: Output): void {
  const exposed = listeningAddresses(epmd).filter((a) => a !== '127.0.0.1' && a !== '::1');
  if (exposed.length > 0) {
    o.err(
      `erl-peb: warning: the EPMD already running listens on ${exposed.join(', ')}, not on loopback only; restart it with ERL_EPMD_ADDRESS=127.0.0.1 (epmd -kill, then start the server again)\n`,
    );
  }
}

/** Local addresses with a TCP listener on `port`, from /proc/net/tcp{,6} (empty elsewhere). */
export function listeningAddresses(port: number): string[] {
  const out: string[] = [];
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4 || f[3] !== '0A') continue; // 0A: LISTEN
      const [addr, portHex] = f[1]!.split(':');
      if (parseInt(portHex!, 16) !== port) continue;
      out.push(v6 ? ipv6(addr!) : ipv4(addr!));
    }
  }
  return out;
}

/** /proc/net/tcp writes an IPv4 address as one little-endian 32-bit hex word. */
export function ipv4(hex: string): string {
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, n >>> 24].join('.');
}

/** /proc/net/tcp6: four little-endian 32-bit words; the result is in the compressed form. */
export function ipv6(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < 4; w++) {
    const word = hex.slice(w * 8, w * 8 + 8);
    for (let b = 3; b >= 0; b--) bytes.push(parseInt(word.slice(b * 2, b * 2 + 2), 16));
  }
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return bytes.slice(12).join('.'); // an IPv4-mapped address
  }
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::').replace(/:{3,}/, '::');
}

// ---------------------------------------------------------------------------------------------
// status and stop

interface Target {
  node: string;
  config: ConfigFile;
  stateFile: string;
}

function target(p: Parsed, e: CliEnvironment): Target {
  const config = loadConfig(p, e);
  const node = resolveNodeName(p, e, config);
  return { node, config, stateFile: join(nodeDir(stateDir(e.env), node), 'server.json') };
}

/** Connects to a running node; CliError "not running" when EPMD does not know the name. */
async function connectTo(t: Target, p: Parsed, e: CliEnvironment): Promise<Connection> {
  const known = await lookupNode(aliveOf(t.node), hostOf(t.node), epmdPort(e.env)).catch(() => undefined);
  if (known !== undefined && known.port === undefined) {
    throw new CliError(`the session server ${t.node} is not running (EPMD on ${hostOf(t.node)} has no node of that name)`);
  }
  const cookie = requireCookie(p, e, t.config);
  try {
    return await bounded(connect({ node: t.node, cookie: cookie.value, timeout: 5000, config: false }), 5000, `connecting to ${t.node}`, (c) => c.close());
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    throw new CliError(`${why} (using ${describeCookie(cookie)})`);
  }
}

async function status(p: Parsed, e: CliEnvironment, o: Output): Promise<number> {
  const t = target(p, e);
  const conn = await connectTo(t, p, e);
  try {
    let reply: Term;
    try {
      reply = await bounded(conn.call(SERVER, atom('status'), { timeout: 10_000 }), 10_000, 'the status request', () => undefined);
    } catch (err) {
      if (err instanceof RemoteError && err.kind === 'exit') {
        throw new CliError(`${t.node} is running, but the session server is not (no process is registered as ${SERVER} there)`);
      }
      throw err;
    }
    const map = statusMap(reply);
    if (map === undefined) throw new CliError(`${t.node} answered its status request with ${JSON.stringify(toPlain(reply))}`);
    if (boolFlag(p, 'json')) {
      o.out(`${JSON.stringify(toPlain(map), null, 2)}\n`);
    } else {
      o.out(statusText(map));
    }
    return 0;
  } finally {
    conn.close();
  }
}

function statusText(m: Map<Term, Term>): string {
  const get = (k: string): Term | undefined => m.get(atom(k));
  const rows: Array<[string, string]> = [
    ['node', text(get('node'))],
    ['backend', text(get('backend'))],
    ['sessions', text(get('sessions'))],
    ['members', list(get('members'))],
    ['running', list(get('running'))],
  ];
  if (get('copies') !== undefined) rows.push(['copies', text(get('copies'))]);
  if (get('replicas') !== undefined) rows.push(['replicas', list(get('replicas'))]);
  if (get('majority') !== undefined) rows.push(['majority', text(get('majority'))]);
  if (get('directory') !== undefined) rows.push(['directory', text(get('directory'))]);
  const inconsistent = get('inconsistent');
  if (Array.isArray(inconsistent) && inconsistent.length > 0) {
    rows.push(['inconsistent', `${inconsistent.length} report(s) of a partitioned network; see --json and the README`]);
  }
  return `${rows.map(([k, v]) => `${`${k}:`.padEnd(11)} ${v}`).join('\n')}\n`;
}

async function stop(p: Parsed, e: CliEnvironment, o: Output, timeoutMs: number): Promise<number> {
  const t = target(p, e);
  const recorded = readStateFile(t.stateFile);
  let conn: Connection;
  try {
    conn = await connectTo(t, p, e);
  } catch (err) {
    // Running but out of reach (a wrong cookie, a stuck node): stop it by its recorded pid.
    if (recorded !== undefined && isAlive(recorded) && isNodeProcess(recorded, t.node) === true) {
      o.err(`erl-peb: ${(err as Error).message}\nerl-peb: stopping pid ${recorded} (recorded in ${t.stateFile}) with SIGTERM instead\n`);
      return signalStop(recorded, t, o, timeoutMs);
    }
    if (recorded !== undefined && !isAlive(recorded)) rmSync(t.stateFile, { force: true });
    throw err;
  }
  let pid: number | undefined;
  try {
    pid = await osPid(conn, -1);
    if (pid === -1 || isNodeProcess(pid, t.node) === false) pid = undefined; // not on this machine
    try {
      await bounded(conn.rpc('init', 'stop', [], { timeout: 10_000 }), 10_000, 'init:stop()', () => undefined);
    } catch (err) {
      // The node may drop the connection while it stops: what counts is that it exits.
      if (!(err instanceof ConnectionError) && !(err instanceof BoundExceeded)) throw err;
    }
  } finally {
    conn.close();
  }
  const deadline = performance.now() + timeoutMs;
  if (pid === undefined) {
    if (!(await waitUnregistered(t.node, e, deadline))) {
      throw new CliError(`${t.node} did not stop within ${Math.round(timeoutMs / 1000)} s (it is not a process of this machine, so it was not killed)`);
    }
    o.out(`erl-peb: stopped ${t.node}\n`);
    return 0;
  }
  if (await waitForExit(pid, deadline)) {
    rmSync(t.stateFile, { force: true });
    o.out(`erl-peb: stopped ${t.node} (pid ${pid})\n`);
    return 0;
  }
  kill(pid, 'SIGKILL');
  if (!(await waitForExit(pid, performance.now() + KILL_WAIT_MS))) throw new CliError(`${t.node} (pid ${pid}) did not exit, even after SIGKILL`);
  rmSync(t.stateFile, { force: true });
  o.out(`erl-peb: ${t.node} (pid ${pid}) did not stop within ${Math.round(timeoutMs / 1000)} s and was killed\n`);
  return 0;
}

/** Erlang takes SIGTERM as init:stop(). */
async function signalStop(pid: number, t: Target, o: Output, timeoutMs: number): Promise<number> {
  kill(pid, 'SIGTERM');
  if (!(await waitForExit(pid, performance.now() + timeoutMs))) {
    kill(pid, 'SIGKILL');
    if (!(await waitForExit(pid, performance.now() + KILL_WAIT_MS))) throw new CliError(`${t.node} (pid ${pid}) did not exit, even after SIGKILL`);
  }
  rmSync(t.stateFile, { force: true });
  o.out(`erl-peb: stopped ${t.node} (pid ${pid})\n`);
  return 0;
}

async function waitUnregistered(node: string, e: CliEnvironment, deadline: number): Promise<boolean> {
  for (;;) {
    const known = await lookupNode(aliveOf(node), hostOf(node), epmdPort(e.env)).catch(() => undefined);
    if (known !== undefined && known.port === undefined) return true;
    if (performance.now() >= deadline) return false;
    await sleep(100);
  }
}

/** Stops a node that failed to become ready: SIGTERM, then SIGKILL. */
async function killNode(pid: number, node: string): Promise<void> {
  if (pid <= 0 || !isAlive(pid) || isNodeProcess(pid, node) === false) return;
  kill(pid, 'SIGTERM');
  if (!(await waitForExit(pid, performance.now() + 5000))) {
    kill(pid, 'SIGKILL');
    await waitForExit(pid, performance.now() + KILL_WAIT_MS);
  }
}

/** A signal to a process that may have exited meanwhile (that is what was wanted). */
function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

function readStateFile(file: string): number | undefined {
  try {
    const pid = (JSON.parse(readFileSync(file, 'utf8')) as { pid?: unknown }).pid;
    return typeof pid === 'number' && Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// Terms for printing

/** The map of a `{ok, Map}` status reply. */
function statusMap(reply: Term): Map<Term, Term> | undefined {
  if (reply instanceof Tuple && reply.elements.length === 2 && reply.elements[0] === atom('ok') && reply.elements[1] instanceof Map) {
    return reply.elements[1] as Map<Term, Term>;
  }
  return undefined;
}

function text(v: Term | undefined): string {
  if (v === undefined) return '-';
  const plain = toPlain(v);
  return typeof plain === 'string' ? plain : JSON.stringify(plain);
}

function list(v: Term | undefined): string {
  return Array.isArray(v) ? (v.length === 0 ? '(none)' : v.map(text).join(', ')) : text(v);
}

/** A JSON-friendly copy of a term: atoms and binaries as strings, tuples as arrays, maps as objects. */
export function toPlain(v: unknown): unknown {
  if (v instanceof Atom) return v.name;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (typeof v === 'bigint') return v.toString();
  if (Array.isArray(v)) return v.map(toPlain);
  if (v instanceof Tuple) return v.elements.map(toPlain);
  if (v instanceof ImproperList) return [...v.elements.map(toPlain), toPlain(v.tail)];
  if (v instanceof Float) return v.value;
  if (v instanceof BitBinary) return { bytes: v.buffer.toString('base64'), bitsInLastByte: v.bits };
  if (v instanceof Map) {
    const o: Record<string, unknown> = {};
    for (const [k, val] of v) {
      const key = toPlain(k);
      o[typeof key === 'string' ? key : JSON.stringify(key)] = toPlain(val);
    }
    return o;
  }
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    const s = String(v);
    return s === '[object Object]' ? v : s;
  }
  return v;
}
