/**
 * The demo as a user sees it: `erl-peb demo` run as a real child process (lib/cli/main.ts through
 * tsx; random ports and node name; a temporary HOME, so the Erlang cookie is generated), its page
 * driven in headless Chromium (Debian's /usr/bin/chromium through playwright-core).
 *
 * Two visits count 1 then 2; a new browser context starts at 1; a second app process (the
 * demo's second command) finds the running session server and shows the same session's counter;
 * Ctrl-C stops the apps, and the one that started the session server stops it too.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupNode } from '../../lib/cli/epmd';
import { SessionClient } from '../../lib/session/client';

/* eslint-disable-next-line @typescript-eslint/no-require-imports */
const { chromium } = require('playwright-core') as typeof import('playwright-core');
type Browser = import('playwright-core').Browser;
type Page = import('playwright-core').Page;

const root = resolve(__dirname, '..', '..');
const MAIN = join(root, 'lib', 'cli', 'main.ts');
const CHROMIUM = '/usr/bin/chromium';

const work = mkdtempSync(join(tmpdir(), 'erlpeb-demo-'));
const home = join(work, 'home');
const state = join(work, 'state');
mkdirSync(home);
const nodeName = `erlpeb_demo_${randomBytes(5).toString('hex')}@127.0.0.1`;
const alive = nodeName.slice(0, nodeName.indexOf('@'));

class Demo {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  private constructor(readonly child: ChildProcessWithoutNullStreams) {
    this.exited = new Promise((r) => child.on('exit', (code) => r(code)));
    child.stderr.on('data', (d: Buffer) => this.output.push(d.toString()));
  }

  /** Starts `erl-peb demo args` and resolves once it prints the URL it listens on. */
  static async start(args: string[]): Promise<{ demo: Demo; url: string }> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of Object.keys(env)) if (k.startsWith('ERL_PEB_')) delete env[k];
    const child = spawn(process.execPath, ['--import', 'tsx', MAIN, 'demo', ...args], {
      cwd: root,
      env: { ...env, HOME: home, ERL_PEB_STATE_DIR: state },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const demo = new Demo(child);
    const url = await new Promise<string>((resolvePromise, reject) => {
      const lines = createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        demo.output.push(`${line}\n`);
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (m) resolvePromise(m[1]!);
      });
      child.on('exit', (code) => reject(new Error(`the demo exited (${code}) before listening:\n${demo.output.join('')}`)));
    });
    return { demo, url };
  }

  get text(): string {
    return this.output.join('');
  }

  /** Ctrl-C, and the exit status. */
  async interrupt(): Promise<number | null> {
    this.child.kill('SIGINT');
    return this.exited;
  }
}

const demos: Demo[] = [];
let browser: Browser | undefined;

async function visit(page: Page, url: string): Promise<{ visits: number; session: string; node: string; expires: string; app: string }> {
  const res = await page.goto(url);
  expect(res?.status()).toBe(200);
  return {
    visits: Number(await page.textContent('#visits')),
    session: (await page.textContent('#session')) ?? '',
    node: (await page.textContent('#node')) ?? '',
    expires: (await page.textContent('#expires')) ?? '',
    app: (await page.textContent('#app')) ?? '',
  };
}

const registered = async (): Promise<boolean> => (await lookupNode(alive, '127.0.0.1')).port !== undefined;

describe('the demo in headless Chromium', () => {
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // playwright gives the browser a fresh, temporary user-data-dir of its own.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
  });

  afterAll(async () => {
    await browser?.close();
    for (const d of demos) if (d.child.exitCode === null && d.child.signalCode === null) d.child.kill('SIGKILL');
    // Whatever happened above, no session server of this test outlives it.
    const recorded = join(state, nodeName, 'server.json');
    if (existsSync(recorded)) {
      const pid = (JSON.parse(readFileSync(recorded, 'utf8')) as { pid: number }).pid;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(work, { recursive: true, force: true });
  });

  it('counts visits, starts a new context at 1, and shares the session with a second app process', async () => {
    expect(await registered()).toBe(false);
    const first = await Demo.start(['--port', '0', '--node', nodeName]);
    demos.push(first.demo);
    expect(first.demo.text).toContain(`starting the session server ${nodeName}`);
    expect(await registered()).toBe(true);
    // No cookie anywhere: the server start wrote a new one, readable by its owner only.
    expect(statSync(join(home, '.erlang.cookie')).mode & 0o777).toBe(0o600);

    const context = await browser!.newContext();
    const page = await context.newPage();
    const one = await visit(page, first.url);
    expect(one.visits).toBe(1);
    expect(one.node).toBe(nodeName);
    const two = await visit(page, first.url);
    expect(two.visits).toBe(2);
    expect(two.session).toBe(one.session);
    expect(Date.parse(two.expires.split(' ')[0]!)).toBeGreaterThan(Date.now());

    // The page shows the first characters of the id the cookie carries (express-session's `s:<id>.<signature>`).
    const [cookie] = await context.cookies(first.url);
    expect(cookie?.name).toBe('erl_peb_demo.sid');
    const id = decodeURIComponent(cookie!.value).slice(2).split('.')[0]!;
    expect(two.session).toBe(`${id.slice(0, 8)}…`);

    // The session is in the Erlang node: read it there, as any client of the server can.
    const client = new SessionClient({ connect: { node: nodeName, cookie: readFileSync(join(home, '.erlang.cookie'), 'utf8').trim(), config: false } });
    try {
      const record = await client.get(`demo:${id}`);
      expect((record?.data as { visits: number }).visits).toBe(2);
    } finally {
      await client.close();
    }

    // A new browser context has no cookie: a session of its own.
    const fresh = await browser!.newContext();
    const other = await visit(await fresh.newPage(), first.url);
    expect(other.visits).toBe(1);
    expect(other.session).not.toBe(one.session);
    await fresh.close();

    // The demo's second command: another app process, same sessions.
    const second = await Demo.start(['--port', '0', '--node', nodeName]);
    demos.push(second.demo);
    expect(second.demo.text).toContain(`using the running session server ${nodeName}`);
    expect(second.url).not.toBe(first.url);
    const three = await visit(page, second.url);
    expect(three.visits).toBe(3);
    expect(three.session).toBe(one.session);
    expect(three.app).not.toBe(two.app);

    // Ctrl-C on the second app leaves the server to the first, which goes on counting.
    expect(await second.demo.interrupt()).toBe(0);
    expect(await registered()).toBe(true);
    expect((await visit(page, first.url)).visits).toBe(4);
    await context.close();

    // Ctrl-C on the first stops the app and the session server it started.
    expect(await first.demo.interrupt()).toBe(0);
    expect(first.demo.text).toContain(`stopped the session server ${nodeName}`);
    expect(await registered()).toBe(false);
  });
});
