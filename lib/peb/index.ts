/**
 * `peb`: mypeb's functions for Node, so code written against the PHP extension ports line by line.
 * Anything that touches the network returns a promise. As in mypeb, the link argument may be left
 * out: the link last opened is used. What comes back from Erlang (rpc results, received messages)
 * is the encoded term, as mypeb's resources were: `peb.decode(result)` gives mypeb's array shape.
 *
 *   const link = await peb.connect('sessions@127.0.0.1', 'secret');
 *   const x = peb.encode('[~s]', [[id]]);
 *   const data = peb.decode(await peb.rpc('session_handler', 'read', x, link))[0];
 */
import { connect as connectNode, type Connection } from '../connection';
import { binaryToTerm, termToBinary } from '../codec/native';
import { ConfigError, ErlPebError } from '../errors';
import { Pid, type Term } from '../terms';
import { encodeWith, toPebShape, PEB_DECODE_OPTIONS } from './format';
import { printTerm } from './print';

/** A link, as mypeb called a connection. */
export type PebLink = Connection;

interface PebState {
  last: PebLink | undefined;
  persistent: Map<string, Promise<PebLink>>;
  pendingRpcTo: WeakMap<PebLink, Array<Promise<Term>>>;
  error: ErlPebError | Error | undefined;
}

const state: PebState = { last: undefined, persistent: new Map(), pendingRpcTo: new WeakMap(), error: undefined };

// mypeb's error numbers were ei's; these name erl-peb's error classes instead (0: no error).
const ERROR_NUMBERS: Record<string, number> = {
  ERL_PEB_CONNECTION: 1,
  ERL_PEB_TIMEOUT: 2,
  ERL_PEB_CLOSED: 3,
  ERL_PEB_REMOTE: 4,
  ERL_PEB_DECODE: 5,
  ERL_PEB_ENCODE: 6,
  ERL_PEB_CONFIG: 7,
};

/** Runs `fn`, remembering its error for peb.error()/peb.errorno() as mypeb did. */
async function track<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    const v = await fn();
    state.error = undefined;
    return v;
  } catch (e) {
    state.error = e as Error;
    throw e;
  }
}

function trackSync<T>(fn: () => T): T {
  try {
    const v = fn();
    state.error = undefined;
    return v;
  } catch (e) {
    state.error = e as Error;
    throw e;
  }
}

function linkOf(link: PebLink | undefined): PebLink {
  const l = link ?? state.last;
  if (l === undefined) throw new ConfigError('no link: call peb.connect() first or pass the link');
  return l;
}

/** Bytes from peb.encode (no version byte) or with one (vencode), or a JS term as it is. */
function termOf(x: Buffer | Uint8Array | Term): Term {
  if (x instanceof Uint8Array) {
    const bytes = x[0] === 131 ? x : Buffer.concat([Buffer.of(131), x]);
    return binaryToTerm(bytes);
  }
  return x;
}

/** The encoded term without the version byte, as mypeb's result resources held it. */
const encoded = (t: Term): Buffer => termToBinary(t).subarray(1);

function connectOptions(node: string, secret: string | undefined, timeout: number | undefined) {
  return { node, cookie: secret, timeout: timeout === undefined ? undefined : Math.max(1, Math.round(timeout * 1000)) };
}

