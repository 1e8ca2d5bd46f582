import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../lib/connection';
import { ClosedError, ConfigError, ConnectionError, DecodeError, EncodeError, RemoteError, TimeoutError } from '../../lib/errors';
import { Atom, atom, Pid, Ref, Tuple, tuple } from '../../lib/terms';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { BENCH_ECHO, CONN_TEST, compileErlang, type CompiledModules } from '../support/erlang-modules';

let beams: CompiledModules;
let node: ErlangNode;
let conn: Connection;

beforeAll(async () => {
  beams = await compileErlang([BENCH_ECHO, CONN_TEST]);
  // A short tick time, so that the idle test below outlasts it.
  node = await startNode({ codePaths: [beams.dir], args: ['-kernel', 'net_ticktime', '4'] });
  await node.eval('{ok, _} = erl_peb_bench_echo:start(), {ok, _} = erl_peb_conn_test:start_mirror(), {ok, _} = erl_peb_conn_test:start_crashy()');
  conn = await connect({ node: node.name, cookie: node.cookie, config: false });
});

afterAll(async () => {
  conn?.close();
  await node?.stop();
  await beams?.remove();
});

describe('connect', () => {
  it('is a hidden node of its own with a pid', async () => {
    expect(conn.state).toBe('connected');
    expect(conn.node).toBe(node.name);
    expect(conn.self).toBeInstanceOf(Pid);
    expect(conn.self.node).toBe(atom(conn.name));
    expect(await node.evalTrue(`lists:member('${conn.name}', nodes(hidden))`)).toBe(true);
    expect(await node.evalTrue(`lists:member('${conn.name}', nodes())`)).toBe(false);
  });

  it('gives every connection its own node name', async () => {
    const other = await connect({ node: node.name, cookie: node.cookie, config: false });
    try {
      expect(other.name).not.toBe(conn.name);
      expect(await other.rpc('erlang', 'node', [])).toBe(atom(node.name));
    } finally {
      other.close();
    }
  });

  it('never shows the cookie in its settings', () => {
    expect(JSON.stringify(conn.options)).not.toContain(node.cookie);
    expect(require('node:util').inspect(conn.options)).not.toContain(node.cookie);
  });
});

