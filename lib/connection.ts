/**
 * A connection to an Erlang node: a hidden C-node of its own, run by the native addon on an I/O
 * thread of its own (see native/connection.h). Nothing here blocks the event loop, and any number
 * of calls may be in flight on one connection: each carries a reference whose words hold its call
 * id, and the reply `{Ref, Reply}` is matched to it.
 *
 * Semantics worth knowing:
 * - `call` is gen_server:call: `{'$gen_call', {Self, Ref}, Request}` to a registered name or a pid.
 *   The target is monitored (one monitor per target, kept while the target lives), so a name that
 *   is not registered or a process that dies rejects the call with a RemoteError of kind 'exit'
 *   (reason `noproc`, or the exit reason) instead of a timeout. A name unregistered while its
 *   process lives is not noticed: calls to it time out.
 * - Calls and messages reach the connected node's processes only: a pid of another node (or the
 *   connection's own) is refused with an EncodeError, since the node would drop the message.
 * - `rpc` is a gen_server call to `rex`: `{call, M, F, A, user}`. An exception in the function
 *   comes back as `{badrpc, {'EXIT', ...}}` and rejects with a RemoteError: kind 'error' (reason
 *   the error reason, for `{'EXIT', {Reason, Stacktrace}}`), 'exit' (any other `{'EXIT', R}`), or
 *   'badrpc'. A *thrown* value is rex's plain result (rex catches with `catch`), so it resolves.
 * - A timed-out call is taken back if it has not been written yet; once written it may still run
 *   on the node, and its late reply is dropped.
 * - Messages to `conn.self`: the oldest pending `receive()` takes each one; when none waits, the
 *   'message' listeners get it; when there are none, it waits in a mailbox (at most 10,000, the
 *   oldest dropped first) for the next `receive()`. A message that does not decode is an 'error'
 *   event (dropped when nothing listens for 'error'). Links, monitors and exit signals aimed at
 *   `conn.self` are ignored: this node has no processes to link or stop.
 * - Connection loss rejects every pending call with ConnectionError at once and emits
 *   'disconnect'. With `reconnect`, the connection reconnects with exponential backoff, trying
 *   the next of `nodes` each time, emits 'connect', and serves calls and sends made meanwhile
 *   (they wait, within their own timeout). After `maxAttempts` failed attempts it gives up:
 *   waiting calls reject and 'error' is emitted. Without `reconnect`, later calls reject with
 *   ConnectionError. `self` stays the same across reconnections.
 * - An idle connection does not keep the process alive; pending calls, waiting `receive()`s and
 *   'message' listeners do.
 */
import { EventEmitter } from 'node:events';
import { randomInt } from 'node:crypto';
import { hostname } from 'node:os';
import { inspect } from 'node:util';
import { resolveConnectOptions, type ConnectOptions, type ResolvedConnectOptions } from './config';
import { encodeTape, releaseTape, termToBinary } from './codec/native';
import { resolveDecodeOptions } from './codec/options';
import { ClosedError, ConfigError, ConnectionError, EncodeError, ErlPebError, RemoteError, TimeoutError } from './errors';
import { buildTerm, nativeBinding } from './native';
import { printTerm } from './peb/print';
import { Atom, atom, Pid, Tuple, type Term } from './terms';

export interface CallOptions {
  /** Milliseconds to wait for the reply (default: the connection's `callTimeout`); `Infinity` waits forever. */
  timeout?: number;
  /** Aborting rejects the call with the signal's reason (a written call may still run on the node). */
  signal?: AbortSignal;
}

export interface ReceiveOptions {
  /** Milliseconds to wait for a message (default: the connection's `callTimeout`); `Infinity` waits forever. */
  timeout?: number;
  signal?: AbortSignal;
}

/** Where a call or message goes: a registered name (string or Atom) on the connected node, or a pid. */
export type Destination = string | Atom | Pid;

export type ConnectionState = 'connected' | 'reconnecting' | 'disconnected' | 'closed';

/** `[]` encoded: the arguments of most rpc calls. */
const NO_ARGS = Buffer.from([131, 106]);

