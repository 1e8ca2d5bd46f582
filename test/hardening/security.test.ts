/**
 * The security defaults (README, "Security"), each checked for real, in one place:
 *   (a) `erl-peb server start` binds the node's distribution port and EPMD to loopback only;
 *   (b) a connection with a wrong cookie is refused with a ConnectionError that shows neither cookie;
 *   (c) linkinfo, String/inspect of a connection, error messages and the server's output never
 *       hold the cookie;
 *   (d) hostile session ids and data leave the server's atom count unchanged;
 *   (e) a message larger than maxMessageSize is refused before it is read into memory.
 * The session server is the one the CLI starts, with its defaults, under a temporary HOME and
 * state folder, and with an EPMD port of its own: the EPMD checked is the one that node started.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inspect, isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../lib/connection';
import { ClosedError, ConfigError, ConnectionError, EncodeError, RemoteError, TimeoutError } from '../../lib/errors';
import { ErlangStore } from '../../lib/express';
import { peb } from '../../lib/peb';
import { SessionClient } from '../../lib/session/client';
import { atom, charlist, tuple, type Term, type Tuple } from '../../lib/terms';
import { erlangEnv } from '../support/erlang-node';
import { ownerOf, socketInodes, tcpListeners } from '../support/listeners';
import { run, type Run } from '../support/run';
import { until } from '../session/server';

const root = resolve(__dirname, '..', '..');
const MAIN = join(root, 'lib', 'cli', 'main.ts');
const MB = 1024 * 1024;

const work = mkdtempSync(join(tmpdir(), 'erlpeb-security-'));
const home = join(work, 'home');
const state = join(work, 'state');
mkdirSync(home);
const node = `erlpeb_sec_${randomBytes(5).toString('hex')}@127.0.0.1`;
const WRONG_COOKIE = `wrong-${randomBytes(12).toString('hex')}`;

let epmdPort: number;
let savedEpmdPort: string | undefined;
let cookie: string;
let nodePid: number;
/** Everything the CLI printed. */
const printed: string[] = [];

/** `erl-peb ...args` as a user runs it, with this test's HOME, state folder and EPMD port. */
async function cli(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<Run> {
  const env = erlangEnv();
  for (const k of Object.keys(env)) if (k.startsWith('ERL_PEB_')) delete env[k];
  Object.assign(env, { HOME: home, ERL_PEB_STATE_DIR: state, ERL_EPMD_PORT: String(epmdPort), ...extraEnv });
  const r = await run(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: root, env });
  printed.push(r.stdout, r.stderr);
  return r;
}

function freePort(): Promise<number> {
  return new Promise((done, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => done(port));
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** What must never show the cookie: fails naming where it did. */
function expectNoCookie(what: string, text: string): void {
  expect(text.includes(cookie), `${what} shows the node's cookie`).toBe(false);
  expect(text.includes(WRONG_COOKIE), `${what} shows the wrong cookie`).toBe(false);
}

/** The error a promise rejects with (fails if it resolves). */
async function rejection(p: Promise<unknown>): Promise<Error> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: Error) => e,
  );
}

let epmdPid: number | undefined;

beforeAll(async () => {
  epmdPort = await freePort();
  // Connections made here find the node through the EPMD it started.
  savedEpmdPort = process.env.ERL_EPMD_PORT;
  process.env.ERL_EPMD_PORT = String(epmdPort);
  const r = await cli(['server', 'start', '--name', node, '--timeout', '30']);
  if (r.code !== 0) throw new Error(`erl-peb server start failed (${r.code}): ${r.stdout}${r.stderr}`);
  nodePid = (JSON.parse(readFileSync(join(state, node, 'server.json'), 'utf8')) as { pid: number }).pid;
  cookie = readFileSync(join(home, '.erlang.cookie'), 'utf8').trim();
  const epmd = tcpListeners().find((l) => l.port === epmdPort);
  epmdPid = epmd === undefined ? undefined : ownerOf(epmd.inode);
}, 60_000);

