/**
 * The parts of `erl-peb server` that need no running node: the command-line parser, how the
 * settings are resolved (flags > environment > config file > defaults), the cookie sources, the
 * erl command line, and reading /proc/net addresses.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError } from '../../lib/errors';
import { CliError, parseArgs, UsageError, type FlagSpecs } from '../../lib/cli/args';
import { ipv4, ipv6 } from '../../lib/cli/server';
import {
  ensureCookie,
  erlArgs,
  erlString,
  findCookie,
  resolveStart,
  type CliEnvironment,
} from '../../lib/cli/server-options';

const tmp = mkdtempSync(join(tmpdir(), 'erlpeb-cli-opts-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A fresh folder standing in for HOME, with a state folder and no config file. */
function env(extra: NodeJS.ProcessEnv = {}): CliEnvironment & { home: string } {
  const home = join(tmp, `home${++n}`);
  mkdirSync(home);
  return { env: { HOME: home, ERL_PEB_STATE_DIR: join(home, 'state'), ...extra }, cwd: home, home };
}

const START: FlagSpecs = {
  name: { type: 'string' },
  backend: { type: 'string' },
  copies: { type: 'string' },
  'data-dir': { type: 'string' },
  join: { type: 'string', multiple: true },
  port: { type: 'string' },
  majority: { type: 'boolean' },
  'cookie-file': { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};
const start = (argv: string[], e: CliEnvironment) => resolveStart(parseArgs(argv, START), e);

describe('parseArgs', () => {
  it('takes --flag value, --flag=value, switches, short aliases and repeated flags', () => {
    const p = parseArgs(['--name', 'a@127.0.0.1', '--backend=mnesia', '--majority', '-h', '--join', 'b@h.x', '--join=c@h.x'], START);
    expect(p.flags).toEqual({ name: 'a@127.0.0.1', backend: 'mnesia', majority: true, help: true, join: ['b@h.x', 'c@h.x'] });
    expect(p.positionals).toEqual([]);
  });

  it('refuses unknown options, missing values, values for switches and repeats', () => {
    expect(() => parseArgs(['--bogus'], START)).toThrow(new UsageError('unknown option --bogus'));
    expect(() => parseArgs(['-x'], START)).toThrow(/unknown option -x/);
    expect(() => parseArgs(['--name'], START)).toThrow(/--name needs a value/);
    expect(() => parseArgs(['--name', '--backend', 'ets'], START)).toThrow(/--name needs a value/);
    expect(() => parseArgs(['--name='], START)).toThrow(/non-empty/);
    expect(() => parseArgs(['--majority=yes'], START)).toThrow(/--majority takes no value/);
    expect(() => parseArgs(['--port', '1', '--port', '2'], START)).toThrow(/--port is given more than once/);
    expect(() => parseArgs(['--__proto__', 'x'], START)).toThrow(/unknown option/);
  });

  it('keeps positionals, and everything after --', () => {
    expect(parseArgs(['a', '--', '--name', 'b'], START).positionals).toEqual(['a', '--name', 'b']);
  });
});

describe('resolveStart', () => {
  it('defaults: ETS, erl_peb@127.0.0.1, state under $HOME/.erl-peb when ERL_PEB_STATE_DIR is unset', () => {
    const e = env();
    delete e.env.ERL_PEB_STATE_DIR;
    const s = start([], e);
    expect(s).toMatchObject({ node: 'erl_peb@127.0.0.1', backend: 'ets', copies: undefined, dataDir: undefined, join: [], port: undefined });
    expect(s.nodeDir).toBe(join(e.home, '.erl-peb', 'erl_peb@127.0.0.1'));
  });

  it('Mnesia: ram_copies by default, data in the node folder unless --data-dir (relative to the working folder)', () => {
    const e = env();
    const s = start(['--backend', 'mnesia', '--name', 's1@127.0.0.1'], e);
    expect(s).toMatchObject({ backend: 'mnesia', copies: 'ram_copies', dataDir: join(e.home, 'state', 's1@127.0.0.1', 'mnesia') });
    expect(start(['--backend', 'mnesia', '--data-dir', 'd'], e).dataDir).toBe(join(e.home, 'd'));
  });

  it('flags win over the environment, which wins over the config file', () => {
    const e = env({ ERL_PEB_NODE: 'fromenv@127.0.0.1' });
    const config = join(e.home, 'c.json');
    writeFileSync(config, JSON.stringify({ node: 'client@127.0.0.1', server: { name: 'fromfile@127.0.0.1', backend: 'mnesia', copies: 'disc_copies', port: 45123, join: 'x@127.0.0.1' } }));
    expect(start(['--config', config], e)).toMatchObject({
      node: 'fromenv@127.0.0.1',
      backend: 'mnesia',
      copies: 'disc_copies',
      port: 45123,
      join: ['x@127.0.0.1'],
    });
    expect(start(['--config', config, '--name', 'flag@127.0.0.1', '--copies', 'ram_copies', '--port', '45124'], e)).toMatchObject({
      node: 'flag@127.0.0.1',
      copies: 'ram_copies',
      port: 45124,
    });
    delete e.env.ERL_PEB_NODE;
    expect(start(['--config', config], e).node).toBe('fromfile@127.0.0.1');
  });

  it('refuses bad values with a UsageError naming the flag', () => {
    const e = env();
    expect(() => start(['--backend', 'redis'], e)).toThrow(new UsageError('--backend must be ets or mnesia, got "redis"'));
    expect(() => start(['--port', '0'], e)).toThrow(/--port must be an integer from 1 to 65535/);
    expect(() => start(['--port', '70000'], e)).toThrow(UsageError);
    expect(() => start(['--port', '12ab'], e)).toThrow(UsageError);
    expect(() => start(['--name', 'no-at-sign'], e)).toThrow(/--name must be a node name/);
    expect(() => start(['--backend', 'mnesia', '--copies', 'disk'], e)).toThrow(/--copies must be ram_copies or disc_copies/);
    expect(() => start(['--backend', 'mnesia', '--join', 'bad name'], e)).toThrow(UsageError);
    expect(() => start(['--backend', 'mnesia', '--name', 'a@127.0.0.1', '--join', 'a@127.0.0.1'], e)).toThrow(/names the node being started/);
  });

  it('refuses Mnesia options with ETS instead of ignoring them', () => {
    const e = env();
    expect(() => start(['--copies', 'disc_copies'], e)).toThrow(new UsageError('--copies applies to the mnesia backend only (add --backend mnesia)'));
    expect(() => start(['--data-dir', '/tmp/x', '--majority'], e)).toThrow(/--data-dir, --majority apply to the mnesia backend only/);
  });

  it('refuses an unknown key and bad values in the config file with a ConfigError', () => {
    const e = env();
    // One file each: a .json config is loaded through require, which caches it per path.
    const config = (name: string, server: object): string => {
      const file = join(e.home, `${name}.json`);
      writeFileSync(file, JSON.stringify({ server }));
      return file;
    };
    const typo = config('typo', { backnd: 'ets' });
    expect(() => start(['--config', typo], e)).toThrow(ConfigError);
    expect(() => start(['--config', typo], e)).toThrow(/unknown key 'backnd'/);
    const copies = config('copies', { backend: 'ets', copies: 'disc_copies' });
    expect(() => start(['--config', copies], e)).toThrow(/config file's server section: --copies applies to the mnesia backend/);
    const port = config('port', { port: 'x' });
    expect(() => start(['--config', port], e)).toThrow(/server.port must be an integer/);
  });
});

describe('the cookie', () => {
  const p = (argv: string[] = []) => parseArgs(argv, START);

  it('is generated when none is configured: 160 random bits in $HOME/.erlang.cookie, mode 0600', () => {
    const e = env();
    expect(findCookie(p(), e, {})).toBeUndefined();
    const c = ensureCookie(p(), e, {});
    const file = join(e.home, '.erlang.cookie');
    expect(c).toMatchObject({ source: 'generated', file, handOver: false });
    expect(c.value).toMatch(/^[0-9a-f]{40}$/);
    expect(readFileSync(file, 'utf8')).toBe(c.value);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The next start finds it there and keeps it.
    const again = ensureCookie(p(), e, {});
    expect(again).toMatchObject({ source: 'home', value: c.value });
    expect(ensureCookie(p(), env(), {}).value).not.toBe(c.value);
  });

  it('comes from --cookie-file, then ERL_PEB_COOKIE, then the config file, then ~/.erlang.cookie', () => {
    const e = env({ ERL_PEB_COOKIE: 'fromenv' });
    writeFileSync(join(e.home, '.erlang.cookie'), 'fromhome', { mode: 0o600 });
    writeFileSync(join(e.home, 'flag.cookie'), 'fromflag\n', { mode: 0o600 });
    writeFileSync(join(e.home, 'config.cookie'), 'fromconfig', { mode: 0o600 });
    const config = { cookieFile: 'config.cookie' };
    expect(findCookie(p(['--cookie-file', 'flag.cookie']), e, config)).toMatchObject({ value: 'fromflag', source: 'cookie-file', handOver: true });
    expect(findCookie(p(), e, config)).toMatchObject({ value: 'fromenv', source: 'env', handOver: true });
    delete e.env.ERL_PEB_COOKIE;
    expect(findCookie(p(), e, config)).toMatchObject({ value: 'fromconfig', source: 'config', handOver: true });
    expect(findCookie(p(), e, {})).toMatchObject({ value: 'fromhome', source: 'home', handOver: false });
  });

  it('says what is wrong with a cookie file without showing the cookie', () => {
    const e = env();
    const file = join(e.home, '.erlang.cookie');
    writeFileSync(file, 'secret-cookie-value', { mode: 0o644 });
    expect(() => findCookie(p(), e, {})).toThrow(CliError);
    expect(() => findCookie(p(), e, {})).toThrow(/must be readable by its owner only: chmod 600/);
    writeFileSync(join(e.home, 'two'), 'secret one\nsecret two', { mode: 0o600 });
    let message = '';
    try {
      findCookie(p(['--cookie-file', 'two']), e, {});
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/must hold one cookie/);
    expect(message).not.toContain('secret');
    expect(() => findCookie(p(['--cookie-file', 'missing']), e, {})).toThrow(/cannot be read \(ENOENT\)/);
  });
});

describe('the erl command line', () => {
  it('binds to loopback, pins the port, passes the settings as terms and never the cookie', () => {
    const e = env({ ERL_PEB_COOKIE: 'not-on-the-command-line' });
    const s = start(['--name', 'x@127.0.0.1', '--backend', 'mnesia', '--copies', 'disc_copies', '--data-dir', '/d/"q"', '--join', 'y@127.0.0.1', '--majority', '--port', '45000'], e);
    const args = erlArgs(s, '/ebin');
    expect(args.join(' ')).toBe(
      '-name x@127.0.0.1 -noinput -kernel inet_dist_use_interface {127,0,0,1} ' +
        '+sbwt none +sbwtdcpu none +sbwtdio none ' +
        '-kernel inet_dist_listen_options [{delay_send,true}] -kernel inet_dist_connect_options [{delay_send,true}] ' +
        '-kernel inet_dist_listen_min 45000 -kernel inet_dist_listen_max 45000 -pa /ebin ' +
        '-erl_peb backend mnesia -erl_peb copies disc_copies -erl_peb data_dir "/d/\\"q\\"" ' +
        "-erl_peb join ['y@127.0.0.1'] -erl_peb majority true -s erl_peb boot",
    );
    expect(args.join(' ')).not.toContain('not-on-the-command-line');
    expect(erlArgs(start(['--name', 'short@localhost'], e), '/ebin').slice(0, 2)).toEqual(['-sname', 'short@localhost']);
  });

  it('writes any path as an Erlang string', () => {
    expect(erlString('/a b/ü/\\x')).toBe('"/a b/\\x{fc}/\\\\x"');
  });
});

describe('/proc/net addresses', () => {
  it('reads IPv4 and IPv6 listeners', () => {
    expect(ipv4('0100007F')).toBe('127.0.0.1');
    expect(ipv4('00000000')).toBe('0.0.0.0');
    expect(ipv6('00000000000000000000000001000000')).toBe('::1');
    expect(ipv6('00000000000000000000000000000000')).toBe('::');
    expect(ipv6('0000000000000000FFFF00000100007F')).toBe('127.0.0.1');
  });
});