describe('rpc', () => {
  it('calls a function and gives its result', async () => {
    expect(await conn.rpc('erlang', 'node', [])).toBe(atom(node.name));
    expect(await conn.rpc('lists', 'seq', [1, 5])).toEqual([1, 2, 3, 4, 5]);
    expect(await conn.rpc(atom('lists'), atom('reverse'), [[1, 'two', atom('three'), tuple(4)]])).toEqual([
      tuple(4),
      atom('three'),
      Buffer.from('two'),
      1,
    ]);
  });

  it('matches each of many concurrent calls to its own reply', async () => {
    const results = await Promise.all(Array.from({ length: 1000 }, (_, i) => conn.rpc('erlang', 'abs', [-i])));
    expect(results).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('rejects with a RemoteError of kind error for a missing module or function', async () => {
    const e = await conn.rpc('no_such_module', 'f', [1]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ kind: 'error', reason: atom('undef') });
    expect((e as Error).message).toMatch(/no_such_module:f\/1.*undef/);
    await expect(conn.rpc('lists', 'no_such_function', [])).rejects.toMatchObject({ kind: 'error', reason: atom('undef') });
  });

  it('rejects with kind error for erlang:error and exit for exit', async () => {
    await expect(conn.rpc('erlang', 'error', [tuple(atom('badmatch'), 3)])).rejects.toMatchObject({
      name: 'RemoteError',
      kind: 'error',
      reason: tuple(atom('badmatch'), 3),
    });
    await expect(conn.rpc('erlang', 'exit', [atom('boom')])).rejects.toMatchObject({ kind: 'exit', reason: atom('boom') });
  });

  it('resolves with a thrown value, as rex catches it', async () => {
    expect(await conn.rpc('erlang', 'throw', [atom('thrown')])).toBe(atom('thrown'));
  });

  it('carries large terms both ways', async () => {
    const big = Buffer.alloc(1_000_000, 7);
    expect(await conn.rpc('erlang', 'byte_size', [big])).toBe(1_000_000);
    const got = (await conn.rpc('erl_peb_conn_test', 'binary', [3_000_000])) as Buffer;
    expect(got.length).toBe(3_000_000);
    expect(got.every((b) => b === 0x78)).toBe(true);
  });
});

describe('call', () => {
  it('is a gen_server call to a registered name', async () => {
    expect(await conn.call('erl_peb_bench_echo', tuple(atom('hello'), 42))).toEqual(tuple(atom('hello'), 42));
    expect(await conn.call(atom('erl_peb_bench_echo'), [1, 2])).toEqual([1, 2]);
  });

  it('calls a pid', async () => {
    const started = (await conn.rpc('erl_peb_bench_echo', 'start', [])) as Tuple;
    // A second start fails ({error, {already_started, Pid}}) and names the running server's pid.
    const pid = (started.at(1) as Tuple).at(1) as Pid;
    expect(pid).toBeInstanceOf(Pid);
    expect(await conn.call(pid, 'by pid')).toEqual(Buffer.from('by pid'));
  });

  it('matches many concurrent calls', async () => {
    const n = 2000;
    const results = await Promise.all(Array.from({ length: n }, (_, i) => conn.call('erl_peb_bench_echo', i)));
    expect(results).toEqual(Array.from({ length: n }, (_, i) => i));
  });

  it('rejects with noproc for a name nobody registered, without waiting for the timeout', async () => {
    const e = await conn.call('nobody_has_this_name', 1, { timeout: 60_000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ kind: 'exit', reason: atom('noproc') });
    expect((e as Error).message).toMatch(/nobody_has_this_name/);
  });

  it('rejects with noproc for a dead pid', async () => {
    const pid = (await conn.rpc('erlang', 'spawn', [atom('erlang'), atom('now'), []])) as Pid;
    await expect(conn.call(pid, 'x', { timeout: 60_000 })).rejects.toMatchObject({ kind: 'exit', reason: atom('noproc') });
  });

  it('keeps a bounded number of monitors when it calls many pids', async () => {
    const pids = (await conn.rpc('erl_peb_conn_test', 'spawn_echoes', [1100])) as Pid[];
    for (let i = 0; i < pids.length; i += 100) {
      const batch = pids.slice(i, i + 100);
      expect(await Promise.all(batch.map((p, j) => conn.call(p, i + j)))).toEqual(batch.map((_, j) => i + j));
    }
    const monitoredBy = async (p: Pid): Promise<unknown> =>
      ((await conn.rpc('erlang', 'process_info', [p, atom('monitored_by')])) as Tuple).at(1);
    expect(await monitoredBy(pids[0]!)).toEqual([]); // the oldest idle monitors were dropped
    expect(await monitoredBy(pids[1099]!)).toEqual([conn.self]);
    await conn.rpc('erlang', 'exit', [pids[1099]!, atom('kill')]);
    // Killed before the call (noproc) or while it is made (killed): the monitor tells at once.
    const e = (await conn.call(pids[1099]!, 'x', { timeout: 60_000 }).catch((x: unknown) => x)) as RemoteError;
    expect(e).toBeInstanceOf(RemoteError);
    expect([atom('killed'), atom('noproc')]).toContain(e.reason);
    expect(await conn.call(pids[0]!, 'again')).toEqual(Buffer.from('again'));
  });

  it('rejects with the exit reason when the server dies handling the call', async () => {
    const e = await conn.call('erl_peb_crashy', atom('please'), { timeout: 60_000 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RemoteError);
    expect(e).toMatchObject({ kind: 'exit', reason: tuple(atom('crashed'), atom('please')) });
  });

  it('reaches a server registered again under the same name', async () => {
    await node.eval('{ok, _} = erl_peb_conn_test:restart_crashy()');
    await expect(conn.call('erl_peb_crashy', 1)).rejects.toMatchObject({ reason: tuple(atom('crashed'), 1) });
    await node.eval('{ok, _} = erl_peb_conn_test:restart_crashy()');
    await expect(conn.call('erl_peb_crashy', 2)).rejects.toMatchObject({ reason: tuple(atom('crashed'), 2) });
  });
});

describe('send, self and receive', () => {
  it('receives what is sent to self', async () => {
    await conn.rpc('erlang', 'send', [conn.self, tuple(atom('hi'), 1)]);
    expect(await conn.receive()).toEqual(tuple(atom('hi'), 1));
  });

  it('sends to a registered name and to a pid', async () => {
    conn.send('erl_peb_mirror', tuple(conn.self, atom('via name')));
    expect(await conn.receive()).toBe(atom('via name'));
    const mirror = (await conn.rpc('erlang', 'whereis', [atom('erl_peb_mirror')])) as Pid;
    conn.send(mirror, tuple(conn.self, atom('via pid')));
    expect(await conn.receive()).toBe(atom('via pid'));
  });

  it('keeps messages in order and waits for them in a mailbox', async () => {
    for (let i = 0; i < 100; i++) conn.send('erl_peb_mirror', tuple(conn.self, i));
    const got = [];
    for (let i = 0; i < 100; i++) got.push(await conn.receive());
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('delivers what was sent just before close()', async () => {
    // Writes are held to the end of the turn; close() in the same turn must not drop them.
    const sender = await connect({ node: node.name, cookie: node.cookie, config: false });
    const r = conn.receive({ timeout: 5000 });
    sender.send('erl_peb_mirror', tuple(conn.self, atom('sent, then closed')));
    sender.close();
    expect(await r).toBe(atom('sent, then closed'));
  });

  it("emits 'message' when nothing waits in receive()", async () => {
    const seen = new Promise((resolve) => conn.once('message', resolve));
    conn.send('erl_peb_mirror', tuple(conn.self, atom('event')));
    expect(await seen).toBe(atom('event'));
  });

  it('gives a message to a waiting receive() before the listeners', async () => {
    const listener = (): void => {
      throw new Error('the listener should not get it');
    };
    conn.on('message', listener);
    try {
      const r = conn.receive();
      conn.send('erl_peb_mirror', tuple(conn.self, atom('to receive')));
      expect(await r).toBe(atom('to receive'));
    } finally {
      conn.off('message', listener);
    }
  });

  it('takes links, unlinks, monitors and exit signals aimed at its pid in its stride', async () => {
    expect(await conn.rpc('erlang', 'link', [conn.self])).toBe(true);
    expect(await conn.rpc('erlang', 'unlink', [conn.self])).toBe(true);
    expect(await conn.rpc('erlang', 'link', [conn.self])).toBe(true); // the rpc process ends: an exit signal
    expect(await conn.rpc('erlang', 'monitor', [atom('process'), conn.self])).toBeInstanceOf(Ref);
    expect(await conn.rpc('erlang', 'exit', [conn.self, atom('kill')])).toBe(true);
    expect(await conn.call('erl_peb_bench_echo', 'still here')).toEqual(Buffer.from('still here'));
  });

  it('times out and aborts a receive()', async () => {
    await expect(conn.receive({ timeout: 50 })).rejects.toBeInstanceOf(TimeoutError);
    const ac = new AbortController();
    const r = conn.receive({ timeout: 60_000, signal: ac.signal });
    ac.abort(new Error('stop waiting'));
    await expect(r).rejects.toThrow('stop waiting');
  });
});

describe('timeouts, aborts and bad input', () => {
  it('times out a call and drops its late reply', async () => {
    const e = await conn.rpc('timer', 'sleep', [500], { timeout: 50 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(TimeoutError);
    expect(e).toMatchObject({ timeout: 50 });
    expect((e as Error).message).toMatch(/timer:sleep\/1 timed out after 50 ms/);
    // The late reply arrives meanwhile and is dropped; the connection goes on.
    expect(await conn.rpc('timer', 'sleep', [600])).toBe(atom('ok'));
  });

  it('times out one call while 1,000 others succeed', async () => {
    const slow = conn.rpc('timer', 'sleep', [2000], { timeout: 100 });
    const fast = Array.from({ length: 1000 }, (_, i) => conn.call('erl_peb_bench_echo', i, { timeout: 30_000 }));
    await expect(slow).rejects.toBeInstanceOf(TimeoutError);
    expect(await Promise.all(fast)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });

  it('aborts a call with the signal', async () => {
    const already = AbortSignal.abort(new Error('never sent'));
    await expect(conn.rpc('erlang', 'node', [], { signal: already })).rejects.toThrow('never sent');
    const ac = new AbortController();
    const p = conn.rpc('timer', 'sleep', [1000], { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toMatchObject({ name: 'AbortError' });
    expect(await conn.call('erl_peb_bench_echo', 'still fine')).toEqual(Buffer.from('still fine'));
  });

  it('rejects bad arguments with typed errors', async () => {
    await expect(conn.rpc(42 as never, 'f', [])).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.rpc('m', '', [])).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.rpc('m', 'f', 'not a list' as never)).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.rpc('m', 'x'.repeat(256), [])).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.call(undefined as never, 1)).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.call({} as never, 1)).rejects.toBeInstanceOf(EncodeError);
    const e = await conn.call('erl_peb_bench_echo', { when: new Date() } as never).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(EncodeError);
    expect((e as EncodeError).path).toContain('when');
    // Keys Erlang would read as one (lone surrogates are written as U+FFFD): refused, in a call,
    // an rpc and a send alike, and nothing of them goes out.
    const twins = { '\uD800': 1, '\uDC00': 2 };
    await expect(conn.call('erl_peb_bench_echo', twins)).rejects.toBeInstanceOf(EncodeError);
    await expect(conn.rpc('erlang', 'is_map', [twins])).rejects.toBeInstanceOf(EncodeError);
    expect(() => conn.send('erl_peb_bench_echo', twins)).toThrow(EncodeError);
    expect(await conn.call('erl_peb_bench_echo', { '\uD800': 1 })).toEqual(new Map([[Buffer.from('\uFFFD'), 1]]));
    await expect(conn.rpc('erlang', 'node', [], { timeout: -1 })).rejects.toBeInstanceOf(ConfigError);
    await expect(conn.rpc('erlang', 'node', [], { signal: 'no' as never })).rejects.toBeInstanceOf(ConfigError);
    // A pid of another node (here: this connection's own) is not reachable through this one.
    await expect(conn.call(conn.self, 1)).rejects.toThrow(/not on the connected node/);
    expect(() => conn.send(conn.self, 1)).toThrow(EncodeError);
    expect(() => conn.send(7 as never, 1)).toThrow(EncodeError);
    expect(() => conn.send('erl_peb_mirror', (() => 1) as never)).toThrow(EncodeError);
    // Nothing of that reached the node or hurt the connection.
    expect(await conn.call('erl_peb_bench_echo', 'ok')).toEqual(Buffer.from('ok'));
  });

  it('keeps the event loop running during a long rpc', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 100);
    try {
      expect(await conn.rpc('timer', 'sleep', [2000])).toBe(atom('ok'));
    } finally {
      clearInterval(timer);
    }
    // 20 intervals fit in 2 s; a loop blocked by the call would have run next to none.
    expect(ticks).toBeGreaterThanOrEqual(15);
  });

  it('stays connected while it only receives, past the tick time', async () => {
    // The node sends without pause and hears nothing but the answers to its ticks.
    await conn.rpc('erl_peb_conn_test', 'stream', [conn.self, 70, 100]);
    const got: unknown[] = [];
    for (let i = 0; i < 70; i++) got.push(await conn.receive());
    expect(got).toEqual(Array.from({ length: 70 }, (_, i) => i + 1));
    expect(await node.evalTrue(`lists:member('${conn.name}', nodes(hidden))`)).toBe(true);
  });

  it('answers the node\'s ticks while idle past its tick time', async () => {
    // net_ticktime is 4 s: a connection that did not answer ticks would be dropped within it.
    expect(await conn.rpc('timer', 'sleep', [7000], { timeout: 30_000 })).toBe(atom('ok'));
    expect(await node.evalTrue(`lists:member('${conn.name}', nodes(hidden))`)).toBe(true);
  });
});

describe('decode options and limits', () => {
  it('decodes replies with the connection\'s decode options', async () => {
    const c = await connect({ node: node.name, cookie: node.cookie, config: false, decode: { binaries: 'string', maps: 'object' } });
    try {
      expect(await c.call('erl_peb_bench_echo', Buffer.from('text'))).toBe('text');
      expect(await c.rpc('maps', 'from_list', [[tuple(atom('a'), 1)]])).toEqual({ a: 1 });
    } finally {
      c.close();
    }
  });

  it('rejects a reply that is too deep with a DecodeError and goes on', async () => {
    const c = await connect({ node: node.name, cookie: node.cookie, config: false, decode: { maxDepth: 10 } });
    try {
      await expect(c.rpc('erl_peb_conn_test', 'deep', [50])).rejects.toBeInstanceOf(DecodeError);
      expect(await c.rpc('erl_peb_conn_test', 'deep', [3])).toEqual([[[[]]]]);
    } finally {
      c.close();
    }
  });

  it('decodes each reply of a batch on its own: one that fails leaves the others whole', async () => {
    // Replies that arrive together are parsed onto one tape and made in one entry into JS; keys
    // of maps as objects go through the decoder's key cache.
    const c = await connect({ node: node.name, cookie: node.cookie, config: false, decode: { maxDepth: 10, maps: 'object', binaries: 'string' } });
    try {
      const alone = await c.rpc('erl_peb_conn_test', 'deep', [50]).catch((e: unknown) => e);
      expect(alone).toBeInstanceOf(DecodeError);
      const request = (i: number): Map<unknown, unknown> =>
        new Map<unknown, unknown>([
          [Buffer.from('shared'), i],
          [Buffer.from(`key_${i % 7}`), Buffer.from(`é${i}`)],
        ]);
      const results = await Promise.all(
        Array.from({ length: 300 }, (_, i) =>
          i % 3 === 0 ? c.rpc('erl_peb_conn_test', 'deep', [50]).catch((e: unknown) => e) : c.call('erl_peb_bench_echo', request(i)),
        ),
      );
      results.forEach((r, i) => {
        if (i % 3 === 0) {
          expect(r).toBeInstanceOf(DecodeError);
          expect((r as DecodeError).offset).toBe((alone as DecodeError).offset);
        } else {
          expect(r).toEqual({ shared: i, [`key_${i % 7}`]: `é${i}` });
        }
      });
    } finally {
      c.close();
    }
  });

  it("emits 'error' for a message that does not decode, and goes on", async () => {
    const c = await connect({ node: node.name, cookie: node.cookie, config: false, decode: { maxDepth: 10 } });
    try {
      const failed = new Promise<unknown>((resolve) => c.once('error', resolve));
      const deep = await conn.rpc('erl_peb_conn_test', 'deep', [50]);
      await c.rpc('erlang', 'send', [c.self, deep, []]); // send/3 answers ok, not the message
      expect(await failed).toBeInstanceOf(DecodeError);
      await c.rpc('erlang', 'send', [c.self, atom('fine')]);
      expect(await c.receive()).toBe(atom('fine'));
    } finally {
      c.close();
    }
  });

  it('drops the connection on a message larger than maxMessageSize', async () => {
    const c = await connect({ node: node.name, cookie: node.cookie, config: false, maxMessageSize: 64 * 1024 });
    try {
      const lost = new Promise<Error>((resolve) => c.once('disconnect', resolve));
      const e = await c.rpc('erl_peb_conn_test', 'binary', [100_000]).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(ConnectionError);
      expect((e as Error).message).toMatch(/maxMessageSize/);
      expect((await lost).message).toMatch(/maxMessageSize/);
      expect(c.state).toBe('disconnected');
      await expect(c.rpc('erlang', 'node', [])).rejects.toBeInstanceOf(ConnectionError);
    } finally {
      c.close();
    }
  });
});

describe('close', () => {
  it('rejects calls in flight and later calls with ClosedError', async () => {
    const c = await connect({ node: node.name, cookie: node.cookie, config: false });
    const inFlight = c.rpc('timer', 'sleep', [5000]);
    const receiving = c.receive({ timeout: 60_000 });
    c.close();
    await expect(inFlight).rejects.toBeInstanceOf(ClosedError);
    await expect(receiving).rejects.toBeInstanceOf(ClosedError);
    await expect(c.rpc('erlang', 'node', [])).rejects.toBeInstanceOf(ClosedError);
    await expect(c.call('erl_peb_bench_echo', 1)).rejects.toBeInstanceOf(ClosedError);
    await expect(c.receive()).rejects.toBeInstanceOf(ClosedError);
    expect(() => c.send('erl_peb_mirror', 1)).toThrow(ClosedError);
    expect(c.state).toBe('closed');
    c.close(); // again: nothing happens
    // The node sees the hidden node go.
    expect(
      await node.evalText(`erlang:monitor_node('${c.name}', true), receive {nodedown, _} -> gone after 10000 -> still_there end`),
    ).toBe('gone');
  });

  it('is an Atom everywhere an atom comes back', async () => {
    expect(await conn.rpc('erlang', 'node', [])).toBeInstanceOf(Atom);
  });
});