/** The native class (native/connection.cc). */
interface NativeConnection {
  connect(node: string, timeout: number): void;
  /**
   * Terms come as the codec's encode tape (then false: the full encoder must take the term, and
   * nothing was sent) or encoded by termToBinary (uncompressed): walking JS values from C++
   * costs several times more.
   */
  call(id: number, target: string | Pid, request: Float64Array | Buffer, monitorId: number, length?: number, text?: string, byteArrays?: Uint8Array[]): boolean;
  rpc(id: number, module: string, fn: string, args: Float64Array | Buffer, monitorId: number, length?: number, text?: string, byteArrays?: Uint8Array[]): boolean;
  send(target: string | Pid, term: Float64Array | Buffer, length?: number, text?: string, byteArrays?: Uint8Array[]): boolean;
  demonitor(target: string | Pid, monitorId: number): void;
  cancel(id: number): boolean;
  discardQueued(): void;
  cork(): void;
  uncork(): void;
  ref(): void;
  unref(): void;
  close(): void;
  self(): [string, number, number, number];
}
type OnEvents = (meta: Float64Array, n: number, values: unknown[], tape: Float64Array | undefined, text: string | undefined, src: Uint8Array | undefined) => void;
type NativeConnectionClass = new (options: object, onEvents: OnEvents) => NativeConnection;

// Event kinds of native/connection.h.
const EV_REPLY = 0;
const EV_MESSAGE = 1;
const EV_DOWN = 2;
const EV_CONNECTED = 3;
const EV_CONNECT_FAILED = 4;
const EV_DISCONNECTED = 5;
const DECODE_FAILED = 0x80;

/**
 * The connections holding writes for the end of this turn (their uncork functions). A
 * process.exit() in that turn ends the process before the turn ends: its 'exit' event sends them.
 */
const holdingWrites = new Set<() => void>();
let exitHookAdded = false;
function sendHeldWrites(): void {
  for (const uncork of holdingWrites) uncork();
}

const MAILBOX_LIMIT = 10_000;
/** Monitors kept for targets with nothing pending, beyond which the oldest are dropped. */
const MONITOR_LIMIT = 1024;
const MAX_TIMER = 2 ** 31 - 1;

interface Monitor {
  readonly id: number;
  readonly key: string;
  readonly target: string | Pid;
  pending: number;
}

interface Pending {
  readonly id: number;
  readonly resolve: (value: Term) => void;
  readonly reject: (error: unknown) => void;
  // What the call was, for error messages (only ever built into a string for one).
  readonly isRpc: boolean;
  readonly target: string | Pid; // rpc: the module
  readonly fn: string | undefined;
  readonly arity: number;
  readonly timeout: number;
  readonly deadline: number; // performance.now() time
  done: boolean;
  monitor: Monitor | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

interface Fifo {
  items: (Pending | undefined)[];
  head: number;
}

/**
 * Call timeouts without a Node timer per call (a setTimeout/clearTimeout pair costs microseconds
 * once thousands are outstanding). Calls with the same timeout expire in the order they were
 * made, so each timeout value has a FIFO of calls, and one timer waits for the earliest
 * deadline. A call settled meanwhile is dropped from the front of its FIFO as soon as it gets
 * there; replies mostly come in order, so the FIFOs hold little more than the calls in flight.
 * The timer is unref'd: pending calls keep the process alive through the connection itself.
 */
class Deadlines {
  private readonly fifos = new Map<number, Fifo>();
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;

  constructor(private readonly expire: (p: Pending) => void) {}

  add(p: Pending): void {
    let f = this.fifos.get(p.timeout);
    if (f === undefined) {
      f = { items: [], head: 0 };
      this.fifos.set(p.timeout, f);
    }
    Deadlines.dropSettled(f);
    f.items.push(p);
    if (p.deadline < this.armedFor) this.arm(p.deadline);
  }

  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.armedFor = Infinity;
    this.fifos.clear();
  }

  private static dropSettled(f: Fifo): void {
    const items = f.items;
    let h = f.head;
    while (h < items.length && items[h]!.done) items[h++] = undefined;
    if (h === items.length) {
      items.length = 0;
      h = 0;
    } else if (h > 1024 && h * 2 > items.length) {
      items.splice(0, h);
      h = 0;
    }
    f.head = h;
  }

  private arm(at: number): void {
    clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(this.fire, Math.max(1, Math.ceil(at - performance.now())));
    this.timer.unref();
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.armedFor = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (const [timeout, f] of this.fifos) {
      for (;;) {
        Deadlines.dropSettled(f);
        const p = f.items[f.head];
        if (p === undefined) break;
        if (p.deadline > now) {
          next = Math.min(next, p.deadline);
          break;
        }
        f.items[f.head++] = undefined;
        this.expire(p);
      }
      if (f.items.length === 0) this.fifos.delete(timeout);
    }
    if (next !== Infinity) this.arm(next);
  };
}

