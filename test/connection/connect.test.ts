import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from '../../lib/connection';
import { ConfigError, ConnectionError } from '../../lib/errors';
import { atom } from '../../lib/terms';
import { randomNodeName, startNode, type ErlangNode } from '../support/erlang-node';

let node: ErlangNode;

beforeAll(async () => {
  node = await startNode();
});

afterAll(() => node?.stop());

/** The error connect() rejects with. */
async function failure(options: Parameters<typeof connect>[0]): Promise<Error> {
  const result = await connect({ config: false, ...options }).then(
    (c) => {
      c.close();
      return new Error('connected');
    },
    (e: Error) => e,
  );
  return result;
}

describe('connect failures', () => {
  it('names a node that is not running', async () => {
    const name = randomNodeName('erlpeb_absent');
    const e = await failure({ node: name, cookie: node.cookie });
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/no node named 'erlpeb_absent_\w+' is registered with EPMD on 127\.0\.0\.1/);
    expect(e.message).not.toContain(node.cookie);
  });

  it('says the cookie is wrong, without showing either cookie', async () => {
    const wrong = 'not-the-right-cookie-3141592653';
    const e = await failure({ node: node.name, cookie: wrong });
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/cookie/);
    expect(e.message).not.toContain(wrong);
    expect(e.message).not.toContain(node.cookie);
  });

  it('says when no EPMD answers on the host', async () => {
    const saved = process.env.ERL_EPMD_PORT;
    process.env.ERL_EPMD_PORT = '9'; // discard: nothing listens there
    try {
      const e = await failure({ node: node.name, cookie: node.cookie, timeout: 2000 });
      expect(e).toBeInstanceOf(ConnectionError);
      expect(e.message).toMatch(/EPMD on 127\.0\.0\.1 \(port 9\)/);
    } finally {
      if (saved === undefined) delete process.env.ERL_EPMD_PORT;
      else process.env.ERL_EPMD_PORT = saved;
    }
  });

  it('fails within the timeout for a host that does not answer', async () => {
    // TEST-NET-1 (RFC 5737): routed nowhere, so the connect either times out or is unreachable.
    const e = await failure({ node: 'somebody@192.0.2.1', cookie: node.cookie, timeout: 300 });
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/192\.0\.2\.1/);
  });

  it('says a host name does not resolve', async () => {
    const e = await failure({ node: 'somebody@no-such-host.invalid', cookie: node.cookie, timeout: 2000 });
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toMatch(/cannot resolve host 'no-such-host\.invalid'/);
  });

  it('rejects invalid options with a ConfigError', async () => {
    await expect(connect({ node: 'no at sign', cookie: 'c', config: false })).rejects.toBeInstanceOf(ConfigError);
    await expect(connect({ node: node.name, cookie: 'c', timeout: 0, config: false })).rejects.toBeInstanceOf(ConfigError);
    await expect(connect({ node: node.name, cookie: 'has space', config: false })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('several nodes', () => {
  it('connects to the first one that answers', async () => {
    const absent = randomNodeName('erlpeb_absent');
    const conn = await connect({ nodes: [absent, node.name], cookie: node.cookie, config: false });
    try {
      expect(conn.node).toBe(node.name);
      expect(await conn.rpc('erlang', 'node', [])).toBe(atom(node.name));
    } finally {
      conn.close();
    }
  });

  it('names every node that failed', async () => {
    const a = randomNodeName('erlpeb_absent');
    const b = randomNodeName('erlpeb_absent');
    const e = await failure({ nodes: [a, b], cookie: node.cookie });
    expect(e).toBeInstanceOf(ConnectionError);
    expect(e.message).toContain(`${a}: no node named`);
    expect(e.message).toContain(`${b}: no node named`);
  });

  it('takes node and cookie from the environment', async () => {
    const saved = { node: process.env.ERL_PEB_NODE, cookie: process.env.ERL_PEB_COOKIE };
    process.env.ERL_PEB_NODE = node.name;
    process.env.ERL_PEB_COOKIE = node.cookie;
    try {
      const conn = await connect({ config: false });
      expect(await conn.rpc('erlang', 'node', [])).toBe(atom(node.name));
      conn.close();
    } finally {
      for (const [k, v] of [['ERL_PEB_NODE', saved.node], ['ERL_PEB_COOKIE', saved.cookie]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });
});