export const peb = {
  /** peb_connect(node, secret, timeout): a new link. `timeout` in seconds, as mypeb took it. */
  connect(node: string, secret?: string, timeout?: number): Promise<PebLink> {
    return track(async () => {
      const link = await connectNode(connectOptions(node, secret, timeout));
      state.last = link;
      return link;
    });
  },

  /** peb_pconnect: one shared link per node and cookie, kept open; peb.close() leaves it open. */
  pconnect(node: string, secret?: string, timeout?: number): Promise<PebLink> {
    return track(async () => {
      const key = `${node}\0${secret ?? ''}`;
      let p = state.persistent.get(key);
      if (p === undefined) {
        p = connectNode(connectOptions(node, secret, timeout)).then((link) => {
          persistentLinks.add(link);
          return link;
        });
        p.catch(() => state.persistent.delete(key));
        state.persistent.set(key, p);
      }
      const link = await p;
      if (link.state === 'closed') {
        state.persistent.delete(key);
        return peb.pconnect(node, secret, timeout);
      }
      state.last = link;
      return link;
    });
  },

  /** peb_close: closes a link from peb.connect (a persistent one stays open, as in mypeb). */
  close(link?: PebLink): void {
    trackSync(() => {
      const l = linkOf(link);
      if (persistentLinks.has(l)) return;
      l.close();
      if (state.last === l) state.last = undefined;
    });
  },

  /** peb_rpc: calls module:fn(args...) and gives the result, encoded (decode it with peb.decode). */
  rpc(module: string, fn: string, args: Buffer | Uint8Array | Term[], link?: PebLink): Promise<Buffer> {
    return track(async () => encoded(await linkOf(link).rpc(module, fn, rpcArgs(args))));
  },

  /** peb_rpc_to: starts the call without waiting; peb.receive() on the link gives its result. */
  rpc_to(module: string, fn: string, args: Buffer | Uint8Array | Term[], link?: PebLink): Promise<void> {
    return track(async () => {
      const l = linkOf(link);
      const call = l.rpc(module, fn, rpcArgs(args));
      call.catch(() => undefined); // its error is reported by the receive() that takes it
      const queue = state.pendingRpcTo.get(l) ?? [];
      queue.push(call);
      state.pendingRpcTo.set(l, queue);
    });
  },

  /**
   * peb_receive: the result of the oldest peb.rpc_to() on this link, else the next message sent to
   * the link's pid (`link.self`), encoded. `timeout` in seconds.
   */
  receive(link?: PebLink, timeout?: number): Promise<Buffer> {
    return track(async () => {
      const l = linkOf(link);
      const queued = state.pendingRpcTo.get(l)?.shift();
      if (queued !== undefined) return encoded(await queued);
      const ms = timeout === undefined ? undefined : Math.max(1, Math.round(timeout * 1000));
      return encoded(await l.receive({ timeout: ms }));
    });
  },

  /** peb_send_byname: sends a message (peb.encode bytes, or a term) to a registered name. */
  send_byname(name: string, msg: Buffer | Uint8Array | Term, link?: PebLink): void {
    trackSync(() => linkOf(link).send(name, termOf(msg)));
  },

  /** peb_send_bypid: sends a message to a pid (a Pid, e.g. from a decoded term). */
  send_bypid(pid: Pid, msg: Buffer | Uint8Array | Term, link?: PebLink): void {
    trackSync(() => {
      if (!(pid instanceof Pid)) throw new ConfigError('send_bypid needs a Pid');
      linkOf(link).send(pid, termOf(msg));
    });
  },

  /** peb_encode(format, data): the term, without the version byte (rpc arguments). */
  encode(format: string, data: unknown[]): Buffer {
    return trackSync(() => encodeWith((t) => encoded(t), format, data));
  },

  /** peb_vencode: the same with the version byte (a whole external term). */
  vencode(format: string, data: unknown[]): Buffer {
    return trackSync(() => encodeWith((t) => termToBinary(t), format, data));
  },

  /** peb_decode: an encoded term without the version byte (an rpc result) in mypeb's shape. */
  decode(bytes: Buffer | Uint8Array): unknown[] {
    return trackSync(() => toPebShape(binaryToTerm(Buffer.concat([Buffer.of(131), bytes]), PEB_DECODE_OPTIONS)));
  },

  /** peb_vdecode: a whole external term (version byte first) in mypeb's shape. */
  vdecode(bytes: Buffer | Uint8Array): unknown[] {
    return trackSync(() => toPebShape(binaryToTerm(bytes, PEB_DECODE_OPTIONS)));
  },

  /** peb_error: the message of the last failed peb call, '' when the last call succeeded. */
  error(): string {
    return state.error?.message ?? '';
  },

  /** peb_errorno: a number for the last failure (0: none; 1 connection, 2 timeout, 3 closed, 4 remote, 5 decode, 6 encode, 7 config, 99 other). */
  errorno(): number {
    const e = state.error;
    if (e === undefined) return 0;
    return (e instanceof ErlPebError && ERROR_NUMBERS[e.code]) || 99;
  },

  /** peb_linkinfo: what a link is connected to. Never the cookie. */
  linkinfo(link?: PebLink): { thisnodename: string; thisalivename: string; connectnodename: string; state: string } {
    return trackSync(() => {
      const l = linkOf(link);
      return { thisnodename: l.name, thisalivename: l.name.split('@')[0]!, connectnodename: l.node, state: l.state };
    });
  },

  /** peb_print_term: the term in Erlang's syntax (as io_lib:format("~p") writes it). */
  print_term(x: Buffer | Uint8Array | Term): string {
    return trackSync(() => printTerm(termOf(x)));
  },
};

const persistentLinks = new WeakSet<PebLink>();

function rpcArgs(args: Buffer | Uint8Array | Term[]): Term[] {
  const t = termOf(args as Term);
  if (!Array.isArray(t)) throw new ConfigError('rpc arguments must be a list: encode them with a format like "[~s]"');
  return t;
}