afterAll(async () => {
  if (nodePid !== undefined && alive(nodePid)) {
    await cli(['server', 'stop', '--name', node, '--timeout', '10']);
    if (alive(nodePid)) process.kill(nodePid, 'SIGKILL');
  }
  // The EPMD on this test's port was started by the node above: nothing else uses it.
  if (epmdPort !== undefined) {
    const epmd = tcpListeners().find((l) => l.port === epmdPort);
    epmdPid ??= epmd === undefined ? undefined : ownerOf(epmd.inode);
  }
  if (epmdPid !== undefined && alive(epmdPid)) process.kill(epmdPid, 'SIGTERM');
  if (savedEpmdPort === undefined) delete process.env.ERL_EPMD_PORT;
  else process.env.ERL_EPMD_PORT = savedEpmdPort;
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('(a) the session server listens on loopback only', () => {
  it('binds every listening socket of the node and of its EPMD to 127.0.0.1', () => {
    const listeners = tcpListeners();
    const own = socketInodes(nodePid);
    const nodeListeners = listeners.filter((l) => own.has(l.inode));
    expect(nodeListeners.length).toBeGreaterThan(0);
    for (const l of nodeListeners) expect(l.address, `the node listens on ${l.address}:${l.port}`).toBe('127.0.0.1');
    // The distribution port the node registered with EPMD is one of them.
    const registered = (JSON.parse(readFileSync(join(state, node, 'server.json'), 'utf8')) as { port: number }).port;
    expect(nodeListeners.map((l) => l.port)).toContain(registered);

    // The EPMD on this port was started by the node, and is reachable from this machine only.
    const onEpmdPort = listeners.filter((l) => l.port === epmdPort);
    expect(onEpmdPort.length).toBeGreaterThan(0);
    for (const l of onEpmdPort) expect(['127.0.0.1', '::1'], `EPMD listens on ${l.address}`).toContain(l.address);
    expect(epmdPid).toBeDefined();
    const epmdInodes = socketInodes(epmdPid!);
    for (const l of listeners.filter((x) => epmdInodes.has(x.inode))) {
      expect(['127.0.0.1', '::1'], `EPMD listens on ${l.address}:${l.port}`).toContain(l.address);
    }
  });

  it('generated a cookie of at least 128 random bits, kept off command lines and environments', () => {
    expect(cookie).toMatch(/^[0-9a-f]{32,}$/);
    for (const pid of [nodePid, epmdPid!]) {
      expectNoCookie(`/proc/${pid}/cmdline`, readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
      expectNoCookie(`/proc/${pid}/environ`, readFileSync(`/proc/${pid}/environ`, 'utf8'));
    }
  });
});

describe('(b) a wrong cookie', () => {
  it('is refused with a ConnectionError that names the cookie as the problem and shows neither', async () => {
    const e = await rejection(connect({ node, cookie: WRONG_COOKIE, config: false }));
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/cookie/);
    expectNoCookie('the error', `${e.message}\n${e.stack}\n${inspect(e)}`);
  });

  it('is refused to a session store too, request after request', async () => {
    const store = new ErlangStore({ connect: { node, cookie: WRONG_COOKIE, config: false } });
    try {
      for (let i = 0; i < 2; i++) {
        const e = await new Promise<unknown>((done) => store.get('some-session', (err) => done(err)));
        expect(e).toBeInstanceOf(ConnectionError);
        expectNoCookie('the store error', `${(e as Error).message}\n${(e as Error).stack}\n${inspect(e)}`);
      }
    } finally {
      await store.close();
    }
  });
});

describe('(c) the cookie is never shown', () => {
  it('not by peb.linkinfo, String() or util.inspect of a connection', async () => {
    const link = await peb.connect(node, cookie);
    try {
      const info = peb.linkinfo(link);
      expect(info).toMatchObject({ connectnodename: node, state: 'connected' });
      expectNoCookie('linkinfo', JSON.stringify(info));
      expectNoCookie('String(conn)', String(link));
      expectNoCookie('inspect(conn)', inspect(link));
      expectNoCookie('inspect(conn, showHidden)', inspect(link, { showHidden: true, depth: Infinity, getters: true }));
      expectNoCookie('inspect(conn.options, showHidden)', inspect(link.options, { showHidden: true, depth: Infinity }));
      expectNoCookie('JSON of conn.options', JSON.stringify(link.options));
      expectNoCookie('template string of conn.options', `${link.options}`);
    } finally {
      peb.close(link);
    }
  });

  it('not in any error of a failing connect, rpc or call', async () => {
    // [what failed, its error, the class it must be]; the cookie is in some of the requests too.
    const errors: Array<[string, Error, new (...args: never[]) => Error]> = [];
    const failed = async (what: string, p: Promise<unknown>, cls: new (...args: never[]) => Error): Promise<void> => {
      errors.push([what, await rejection(p), cls]);
    };
    await failed('connect with the wrong cookie', connect({ node, cookie: WRONG_COOKIE, config: false }), ConnectionError);
    await failed('connect to a node not running', connect({ node: `nobody_${randomBytes(4).toString('hex')}@127.0.0.1`, cookie, config: false }), ConnectionError);
    await failed('connect with a malformed cookie', connect({ node, cookie: `${cookie} ${WRONG_COOKIE}`, config: false }), ConfigError);
    await failed('peb.connect with the wrong cookie', peb.connect(node, WRONG_COOKIE), ConnectionError);
    const pebError = peb.error();
    expect(pebError).toMatch(/cookie/);

    const conn = await connect({ node, cookie, config: false });
    try {
      await failed('rpc of a missing module', conn.rpc('no_such_module', 'f', [cookie]), RemoteError);
      // The stack trace Erlang sends back holds the arguments: the message does not.
      await failed('rpc raising function_clause', conn.rpc('lists', 'nth', [0, [cookie]]), RemoteError);
      await failed('rpc timing out', conn.rpc('timer', 'sleep', [5_000], { timeout: 50 }), TimeoutError);
      await failed('call to a name not registered', conn.call('no_such_registered_name', cookie), RemoteError);
      await failed('session call to a server not running', new SessionClient({ connection: conn, server: 'erl_peb_nowhere' }).get(cookie), RemoteError);
      await failed('session set with a bad TTL', new SessionClient({ connection: conn }).set(cookie, cookie, -1), ConfigError);
    } finally {
      conn.close();
    }
    await failed('rpc on a closed connection', conn.rpc('erlang', 'node', [cookie]), ClosedError);

    for (const [what, e, cls] of errors) {
      expect(e, what).toBeInstanceOf(cls);
      expectNoCookie(`the error of ${what} (${e.message})`, `${e.message}\n${e.stack}\n${inspect(e)}`);
    }
    expectNoCookie('peb.error()', pebError);
  });

  it("not in the CLI's output nor in the node's log", async () => {
    // A client with the wrong cookie makes the node log the refused connection.
    await connect({ node, cookie: WRONG_COOKIE, config: false }).catch(() => undefined);
    const status = await cli(['server', 'status', '--name', node]);
    expect(status.code).toBe(0);
    const wrong = await cli(['server', 'status', '--name', node], { ERL_PEB_COOKIE: WRONG_COOKIE });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/cookie/);
    for (const text of printed) expectNoCookie('the CLI output', text);
    const logFile = join(state, node, 'node.log');
    await until(() => /Connection attempt from node .* rejected/.test(readFileSync(logFile, 'utf8')), 'the node logged the refused connection');
    const log = readFileSync(logFile, 'utf8');
    expect(log).toContain('erl_peb ready');
    expectNoCookie('node.log', log);
  });
});

describe('(d) hostile session ids and data', () => {
  /** An integer in [min, max) (or [0, min)); Math.random: fast, and any values will do here. */
  const rnd = (min: number, max?: number): number => (max === undefined ? Math.floor(Math.random() * min) : min + Math.floor(Math.random() * (max - min)));

  /** Code points of every UTF-8 length, and lone surrogates (sent as U+FFFD). */
  const RANGES = [[0, 0x80], [0x80, 0x800], [0x800, 0xd800], [0xe000, 0x10000], [0x10000, 0x110000], [0xd800, 0xe000]] as const;

  /** A random string of 1 to `max` such code points. */
  function unicode(max: number): string {
    const cps = new Array<number>(rnd(1, max + 1));
    for (let i = 0; i < cps.length; i++) {
      const [lo, hi] = RANGES[rnd(RANGES.length)]!;
      cps[i] = rnd(lo, hi);
    }
    return String.fromCodePoint(...cps);
  }

  // Names of atoms that may exist, or not: the server must take none of them as an atom.
  const ATOMISH = ['true', 'undefined', 'erl_peb_sessions', 'ok', 'init', 'rex', 'node', "'quoted'", 'Elixir.Foo'];

  /** A session id of one of the kinds a hostile client sends. */
  function hostileId(i: number): string {
    switch (i % 5) {
      case 0: return randomBytes(16).toString('base64url');
      case 1: return unicode(64);
      case 2: return `${ATOMISH[i % ATOMISH.length]}_${randomBytes(6).toString('hex')}`;
      case 3: return i % 100 === 3 ? 'L'.repeat(rnd(1_000, 20_000)) + randomBytes(4).toString('hex') : unicode(8);
      default: return `\0${unicode(4)}\u0000${i}`;
    }
  }

  /** Session data whose keys are random strings, nested. */
  function hostileData(depth = 0): Record<string, unknown> {
    const data: Record<string, unknown> = {};
    for (let k = rnd(1, 4); k > 0; k--) {
      const key = rnd(3) === 0 ? `${ATOMISH[rnd(ATOMISH.length)]}${rnd(1e9)}` : unicode(12);
      data[key] = depth < 2 && rnd(4) === 0 ? hostileData(depth + 1) : rnd(2) === 0 ? unicode(8) : rnd(1e9);
    }
    return data;
  }

  /** What a string comes back as: UTF-8 has no lone surrogates, they are sent as U+FFFD. */
  const utf8 = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');
  function wellFormed(v: unknown): unknown {
    if (typeof v === 'string') return utf8(v);
    if (typeof v !== 'object' || v === null) return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [utf8(k), wellFormed(x)]));
  }

  /** Whether two keys of an object in `v` are one once written as UTF-8. */
  function keysCollide(v: unknown): boolean {
    if (typeof v !== 'object' || v === null) return false;
    const keys = Object.keys(v);
    return new Set(keys.map(utf8)).size < keys.length || Object.values(v).some(keysCollide);
  }

  it('with keys that are one in UTF-8 are refused before they are sent, and the connection stays up', async () => {
    const conn = await connect({ node, cookie, config: false });
    const client = new SessionClient({ connection: conn });
    const lost: Error[] = [];
    conn.on('disconnect', (e: Error) => lost.push(e));
    try {
      // JSON from a client can hold any surrogate: JSON.parse('{"\\ud800": 1, "\\udfff": 2}').
      const data = JSON.parse('{"prefs": {"\\ud800": 1, "\\udfff": 2}}') as Record<string, unknown>;
      const inFlight = Array.from({ length: 20 }, (_, i) => client.set(`other-${i}`, { n: i }, 60_000));
      const e = await rejection(client.set('hostile', data, 60_000));
      expect(e).toBeInstanceOf(EncodeError);
      expect(await Promise.allSettled(inFlight)).toStrictEqual(Array(20).fill({ status: 'fulfilled', value: 1 }));
      expect(e.message).toMatch(/same once written as UTF-8 .* at \$\.prefs\["\\udfff"\]$/);
      expect(await client.get('hostile')).toBeNull();
      expect(conn.state).toBe('connected');
      expect(lost).toStrictEqual([]);
      await client.clear();
    } finally {
      conn.close();
    }
  });

  it('leave erlang:system_info(atom_count) on the server node unchanged', async () => {
    const conn = await connect({ node, cookie, config: false });
    const client = new SessionClient({ connection: conn });
    const atomCount = async (): Promise<number> => (await conn.rpc('erlang', 'system_info', [atom('atom_count')])) as number;
    try {
      // Every request kind once first, so that code loaded on first use does not count.
      const warm = async (i: number): Promise<void> => {
        const id = hostileId(i);
        await client.set(id, hostileData(), 60_000);
        await client.get(id);
        await client.touch(id, 60_000);
        const token = await client.lock(id, 1000, 0);
        if (token !== null) await client.unlock(id, token);
        await client.destroy(id);
        await conn.call('erl_peb_sessions', tuple(atom('set'), randomBytes(20), new Map<Term, Term>([[randomBytes(8), 1]]), 60_000));
        await conn.call('erl_peb_sessions', tuple(atom('get'), 42));
        await conn.call('erl_peb_sessions', tuple(atom('set'), Buffer.from('x'), 1, atom('ok')));
        await conn.call('erl_peb_sessions', tuple(atom('get'), 1, 2, 3));
        await conn.rpc('session_handler', 'write', [charlist(`w${i}`), charlist(utf8(unicode(8)))]);
        await conn.rpc('session_handler', 'write', [charlist(`w${i}`), charlist('\ud800')]).catch(() => undefined);
        await conn.rpc('session_handler', 'read', [charlist(`w${i}`)]);
        await conn.rpc('session_handler', 'write', [Buffer.from(unicode(8)), randomBytes(16)]);
      };
      for (let i = 0; i < 10; i++) await warm(i);
      // The periodic expiry pass loads its code on its first run.
      await client.sweep();
      await client.clear();
      const before = await atomCount();

      const N = 100_000;
      /** How many requests used each id (as the server sees it). */
      const uses = new Map<string, number>();
      const use = (bytes: Buffer): string => {
        const key = bytes.toString('hex');
        uses.set(key, (uses.get(key) ?? 0) + 1);
        return key;
      };
      const BATCH = 1000;
      let sent = 0;
      /** What went wrong, checked once at the end (an expect per request would be most of the run). */
      const problems: string[] = [];
      const check = (ok: boolean, what: () => string): void => {
        if (!ok && problems.length < 20) problems.push(what());
      };
      const BADARG = tuple(atom('error'), atom('badarg'));
      const UNKNOWN = tuple(atom('error'), atom('unknown_request'));
      for (let start = 0; start < N; start += BATCH) {
        await Promise.all(
          Array.from({ length: Math.min(BATCH, N - start) }, async (_, j) => {
            const i = start + j;
            sent++;
            if (i % 10 === 7) {
              // Raw binary ids (any bytes, not UTF-8) and Erlang maps with random binary keys.
              const id = randomBytes(rnd(0, 64));
              use(id);
              const data = new Map<Term, Term>(Array.from({ length: 3 }, () => [randomBytes(rnd(8, 32)), randomBytes(8)] as [Term, Term]));
              const reply = (await conn.call('erl_peb_sessions', tuple(atom('set'), id, data, 60_000))) as Tuple;
              check(reply.elements[0] === atom('ok'), () => `set of a binary id answered ${String(reply)}`);
              await conn.call('erl_peb_sessions', tuple(atom('get'), id));
              return;
            }
            if (i % 10 === 8) {
              // Malformed requests made of atoms that exist: a bad id, a bad TTL, an unknown shape.
              const bad = [tuple(atom('get'), i), tuple(atom('set'), Buffer.from(hostileId(i)), 1, atom('ok')), tuple(atom('touch'), [i], 0), tuple(atom('get'), 1, 2, 3)][i % 4]!;
              const reply = (await conn.call('erl_peb_sessions', bad)) as Term;
              check(isDeepStrictEqual(reply, BADARG) || isDeepStrictEqual(reply, UNKNOWN), () => `${String(bad)} answered ${String(reply)}`);
              return;
            }
            if (i % 50 === 9) {
              // The rex contract, as PHP called it: ids and data as Erlang strings, stored as their
              // bytes when every character is one, else as UTF-8. A lone surrogate is no character:
              // such a string is refused (badarg), as any bad argument.
              const text = hostileId(i);
              use(Buffer.from(text, 'latin1'));
              use(Buffer.from(text, 'utf8'));
              const id = charlist(text);
              const refused = (e: unknown): boolean => e instanceof RemoteError && e.reason === atom('badarg');
              const wrote = await conn.rpc('session_handler', 'write', [id, charlist(unicode(32))]).catch((e: unknown) => e);
              check(wrote === atom('ok') || refused(wrote), () => `session_handler:write gave ${String(wrote)}`);
              const read = await conn.rpc('session_handler', 'read', [id]).catch((e: unknown) => e);
              check(Buffer.isBuffer(read) || refused(read), () => `session_handler:read gave ${String(read)}`);
              return;
            }
            const id = hostileId(i);
            const data = hostileData();
            const key = use(Buffer.from(id, 'utf8'));
            const set = await client.set(id, data, 60_000).catch((e: unknown) => e);
            if (set instanceof Error) {
              // Refused before it is sent: two keys that are one in UTF-8.
              check(set instanceof EncodeError && keysCollide(data), () => `set refused: ${set.message}`);
              return;
            }
            const back = await client.get(id);
            // Short random ids come up more than once, on any path (every lone surrogate is U+FFFD on the wire).
            if (uses.get(key) === 1) check(isDeepStrictEqual(back?.data, wellFormed(data)), () => `${inspect(id)} read back ${inspect(back?.data)}, not ${inspect(data)}`);
            if (i % 20 === 0) {
              await client.touch(id, 60_000);
              const token = await client.lock(id, 1000, 0);
              if (token !== null) await client.unlock(id, token);
              await client.destroy(id);
            }
          }),
        );
      }
      expect(problems).toStrictEqual([]);
      console.log(`${N} hostile ids: atom count ${before} before, ${await atomCount()} after`);
      expect(sent).toBe(N);
      expect(await client.count()).toBeGreaterThan(N / 2);
      const after = await atomCount();
      // On failure, name the atoms made (binary_to_term of ATOM_INTERNAL_REF3 gives the atom of an index).
      const made = after === before ? [] : await Promise.all(
        Array.from({ length: Math.min(after - before, 20) }, (_, k) => conn.rpc('erlang', 'binary_to_term', [Buffer.from([131, 75, 0, (before + k) >> 8, (before + k) & 255])])),
      );
      expect(after, `atoms made: ${made.map(String).join(', ')}`).toBe(before);
    } finally {
      await client.clear().catch(() => undefined);
      conn.close();
    }
  }, 60_000);
});

