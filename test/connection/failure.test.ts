import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Connection } from '../../lib/connection';
import { ConnectionError, TimeoutError } from '../../lib/errors';
import { atom } from '../../lib/terms';
import { startNode, type ErlangNode } from '../support/erlang-node';
import { waitForProcessState } from '../support/process-state';
import { BENCH_ECHO, compileErlang, type CompiledModules } from '../support/erlang-modules';

let beams: CompiledModules;
const nodes: ErlangNode[] = [];

async function echoNode(options: { name?: string; cookie?: string } = {}): Promise<ErlangNode> {
  const n = await startNode({ ...options, codePaths: [beams.dir] });
  nodes.push(n);
  await n.eval('{ok, _} = erl_peb_bench_echo:start()');
  return n;
}

beforeAll(async () => {
  beams = await compileErlang([BENCH_ECHO]);
});

afterAll(async () => {
  for (const n of nodes) {
    n.signal('SIGCONT');
    await n.stop();
  }
  await beams?.remove();
});

describe('losing the node', () => {
  it('rejects 1,000 calls in flight at once when the node is killed, then reconnects to it', async () => {
    const node = await echoNode();
    const conn = await connect({
      node: node.name,
      cookie: node.cookie,
      config: false,
      reconnect: { initialDelay: 20, maxDelay: 200 },
    });
    try {
      const disconnected = once(conn, 'disconnect') as Promise<[Error]>;
      const inFlight = Array.from({ length: 1000 }, () => conn.rpc('timer', 'sleep', [60_000], { timeout: 120_000 }));
      // Replies come in order of sending: once this one is back, all the above have reached the node.
      expect(await conn.call('erl_peb_bench_echo', 'sent')).toEqual(Buffer.from('sent'));

      const killedAt = performance.now();
      node.signal('SIGKILL');
      const settled = await Promise.allSettled(inFlight);
      const elapsed = performance.now() - killedAt;

      expect(settled.every((s) => s.status === 'rejected' && s.reason instanceof ConnectionError)).toBe(true);
      expect((settled[0] as PromiseRejectedResult).reason.message).toMatch(/lost the connection to/);
      expect(elapsed).toBeLessThan(1000);
      const [error] = await disconnected;
      expect(error).toBeInstanceOf(ConnectionError);
      expect(conn.state).toBe('reconnecting');

      // A call made meanwhile waits for the connection (within its timeout).
      const waiting = conn.rpc('erlang', 'node', [], { timeout: 60_000 });
      const reconnected = once(conn, 'connect');
      await node.exit;
      const again = await echoNode({ name: node.name, cookie: node.cookie });
      expect(await reconnected).toEqual([again.name]);
      expect(conn.state).toBe('connected');
      expect(await waiting).toBe(atom(again.name));
      expect(await conn.call('erl_peb_bench_echo', 'back')).toEqual(Buffer.from('back'));
    } finally {
      conn.close();
    }
  });

  it('without reconnect, rejects later calls with ConnectionError', async () => {
    const node = await echoNode();
    const conn = await connect({ node: node.name, cookie: node.cookie, config: false });
    try {
      const disconnected = once(conn, 'disconnect');
      node.signal('SIGKILL');
      await disconnected;
      expect(conn.state).toBe('disconnected');
      await expect(conn.call('erl_peb_bench_echo', 1)).rejects.toBeInstanceOf(ConnectionError);
      await expect(conn.rpc('erlang', 'node', [])).rejects.toThrow(/not connected to/);
    } finally {
      conn.close();
    }
  });

  it("gives up after maxAttempts, rejects what waited and emits 'error'", async () => {
    const node = await echoNode();
    const conn = await connect({
      node: node.name,
      cookie: node.cookie,
      config: false,
      reconnect: { initialDelay: 10, maxDelay: 20, maxAttempts: 3 },
    });
    try {
      const gaveUp = once(conn, 'error') as Promise<[Error]>;
      const disconnected = once(conn, 'disconnect');
      node.signal('SIGKILL');
      await disconnected;
      const waiting = conn.rpc('erlang', 'node', [], { timeout: 60_000 });
      const [error] = await gaveUp;
      expect(error).toBeInstanceOf(ConnectionError);
      expect(error.message).toMatch(/gave up reconnecting .* after 3 attempts/);
      await expect(waiting).rejects.toBeInstanceOf(ConnectionError);
      expect(conn.state).toBe('disconnected');
      await expect(conn.rpc('erlang', 'node', [])).rejects.toBeInstanceOf(ConnectionError);
    } finally {
      conn.close();
    }
  });

  it('fails over to the next node', async () => {
    const first = await echoNode();
    const second = await echoNode({ cookie: first.cookie });
    const conn = await connect({
      nodes: [first.name, second.name],
      cookie: first.cookie,
      config: false,
      reconnect: { initialDelay: 10, maxDelay: 100 },
    });
    try {
      expect(conn.node).toBe(first.name);
      const reconnected = once(conn, 'connect');
      first.signal('SIGKILL');
      expect(await reconnected).toEqual([second.name]);
      expect(await conn.rpc('erlang', 'node', [])).toBe(atom(second.name));
    } finally {
      conn.close();
    }
  });
});

describe('a node that stops answering', () => {
  let node: ErlangNode;
  let conn: Connection;

  beforeAll(async () => {
    node = await echoNode();
    conn = await connect({ node: node.name, cookie: node.cookie, config: false, reconnect: true });
  });

  afterAll(() => conn?.close());

  it('times calls out while it is stopped and serves them again once it continues', async () => {
    expect(await conn.call('erl_peb_bench_echo', 'before')).toEqual(Buffer.from('before'));
    node.signal('SIGSTOP');
    try {
      await waitForProcessState(node.pid, (s) => s === 'T', 'stopped');
      const stalled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => conn.call('erl_peb_bench_echo', i, { timeout: 300 })),
      );
      for (const s of stalled) {
        expect(s.status).toBe('rejected');
        expect((s as PromiseRejectedResult).reason).toBeInstanceOf(TimeoutError);
        expect((s as PromiseRejectedResult).reason).toMatchObject({ timeout: 300 });
      }
    } finally {
      node.signal('SIGCONT');
    }
    expect(await conn.call('erl_peb_bench_echo', 'after', { timeout: 30_000 })).toEqual(Buffer.from('after'));
    expect(conn.state).toBe('connected');
  });

  it('queues what the stopped node cannot take, and delivers all of it in order once it continues', async () => {
    node.signal('SIGSTOP');
    let calls: Promise<unknown>[];
    try {
      await waitForProcessState(node.pid, (s) => s === 'T', 'stopped');
      // 20 MB: far more than the socket buffers hold, so most of it waits in the queue, some of
      // it as the rest of a packet the socket took only part of.
      calls = Array.from({ length: 40 }, (_, i) => conn.call('erl_peb_bench_echo', Buffer.alloc(500_000, i), { timeout: 60_000 }));
    } finally {
      node.signal('SIGCONT');
    }
    const replies = (await Promise.all(calls)) as Buffer[];
    replies.forEach((r, i) => {
      expect(r.length).toBe(500_000);
      expect(r[0]).toBe(i);
      expect(r[499_999]).toBe(i);
    });
  });
});