interface Receiver {
  readonly resolve: (value: Term) => void;
  readonly reject: (error: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

let connectionCounter = 0;

const A_BADRPC = atom('badrpc');
const A_EXIT = atom('EXIT');
const A_NOPROC = atom('noproc');
const A_UNDEF = atom('undef');

/** A short rendering of a term for an error message (Erlang syntax, cut at 200 characters). */
function show(term: unknown): string {
  let s: string;
  try {
    s = printTerm(term as Term);
  } catch {
    s = inspect(term, { depth: 3, breakLength: Infinity });
  }
  return s.length > 200 ? `${s.slice(0, 197)}...` : s;
}

function codePoints(s: string): number {
  if (s.length <= 255) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function atomName(v: unknown, what: string): string {
  const name = v instanceof Atom ? v.name : v;
  if (typeof name !== 'string' || name === '' || codePoints(name) > 255) {
    throw new EncodeError(`${what} must be a non-empty atom name (a string or Atom of at most 255 characters), got ${inspect(v)}`, what);
  }
  return name;
}

function destination(dest: unknown, node: string): string | Pid {
  if (dest instanceof Pid) {
    // The node would drop a message to another node's pid, and take a monitor of one as a
    // protocol error: this connection reaches the processes of its own node only.
    if (dest.node.name !== node) {
      throw new EncodeError(`the pid ${dest.toString()} is on node ${dest.node.name}, not on the connected node ${node}`, 'destination');
    }
    return dest;
  }
  if (typeof dest === 'string' || dest instanceof Atom) return atomName(dest, 'destination');
  throw new EncodeError(`destination must be a registered name (a string or Atom) or a Pid, got ${inspect(dest)}`, 'destination');
}

function targetKey(target: string | Pid): string {
  return typeof target === 'string' ? target : `${target.toString()}/${target.creation}`;
}

function timeoutOf(o: { timeout?: number } | undefined, fallback: number): number {
  const t = o?.timeout;
  if (t === undefined) return fallback;
  if (t === Infinity) return Infinity;
  if (typeof t !== 'number' || !Number.isInteger(t) || t < 1 || t > MAX_TIMER) {
    throw new ConfigError(`timeout must be an integer from 1 to ${MAX_TIMER} ms, or Infinity, got ${inspect(t)}`);
  }
  return t;
}

function signalOf(o: { signal?: AbortSignal } | undefined): AbortSignal | undefined {
  const s = o?.signal;
  if (s === undefined) return undefined;
  if (typeof s !== 'object' || s === null || typeof s.addEventListener !== 'function' || typeof s.aborted !== 'boolean') {
    throw new ConfigError(`signal must be an AbortSignal, got ${inspect(s)}`);
  }
  return s;
}

function optionsObject(o: unknown, what: string): void {
  if (o !== undefined && (typeof o !== 'object' || o === null)) throw new ConfigError(`${what} options must be an object`);
}

/** The reason an abort rejects with: the signal's own reason, as Node's APIs do. */
function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new ErlPebError('the operation was aborted', 'ABORT_ERR');
}

/** 'rpc m:f/2' or 'call to name', for messages. */
function describe(p: Pending): string {
  return p.isRpc ? `rpc ${String(p.target)}:${p.fn}/${p.arity}` : `call to ${String(p.target)}`;
}

/** Throws `e`, from a tick of its own (see onEvents). */
function rethrow(e: unknown): never {
  throw e;
}

type WriteTerm = (term: Float64Array | Buffer, length?: number, text?: string, byteArrays?: Uint8Array[]) => boolean;

/**
 * Hands `term` to a native write as the codec's encode tape, which the addon writes straight into
 * the packet, or, when the fast path does not take it (or the addon declines the tape), encoded
 * by termToBinary's full encoder, which throws EncodeError for what has no Erlang form.
 */
function writeTerm(term: Term, write: WriteTerm): void {
  const t = encodeTape(term);
  if (t !== undefined) {
    try {
      if (write(t.tape, t.length, t.text, t.byteArrays)) return;
    } finally {
      releaseTape();
    }
  }
  write(termToBinary(term));
}

/** The RemoteError for an rpc reply `{badrpc, Reason}`, or undefined for any other reply. */
function rpcError(reply: unknown, p: Pending): RemoteError | undefined {
  if (!(reply instanceof Tuple) || reply.elements.length !== 2 || reply.elements[0] !== A_BADRPC) return undefined;
  const what = describe(p);
  const reason = reply.elements[1];
  if (reason instanceof Tuple && reason.elements.length === 2 && reason.elements[0] === A_EXIT) {
    const r = reason.elements[1];
    if (r instanceof Tuple && r.elements.length === 2 && Array.isArray(r.elements[1])) {
      const error = r.elements[0];
      const hint = error === A_UNDEF ? ' (the module or function does not exist, or is not exported)' : '';
      return new RemoteError(`${what} failed: error ${show(error)}${hint}`, error, 'error');
    }
    return new RemoteError(`${what} failed: exit ${show(r)}`, r, 'exit');
  }
  return new RemoteError(`${what} failed: badrpc ${show(reason)}`, reason, 'badrpc');
}

/** This C-node's host part: the kind of name (long or short) must match the node's. */
function localHost(target: string): string {
  const long = target.slice(target.indexOf('@') + 1).includes('.');
  const h = hostname();
  if (!long) return h.split('.')[0] || 'localhost';
  return h.includes('.') ? h : '127.0.0.1';
}

function epmdPort(): number {
  const v = process.env.ERL_EPMD_PORT;
  if (v === undefined || v === '') return 4369;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new ConfigError(`ERL_EPMD_PORT must be a port number, got ${inspect(v)}`);
  return n;
}

/**
 * Connects to an Erlang node (or the first of `nodes` that answers). Options not given come from
 * the environment, a config file and ~/.erlang.cookie (see lib/config.ts).
 */
export async function connect(options?: ConnectOptions): Promise<Connection> {
  const resolved = resolveConnectOptions(options);
  const conn = new Connection(resolved);
  await conn.start();
  return conn;
}

export class Connection extends EventEmitter {
  /** The resolved settings (the cookie is not enumerable and never printed). */
  readonly options: ResolvedConnectOptions;
  /** This connection's own pid: messages sent to it arrive as 'message' events or through receive(). */
  readonly self: Pid;
  /** This connection's node name (a hidden node, unique to it). */
  readonly name: string;

  private readonly native: NativeConnection;
  private currentState: ConnectionState = 'disconnected';
  private nodeIndex = 0;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private readonly monitors = new Map<string, Monitor>();
  private readonly monitorsById = new Map<number, Monitor>();
  private nextMonitorId = 1;
  private mailbox: Term[] = [];
  private receivers: Receiver[] = [];
  private refed = false;
  private connecting = false;
  private connectWaiter: { resolve: () => void; reject: (e: Error) => void } | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private reconnectAttempts = 0;
  private lostError: ConnectionError | undefined;
  // Held here; the native object holds it strongly only while something waits (see updateRef), so
  // an unreferenced idle connection can be collected.
  private readonly onEventsFn: OnEvents = (meta, n, values, tape, text, src) => this.onEvents(meta, n, values, tape, text, src);
  // Through a WeakRef: the (unref'd) timer must not keep an idle connection from being collected.
  private readonly deadlines = Connection.deadlinesFor(new WeakRef(this));
  /** Writes are held until the end of this turn of the event loop (see holdWrites). */
  private corked = false;
  private readonly uncorkFn = (): void => {
    this.corked = false;
    holdingWrites.delete(this.uncorkFn);
    if (this.currentState !== 'closed') this.native.uncork();
  };
  private readonly updateRefFn = (): void => this.updateRef();

  /** @internal Use `connect()`. */
  constructor(options: ResolvedConnectOptions) {
    super();
    this.options = options;
    const decode = resolveDecodeOptions(options.decode);
    const first = options.nodes[0]!;
    const alive = `erlpeb_${process.pid}_${++connectionCounter}_${randomInt(0x1000000).toString(16)}`;
    const host = localHost(first);
    const NativeClass = nativeBinding().Connection as NativeConnectionClass;
    this.native = new NativeClass(
      {
        alive,
        host,
        cookie: options.cookie,
        creation: ((Math.floor(Date.now() / 1000) + connectionCounter) >>> 0) || 1,
        magic: randomInt(0x40000),
        maxMessageSize: options.maxMessageSize,
        epmdPort: epmdPort(),
        decodeFlags: decode.flags,
        maxDepth: decode.maxDepth,
        maxUncompressedSize: decode.maxUncompressedSize,
      },
      this.onEventsFn,
    );
    const [node, num, serial, creation] = this.native.self();
    this.name = node;
    this.self = new Pid(atom(node), num, serial, creation);
    // 'message' listeners keep the connection (and the process) alive, as a socket's 'data'
    // listeners do. 'newListener' comes before the listener is added: look once it is.
    this.on('newListener', (event: string | symbol) => {
      if (event === 'message') queueMicrotask(this.updateRefFn);
    });
    this.on('removeListener', (event: string | symbol) => {
      if (event === 'message') this.updateRef();
    });
  }

  private static deadlinesFor(conn: WeakRef<Connection>): Deadlines {
    return new Deadlines((p) => conn.deref()?.onTimeout(p));
  }

  /** 'connected', 'reconnecting', 'disconnected' (lost, not reconnecting) or 'closed'. */
  get state(): ConnectionState {
    return this.currentState;
  }

  /** The node this connection is (or was last) connected to. */
  get node(): string {
    return this.options.nodes[this.nodeIndex]!;
  }

  /** @internal Connects to the first node that answers; used once, by `connect()`. */
  async start(): Promise<void> {
    const failures: string[] = [];
    // The first connect keeps the process alive (a script awaiting connect() must not just exit);
    // reconnection attempts do not.
    this.connecting = true;
    try {
      for (let i = 0; i < this.options.nodes.length; i++) {
        try {
          await this.connectTo(i);
          this.currentState = 'connected';
          return;
        } catch (e) {
          if (e instanceof ClosedError) throw e;
          failures.push((e as Error).message);
        }
      }
    } finally {
      this.connecting = false;
      this.updateRef();
    }
    this.close();
    const nodes = this.options.nodes;
    throw new ConnectionError(
      nodes.length === 1
        ? `cannot connect to ${nodes[0]}: ${failures[0]}`
        : `cannot connect to any of ${nodes.join(', ')}: ${failures.map((f, i) => `${nodes[i]}: ${f}`).join('; ')}`,
    );
  }

  private connectTo(index: number): Promise<void> {
    this.nodeIndex = index;
    this.updateRef();
    return new Promise<void>((resolve, reject) => {
      this.connectWaiter = { resolve, reject };
      this.native.connect(this.options.nodes[index]!, this.options.timeout);
    });
  }

  /**
   * Calls `module:fn(...args)` on the node (through `rex`, as rpc:call does) and resolves with the
   * result. Rejects with RemoteError when the function raises (see the file comment), TimeoutError,
   * ConnectionError, ClosedError, EncodeError (an argument with no Erlang counterpart).
   */
  rpc(module: string | Atom, fn: string | Atom, args: readonly Term[] = [], options?: CallOptions): Promise<Term> {
    try {
      optionsObject(options, 'rpc');
      const m = atomName(module, 'module');
      const f = atomName(fn, 'function');
      if (!Array.isArray(args)) throw new EncodeError(`rpc arguments must be an array, got ${inspect(args)}`, 'args');
      const timeout = timeoutOf(options, this.options.callTimeout);
      const signal = signalOf(options);
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      if (!this.usable()) throw this.unusable(`rpc ${m}:${f}/${args.length}`);
      const id = this.nextId++;
      let monitor = this.monitors.get('rex');
      const monitorId = monitor === undefined ? this.nextMonitorId : 0;
      this.holdWrites();
      if (args.length === 0) this.native.rpc(id, m, f, NO_ARGS, monitorId);
      else writeTerm(args as Term[], (x, n, text, bytes) => this.native.rpc(id, m, f, x, monitorId, n, text, bytes));
      monitor ??= this.addMonitor('rex', 'rex');
      return this.track(id, true, m, f, args.length, timeout, signal, monitor);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * gen_server:call to a registered name or a pid on the node: resolves with the reply. Rejects
   * with RemoteError (kind 'exit') when no process has the name or the process exits before it
   * replies, TimeoutError, ConnectionError, ClosedError, EncodeError.
   */
  call(dest: Destination, request: Term, options?: CallOptions): Promise<Term> {
    try {
      optionsObject(options, 'call');
      const target = destination(dest, this.node);
      const timeout = timeoutOf(options, this.options.callTimeout);
      const signal = signalOf(options);
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      if (!this.usable()) throw this.unusable(`call to ${String(target)}`);
      const id = this.nextId++;
      const key = targetKey(target);
      let monitor = this.monitors.get(key);
      const monitorId = monitor === undefined ? this.nextMonitorId : 0;
      this.holdWrites();
      writeTerm(request, (x, n, text, bytes) => this.native.call(id, target, x, monitorId, n, text, bytes));
      monitor ??= this.addMonitor(key, target);
      return this.track(id, false, target, undefined, 0, timeout, signal, monitor);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Sends `term` to a registered name or a pid on the node (Erlang's `!`): no reply, no delivery guarantee. */
  send(dest: Destination, term: Term): void {
    const target = destination(dest, this.node);
    if (!this.usable()) throw this.unusable(`send to ${String(target)}`);
    this.holdWrites();
    writeTerm(term, (x, n, text, bytes) => this.native.send(target, x, n, text, bytes));
  }

  /** The next message sent to `self` (see the file comment for who gets a message first). */
  receive(options?: ReceiveOptions): Promise<Term> {
    try {
      optionsObject(options, 'receive');
      const timeout = timeoutOf(options, this.options.callTimeout);
      const signal = signalOf(options);
      if (this.currentState === 'closed') throw new ClosedError();
      if (signal?.aborted) return Promise.reject(abortReason(signal));
      if (this.mailbox.length > 0) return Promise.resolve(this.mailbox.shift() as Term);
      return new Promise<Term>((resolve, reject) => {
        const r: Receiver = { resolve, reject, timer: undefined, signal, onAbort: undefined };
        if (timeout !== Infinity) {
          r.timer = setTimeout(() => {
            this.dropReceiver(r);
            reject(new TimeoutError(`no message arrived within ${timeout} ms`, timeout));
          }, timeout);
        }
        if (signal !== undefined) {
          r.onAbort = () => {
            this.dropReceiver(r);
            reject(abortReason(signal));
          };
          signal.addEventListener('abort', r.onAbort, { once: true });
        }
        this.receivers.push(r);
        this.updateRef();
      });
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Closes the connection: pending calls and receives reject with ClosedError, the I/O thread is
   * joined and everything native is freed. Later calls reject with ClosedError. Idempotent.
   */
  close(): void {
    if (this.currentState === 'closed') return;
    this.currentState = 'closed';
    clearTimeout(this.reconnectTimer);
    // What was sent before close() goes out (what the socket takes now), not held to the turn's end.
    if (this.corked) this.native.uncork();
    this.native.close();
    this.refed = false;
    this.deadlines.clear();
    const error = new ClosedError('the connection was closed');
    this.connectWaiter?.reject(error);
    this.connectWaiter = undefined;
    this.rejectAllPending(() => new ClosedError(`the connection was closed`));
    for (const r of this.receivers.splice(0)) {
      this.clearReceiver(r);
      r.reject(new ClosedError('the connection was closed'));
    }
    this.mailbox = [];
    this.monitors.clear();
    this.monitorsById.clear();
  }

  // ------------------------------------------------------------------------------------------

  /** Whether calls can be made: when 'reconnecting', they wait in the send queue for the connection. */
  private usable(): boolean {
    return this.currentState === 'connected' || this.currentState === 'reconnecting';
  }

  private unusable(what: string): Error {
    return this.currentState === 'closed'
      ? new ClosedError(`${what}: the connection is closed`)
      : new ConnectionError(`${what}: not connected to ${this.node}${this.lostError ? ` (${this.lostError.message})` : ''}`);
  }

  /**
   * Everything written during one turn of the event loop goes out in one write at the end of the
   * turn (its check phase), as node-redis does: a server answering many requests at once makes
   * many calls per turn, and each write to the socket costs the process (and the node) far more
   * than the call's bytes. Writing a call on an idle connection at once instead made an Express
   * app with ErlangStore write to the socket 2.7 times as often, for no round-trip gain that
   * could be measured (README, "Session benchmark"). close() sends what is held, and so does
   * the process's 'exit' event (process.exit() in the same turn).
   */
  private holdWrites(): void {
    if (this.corked) return;
    this.corked = true;
    this.native.cork();
    setImmediate(this.uncorkFn);
    holdingWrites.add(this.uncorkFn);
    if (!exitHookAdded) {
      exitHookAdded = true;
      process.on('exit', sendHeldWrites);
    }
  }

  private addMonitor(key: string, target: string | Pid): Monitor {
    if (this.monitors.size >= MONITOR_LIMIT) this.trimMonitors();
    const m: Monitor = { id: this.nextMonitorId++, key, target, pending: 0 };
    this.monitors.set(key, m);
    this.monitorsById.set(m.id, m);
    return m;
  }

  /** Drops the oldest monitors of targets with nothing pending (many pids come and go). */
  private trimMonitors(): void {
    for (const m of this.monitors.values()) {
      if (this.monitors.size <= (MONITOR_LIMIT * 3) / 4) break;
      if (m.pending > 0 || m.key === 'rex') continue;
      this.monitors.delete(m.key);
      this.monitorsById.delete(m.id);
      this.native.demonitor(m.target, m.id);
    }
  }

  private track(
    id: number,
    isRpc: boolean,
    target: string | Pid,
    fn: string | undefined,
    arity: number,
    timeout: number,
    signal: AbortSignal | undefined,
    monitor: Monitor,
  ): Promise<Term> {
    monitor.pending++;
    return new Promise<Term>((resolve, reject) => {
      const p: Pending = {
        id,
        resolve,
        reject,
        isRpc,
        target,
        fn,
        arity,
        timeout,
        deadline: timeout === Infinity ? Infinity : performance.now() + timeout,
        done: false,
        monitor,
        signal,
        onAbort: undefined,
      };
      if (timeout !== Infinity) this.deadlines.add(p);
      if (signal !== undefined) {
        p.onAbort = () => {
          if (this.pending.get(id) !== p) return;
          this.pending.delete(id);
          this.native.cancel(id);
          this.finish(p);
          reject(abortReason(signal));
        };
        signal.addEventListener('abort', p.onAbort, { once: true });
      }
      this.pending.set(id, p);
      if (!this.refed) this.updateRef();
    });
  }

  /** Clears what a pending call holds; the caller settles it. */
  private finish(p: Pending): void {
    p.done = true;
    if (p.onAbort !== undefined) {
      p.signal!.removeEventListener('abort', p.onAbort);
      p.onAbort = undefined;
      p.signal = undefined;
    }
    if (p.monitor !== undefined) p.monitor.pending--;
  }

  private onTimeout(p: Pending): void {
    if (p.done || this.pending.get(p.id) !== p) return;
    this.pending.delete(p.id);
    if (this.currentState !== 'closed') this.native.cancel(p.id);
    this.finish(p);
    p.reject(new TimeoutError(`${describe(p)} timed out after ${p.timeout} ms`, p.timeout));
    this.updateRef();
  }

  private rejectAllPending(error: (p: Pending) => Error): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const p of all) {
      this.finish(p);
      p.reject(error(p));
    }
  }

  private clearReceiver(r: Receiver): void {
    if (r.timer !== undefined) clearTimeout(r.timer);
    if (r.onAbort !== undefined) r.signal!.removeEventListener('abort', r.onAbort);
  }

  private dropReceiver(r: Receiver): void {
    const i = this.receivers.indexOf(r);
    if (i >= 0) this.receivers.splice(i, 1);
    this.clearReceiver(r);
    this.updateRef();
  }

  /** Keeps the event loop alive exactly while something waits on this connection. */
  private updateRef(): void {
    if (this.currentState === 'closed') return;
    const want =
      this.connecting || this.pending.size > 0 || this.receivers.length > 0 || this.listenerCount('message') > 0;
    if (want === this.refed) return;
    this.refed = want;
    if (want) this.native.ref();
    else this.native.unref();
  }

  // ------------------------------------------------------------------------------------------
  // Events from the I/O thread: event i has kind meta[4i], id meta[4i + 1], and its term is
  // values[i], or, when meta[4i + 2] >= 0, ops [meta[4i + 2], meta[4i + 3]) of the batch's tape
  // (one entry from native code for the whole batch). meta and the tape are reused by the next
  // batch: read them here, synchronously.

  private onEvents(
    meta: Float64Array,
    n: number,
    values: unknown[],
    tape: Float64Array | undefined,
    text: string | undefined,
    src: Uint8Array | undefined,
  ): void {
    // Every term first, in tape order (the decoder's key cache depends on it), before any
    // listener can run a decode of its own.
    if (tape !== undefined) {
      for (let i = 0; i < n; i++) {
        const begin = meta[4 * i + 2]!;
        if (begin < 0) continue;
        try {
          values[i] = buildTerm(tape, meta[4 * i + 3]!, text!, src, begin);
        } catch (e) {
          values[i] = e;
          meta[4 * i] = meta[4 * i]! | DECODE_FAILED;
        }
      }
    }
    let thrown = false;
    let error: unknown;
    for (let i = 0; i < n; i++) {
      const kind = meta[4 * i]!;
      const id = meta[4 * i + 1]!;
      const value = values[i];
      try {
        switch (kind & ~DECODE_FAILED) {
          case EV_REPLY:
            this.onReply(id, value, (kind & DECODE_FAILED) !== 0);
            break;
          case EV_MESSAGE:
            this.onMessage(value, (kind & DECODE_FAILED) !== 0);
            break;
          case EV_DOWN:
            this.onDown(id, value);
            break;
          case EV_CONNECTED:
            this.onConnected();
            break;
          case EV_CONNECT_FAILED:
            this.onConnectFailed(value as string);
            break;
          case EV_DISCONNECTED:
            this.onDisconnected(value as string);
            break;
        }
      } catch (e) {
        // A listener threw: finish the batch first, then let it surface as uncaught.
        if (!thrown) {
          thrown = true;
          error = e;
        }
      }
    }
    this.updateRef();
    // Thrown from here it would reach Node-API, which (before Node 22, without
    // --force-node-api-uncaught-exceptions-policy) only warns and drops it.
    if (thrown) process.nextTick(rethrow, error);
  }

  private onReply(id: number, value: unknown, failed: boolean): void {
    const p = this.pending.get(id);
    if (p === undefined) return; // timed out, aborted or rejected already: a late reply
    this.pending.delete(id);
    this.finish(p);
    if (failed) {
      p.reject(value);
      return;
    }
    if (p.isRpc) {
      const error = rpcError(value, p);
      if (error !== undefined) {
        p.reject(error);
        return;
      }
    }
    p.resolve(value as Term);
  }

  private onMessage(value: unknown, failed: boolean): void {
    if (failed) {
      if (this.listenerCount('error') > 0) this.emit('error', value);
      return;
    }
    const r = this.receivers.shift();
    if (r !== undefined) {
      this.clearReceiver(r);
      r.resolve(value as Term);
      return;
    }
    if (this.listenerCount('message') > 0) {
      this.emit('message', value as Term);
      return;
    }
    this.mailbox.push(value as Term);
    if (this.mailbox.length > MAILBOX_LIMIT) this.mailbox.shift();
  }

  /** A monitored target went away: every call waiting on it fails as gen_server:call would exit. */
  private onDown(monitorId: number, reason: unknown): void {
    const m = this.monitorsById.get(monitorId);
    if (m === undefined) return;
    this.monitorsById.delete(monitorId);
    this.monitors.delete(m.key);
    if (m.pending === 0) return;
    const name = typeof m.target === 'string' ? m.target : m.target.toString();
    const why =
      reason === A_NOPROC
        ? typeof m.target === 'string'
          ? `no process is registered as ${name} (noproc)`
          : `the process does not exist (noproc)`
        : `the process exited: ${show(reason)}`;
    for (const [id, p] of this.pending) {
      if (p.monitor !== m) continue;
      this.pending.delete(id);
      this.finish(p);
      p.reject(new RemoteError(`${describe(p)} failed: ${why}`, reason, 'exit'));
    }
  }

  private onConnected(): void {
    const w = this.connectWaiter;
    this.connectWaiter = undefined;
    const reconnected = this.currentState === 'reconnecting';
    if (reconnected) {
      this.currentState = 'connected';
      this.reconnectAttempts = 0;
    }
    w?.resolve();
    if (reconnected) this.emit('connect', this.node);
  }

  private onConnectFailed(reason: string): void {
    const w = this.connectWaiter;
    this.connectWaiter = undefined;
    w?.reject(new ConnectionError(reason));
  }

  private onDisconnected(reason: string): void {
    if (this.currentState === 'closed') return;
    const node = this.node;
    const error = new ConnectionError(`lost the connection to ${node}: ${reason}`);
    // Calls made before this point were written (or are about to be): they fail. Those made
    // from now on wait for a reconnection, in a fresh queue.
    this.native.discardQueued();
    this.monitors.clear();
    this.monitorsById.clear();
    this.rejectAllPending((p) => new ConnectionError(`${describe(p)} failed: lost the connection to ${node}: ${reason}`));
    if (this.options.reconnect !== null) {
      this.currentState = 'reconnecting';
      this.scheduleReconnect();
    } else {
      this.currentState = 'disconnected';
      this.lostError = error;
    }
    if (this.listenerCount('disconnect') > 0) this.emit('disconnect', error);
  }

  private scheduleReconnect(): void {
    const r = this.options.reconnect!;
    if (this.reconnectAttempts >= r.maxAttempts) {
      this.giveUp();
      return;
    }
    const delay = Math.min(r.maxDelay, r.initialDelay * 2 ** Math.min(this.reconnectAttempts, 30));
    this.reconnectAttempts++;
    // Not a reason to keep the process alive by itself: pending calls keep it alive if any.
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      if (this.currentState !== 'reconnecting') return;
      const next = (this.nodeIndex + 1) % this.options.nodes.length;
      this.connectTo(next).then(
        () => undefined,
        () => {
          // Not an 'error': the connection keeps trying, and gives up only after maxAttempts.
          if (this.currentState === 'reconnecting') this.scheduleReconnect();
        },
      );
      this.updateRef();
    }, delay);
    this.reconnectTimer.unref();
  }

  private giveUp(): void {
    const r = this.options.reconnect!;
    const error = new ConnectionError(`gave up reconnecting to ${this.options.nodes.join(', ')} after ${r.maxAttempts} attempts`);
    this.currentState = 'disconnected';
    this.lostError = error;
    this.native.discardQueued();
    this.monitors.clear();
    this.monitorsById.clear();
    this.rejectAllPending((p) => new ConnectionError(`${describe(p)} failed: ${error.message}`));
    this.updateRef();
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