describe('(e) a message larger than maxMessageSize', () => {
  /** Resident memory now, and the most it has been since the last reset (Linux /proc). */
  function memory(): { rss: number; peak: number } {
    const status = readFileSync('/proc/self/status', 'utf8');
    const kb = (key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)![1]) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  }

  it('is refused before it is read: a typed error, no memory for it, and the connection comes back', async () => {
    const REPLY = 200 * MB;
    const conn = await connect({ node, cookie, config: false, maxMessageSize: 1 * MB, reconnect: { initialDelay: 20, maxDelay: 200 } });
    try {
      // Under the limit: answered.
      expect(((await conn.rpc('binary', 'copy', [Buffer.from('x'), MB / 2])) as Buffer).length).toBe(MB / 2);

      const disconnected = new Promise<Error>((done) => conn.once('disconnect', done));
      const connected = new Promise<void>((done) => conn.once('connect', () => done()));
      // The high-water mark of resident memory starts again from what is resident now.
      writeFileSync('/proc/self/clear_refs', '5');
      const start = memory();
      expect(start.peak - start.rss).toBeLessThan(16 * MB);

      const e = await rejection(conn.rpc('binary', 'copy', [Buffer.from('x'), REPLY], { timeout: 30_000 }));
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.message).toMatch(new RegExp(`message of ${REPLY + 1}\\d* bytes|more than maxMessageSize`));
      expect((await disconnected).message).toMatch(/maxMessageSize \(1048576\)/);
      const after = memory();
      const grew = `${((after.peak - start.rss) / MB).toFixed(1)} MB`;
      expect(after.peak - start.rss, `resident memory grew by ${grew}`).toBeLessThan(32 * MB);
      console.log(`a ${REPLY / MB} MB reply with a 1 MB maxMessageSize: refused, resident memory peaked ${grew} above where it was`);

      await connected;
      expect(conn.state).toBe('connected');
      expect(await conn.rpc('erlang', 'node', [])).toBe(atom(node));
      expect(await conn.call('erl_peb_sessions', atom('count'))).toStrictEqual(tuple(atom('ok'), expect.any(Number)));
    } finally {
      conn.close();
    }
  }, 60_000);
});
