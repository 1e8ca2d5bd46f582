/**
 * Starts a real Erlang node for a test: a random name on 127.0.0.1, a random cookie, distribution
 * and EPMD on loopback. Readiness is the node itself saying so from its eval loop (never a sleep).
 *
 * The node reads Erlang expressions from stdin, one per line, and answers each with a line
 * `ok <hex of term_to_binary(Value)>` or `error <hex of the formatted exception>`.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';

export interface StartNodeOptions {
  /** Full node name; default a random `erlpeb_test_<hex>@127.0.0.1`. */
  name?: string;
  /** Cookie; default random. */
  cookie?: string;
  /** Extra code paths (`-pa`). */
  codePaths?: string[];
  /** Extra `erl` arguments. */
  args?: string[];
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the node to answer, ms (default 30 s). */
  readyTimeout?: number;
}

const EVAL_LOOP = [
  'Loop = fun Loop() ->',
  '  case io:get_line(\'\') of',
  '    eof -> erlang:halt(0);',
  '    Line ->',
  '      Reply = try',
  '          {ok, Ts, _} = erl_scan:string(Line),',
  '          {ok, Es} = erl_parse:parse_exprs(Ts),',
  '          {value, V, _} = erl_eval:exprs(Es, []),',
  '          ["ok ", binary:encode_hex(term_to_binary(V))]',
  '        catch C:E:St ->',
  '          ["error ", binary:encode_hex(unicode:characters_to_binary(io_lib:format("~tp:~tp ~tp", [C, E, St])))]',
  '        end,',
  '      io:put_chars([Reply, $\\n]),',
  '      Loop()',
  '  end',
  'end,',
  'io:put_chars("erlpeb-ready\\n"),',
  'Loop().',
].join(' ');

/**
 * The environment for Erlang programs (erl, erlc, epmd) started by a test: a test process run under
 * the sanitizer build (npm run test:asan) has ASan preloaded and its options set, and those
 * programs must run without them.
 */
export function erlangEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'LD_PRELOAD' || /^(?:ASAN|UBSAN|LSAN)_/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

export function randomNodeName(prefix = 'erlpeb_test'): string {
  return `${prefix}_${randomBytes(5).toString('hex')}@127.0.0.1`;
}

export class ErlangNode {
  readonly name: string;
  readonly cookie: string;
  readonly process: ChildProcessWithoutNullStreams;
  private readonly waiting: Array<{ resolve: (line: string) => void; reject: (e: Error) => void }> = [];
  private exited = false;
  private stderr = '';
  readonly exit: Promise<number | null>;

  private constructor(name: string, cookie: string, proc: ChildProcessWithoutNullStreams) {
    this.name = name;
    this.cookie = cookie;
    this.process = proc;
    proc.stderr.on('data', (d: Buffer) => {
      this.stderr += d.toString();
    });
    this.exit = new Promise((resolve) => {
      proc.on('exit', (code) => {
        this.exited = true;
        for (const w of this.waiting.splice(0)) w.reject(new Error(`node ${name} exited (${code}): ${this.stderr}`));
        resolve(code);
      });
    });
    createInterface({ input: proc.stdout }).on('line', (line) => {
      const w = this.waiting.shift();
      if (w) w.resolve(line);
    });
  }

  static async start(options: StartNodeOptions = {}): Promise<ErlangNode> {
    const name = options.name ?? randomNodeName();
    const cookie = options.cookie ?? randomBytes(16).toString('hex');
    const args = [
      '-name', name,
      '-setcookie', cookie,
      '-noshell',
      '-kernel', 'inet_dist_use_interface', '{127,0,0,1}',
      // Log reports to stderr: stdout carries the eval loop's replies.
      '-kernel', 'logger', '[{handler, default, logger_std_h, #{config => #{type => standard_error}}}]',
      ...(options.codePaths ?? []).flatMap((p) => ['-pa', p]),
      ...(options.args ?? []),
      '-eval', EVAL_LOOP,
    ];
    // The Erlang VM (and the EPMD it starts) runs without the sanitizer runtime (see erlangEnv).
    const proc = spawn('erl', args, {
      env: erlangEnv({ ERL_EPMD_ADDRESS: '127.0.0.1', ...options.env }),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const node = new ErlangNode(name, cookie, proc);
    const ready = node.nextLine();
    const timeout = options.readyTimeout ?? 30_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      const line = await Promise.race([
        ready,
        new Promise<string>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`node ${name} did not answer within ${timeout} ms: ${node.stderr}`)), timeout);
        }),
      ]);
      if (line !== 'erlpeb-ready') throw new Error(`node ${name} said ${JSON.stringify(line)} instead of being ready`);
    } catch (e) {
      proc.kill('SIGKILL');
      throw e;
    } finally {
      clearTimeout(timer);
    }
    return node;
  }

  private nextLine(): Promise<string> {
    if (this.exited) return Promise.reject(new Error(`node ${this.name} has exited: ${this.stderr}`));
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  /** Evaluates Erlang expressions (one line, ending in '.') and gives term_to_binary of the value. */
  async eval(expr: string): Promise<Buffer> {
    if (expr.includes('\n')) expr = expr.replace(/\n/g, ' ');
    const reply = this.nextLine();
    this.process.stdin.write(`${expr.trim().replace(/\.$/, '')}.\n`);
    const line = await reply;
    const space = line.indexOf(' ');
    const body = Buffer.from(line.slice(space + 1), 'hex');
    if (line.startsWith('ok ')) return body;
    throw new Error(`Erlang: ${body.toString('utf8')}`);
  }

  /** Evaluates and gives the value as Erlang prints it (`~tp` on one line). */
  async evalText(expr: string): Promise<string> {
    const etf = await this.eval(
      `unicode:characters_to_binary(io_lib:format("~0tp", [begin ${expr.trim().replace(/\.$/, '')} end]))`,
    );
    // 131, BINARY_EXT (109), 4-byte length, bytes.
    if (etf[0] !== 131 || etf[1] !== 109) throw new Error('unexpected reply from the eval loop');
    return etf.subarray(6, 6 + etf.readUInt32BE(2)).toString('utf8');
  }

  /** Evaluates and checks that the value is the atom `true`. */
  async evalTrue(expr: string): Promise<boolean> {
    return (await this.evalText(expr)) === 'true';
  }

  /** Whether `binary_to_term(bytes) =:= (expr)` on the node: 'true' or 'false', as Erlang prints it. */
  readsAs(bytes: Buffer, expr: string): Promise<string> {
    return this.evalText(`binary_to_term(binary:decode_hex(<<"${bytes.toString('hex')}">>)) =:= (${expr})`);
  }

  get pid(): number {
    return this.process.pid!;
  }

  /** Sends a signal to the node's OS process (`SIGKILL`, `SIGSTOP`, `SIGCONT`, ...). */
  signal(sig: NodeJS.Signals): void {
    this.process.kill(sig);
  }

  /** Stops the node (closing stdin halts it; SIGKILL if it lingers) and waits for it to exit. */
  async stop(): Promise<void> {
    if (this.exited) return;
    this.process.stdin.end();
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000);
    await this.exit;
    clearTimeout(timer);
  }
}

export const startNode = (options?: StartNodeOptions): Promise<ErlangNode> => ErlangNode.start(options);
